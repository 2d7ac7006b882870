"""Confinement of user-supplied paths and keys to a root (downloads, staging)."""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from urllib.parse import unquote

__all__ = ["UnsafePathError", "check_relative", "resolve_within", "safe_segment"]


class UnsafePathError(ValueError):
    """A user-supplied path or key would leave its root, or is malformed."""


# Characters that never belong in a relative artifact path. '#' and '?' are
# refused because a URL layer may silently cut them off (MLflow CVE-2024-3848),
# backslashes because some layer may treat them as separators.
_FORBIDDEN_CHARS = ("\x00", "\\", "#", "?")
_MAX_UNQUOTE_ROUNDS = 4


def _decoded_forms(value: str) -> list[str]:
    """The value and each successive percent-decoding of it, until it is stable."""
    forms = [value]
    for _ in range(_MAX_UNQUOTE_ROUNDS):
        decoded = unquote(forms[-1])
        if decoded == forms[-1]:
            return forms
        forms.append(decoded)
    # Still changing after several rounds: nobody encodes a path that deeply
    # except to smuggle something through a decoder.
    raise UnsafePathError("path is percent-encoded too many times")


def check_relative(user_path: str) -> list[str]:
    """Validate a user-supplied relative path and return its segments.

    Every percent-decoded form is checked, so ``..%2f`` and ``..%252f`` are
    refused like ``../``. Absolute paths, NUL, backslashes, fragments and ``.``
    or ``..`` segments are refused. A trailing slash is allowed.
    """
    if not isinstance(user_path, str) or user_path == "":
        raise UnsafePathError("empty path")
    for form in _decoded_forms(user_path):
        if any(ch in form for ch in _FORBIDDEN_CHARS):
            raise UnsafePathError("path contains a forbidden character")
        if form.startswith("/") or re.match(r"^[A-Za-z]:", form):
            raise UnsafePathError("absolute paths are not allowed")
        parts = form.split("/")
        if parts and parts[-1] == "":
            parts = parts[:-1]
        for part in parts:
            if part in ("", ".", ".."):
                raise UnsafePathError("path has an empty, '.' or '..' segment")
    segments = user_path.rstrip("/").split("/")
    return segments


def resolve_within(root: str | os.PathLike[str], user_path: str) -> Path:
    """Join a user-supplied relative path to ``root`` and return its real path.

    The result is checked after resolving symlinks, against the real path of
    the root: a symlink inside the root that points outside it is refused.
    The target need not exist.
    """
    segments = check_relative(user_path)
    real_root = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(real_root, *segments))
    if candidate != real_root and os.path.commonpath([real_root, candidate]) != real_root:
        raise UnsafePathError("path resolves outside its root")
    return Path(candidate)


def is_within(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` resolves (symlinks followed) to ``root`` or inside it."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or os.path.commonpath([real_root, real]) == real_root


_SEGMENT_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_segment(value: str) -> str:
    """Turn a name into one safe path segment (``[A-Za-z0-9._-]``, never ``.``/``..``)."""
    cleaned = _SEGMENT_UNSAFE.sub("-", value)
    if cleaned in ("", ".", ".."):
        raise UnsafePathError(f"{value!r} cannot be used as a path segment")
    return cleaned


def join_key(prefix: str, *segments: str) -> str:
    """Join object-store key segments with single slashes."""
    parts = [prefix.strip("/")] + [s.strip("/") for s in segments]
    return posixpath.join(*[p for p in parts if p])
