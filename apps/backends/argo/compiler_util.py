"""Names and text for Argo manifests: DNS-1123 names, brace-safe JSON, the error type."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

__all__ = [
    "ABSENT",
    "CompileError",
    "NameRegistry",
    "argo_safe_json",
    "check_no_tags",
    "dns_label",
    "short_hash",
]

# The default every output parameter declares: what a skipped or omitted step's outputs
# read as (Argo >= 4 substitutes the producer's declared default). The driver treats it
# (and an unsubstituted "{{tasks..." reference, what older Argo leaves) as "absent".
ABSENT = "__canal_absent__"

_TAG_OPEN = "{" + "{"


class CompileError(ValueError):
    """The pipeline cannot be compiled into an Argo Workflow; ``path`` locates the IR field."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = tuple(path)

    def __str__(self) -> str:
        if not self.path:
            return self.message
        from apps.engine.spec import format_path

        return f"{self.message} (at {format_path(self.path)})"


def short_hash(text: str, length: int = 8) -> str:
    """A short, stable hex digest of ``text``."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def dns_label(text: str, *, max_length: int = 40, prefix: str = "t") -> str:
    """``text`` as a DNS-1123 label (lower-case letters, digits, '-'; starts with a letter).

    A name that had to change, or be cut, gets a hash of the original appended, so two
    different names never meet in the same label.
    """
    cleaned = _NOT_DNS.sub("-", text.lower()).strip("-")
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"{prefix}-{cleaned}".rstrip("-")
    if cleaned != text or len(cleaned) > max_length:
        digest = short_hash(text, 6)
        cleaned = f"{cleaned[: max_length - 7].rstrip('-')}-{digest}"
    return cleaned


class NameRegistry:
    """Allocates unique names within one namespace (a DAG's tasks, a workflow's templates)."""

    def __init__(self, max_length: int = 40) -> None:
        self.max_length = max_length
        self.used: set[str] = set()

    def reserve(self, name: str) -> None:
        """Mark a fixed name as taken."""
        self.used.add(name)

    def allocate(self, wanted: str, *, suffixes: tuple[str, ...] = ()) -> str:
        """A unique label for ``wanted``; ``suffixes`` (e.g. ``-drv``) must stay free beside it."""
        base = dns_label(wanted, max_length=self.max_length)
        candidate = base
        counter = 1
        while candidate in self.used or any(candidate + s in self.used for s in suffixes):
            counter += 1
            candidate = f"{base[: self.max_length - 4].rstrip('-')}-{counter}"
        self.used.add(candidate)
        for suffix in suffixes:
            self.used.add(candidate + suffix)
        return candidate


def _escape_braces(text: str) -> str:
    return text.replace("{", "\\u007b").replace("}", "\\u007d")


def argo_safe_json(value: Any) -> str:
    """Compact JSON in which no string holds a brace: Argo substitutes ``{{…}}`` tags in
    the text of a manifest, and a pipeline's own text must never be taken for one."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_escape_braces(json.dumps(value)))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(_escape_braces(json.dumps(str(key))))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        out.append(json.dumps(value, allow_nan=False))


def check_no_tags(text: str, what: str, path: tuple[str | int, ...]) -> str:
    """Refuse text that Argo would take for a ``{{…}}`` tag."""
    if _TAG_OPEN in text:
        raise CompileError(f"{what} contains '{_TAG_OPEN}', which Argo would substitute", path)
    return text
