"""Confinement of user-supplied paths: traversal, encodings, symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apps.storage.paths import UnsafePathError, check_relative, resolve_within, safe_segment

HOSTILE = [
    "../etc/passwd",
    "a/../../etc/passwd",
    "..",
    "..%2f..%2fetc%2fpasswd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "..%252f..%252fetc%252fpasswd",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "a\\..\\..\\etc\\passwd",
    "..\\etc\\passwd",
    "file.txt#../../etc/passwd",
    "file.txt%23frag",
    "a/b\x00.txt",
    "a%00b",
    "a//b",
    "./a",
    "",
    "C:/Windows/win.ini",
    "a/b?x=../../y",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_relative_paths_are_refused(value: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError):
        check_relative(value)
    with pytest.raises(UnsafePathError):
        resolve_within(tmp_path, value)


@pytest.mark.parametrize("value", ["a.txt", "dir/sub/file.csv", "dir/", "name with spaces", "a..b/c..d"])
def test_ordinary_relative_paths_resolve_inside(value: str, tmp_path: Path) -> None:
    resolved = resolve_within(tmp_path, value)
    assert str(resolved).startswith(os.path.realpath(tmp_path) + os.sep)


def test_symlink_escaping_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "inner").mkdir(parents=True)
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (root / "escape").symlink_to(outside)
    (root / "escape-dir").symlink_to(tmp_path)
    (root / "inside").symlink_to(root / "inner")

    with pytest.raises(UnsafePathError):
        resolve_within(root, "escape")
    with pytest.raises(UnsafePathError):
        resolve_within(root, "escape-dir/secret.txt")
    # A symlink that stays inside the root is fine: real paths are compared.
    assert resolve_within(root, "inside") == Path(os.path.realpath(root / "inner"))


def test_root_reached_through_a_symlink_still_confines(tmp_path: Path) -> None:
    real_root = tmp_path / "real"
    real_root.mkdir()
    (tmp_path / "link").symlink_to(real_root)
    assert resolve_within(tmp_path / "link", "x.txt") == Path(os.path.realpath(real_root / "x.txt"))
    with pytest.raises(UnsafePathError):
        resolve_within(tmp_path / "link", "../real/x.txt")


def test_safe_segment() -> None:
    assert safe_segment("my pipeline/v1") == "my-pipeline-v1"
    assert safe_segment("for-loop-2.iteration_0") == "for-loop-2.iteration_0"
    for bad in ("", ".", ".."):
        with pytest.raises(UnsafePathError):
            safe_segment(bad)
