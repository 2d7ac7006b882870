"""The Celery application. Configuration lives in settings under ``CELERY_*``."""

import gc
import os

from celery import Celery
from celery.signals import worker_ready

from pipelines_site import broker  # noqa: F401  (registers the canalfs:// transport)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipelines_site.settings")

app = Celery("canal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker records a liveness heartbeat for /healthz (apps/core/heartbeat.py).
# Imported by path (a string) so that Django is set up before the module loads.
app.steps["worker"].add("apps.core.heartbeat:WorkerHeartbeatStep")


@worker_ready.connect  # type: ignore[untyped-decorator]  # Celery ships no types
def _report_step_sandbox(**_: object) -> None:
    """Say at start-up whether pipeline steps will be sandboxed (loudly when not)."""
    from apps.runs.services.local_steps import sandbox_startup_report

    sandbox_startup_report()


# A worker's threads share one interpreter, and each garbage collection stops them all.
# Django, Celery, protobuf and the engine leave about 170,000 objects behind at start-up
# that live as long as the worker, and every full collection walked them again: nine
# full collections, 0.95 s of pauses, over four fan-1000 runs. Frozen once the worker is
# ready, and collected less often (young objects here are mostly a step's short-lived
# rows and dicts), the same runs paused 0.24 to 0.33 s in five.
GC_THRESHOLD = (10_000, 10, 10)


@worker_ready.connect  # type: ignore[untyped-decorator]
def tune_gc(**_: object) -> None:
    """Move what start-up left to the permanent generation; collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
