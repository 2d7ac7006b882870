"""The error line of a failed step's log, for many shapes of log."""

from __future__ import annotations

import pytest

from apps.storage.log_errors import (
    MAX_LINE,
    TAIL_BYTES,
    error_line_from_tail,
    failure_message,
    find_error_line,
)

NOISE = "".join(f"epoch {i}: loss=0.{i:04d}\n" for i in range(3000))

PY_TRACEBACK = """Traceback (most recent call last):
  File "/tmp/step/ephemeral_component.py", line 12, in <module>
    main()
  File "/tmp/step/ephemeral_component.py", line 9, in main
    raise ValueError("bad input")
ValueError: bad input
"""

CHAINED = """Traceback (most recent call last):
  File "x.py", line 2, in <module>
    int("x")
ValueError: invalid literal for int() with base 10: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "x.py", line 4, in <module>
    raise RuntimeError("could not parse the config")
RuntimeError: could not parse the config
"""

PY311_MARKERS = """Traceback (most recent call last):
  File "/app/train.py", line 3, in <module>
    x = {}["missing"]
        ~~^^^^^^^^^^^
KeyError: 'missing'
"""


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (NOISE + PY_TRACEBACK, "ValueError: bad input"),
        (PY_TRACEBACK + "cleaning up\nbye\n", "ValueError: bad input"),
        (CHAINED, "RuntimeError: could not parse the config"),
        (PY311_MARKERS, "KeyError: 'missing'"),
        (
            'Traceback (most recent call last):\n  File "m.py", line 1, in <module>\n    import torchx\n'
            "ModuleNotFoundError: No module named 'torchx'\n",
            "ModuleNotFoundError: No module named 'torchx'",
        ),
        (
            'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\n'
            "__main__.DataError: column 'age' is missing\n",
            "__main__.DataError: column 'age' is missing",
        ),
        (
            'Traceback (most recent call last):\n  File "a.py", line 1\nKeyboardInterrupt\n',
            "KeyboardInterrupt",
        ),
        (
            'Traceback (most recent call last):\n  File "a.py", line 9, in run\n'
            "subprocess.CalledProcessError: Command '['make']' returned non-zero exit status 2.\n",
            "subprocess.CalledProcessError: Command '['make']' returned non-zero exit status 2.",
        ),
        ("starting\nsh: 1: foo: not found\n", "sh: 1: foo: not found"),
        ("/bin/sh: 1: trainer: not found\n", "/bin/sh: 1: trainer: not found"),
        ("bash: line 1: kubectl: command not found\n", "bash: line 1: kubectl: command not found"),
        ("bash: gsutil: command not found\n", "bash: gsutil: command not found"),
        ("sh: /data/in.csv: Permission denied\n", "sh: /data/in.csv: Permission denied"),
        (
            'exec: "python4": executable file not found in $PATH\n',
            'exec: "python4": executable file not found in $PATH',
        ),
        (NOISE + "Killed\n", "Killed"),
        (
            "allocating\nterminate called after throwing an instance of 'std::bad_alloc'\n"
            "  what():  std::bad_alloc\n",
            "what():  std::bad_alloc",
        ),
        (
            "loading\nOSError: [Errno 12] Cannot allocate memory\n",
            "OSError: [Errno 12] Cannot allocate memory",
        ),
        ("Segmentation fault (core dumped)\n", "Segmentation fault (core dumped)"),
        ("step\nAborted (core dumped)\n", "Aborted (core dumped)"),
        ("Terminated\n", "Terminated"),
        (
            "Collecting nope\nERROR: Could not find a version that satisfies the requirement nope\n"
            "ERROR: No matching distribution found for nope\n",
            "ERROR: Could not find a version that satisfies the requirement nope",
        ),
        (
            "2024-05-01 10:00:00 INFO start\n2024-05-01 10:00:01 ERROR disk full\ndone\n",
            "2024-05-01 10:00:01 ERROR disk full",
        ),
        ("ERROR:root:the model did not converge\n", "ERROR:root:the model did not converge"),
        (
            "panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\n",
            "panic: runtime error: index out of range [3] with length 3",
        ),
        ("Error: Cannot find module 'left-pad'\n", "Error: Cannot find module 'left-pad'"),
        ("fatal: not a git repository\n", "fatal: not a git repository"),
    ],
)
def test_finds_the_error_line(log: str, expected: str) -> None:
    assert find_error_line(log) == expected


