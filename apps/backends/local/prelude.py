"""Recognise the command the kfp SDK generates for lightweight Python components.

The SDK (``kfp/dsl/component_factory.py``) emits::

    sh -c '<ensurepip check> PIP_DISABLE_PIP_VERSION_CHECK=1 <pip installs> && "$0" "$@"'
    sh -ec 'program_path=$(mktemp -d) ... _KFP_RUNTIME=true python3 -m kfp.dsl.executor_main
            --component_module_path "$program_path/ephemeral_component.py" "$@"'
    <component source> --executor_input <json> --function_to_execute <fn>

where each pip install is ``python3 -m pip install --quiet
--no-warn-script-location [--index-url U --extra-index-url U --trusted-host H]
'req' ...``, user packages first, then ``'kfp==X' '--no-deps' ...`` (some
versions the other way round), optionally after the ``use_venv`` snippet. The
``sh -c`` part is absent when nothing is installed.

Anything that deviates from that shape is not "recognised" and the backend
runs it as an ordinary command.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LightweightCommand", "PipInstall", "parse_lightweight_command"]

EXECUTOR_MODULE = "kfp.dsl.executor_main"
SOURCE_FILE_NAME = "ephemeral_component.py"

_PRELUDE = re.compile(
    r"""\A\s*
    if\ !\ \[\ -x\ "\$\(command\ -v\ pip\)"\ \];\ then\s+
        python3\ -m\ ensurepip\ \|\|\ python3\ -m\ ensurepip\ --user\ \|\|\ apt-get\ install\ python3-pip\s+
    fi\s+
    PIP_DISABLE_PIP_VERSION_CHECK=1\s+
    (?P<body>.*?)
    \s*&&\s*"\$0"\ "\$@"\s*\Z""",
    re.VERBOSE | re.DOTALL,
)
_VENV_SNIPPET = re.compile(
    r"""\A\s*
    export\ PIP_DISABLE_PIP_VERSION_CHECK=1\s+
    tmp=\$\(mktemp\ -d\)\s+
    python3\ -m\ venv\ "\$tmp/venv"\ --system-site-packages\s+
    \.\ "\$tmp/venv/bin/activate"\s+""",
    re.VERBOSE,
)
_PROGRAM = (
    'program_path=$(mktemp -d) printf "%s" "$0" > "$program_path/ephemeral_component.py" '
    "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path "
    '"$program_path/ephemeral_component.py" "$@"'
)
_SHELLS = ("sh", "/bin/sh")
_IGNORED_FLAGS = ("--quiet", "-q", "--no-warn-script-location", "--disable-pip-version-check")
_VALUE_FLAGS = ("--index-url", "-i", "--extra-index-url", "--trusted-host")


def _normalise_script(script: str) -> str:
    """Join backslash continuations and collapse whitespace, as the shell would read it."""
    return " ".join(script.replace("\\\n", " ").split())


@dataclass(frozen=True)
class PipInstall:
    """One ``pip install`` of the prelude: requirements and index options."""

    requirements: tuple[str, ...]
    no_deps: bool = False
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()

    def pip_options(self) -> list[str]:
        """The index options as pip arguments."""
        opts: list[str] = []
        if self.index_url:
            opts += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            opts += ["--extra-index-url", url]
        for host in self.trusted_hosts:
            opts += ["--trusted-host", host]
        if self.no_deps:
            opts.append("--no-deps")
        return opts


@dataclass(frozen=True)
class LightweightCommand:
    """A recognised kfp lightweight-component command, split into its parts."""

    installs: tuple[PipInstall, ...]
    source: str
    args: tuple[str, ...]
    use_venv: bool = False

    @property
    def kfp_version(self) -> str | None:
        """The X of ``kfp==X`` installed by the prelude, if any."""
        for install in self.installs:
            for req in install.requirements:
                match = re.fullmatch(r"kfp==([A-Za-z0-9.+!-]+)", req.strip())
                if match:
                    return match.group(1)
        return None

    @property
    def packages(self) -> tuple[str, ...]:
        """Every requirement the prelude installs, sorted."""
        return tuple(sorted({req for install in self.installs for req in install.requirements}))

    @property
    def function_name(self) -> str | None:
        """The value of ``--function_to_execute``."""
        args = list(self.args)
        for i, arg in enumerate(args[:-1]):
            if arg == "--function_to_execute":
                return args[i + 1]
        return None


def _parse_pip_install(segment: str) -> PipInstall | None:
    # The SDK quotes each requirement with Python's repr(), which the shell
    # reads back literally only without $, backticks or backslashes.
    if any(ch in segment for ch in "$`\\"):
        return None
    lexer = shlex.shlex(segment, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    if tokens[:4] != ["python3", "-m", "pip", "install"]:
        return None
    requirements: list[str] = []
    no_deps = False
    index_url: str | None = None
    extra: list[str] = []
    trusted: list[str] = []
    rest = tokens[4:]
    i = 0
    while i < len(rest):
        token = rest[i]
        if token and set(token) <= set("();|&<>"):
            return None  # a shell operator outside quotes: not the SDK's shape
        if token in _IGNORED_FLAGS:
            i += 1
        elif token == "--no-deps":  # noqa: S105  (a pip flag, not a password)
            no_deps = True
            i += 1
        elif token in _VALUE_FLAGS:
            if i + 1 >= len(rest):
                return None
            value = rest[i + 1]
            if token in ("--index-url", "-i"):
                index_url = value
            elif token == "--extra-index-url":  # noqa: S105
                extra.append(value)
            else:
                trusted.append(value)
            i += 2
        elif token.startswith("-"):
            return None  # an option we do not understand: run the command as written
        else:
            requirements.append(token)
            i += 1
    if not requirements:
        return None
    return PipInstall(
        requirements=tuple(requirements),
        no_deps=no_deps,
        index_url=index_url,
        extra_index_urls=tuple(extra),
        trusted_hosts=tuple(trusted),
    )


def _parse_prelude(script: str) -> tuple[tuple[PipInstall, ...], bool] | None:
    match = _PRELUDE.match(script)
    if match is None:
        return None
    installs: list[PipInstall] = []
    use_venv = False
    for segment in re.split(r"\s+&&\s+", match.group("body").strip()):
        venv = _VENV_SNIPPET.match(segment)
        if venv is not None:
            use_venv = True
            segment = segment[venv.end() :]
        install = _parse_pip_install(segment.strip())
        if install is None:
            return None
        installs.append(install)
    return tuple(installs), use_venv


def parse_lightweight_command(argv: Sequence[str]) -> LightweightCommand | None:
    """Split a kfp lightweight-component argv into installs, source and args, or None."""
    argv = list(argv)
    installs: tuple[PipInstall, ...] = ()
    use_venv = False
    if len(argv) >= 4 and argv[0] in _SHELLS and argv[1] == "-c":
        parsed = _parse_prelude(argv[2])
        if parsed is None:
            return None
        installs, use_venv = parsed
        argv = argv[3:]
    if len(argv) < 4 or argv[0] not in _SHELLS or argv[1] != "-ec":
        return None
    if _normalise_script(argv[2]) != _PROGRAM:
        return None
    return LightweightCommand(installs=installs, source=argv[3], args=tuple(argv[4:]), use_venv=use_venv)
