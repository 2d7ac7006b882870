"""The sanitised environment a step (or an installer) runs with.

Steps get an allowlist of the worker's variables, never the whole
environment: a worker holds database URLs, broker credentials and secret
keys that a pipeline step has no business reading. PATH is rebuilt so the
step's task environment comes first and the worker's own virtualenv is not
on it at all, so a step's ``pip``/``python3`` cannot touch Canal's venv.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = [
    "ALLOWED_NAMES",
    "ALLOWED_PREFIXES",
    "caller_prefixes",
    "process_environment",
    "resolve_executable",
]

# Variables a program may reasonably need from the host: identity, locale,
# temp dir, proxies and CA bundles (so pip and HTTPS work behind a proxy).
ALLOWED_NAMES = frozenset(
    {
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TERM",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
    }
)
# Package-installer configuration (index mirrors, certificates) and locale.
ALLOWED_PREFIXES = ("LC_", "PIP_", "UV_")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def caller_prefixes() -> list[str]:
    """Real paths of the calling interpreter's virtualenv(s), whose bin dirs steps must not see."""
    prefixes = set()
    if sys.prefix != sys.base_prefix:
        prefixes.add(os.path.realpath(sys.prefix))
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        prefixes.add(os.path.realpath(venv))
    return sorted(prefixes)


def _inside(path: str, prefixes: Iterable[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == p or real.startswith(p + os.sep) for p in prefixes)


@functools.lru_cache(maxsize=64)
def _clean_path(path_value: str, prefixes: tuple[str, ...]) -> tuple[str, ...]:
    # Cached: resolving every PATH entry costs about a millisecond, per step.
    return tuple(p for p in path_value.split(os.pathsep) if p and not _inside(p, prefixes))


def process_environment(
    spec_env: Mapping[str, str],
    *,
    task_env: Path | None,
    passthrough: Iterable[str] = (),
    extra: Mapping[str, str] | None = None,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a process the local backend starts (a step, a zygote, an installer):
    host allowlist, then the spec's variables, PATH rebuilt.

    ``task_env`` (a virtualenv) is put first on PATH and named in
    VIRTUAL_ENV, so tools that look for "the current venv" (pip, uv) find it
    rather than one discovered from the working directory.
    """
    host = os.environ if source is None else source
    allowed = ALLOWED_NAMES | frozenset(passthrough)
    env = {k: v for k, v in host.items() if k in allowed or k.startswith(ALLOWED_PREFIXES)}
    env.update(extra or {})
    env.update(spec_env)
    prefixes = caller_prefixes()
    path = list(_clean_path(spec_env.get("PATH") or host.get("PATH") or _DEFAULT_PATH, tuple(prefixes)))
    if task_env is not None:
        bin_dir = str(task_env / "bin")
        path = [bin_dir, *[p for p in path if p != bin_dir]]
        env["VIRTUAL_ENV"] = str(task_env)
    else:
        env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(path) or _DEFAULT_PATH
    for name in ("PYTHONHOME", "__PYVENV_LAUNCHER__"):
        if name not in spec_env:
            env.pop(name, None)
    return env


def resolve_executable(program: str, env: Mapping[str, str], cwd: str) -> str | None:
    """Absolute path of ``program`` as execvpe would find it with ``env``'s PATH, or None."""
    if not program:
        return None
    if "/" in program:
        candidate = program if os.path.isabs(program) else os.path.join(cwd, program)
        return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
    for directory in env.get("PATH", _DEFAULT_PATH).split(os.pathsep):
        if not directory:
            continue
        candidate = os.path.join(
            directory if os.path.isabs(directory) else os.path.join(cwd, directory), program
        )
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None
