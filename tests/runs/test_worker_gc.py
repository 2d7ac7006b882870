"""The worker freezes what start-up left and collects young objects less often
(``pipelines_site.celery.tune_gc``, run on ``worker_ready``). In a fresh interpreter:
freezing here would change the test process itself."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.paths import PROJECT


def test_a_ready_worker_freezes_its_start_up_objects_and_collects_less_often() -> None:
    probe = textwrap.dedent(
        """
        import gc, json, django
        django.setup()
        from celery.signals import worker_ready
        from pipelines_site.celery import GC_THRESHOLD
        before = (gc.get_freeze_count(), gc.get_threshold())
        worker_ready.send(sender=None)
        print(json.dumps([before, [gc.get_freeze_count(), gc.get_threshold()], list(GC_THRESHOLD)]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    before, after, threshold = json.loads(out.strip().splitlines()[-1])
    assert before == [0, [700, 10, 10]]  # Python's defaults
    assert after[0] > 10_000  # Django's, Celery's and Canal's modules: never walked again
    assert after[1] == threshold and threshold[0] > 700