@pytest.mark.parametrize(
    "log",
    [
        "",
        "\n\n",
        NOISE,
        "error rate: 0.1 is fine\n0 errors found\nno_errors=True\n",
        "WARNING: the disk is nearly full\nDeprecationWarning: old API\n",
        # A traceback cut off before its exception line is no answer.
        'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\n',
    ],
)
def test_no_error_line_in_clean_logs(log: str) -> None:
    assert find_error_line(log) == ""


def test_the_last_traceback_wins_over_an_earlier_one_that_was_handled() -> None:
    handled = PY_TRACEBACK.replace("ValueError: bad input", "TimeoutError: retrying the download")
    log = handled + NOISE + PY_TRACEBACK.replace("ValueError: bad input", "OSError: disk full")
    assert find_error_line(log) == "OSError: disk full"


def test_a_kill_after_a_traceback_wins_since_it_ended_the_step() -> None:
    log = PY_TRACEBACK + "retrying without the cache\n" + NOISE + "Killed\n"
    assert find_error_line(log) == "Killed"


def test_a_traceback_after_a_generic_error_line_wins() -> None:
    log = "ERROR: something logged early\n" + PY_TRACEBACK
    assert find_error_line(log) == "ValueError: bad input"


def test_ansi_colours_and_progress_bar_rewrites_are_removed() -> None:
    log = "\x1b[31mValueError\x1b[0m: bad input\n"
    assert (
        find_error_line('Traceback (most recent call last):\n  File "a"\n' + log) == "ValueError: bad input"
    )
    assert find_error_line(" 10%|#\r 50%|#####\rsh: 1: foo: not found\n") == "sh: 1: foo: not found"


def test_windows_line_endings() -> None:
    assert find_error_line(PY_TRACEBACK.replace("\n", "\r\n")) == "ValueError: bad input"


def test_a_huge_exception_message_is_cut() -> None:
    line = "ValueError: " + "x" * 5000
    found = find_error_line('Traceback (most recent call last):\n  File "a"\n' + line + "\n")
    assert len(found) == MAX_LINE
    assert found.startswith("ValueError: xxx") and found.endswith("…")


def test_tail_drops_its_partial_first_line() -> None:
    # The tail starts in the middle of an error line that is not the failure.
    data = b"ERROR: half a line\nall good\n"
    assert error_line_from_tail(data, whole=False) == ""
    assert error_line_from_tail(data, whole=True) == "ERROR: half a line"


def test_tail_with_broken_utf8_and_a_big_log() -> None:
    log = ("é" * 10 + "\n") * 20000 + PY_TRACEBACK
    data = log.encode()[-TAIL_BYTES:]
    data = b"\xa9" + data  # a tail may start inside a UTF-8 sequence
    assert error_line_from_tail(data, whole=False) == "ValueError: bad input"


@pytest.mark.parametrize(
    ("reason", "line", "expected"),
    [
        (
            "the step exited with code 1",
            "ValueError: bad input",
            "ValueError: bad input (the step exited with code 1)",
        ),
        ("the step exited with code 1", "", "the step exited with code 1"),
        (
            "the step exceeded its memory limit of 64Mi and was killed (OOMKilled)",
            "MemoryError",
            "MemoryError (the step exceeded its memory limit of 64Mi and was killed (OOMKilled))",
        ),
        # a line the reason already contains adds nothing
        (
            "the step exceeded its memory limit of 64Mi and was killed (OOMKilled)",
            "OOMKilled",
            "the step exceeded its memory limit of 64Mi and was killed (OOMKilled)",
        ),
        (
            "the step was killed by signal 9 (SIGKILL)",
            "killed by signal 9",
            "the step was killed by signal 9 (SIGKILL)",
        ),
        ("", "ValueError: x", "ValueError: x"),
    ],
)
def test_failure_message(reason: str, line: str, expected: str) -> None:
    assert failure_message(reason, line) == expected
