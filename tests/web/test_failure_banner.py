"""Failure first, without JavaScript: the run banner names the failed step, quotes its error
line and links to its panel; the panel (reached by that link) shows the error line and opens
on the log; the status endpoint gives the banner's data to the live page."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from apps.core.choices import RuntimeState, TaskKind
from apps.runs.models import TaskAttempt
from tests.factories import RunFactory, TaskFactory

pytestmark = pytest.mark.django_db

TRACEBACK = (
    "".join(f"processing record {i}\n" for i in range(3000))
    + "Traceback (most recent call last):\n"
    + '  File "/tmp/step.py", line 4, in <module>\n'
    + "    raise ValueError('bad input: record 3000 has no id')\n"
    + "ValueError: bad input: record 3000 has no id\n"
)


LINE = "ValueError: bad input: record 3000 has no id"


def _panel(client, run, task) -> str:  # type: ignore[no-untyped-def]
    return client.get(f"/runs/{run.pk}/panel/", {"task": task.pk}, HTTP_X_CANAL_FRAGMENT="1").content.decode()


def _banner(html: str) -> str:
    match = re.search(r'<div id="run-error"[^>]*>(.*?)</div>', html, re.S)
    assert match, "the run page has no #run-error banner"
    return match.group(0)


def _failed_run(**task_kwargs):  # type: ignore[no-untyped-def]
    run = RunFactory(state=RuntimeState.FAILED, error="task 'train' failed: whatever the run says")
    TaskFactory(run=run, key="root", name="root", kind=TaskKind.ROOT, state=RuntimeState.FAILED, error="x")
    now = timezone.now()
    task = TaskFactory(
        run=run,
        name="train",
        display_name="Train the model",
        state=RuntimeState.FAILED,
        finished_at=now,
        **task_kwargs,
    )
    return run, task, now


def _with_log(task, text: str) -> None:  # type: ignore[no-untyped-def]
    path = Path(settings.CANAL_LOG_DIR) / str(task.run_id) / str(task.pk) / "attempt-1.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    TaskAttempt.objects.create(task=task, number=1, state=task.state, log_path=str(path), exit_code=1)
    task.log_path, task.attempt = str(path), 1
    task.save()


def test_run_banner_names_the_failed_step_quotes_its_error_and_links_to_it(logged_in) -> None:  # type: ignore[no-untyped-def]
    run, task, _ = _failed_run(error="ValueError: bad input (the step exited with code 1)")
    html = logged_in.get(f"/runs/{run.pk}/").content.decode()
    banner = _banner(html)
    assert " hidden" not in banner.split(">", 1)[0]
    text = unescape(re.sub(r"<[^>]+>", "", banner))
    assert "Step Train the model failed:" in text
    assert "ValueError: bad input (the step exited with code 1)" in text
    # A real link to the task (works with JavaScript off), which the page's script opens in place.
    link = f'href="/runs/{run.pk}/?task={task.pk}#graph"'
    assert link in banner and f'data-open-task="{task.pk}"' in banner
    # The run-level DAG error is not what the banner shows: the step's own is.
    assert "whatever the run says" not in banner
    assert "other step" not in banner  # only one step failed


def test_banner_counts_other_failed_steps_and_names_the_first_to_fail(logged_in) -> None:  # type: ignore[no-untyped-def]
    run, first, now = _failed_run(error="sh: 1: foo: not found (the step exited with code 127)")
    for seconds, name in ((5, "later"), (9, "last")):
        at = now + timedelta(seconds=seconds)
        TaskFactory(run=run, name=name, state=RuntimeState.FAILED, finished_at=at, error=name)
    TaskFactory(run=run, name="fine", state=RuntimeState.SUCCEEDED, finished_at=now)
    banner = _banner(logged_in.get(f"/runs/{run.pk}/").content.decode())
    assert f"?task={first.pk}#graph" in banner
    assert "sh: 1: foo: not found" in banner
    assert "2 other steps failed too" in banner
    assert f'href="/runs/{run.pk}/?tstate=FAILED#tasks"' in banner


def test_a_run_without_failed_steps_keeps_its_plain_error(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = RunFactory(state=RuntimeState.FAILED, error="cannot run this pipeline: no root DAG")
    banner = _banner(logged_in.get(f"/runs/{run.pk}/").content.decode())
    assert "cannot run this pipeline: no root DAG" in banner and "data-failure-banner" not in banner
    ok = RunFactory(state=RuntimeState.SUCCEEDED)
    banner = _banner(logged_in.get(f"/runs/{ok.pk}/").content.decode())
    assert re.match(r'<div id="run-error"[^>]* hidden', banner)


def test_following_the_link_without_javascript_shows_the_step_its_error_and_log(logged_in) -> None:  # type: ignore[no-untyped-def]
    run, task, _ = _failed_run(error=f"{LINE} (the step exited with code 1)")
    _with_log(task, TRACEBACK)
    html = logged_in.get(f"/runs/{run.pk}/", {"task": str(task.pk)}).content.decode()
    panel = html[html.index('id="node-panel"') :]
    assert 'data-panel-type="task"' in panel and f'data-task-id="{task.pk}"' in panel
    task_banner = re.search(r'<div class="form-error small" data-task-failure[^>]*>(.*?)</div>', panel, re.S)
    assert task_banner and "ValueError: bad input: record 3000 has no id" in task_banner.group(1)
    assert 'data-failure-line="ValueError: bad input: record 3000 has no id"' in panel
    # The panel opens on its log for a failed step; the log (its tail) holds the traceback.
    assert 'data-ptab-initial="logs"' in panel
    log = re.search(r"<pre class=\"code log-view\"[^>]*>(.*?)</pre>", panel, re.S)
    assert log and "Traceback (most recent call last):" in unescape(log.group(1))


def test_a_step_failed_before_error_lines_were_recorded_gets_its_line_from_the_log(logged_in) -> None:  # type: ignore[no-untyped-def]
    run, task, _ = _failed_run(error="the step exited with code 1")
    _with_log(task, TRACEBACK)
    html = _panel(logged_in, run, task)
    assert '<div class="failure-line">ValueError: bad input: record 3000 has no id</div>' in html


def test_a_succeeded_step_opens_on_its_usual_tab(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = RunFactory(state=RuntimeState.SUCCEEDED)
    task = TaskFactory(run=run, name="ok", state=RuntimeState.SUCCEEDED)
    _with_log(task, "ERROR: this line is only a log line\n")
    html = _panel(logged_in, run, task)
    assert "data-ptab-initial" not in html and "data-task-failure" not in html


def test_status_gives_the_live_page_the_failed_step(logged_in) -> None:  # type: ignore[no-untyped-def]
    run, task, _ = _failed_run(error="Killed (the step was killed by SIGKILL)")
    status = logged_in.get(f"/runs/{run.pk}/status/").json()
    assert status["failed_task"] == {
        "id": str(task.pk),
        "name": "Train the model",
        "key": task.key,
        "error": "Killed (the step was killed by SIGKILL)",
        "others": 0,
        "more": False,
        "url": f"/runs/{run.pk}/?task={task.pk}#graph",
    }
    fine = RunFactory(state=RuntimeState.RUNNING)
    assert logged_in.get(f"/runs/{fine.pk}/status/").json()["failed_task"] is None


def test_the_banner_escapes_the_error_line(logged_in) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = _failed_run(error="ValueError: <img src=x onerror=alert(1)>")
    banner = _banner(logged_in.get(f"/runs/{run.pk}/").content.decode())
    assert "<img" not in banner and "&lt;img src=x onerror=alert(1)&gt;" in banner
