"""Find the line of a step's log that says why it failed.

Pure functions (no Django, no I/O) over the *tail* of a log: logs can be huge, so
callers read a bounded tail (``TAIL_BYTES``) and pass its bytes or text here.

What counts as "the error line", strongest first:

* a Python traceback's exception line (``ValueError: bad input``) -- of the last
  traceback in the tail, since an earlier one was usually caught and logged;
* a shell error (``sh: 1: foo: not found``, ``bash: foo: command not found``);
* an out-of-memory or signal kill (``Killed``, ``MemoryError``, ``Segmentation fault``,
  ``std::bad_alloc``, ``Cannot allocate memory``);
* otherwise a generic ``ERROR:``/``FATAL``/``panic:`` line: the first line of the last
  block of such lines (pip prints its cause first, then a summary).

Among the strong kinds the one nearest the end wins: it is what ended the step.
"""

from __future__ import annotations

import re

__all__ = ["MAX_LINE", "TAIL_BYTES", "error_line_from_tail", "failure_message", "find_error_line"]

TAIL_BYTES = 256 * 1024  # how much of a log's end is read to find its error line
MAX_LINE = 500  # the error line is cut to this many characters

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_TRACEBACK = re.compile(r"Traceback \(most recent call last\):\s*$")
# ``ValueError: bad input``, ``KeyboardInterrupt``, ``__main__.MyError: x``, ``a.b.C:``
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?::(?:\s.*)?)?$")
_SHELL = [
    # dash: ``sh: 1: foo: not found``; bash: ``bash: line 1: foo: command not found``
    re.compile(r"^(?:\S*/)?(?:ba|da|z|k|a)?sh: (?:line )?\d+: .+"),
    re.compile(
        r"^(?:\S*/)?(?:ba|da|z|k|a)?sh: .+: "
        r"(?:command not found|not found|No such file or directory|Permission denied|Is a directory)\s*$"
    ),
    re.compile(r"\bcommand not found\s*$"),
    re.compile(r"executable file not found in \$PATH"),
    re.compile(r"^exec(?: format error|: .+: (?:not found|No such file or directory|Permission denied))"),
]
_KILLED = [
    re.compile(r"^\s*Killed\s*$"),
    re.compile(r"\b(?:Out of memory|out of memory|OOMKilled|OOM[- ]killed|oom-kill)\b"),
    re.compile(r"\bCannot allocate memory\b"),
    re.compile(r"\bstd::bad_alloc\b"),
    re.compile(r"^\s*MemoryError\b"),
    re.compile(r"\bKilled process \d+\b"),
    re.compile(r"\b(?:Segmentation fault|Bus error|Illegal instruction|Floating point exception)\b"),
    re.compile(r"^\s*(?:Aborted|Terminated|Hangup|Quit)(?: \(core dumped\))?\s*$"),
    re.compile(r"\(core dumped\)"),
    re.compile(r"\bkilled by signal\b", re.IGNORECASE),
    re.compile(r"\bterminate called after throwing\b"),
]
_GENERIC = re.compile(
    r"(?:^|[\s\[|(])(?:ERROR|FATAL|CRITICAL|Fatal error|fatal error|panic|npm ERR!)(?:[\s:\]|)!]|$)"
    r"|(?:^|[\s\[])(?:[Ee]rror|[Ff]atal|FAILED):\s"
)


def _clean(line: str) -> str:
    """A log line as a terminal shows it: escape codes gone, only the last ``\\r`` rewrite."""
    line = _ANSI.sub("", line)
    if "\r" in line:
        parts = [p for p in line.split("\r") if p.strip()]
        line = parts[-1] if parts else ""
    return line.rstrip()


def _cut(line: str) -> str:
    line = line.strip()
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def _traceback_exception(lines: list[str]) -> tuple[int, str] | None:
    """(index, exception line) of the last complete traceback, or None."""
    for start in range(len(lines) - 1, -1, -1):
        if not _TRACEBACK.search(lines[start]):
            continue
        for index in range(start + 1, len(lines)):
            line = lines[index]
            if not line.strip() or line[0] in " \t":
                continue  # a frame, its source line, a ^^^ marker, or a blank line
            if _EXCEPTION.match(line.strip()):
                return index, line
            break  # something else interleaved: this traceback has no exception line
    return None


def _last_match(lines: list[str], patterns: list[re.Pattern[str]]) -> tuple[int, str] | None:
    for index in range(len(lines) - 1, -1, -1):
        if any(p.search(lines[index]) for p in patterns):
            return index, lines[index]
    return None


def _generic(lines: list[str]) -> str:
    for index in range(len(lines) - 1, -1, -1):
        if _GENERIC.search(lines[index]):
            while index > 0 and _GENERIC.search(lines[index - 1]):
                index -= 1  # back to the first line of this block of errors
            return lines[index]
    return ""


def find_error_line(text: str) -> str:
    """The line of ``text`` (a log, or its tail) that says why the step failed; "" if none."""
    lines = [_clean(line) for line in text.splitlines()]
    strong = [
        found
        for found in (
            _traceback_exception(lines),
            _last_match(lines, _SHELL),
            _last_match(lines, _KILLED),
        )
        if found is not None
    ]
    if strong:
        return _cut(max(strong, key=lambda found: found[0])[1])
    return _cut(_generic(lines))


def error_line_from_tail(data: bytes, *, whole: bool) -> str:
    """The error line of a log's last bytes. ``whole`` says ``data`` is the entire log;
    otherwise its first (probably partial) line is dropped."""
    text = data.decode("utf-8", errors="replace")
    if not whole:
        _, _, text = text.partition("\n")
    return find_error_line(text)


def failure_message(reason: str, line: str) -> str:
    """A failed step's error: the log's error line first, then how the process ended
    (``ValueError: bad input (the step exited with code 1)``)."""
    line = line.strip()
    reason = reason.strip()
    if not line or line in reason:
        return reason
    return f"{line} ({reason})" if reason else line
