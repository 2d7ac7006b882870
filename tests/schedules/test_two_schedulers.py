"""Two real scheduler processes (`manage.py canal_scheduler`, as `make run` starts
it) against the same database fire every instant of an every-second schedule
exactly once: no duplicates, none missing (SECURITY-RELIABILITY.md test 5).

The schedules start a few seconds in the future and end N seconds later, so the
expected set of instants is exact whatever the timing: with catch-up on, an
instant a slow tick missed is still backfilled, and nothing fires after the end.
On SQLite writers are serialised; on MariaDB (CI's second pass) the claims use
SELECT ... FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from apps.core.authz import OPERATOR
from apps.core.services import namespace_ensure
from apps.runs.models import Run
from apps.schedules.models import RecurringRun
from apps.schedules.services import recurring_run_create, run_id_for
from tests.factories import PipelineVersionFactory
from tests.live import start_scheduler, wait_until

pytestmark = [pytest.mark.live, pytest.mark.slow]

SECONDS = 12


def test_two_schedulers_fire_each_instant_exactly_once(transactional_db: None, live_log_dir: Path) -> None:
    schedulers = [start_scheduler(live_log_dir, tick=0.2), start_scheduler(live_log_dir, tick=0.2)]
    try:
        version = PipelineVersionFactory()
        start = (timezone.now() + timedelta(seconds=3)).replace(microsecond=0)
        end = start + timedelta(seconds=SECONDS)
        common = {
            "namespace": namespace_ensure(actor=OPERATOR),
            "actor": OPERATOR,
            "pipeline_version": version,
            "start_time": start,
            "end_time": end,
            "max_concurrency": 100,  # no worker runs them: they stay pending
        }
        periodic = recurring_run_create(
            display_name="every second", trigger_type="PERIODIC", interval_second=1, **common
        )
        cron = recurring_run_create(
            display_name="cron seconds", trigger_type="CRON", cron="* * * * * *", **common
        )
        schedules = [periodic, cron]

        def finished() -> bool:
            # Each schedule's next fire time is cleared once its last instant has fired.
            return not RecurringRun.objects.filter(
                pk__in=[s.pk for s in schedules], next_fire_time__isnull=False
            ).exists()

        wait_until(finished, timeout=120, what="both schedules to reach their end time")
    finally:
        outputs = []
        for proc in schedulers:
            proc.stop()
            outputs.append(proc.output())

    expected = [start + timedelta(seconds=i) for i in range(1, SECONDS + 1)]
    for rr in schedules:
        runs = list(Run.objects.filter(recurring_run=rr).order_by("scheduled_at"))
        assert [r.scheduled_at for r in runs] == expected, rr.display_name
        assert [r.pk for r in runs] == [run_id_for(rr.pk, t) for t in expected]
        rr.refresh_from_db()
        assert rr.fired_count == SECONDS and rr.last_fire_time == end and rr.error == ""
    for output in outputs:
        assert "Traceback" not in output and "tick failed" not in output, output[-4000:]
    fired_by = [
        sum(int(line.split("fired ")[1].split(" ")[0]) for line in o.splitlines() if " fired " in line)
        for o in outputs
    ]
    assert sum(fired_by) == 2 * SECONDS, fired_by
    print(f"{connection.vendor}: runs fired per scheduler process: {fired_by}")
