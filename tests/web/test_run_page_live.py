"""Run pages of real corpus pipelines with sub-DAGs, conditions and nested loops, executed
by a real worker: every node's panel opens, the overlay covers the executed tasks, and
loops are drawn as groups."""

from __future__ import annotations

import pytest
import yaml

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.services import run_create
from tests.live import wait_for_run
from tests.paths import KFP_VALID

pytestmark = [pytest.mark.live]

PIPELINES = [
    "pipeline_with_nested_loops.yaml",
    "pipeline_with_loops_and_conditions.yaml",
    "parallel_and_nested/pipeline_in_pipeline_complex.yaml",
    "critical/flip_coin.yaml",
]


def test_corpus_run_pages_open_every_node(worker, client, user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(user)
    runs = [
        run_create(
            namespace=namespace_ensure(actor=OPERATOR),
            actor=user,
            display_name=rel,
            pipeline_spec=yaml.safe_load((KFP_VALID / rel).read_text()),
        )
        for rel in PIPELINES
    ]
    for run in runs:
        run = wait_for_run(run.pk, timeout=240)
        assert run.state in (RuntimeState.SUCCEEDED, RuntimeState.FAILED), (run.display_name, run.error)
        page = client.get(f"/runs/{run.pk}/")
        assert page.status_code == 200
        assert "<svg" in page.content.decode(), run.display_name
        status = client.get(f"/runs/{run.pk}/status/").json()
        assert status["terminal"] is True
        graph = client.get(f"/runs/{run.pk}/graph/").json()
        # Every executed task maps onto a drawn node.
        executed = {t.key for t in run.tasks.exclude(kind="ROOT")}
        from apps.engine.keys import template_key

        assert {template_key(k) for k in executed} <= set(graph["element_ids"].values()), run.display_name
        for node in graph["element_ids"].values():
            panel = client.get(f"/runs/{run.pk}/panel/", {"node": node}, HTTP_X_CANAL_FRAGMENT="1")
            assert panel.status_code == 200, (run.display_name, node)
        for task in run.tasks.all():
            panel = client.get(f"/runs/{run.pk}/panel/", {"task": task.pk}, HTTP_X_CANAL_FRAGMENT="1")
            assert panel.status_code == 200, (run.display_name, task.key)
