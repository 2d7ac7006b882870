"""A failed step's error line is found in its log's tail when it ends (bounded: 256 KiB), and a
real worker records it in the step's error and the run's, so pages never scan logs."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.models import Task
from apps.runs.services import local_steps, run_create
from apps.storage.log_errors import TAIL_BYTES
from tests.live import wait_for_run
from tests.runs.ir import container_pipeline

PY_FAIL = (
    "import sys\n"
    "for i in range(3000):\n"
    "    print(f'processing record {i}: ok')\n"
    "print('WARNING: record 3000 looks odd', file=sys.stderr)\n"
    "raise ValueError('bad input: record 3000 has no id')\n"
)


def test_the_error_line_is_read_from_a_bounded_tail(tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = Path(settings.CANAL_LOG_DIR) / "failure-line-test"
    root.mkdir(parents=True, exist_ok=True)
    big = root / "big.log"
    # A traceback before the last 256 KiB would outrank a generic ERROR line: it is not read.
    early = 'Traceback (most recent call last):\n  File "a"\nOSError: early\n'
    big.write_text(early + "filler line\n" * 40_000 + "ERROR: late failure\n")
    assert big.stat().st_size > TAIL_BYTES
    assert local_steps._log_error_line(str(big)) == "ERROR: late failure"
    small = root / "small.log"
    small.write_text("ERROR: only line\n")  # a whole log keeps its first line
    assert local_steps._log_error_line(str(small)) == "ERROR: only line"
    assert local_steps._log_error_line(str(root / "missing.log")) == ""
    outside = tmp_path / "outside.log"
    outside.write_text("ERROR: not ours\n")
    assert local_steps._log_error_line(str(outside)) == ""  # outside the log root: refused


@pytest.mark.live
def test_failed_steps_record_their_log_error_line(worker) -> None:  # type: ignore[no-untyped-def]
    spec = container_pipeline(
        "failure-lines",
        {
            "py-fail": {"command": ["python3", "-c", PY_FAIL]},
            "sh-fail": {"command": ["sh", "-c", "echo starting; no-such-tool-xyz --go"]},
            "sh-kill": {"command": ["sh", "-c", "echo about to die; kill -9 $$"]},
        },
    )
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR), actor=OPERATOR, display_name="fails", pipeline_spec=spec
    )
    run = wait_for_run(run.pk, timeout=240)
    assert run.state == RuntimeState.FAILED
    errors = {t.name: t.error for t in Task.objects.filter(run=run, kind="CONTAINER")}
    assert errors["py-fail"] == "ValueError: bad input: record 3000 has no id (the step exited with code 1)"
    assert errors["sh-fail"].startswith("sh: 1: no-such-tool-xyz: not found (the step exited with code 127)")
    # Nothing in its log says why: the error is how the process ended, as before.
    assert "SIGKILL" in errors["sh-kill"] and "about to die" not in errors["sh-kill"]
    # The run's error names a failed step and carries its error line.
    assert any(f"'{name}' failed: {error}" in run.error for name, error in errors.items()), run.error
