"""/healthz reports the web process and the liveness of the background processes (the
heartbeats of workers and schedulers), without a login, in one query, without naming
hosts or pids; 200 while the web is up (``?strict=1``: 503 unless everything is)."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.core.heartbeat import Heartbeat
from apps.core.models import ProcessHeartbeat
from apps.core.services import process_heartbeat_record
from tests.live import start_scheduler, start_worker, wait_until


def _beat(kind: str, *, pid: int = 4242, hostname: str = "worker-host-7") -> uuid.UUID:
    instance = uuid.uuid4()
    process_heartbeat_record(
        instance=instance, kind=kind, hostname=hostname, pid=pid, started_at=timezone.now()
    )
    return instance


@pytest.mark.django_db
def test_without_background_processes_web_is_up_but_degraded(client) -> None:  # type: ignore[no-untyped-def]
    ProcessHeartbeat.objects.all().delete()  # whatever an earlier live test's process left
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["web"] == {"status": "ok"}
    assert body["worker"] == {"status": "missing", "alive": 0, "last_heartbeat_age_seconds": None}
    assert body["scheduler"]["status"] == "missing"
    assert client.get("/healthz?strict=1").status_code == 503


@pytest.mark.django_db
def test_fresh_heartbeats_are_ok_and_old_ones_stale(client, settings, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    settings.CANAL_PROCESS_STALE_SECONDS = 30
    _beat("worker", pid=11)
    _beat("worker", pid=12)
    _beat("scheduler", pid=13)
    with django_assert_num_queries(1):
        response = client.get("/healthz?strict=1")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["worker"]["status"] == "ok" and body["worker"]["alive"] == 2
    assert body["scheduler"]["status"] == "ok" and body["scheduler"]["alive"] == 1
    assert body["worker"]["last_heartbeat_age_seconds"] < 30
    # Nothing about where they run, for anonymous callers.
    assert "worker-host-7" not in response.content.decode()
    assert "4242" not in response.content.decode() and '"pid"' not in response.content.decode()

    with time_machine.travel(timezone.now() + timedelta(seconds=45), tick=False):
        _beat("scheduler", pid=14)  # a new scheduler; the workers are silent
        response = client.get("/healthz")
        assert response.status_code == 200  # the web is up: a load balancer keeps it
        body = response.json()
        assert body["status"] == "degraded"
        assert body["worker"]["status"] == "stale" and body["worker"]["alive"] == 0
        assert body["worker"]["last_heartbeat_age_seconds"] == pytest.approx(45, abs=2)
        assert body["scheduler"] == {"status": "ok", "alive": 1, "last_heartbeat_age_seconds": 0.0}
        assert client.get("/healthz?strict=1").status_code == 503


@pytest.mark.django_db
def test_a_heartbeat_updates_its_own_row_and_a_clean_stop_removes_it() -> None:
    heartbeat = Heartbeat("worker", interval=60)
    assert heartbeat.beat()
    row = ProcessHeartbeat.objects.get(pk=heartbeat.instance)
    assert (row.kind, row.pid, row.hostname) == ("worker", os.getpid(), socket.gethostname())
    first = row.last_seen
    with time_machine.travel(timezone.now() + timedelta(seconds=5), tick=False):
        heartbeat.beat()
    row.refresh_from_db()
    assert row.last_seen > first
    assert ProcessHeartbeat.objects.count() == 1
    heartbeat.beat_if_due()  # not due: the interval is a minute
    row.refresh_from_db()
    assert ProcessHeartbeat.objects.count() == 1
    heartbeat.stop()
    assert not ProcessHeartbeat.objects.exists()


@pytest.mark.django_db
def test_a_failing_heartbeat_never_raises() -> None:
    assert Heartbeat("no-such-kind").beat() is False
    assert not ProcessHeartbeat.objects.exists()


@pytest.mark.django_db
def test_rows_of_processes_gone_for_a_day_are_pruned() -> None:
    old = _beat("worker")
    with time_machine.travel(timezone.now() + timedelta(days=2), tick=False):
        _beat("worker")
    assert not ProcessHeartbeat.objects.filter(pk=old).exists()
    assert ProcessHeartbeat.objects.count() == 1


@pytest.mark.live
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_real_worker_and_scheduler_report_and_a_killed_worker_goes_stale(
    client, settings, live_log_dir
) -> None:  # type: ignore[no-untyped-def]
    settings.CANAL_PROCESS_STALE_SECONDS = 4
    fast = {"CANAL_PROCESS_HEARTBEAT_SECONDS": "0.5"}
    scheduler = start_scheduler(live_log_dir, **fast)
    worker = start_worker(live_log_dir, **fast)
    try:

        def health() -> dict:  # type: ignore[type-arg]
            response = client.get("/healthz")
            assert response.status_code == 200
            return response.json()  # type: ignore[no-any-return]

        wait_until(lambda: health()["status"] == "ok", timeout=60, what="worker and scheduler heartbeats")
        pids = set(ProcessHeartbeat.objects.values_list("pid", flat=True))
        assert pids == {worker.proc.pid, scheduler.proc.pid}

        worker.kill9()  # no clean stop: its row stays, and ages
        body = wait_until(
            lambda: (h := health())["worker"]["status"] == "stale" and h,
            timeout=60,
            what="the worker to go stale",
        )
        assert body["scheduler"]["status"] == "ok"
        assert client.get("/healthz?strict=1").status_code == 503

        scheduler.stop()  # a clean stop removes its row
        wait_until(
            lambda: health()["scheduler"]["status"] == "missing", timeout=30, what="the scheduler's row to go"
        )
    finally:
        worker.stop()
        scheduler.stop()
