"""The run page: the DAG with loops collapsed, the status endpoint it polls, the panel
(tasks, loop iterations paged, instances), logs, the task list, and run actions."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings

from apps.core.choices import RuntimeState, StorageState, TaskKind
from apps.runs.models import Run, Task, TaskAttempt
from tests.factories import ArtifactFactory, NamespaceFactory, RunFactory, TaskFactory
from tests.web import dag_pipeline as dag
from tests.web.dag_pipeline import create_dag_features_run
from tests.web.fanout import LOOP_NODE, STEP_NODE, create_fanout_run


@pytest.mark.django_db
def test_big_parallel_for_is_one_group_with_counts(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = create_fanout_run(500)
    response = logged_in.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    svg = html[html.index("<svg") : html.index("</svg>")]
    # Two drawn nodes (the loop and its body), not 500: one group with per-state counts.
    assert svg.count('class="node"') + svg.count('class="cluster"') <= 3
    assert "500 iterations" in svg
    # The loop says how its iterations stand in words, and its glyph says it is running.
    assert "500 iterations · 10 running · 485 done · 5 failed" in svg
    assert "◔ for-loop-1" in svg.replace("&#45;", "-")
    # The status endpoint the page polls says the same, compactly.
    status = logged_in.get(f"/runs/{run.pk}/status/").json()
    assert status["terminal"] is False
    assert status["nodes"][LOOP_NODE] == "RUNNING"
    assert "500 iterations" in status["badges"][LOOP_NODE]
    assert status["task_count"] == 1002
    graph = logged_in.get(f"/runs/{run.pk}/graph/").json()
    assert graph["signature"] == status["signature"] and "<svg" in graph["svg"]
    assert LOOP_NODE in graph["element_ids"].values()


def _page_and_poll(client: Any, run: Run) -> list[tuple[int, int]]:
    """(queries, response bytes) of the run page and of its status poll."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(f"/runs/{run.pk}/")  # the first request lays the DAG out (cached by signature)
    out = []
    for url in (f"/runs/{run.pk}/", f"/runs/{run.pk}/status/"):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        out.append((len(queries), len(response.content)))
    return out


@pytest.mark.django_db
def test_run_page_and_poll_count_iterations_instead_of_reading_them(logged_in) -> None:  # type: ignore[no-untyped-def]
    small = _page_and_poll(logged_in, create_fanout_run(50))
    big = create_fanout_run(500)
    large = _page_and_poll(logged_in, big)
    # The same queries, and the same size within 1 % (the digits of the counts and keys,
    # the drawing's coordinates), at 10x the iterations.
    assert [q for q, _ in large] == [q for q, _ in small]
    for (_, a), (_, b) in zip(small, large, strict=True):
        assert abs(a - b) < max(a / 100, 32), (a, b)
    # The graph reads the tasks outside the loop (root and loop) and counts the ones inside.
    status = logged_in.get(f"/runs/{big.pk}/status/").json()
    assert status["task_count"] == 1002
    assert status["badges"][LOOP_NODE] == "500 iterations · 10 running · 485 done · 5 failed"
    assert status["nodes"][STEP_NODE] == "RUNNING"
    assert status["badges"][STEP_NODE] == "500 runs · 10 running · 485 done · 5 failed"
    from apps.runs.selectors import task_graph_counts, task_graph_rows

    counts = task_graph_counts(run=big)
    assert [r["kind"] for r in task_graph_rows(run=big, counts=counts)] == ["ROOT", "LOOP"]
    assert sorted((g["node"], g["kind"], g["state"], g["n"]) for g in counts) == [
        ("root", "ROOT", "RUNNING", 1),
        (LOOP_NODE, "ITERATION", "FAILED", 5),
        (LOOP_NODE, "ITERATION", "RUNNING", 10),
        (LOOP_NODE, "ITERATION", "SUCCEEDED", 485),
        (LOOP_NODE, "LOOP", "RUNNING", 1),
        (STEP_NODE, "CONTAINER", "FAILED", 5),
        (STEP_NODE, "CONTAINER", "RUNNING", 10),
        (STEP_NODE, "CONTAINER", "SUCCEEDED", 485),
    ]


