"""The hash-locked requirement files (`make lock` writes them from requirements*.txt;
`make run`, `make test`, CI and the Dockerfile install them with --require-hashes):
every entry is pinned and hashed, each lock still holds the pins of its input (a pin
edited without `make lock` fails here), and the three agree with each other, so that
runtime + dev + mysql install together in one virtualenv."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.paths import PROJECT

LOCKS = {
    "requirements.txt": "requirements.lock",
    "requirements-dev.txt": "requirements-dev.lock",
    "requirements-mysql.txt": "requirements-mysql.lock",
}


@dataclass(frozen=True)
class Locked:
    version: str
    marker: str
    hashes: frozenset[str]


def logical_lines(text: str) -> list[str]:
    """A requirements file's lines, continuations joined, comments dropped."""
    text = re.sub(r"\\\n", " ", text)
    return [
        line.split(" #", 1)[0].strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def read_lock(name: str) -> dict[tuple[str, str], Locked]:
    """(package, marker) -> what the lock pins (a package can appear once per marker)."""
    entries: dict[tuple[str, str], Locked] = {}
    for line in logical_lines((PROJECT / name).read_text()):
        spec, *options = re.split(r"\s+--", line)
        req = Requirement(spec)
        assert len(req.specifier) == 1, f"{name}: {spec!r} is not pinned to one version"
        (pin,) = req.specifier
        assert pin.operator == "==", f"{name}: {spec!r} is not an exact pin"
        hashes = frozenset(o.removeprefix("hash=") for o in options if o.startswith("hash=sha256:"))
        assert hashes, f"{name}: {req.name} has no sha256 hash"
        assert len(hashes) == len(options), f"{name}: unexpected options for {req.name}: {options}"
        key = (canonicalize_name(req.name), str(req.marker or ""))
        assert key not in entries, f"{name}: {req.name} is listed twice for the same environment"
        entries[key] = Locked(pin.version, key[1], hashes)
    return entries


def read_input(name: str) -> dict[str, str]:
    """The package -> version pins written in a requirements*.txt (``-r`` lines skipped)."""
    pins = {}
    for line in logical_lines((PROJECT / name).read_text()):
        if line.startswith("-"):
            continue
        req = Requirement(line)
        (pin,) = req.specifier
        pins[canonicalize_name(req.name)] = pin.version
    return pins


@pytest.mark.parametrize("source", list(LOCKS))
def test_each_lock_holds_its_inputs_pins(source: str) -> None:
    lock = read_lock(LOCKS[source])
    locked = {name: entry.version for (name, _), entry in lock.items()}
    for name, version in read_input(source).items():
        assert locked.get(name) == version, (
            f"{source} pins {name}=={version} but {LOCKS[source]} has {locked.get(name)}: run `make lock`"
        )


def pins_by_package(lock: dict[tuple[str, str], Locked]) -> dict[str, set[tuple[str, frozenset[str]]]]:
    """package -> its (version, hashes), ignoring markers: a lock may need a package on
    more platforms than another (cffi for one more dependant) but never at another version."""
    pins: dict[str, set[tuple[str, frozenset[str]]]] = {}
    for (name, _), entry in lock.items():
        pins.setdefault(name, set()).add((entry.version, entry.hashes))
    return pins


def test_the_dev_lock_is_the_runtime_lock_plus_the_tools() -> None:
    """requirements-dev.txt includes requirements.txt: so does its lock, with the same
    versions and hashes (one resolution), which is what lets `make test` install the dev
    lock over the runtime one without changing a runtime package."""
    runtime = pins_by_package(read_lock("requirements.lock"))
    dev = pins_by_package(read_lock("requirements-dev.lock"))
    differ = {name for name, pins in runtime.items() if not pins <= dev.get(name, set())}
    assert not differ, f"not locked alike in requirements.lock and requirements-dev.lock: {sorted(differ)}"
    assert len(dev) > len(runtime)


def test_the_mysql_lock_agrees_with_the_others() -> None:
    mysql = pins_by_package(read_lock("requirements-mysql.lock"))
    assert "mysqlclient" in mysql
    for other in ("requirements.lock", "requirements-dev.lock"):
        pins = pins_by_package(read_lock(other))
        differ = {name for name in mysql if name in pins and pins[name] != mysql[name]}
        assert not differ, f"requirements-mysql.lock and {other} disagree on {sorted(differ)}"


def test_the_makefile_installs_from_the_locks_with_hashes() -> None:
    """Every install from a file in the Makefile (uv's, and pip's bootstrap of uv) reads
    one of the three locks, or uv's own line copied out of requirements.lock, with
    hashes checked (never a requirements*.txt, which would resolve transitive versions
    afresh)."""
    makefile = (PROJECT / "Makefile").read_text()
    installs = re.findall(r"\$\((?:PIP\)|UV\) pip) install (.*)", makefile)
    from_files = [i for i in installs if "-r " in i]
    read = {re.search(r"-r (\S+)", i).group(1) for i in from_files}  # type: ignore[union-attr]
    bootstrap = "$(VENV)/uv-requirement.txt"
    assert read == {*LOCKS.values(), bootstrap}
    assert all("--require-hashes" in i for i in from_files), from_files
    # The bootstrap file is requirements.lock's own uv entry, hashes included.
    (copy,) = [line for line in makefile.splitlines() if f"> {bootstrap}" in line]
    assert "requirements.lock" in copy and "/^uv==/" in copy


def test_the_makefiles_copy_of_uvs_entry_is_the_locked_one(tmp_path: Path) -> None:
    """The awk line that copies uv's entry out of requirements.lock gives exactly that
    entry: the pin and every hash, and nothing of the next package."""
    makefile = (PROJECT / "Makefile").read_text()
    (line,) = [
        line.strip().lstrip("@")
        for line in makefile.splitlines()
        if "uv-requirement.txt" in line and "awk" in line
    ]
    command = line.split(" > ")[0].replace("$$", "$")
    out = subprocess.run(command, shell=True, cwd=PROJECT, capture_output=True, text=True, check=True).stdout  # noqa: S602
    lock = (PROJECT / "requirements.lock").read_text()
    start = lock.index("\nuv==") + 1
    entry = lock[start:].split("\n    #")[0].rstrip("\n") + "\n"
    assert out == entry and out.count("--hash=sha256:") >= 1 and out.startswith("uv==")