@pytest.mark.django_db
def test_tasks_without_a_recorded_node_are_still_drawn(logged_in) -> None:  # type: ignore[no-untyped-def]
    # Rows written before Task.node existed (and not migrated) are read one by one.
    run = create_fanout_run(20)
    Task.objects.filter(run=run).update(node="")
    status = logged_in.get(f"/runs/{run.pk}/status/").json()
    assert status["task_count"] == 42
    assert status["badges"][LOOP_NODE].startswith("20 iterations")
    assert status["badges"][STEP_NODE].startswith("20 runs")


@pytest.mark.django_db
def test_loop_panel_pages_iterations_and_filters_by_state(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = create_fanout_run(120)
    url = f"/runs/{run.pk}/panel/"
    headers = {"HTTP_X_CANAL_FRAGMENT": "1"}
    first = logged_in.get(url, {"node": LOOP_NODE}, **headers).content.decode()
    assert 'data-panel-type="loop"' in first
    assert first.count('data-panel-query="task=') == 50  # one page of iterations
    assert "1 / 3" in first and "data-panel-next" in first
    third = logged_in.get(url, {"node": LOOP_NODE, "page": 3}, **headers).content.decode()
    assert third.count('data-panel-query="task=') == 20
    failed = logged_in.get(url, {"node": LOOP_NODE, "state": "FAILED"}, **headers).content.decode()
    assert failed.count('data-panel-query="task=') == 2  # iterations 7 and 107
    # Expanding one iteration lists the tasks inside it.
    iteration = run.tasks.get(key=f"{LOOP_NODE}#7")
    inside = logged_in.get(url, {"task": iteration.pk}, **headers).content.decode()
    assert 'data-panel-type="group"' in inside and ">square<" in inside
    # The body node ran 120 times: its instances are listed, paged too.
    body = logged_in.get(url, {"node": STEP_NODE}, **headers).content.decode()
    assert 'data-panel-type="instances"' in body and body.count('data-panel-query="task=') == 50
    # Without the fragment header (no JavaScript), the full page shows the panel.
    page = logged_in.get(url, {"node": LOOP_NODE})
    assert page.status_code == 302 and f"/runs/{run.pk}/?node=" in page["Location"]
    full = logged_in.get(page["Location"]).content.decode()
    assert 'data-panel-type="loop"' in full


@pytest.mark.django_db
def test_task_panel_shows_io_cache_attempts_and_command(logged_in) -> None:  # type: ignore[no-untyped-def]
    origin = TaskFactory(key="root/train", name="train", state=RuntimeState.SUCCEEDED)
    run = RunFactory(state=RuntimeState.SUCCEEDED)
    task = TaskFactory(
        run=run,
        key="root/echo",
        name="echo",
        image="python:3.11",
        command=["python", "-c", "print(1)"],
        inputs={"parameters": {"message": "hi"}},
        outputs={
            "parameters": {"Output": 42},
            "artifacts": {"model": [{"id": "", "uri": "/data/model", "schema_title": "system.Model"}]},
        },
        cached_from=origin,
        cache_status=f"cached from run {origin.run_id} / task root/train",
        attempt=2,
    )
    TaskAttempt.objects.create(task=task, number=1, state=RuntimeState.FAILED, error="exit code 3: boom")
    TaskAttempt.objects.create(task=task, number=2, state=RuntimeState.SUCCEEDED)
    html = logged_in.get(
        f"/runs/{run.pk}/panel/", {"task": task.pk}, HTTP_X_CANAL_FRAGMENT="1"
    ).content.decode()
    assert "message" in html and ">hi<" in html and ">42<" in html
    assert "/data/model" in html and "system.Model" in html
    assert f'href="/runs/{origin.run_id}/"' in html and "root/train" in html
    assert "exit code 3: boom" in html
    assert "python:3.11" in html and "print(1)" in html
    # By key works too (links from the task list use ids, the API uses keys).
    assert (
        logged_in.get(f"/runs/{run.pk}/panel/", {"task": "root/echo"}, HTTP_X_CANAL_FRAGMENT="1").status_code
        == 200
    )


def _log_task(text: bytes, state: str = RuntimeState.SUCCEEDED):  # type: ignore[no-untyped-def]
    task = TaskFactory(state=state, attempt=1)
    path = Path(settings.CANAL_LOG_DIR) / str(task.run_id) / str(task.pk) / "attempt-1.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    TaskAttempt.objects.create(task=task, number=1, state=state, log_path=str(path))
    task.log_path = str(path)
    task.save()
    return task


@pytest.mark.django_db
def test_log_endpoint_tails_and_downloads(logged_in) -> None:  # type: ignore[no-untyped-def]
    task = _log_task("line one\nligne deux é\n".encode(), state=RuntimeState.RUNNING)
    url = f"/runs/{task.run_id}/tasks/{task.pk}/log/"
    data = logged_in.get(url, {"offset": 0}).json()
    assert data["text"] == "line one\nligne deux é\n"
    assert data["active"] is True and data["at_end"] is True
    # From where the last read stopped; a negative offset reads the tail.
    assert logged_in.get(url, {"offset": data["next_offset"]}).json()["text"] == ""
    tail = logged_in.get(url, {"offset": -5}).json()
    assert tail["text"] == "x é\n" and tail["offset"] == len("line one\nligne deux é\n".encode()) - 5
    # A tail starting inside a multi-byte character skips to the next whole one.
    assert logged_in.get(url, {"offset": -2}).json()["text"] == "\n"
    download = logged_in.get(f"/runs/{task.run_id}/tasks/{task.pk}/log/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == "line one\nligne deux é\n".encode()
    assert "attachment" in download["Content-Disposition"]
    assert download["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_log_chunks_never_split_a_utf8_character(logged_in, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from apps.web.runs.views import logs

    monkeypatch.setattr(logs, "LOG_CHUNK", 7)
    task = _log_task("abcdeé€xyz".encode())  # é is 2 bytes, € is 3
    url = f"/runs/{task.run_id}/tasks/{task.pk}/log/"
    text, offset = "", 0
    for _ in range(10):
        data = logged_in.get(url, {"offset": offset}).json()
        assert "\ufffd" not in data["text"]
        text += data["text"]
        offset = data["next_offset"]
        if data["at_end"]:
            break
    assert text == "abcdeé€xyz"


@pytest.mark.django_db
def test_task_without_log_says_so(logged_in) -> None:  # type: ignore[no-untyped-def]
    task = TaskFactory(kind=TaskKind.IMPORTER)
    data = logged_in.get(f"/runs/{task.run_id}/tasks/{task.pk}/log/").json()
    assert "no log" in data["error"]
    assert logged_in.get(f"/runs/{task.run_id}/tasks/{task.pk}/log/download/").status_code == 404


@pytest.mark.django_db
def test_task_list_tab_sorts_filters_and_pages(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = create_fanout_run(60)
    html = logged_in.get(f"/runs/{run.pk}/", {"tsort": "-state"}).content.decode()
    table = html[html.index('id="task-table"') :]
    assert table.count("data-open-task=") == 50  # 121 tasks (root excluded), paged by 50
    failed = logged_in.get(f"/runs/{run.pk}/tasks/", {"tstate": "FAILED"}).content.decode()
    assert failed.count("data-open-task=") == 2  # the failed iteration and its step
    found = logged_in.get(f"/runs/{run.pk}/tasks/", {"tq": "#42/"}).content.decode()
    assert found.count("data-open-task=") == 1 and "for-loop-1#42/square" in found
    assert logged_in.get(f"/runs/{run.pk}/tasks/", {"tsort": "evil__field"}).status_code == 200


@pytest.mark.django_db
def test_run_details_tab_parameters_history_and_spec(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = create_fanout_run(3, runtime_parameters={"items": [1, 2, 3]}, description="fans out")
    html = logged_in.get(f"/runs/{run.pk}/").content.decode()
    assert "fans out" in html
    assert re.search(r'<td class="mono">items</td><td class="mono wrap">\[1, 2, 3\]', html)
    assert "parameterIterator:" in html  # the spec tab
    assert 'data-active="1"' in html


@pytest.mark.django_db
def test_run_actions_are_posts(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = RunFactory(state=RuntimeState.FAILED)
    for action in ("terminate", "retry", "archive", "unarchive", "delete"):
        assert logged_in.get(f"/runs/{run.pk}/{action}/").status_code == 405
    logged_in.post(f"/runs/{run.pk}/archive/")
    assert Run.objects.get(pk=run.pk).storage_state == StorageState.ARCHIVED
    logged_in.post(f"/runs/{run.pk}/unarchive/")
    assert Run.objects.get(pk=run.pk).storage_state == StorageState.AVAILABLE
    response = logged_in.post(f"/runs/{run.pk}/terminate/", follow=True)
    assert "nothing to terminate" in response.content.decode()
    active = RunFactory(state=RuntimeState.RUNNING)
    logged_in.post(f"/runs/{active.pk}/terminate/")
    assert Run.objects.get(pk=active.pk).state == RuntimeState.CANCELING
    response = logged_in.post(f"/runs/{active.pk}/delete/", follow=True)
    assert "terminate it before deleting it" in response.content.decode()
    logged_in.post(f"/runs/{run.pk}/delete/")
    assert not Run.objects.filter(pk=run.pk).exists()


@pytest.mark.django_db
def test_other_namespaces_runs_are_404_everywhere(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = RunFactory(namespace=NamespaceFactory(name="secret-team"), state=RuntimeState.FAILED)
    task = TaskFactory(run=run)
    for url in (
        f"/runs/{run.pk}/",
        f"/runs/{run.pk}/status/",
        f"/runs/{run.pk}/graph/",
        f"/runs/{run.pk}/tasks/",
        f"/runs/{run.pk}/panel/?task={task.pk}",
        f"/runs/{run.pk}/tasks/{task.pk}/log/",
        f"/runs/{run.pk}/tasks/{task.pk}/log/download/",
        f"/runs/new/?clone={run.pk}",
    ):
        assert logged_in.get(url).status_code == 404, url
    for action in ("terminate", "retry", "archive", "unarchive", "delete"):
        assert logged_in.post(f"/runs/{run.pk}/{action}/").status_code == 404
    assert Run.objects.get(pk=run.pk).storage_state == StorageState.AVAILABLE


@pytest.mark.django_db
def test_each_attempt_keeps_its_log(logged_in) -> None:  # type: ignore[no-untyped-def]
    """A retried step (e.g. after its worker died) keeps every attempt's log, by attempt."""
    task = TaskFactory(state=RuntimeState.SUCCEEDED, attempt=2)
    for number, text in ((1, "first worker, killed\n"), (2, "second worker, done\n")):
        path = Path(settings.CANAL_LOG_DIR) / str(task.run_id) / str(task.pk) / f"attempt-{number}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        TaskAttempt.objects.create(
            task=task,
            number=number,
            state=RuntimeState.FAILED if number == 1 else RuntimeState.SUCCEEDED,
            error="the worker was lost" if number == 1 else "",
            log_path=str(path),
        )
    task.log_path = str(path)
    task.save()
    url = f"/runs/{task.run_id}/tasks/{task.pk}/log/"
    assert logged_in.get(url).json()["text"] == "second worker, done\n"
    assert logged_in.get(url, {"attempt": 1}).json()["text"] == "first worker, killed\n"
    panel = logged_in.get(
        f"/runs/{task.run_id}/panel/", {"task": task.pk}, HTTP_X_CANAL_FRAGMENT="1"
    ).content.decode()
    assert "data-log-attempt" in panel and "the worker was lost" in panel
    download = logged_in.get(f"/runs/{task.run_id}/tasks/{task.pk}/log/download/", {"attempt": 1})
    assert b"".join(download.streaming_content) == b"first worker, killed\n"


@pytest.mark.django_db
def test_status_reports_the_open_tasks_state(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = create_fanout_run(5)
    task = run.tasks.get(key=f"{LOOP_NODE}#3/square")
    status = logged_in.get(f"/runs/{run.pk}/status/", {"task": task.pk}).json()
    assert status["task_state"] == RuntimeState.RUNNING
    other = TaskFactory()
    assert logged_in.get(f"/runs/{run.pk}/status/", {"task": other.pk}).json()["task_state"] is None


def _drawn(client: Any, run: Run) -> tuple[str, dict[str, str]]:
    """The run page's SVG (entities decoded) and each node id's SVG element, as drawn."""
    html = client.get(f"/runs/{run.pk}/").content.decode()
    svg = unescape(html[html.index("<svg") : html.index("</svg>")])
    ids = client.get(f"/runs/{run.pk}/graph/").json()["element_ids"]
    elements = {}
    for element_id, node_id in ids.items():
        match = re.search(rf'<g id="{element_id}" (.*?)(?=<g id="node-|\Z)', svg, re.DOTALL)
        assert match, node_id
        elements[node_id] = match.group(0)
    return svg, elements


@pytest.mark.django_db
def test_dag_nodes_carry_state_glyphs_links_and_kinds(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = create_dag_features_run()
    svg, nodes = _drawn(logged_in, run)
    # Not colour alone: a glyph per state in the label, and the state in words in the tooltip.
    assert "✓ flip" in nodes[dag.FLIP] and "state-SUCCEEDED" in nodes[dag.FLIP]
    assert "flip — succeeded" in nodes[dag.FLIP]
    assert "◔ for-loop-5" in nodes[dag.LOOP]
    # Each node is a real link to its panel (keyboard-focusable, works without JavaScript).
    assert f'xlink:href="?node={quote(dag.FLIP, safe="")}#graph"' in nodes[dag.FLIP]
    # A condition says what it tests, in the words of the pipeline's author.
    assert "if flip-Output == 'heads'" in nodes[dag.HEADS]
    assert "if !(flip-Output == 'heads')" in nodes[dag.TAILS]
    assert "if / else (one branch runs)" in nodes[dag.BRANCHES]
    # The artifact from make to the loop is a small node of its own, between them.
    assert "kind-artifact" in nodes[dag.ARTIFACT] and "✓ out" in nodes[dag.ARTIFACT]
    assert "system.Dataset" in nodes[dag.ARTIFACT]
    # The exit handler looks unlike the other steps and says what it is.
    assert "kind-exit" in nodes[dag.EXIT] and "exit handler" in nodes[dag.EXIT]
    assert "kind-exit" not in nodes[dag.FLIP] and "exit handler" not in nodes[dag.FLIP]
    # The running loop counts every iteration, the three not yet running included.
    assert "5 iterations · 1 running · 3 waiting · 1 done" in nodes[dag.LOOP]
    assert svg.count('class="node task') + svg.count('class="cluster') == len(nodes)


@pytest.mark.django_db
def test_the_branch_that_did_not_run_is_drawn_skipped(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = create_dag_features_run()
    _, nodes = _drawn(logged_in, run)
    # The tails branch's condition was false: its step will never run.
    assert "state-SKIPPED" in nodes[dag.TAILS]
    assert "state-SKIPPED" in nodes[dag.TAILS_STEP] and "↷ say-3" in nodes[dag.TAILS_STEP]
    assert "skipped (did not run)" in nodes[dag.TAILS_STEP]
    assert "state-SUCCEEDED" in nodes[dag.HEADS_STEP]
    # The exit task has not started yet, and the run is still going: pending, not skipped.
    assert "state-PENDING" in nodes[dag.EXIT] and "○ say" in nodes[dag.EXIT] and "↷" not in nodes[dag.EXIT]
    status = logged_in.get(f"/runs/{run.pk}/status/").json()
    assert status["nodes"][dag.TAILS_STEP] == "SKIPPED" and status["nodes"][dag.EXIT] == "PENDING"

    # Once the run is over, what never started never will: skipped, and the loop stops waiting.
    Run.objects.filter(pk=run.pk).update(state=RuntimeState.FAILED)
    Task.objects.filter(run=run, key__in=[dag.LOOP, f"{dag.LOOP}#1", f"{dag.LOOP}#1/use"]).update(
        state=RuntimeState.CANCELED
    )
    Task.objects.filter(run=run, key=f"{dag.LOOP}#2").update(state=RuntimeState.CANCELED)
    _, nodes = _drawn(logged_in, run)
    assert "state-SKIPPED" in nodes[dag.EXIT] and "↷ say" in nodes[dag.EXIT]
    assert "5 iterations · 1 done · 2 canceled" in nodes[dag.LOOP]
    assert "waiting" not in nodes[dag.LOOP]


@pytest.mark.django_db
def test_a_condition_group_has_one_name_in_the_graph_and_the_panel(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = create_dag_features_run()
    _, nodes = _drawn(logged_in, run)
    for node_id in (dag.HEADS, dag.TAILS):
        name = node_id.rsplit("/", 1)[-1]
        assert re.search(rf">[^<]* {name}</text>", nodes[node_id]), node_id
        panel = logged_in.get(f"/runs/{run.pk}/panel/", {"node": node_id}, HTTP_X_CANAL_FRAGMENT="1")
        assert f'<h3 class="panel-title">{name}</h3>' in panel.content.decode()


@pytest.mark.django_db
def test_an_artifact_nodes_panel_is_its_producers(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = create_dag_features_run()
    html = logged_in.get(
        f"/runs/{run.pk}/panel/", {"node": dag.ARTIFACT}, HTTP_X_CANAL_FRAGMENT="1"
    ).content.decode()
    assert 'data-panel-type="task"' in html
    assert f'data-node-id="{dag.ARTIFACT}"' in html
    assert str(run.tasks.get(key=dag.MAKE).pk) in html


@pytest.mark.django_db
def test_every_page_starts_with_a_skip_link(logged_in) -> None:  # type: ignore[no-untyped-def]
    run = create_dag_features_run()
    for url in ("/runs/", "/pipelines/", f"/runs/{run.pk}/", "/experiments/"):
        html = logged_in.get(url).content.decode()
        body = html[html.index("<body") :]
        first = re.search(r"<(a|button|input|select|textarea)\b[^>]*>", body)
        assert first and 'class="skip-link"' in first.group(0) and 'href="#content"' in first.group(0), url
        assert 'id="content"' in body, url


@pytest.mark.django_db
def test_a_cached_tasks_panel_draws_the_artifacts_it_reused(logged_in) -> None:  # type: ignore[no-untyped-def]
    """A cache hit produces no artifact of its own: its panel's Visualizations tab shows
    the ones it reused (named by its recorded outputs), and never another namespace's."""
    origin = TaskFactory(key="root/train", name="train", state=RuntimeState.SUCCEEDED)
    metrics = ArtifactFactory(
        producer_task=origin, name="metrics", schema_title="system.Metrics", metadata={"accuracy": 0.875}
    )
    foreign = ArtifactFactory(
        producer_task=TaskFactory(run=RunFactory(namespace=NamespaceFactory())),
        name="stolen",
        schema_title="system.Metrics",
        metadata={"secret": 0.5},
    )
    run = RunFactory(state=RuntimeState.SUCCEEDED, namespace=origin.run.namespace)
    refs = [{"id": str(a.pk), "uri": a.uri, "schema_title": a.schema_title} for a in (metrics, foreign)]
    task = TaskFactory(
        run=run,
        key="root/train",
        name="train",
        state=RuntimeState.SUCCEEDED,
        outputs={"artifacts": {"metrics": refs[:1], "stolen": refs[1:]}},
        cached_from=origin,
    )
    html = logged_in.get(
        f"/runs/{run.pk}/panel/", {"task": task.pk}, HTTP_X_CANAL_FRAGMENT="1"
    ).content.decode()
    assert 'data-ptab="viz"' in html
    assert "accuracy" in html and "0.875" in html
    assert "secret" not in html
