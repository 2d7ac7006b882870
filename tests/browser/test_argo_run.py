"""An Argo-backed run, end to end: Canal's web app, a real worker and scheduler, the
emulated Kubernetes cluster (its controller runs the Workflow, its pods' artifacts land
in an S3 bucket served by moto), reached through the real ``kubernetes`` client.

The real kfp client starts a run in an experiment whose runs execute on Argo, and reads
it back unchanged; in Chromium a user picks the argo executor on the new-run form, and
the run page shows the DAG turning green, a task's log and an artifact visualization
read from the bucket.
"""

# No "from __future__ import annotations": kfp reads the real annotation objects.

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import kfp
import pytest
from moto.server import ThreadedMotoServer

from apps.backends.argo.emulator import Emulator
from apps.backends.argo.s3_artifacts import S3ArtifactRepository
from apps.core.choices import RunExecutor, RuntimeState
from apps.core.models import Membership
from apps.core.services import api_token_create
from apps.experiments.models import Experiment
from apps.runs.models import Run, Task
from tests.api.kfp_pipelines import compile_to, hello_pipeline
from tests.browser.test_ui_flows import (
    log_in,
    metrics_pipeline_file,
    playwright_expect,
    screenshots,
    upload_pipeline,
    wait_run_finished,
)
from tests.factories import UserFactory
from tests.live import start_scheduler, start_worker

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:This client only works:FutureWarning"),
]

NS = "canal-argo-ui"
BUCKET = "canal-argo"
ROOT = f"s3://{BUCKET}/pipelines"


@pytest.fixture
def argo_stack(
    live_server: Any, live_log_dir: Path, tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    from types import SimpleNamespace

    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3.start()
    host, port = s3.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in credentials.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    cluster = Emulator(
        artifacts=S3ArtifactRepository(BUCKET, endpoint_url=endpoint),
        work_dir=tmp_path / "cluster",
        resync=0.2,
    ).start()
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", "default")
    env = {
        **credentials,
        "CANAL_KUBECONFIG": str(kubeconfig),
        "CANAL_ARGO_NAMESPACE": NS,
        "CANAL_PIPELINE_ROOTS": ROOT,
        "CANAL_S3_ENDPOINT_URL": endpoint,
    }
    # The web app (this process) reads the artifacts from the bucket and checks the executor.
    settings.CANAL_KUBECONFIG = str(kubeconfig)
    settings.CANAL_ARGO_NAMESPACE = NS
    settings.CANAL_PIPELINE_ROOT = ROOT
    settings.CANAL_PIPELINE_ROOTS = [ROOT]
    settings.CANAL_S3_ENDPOINT_URL = endpoint
    env["CANAL_PIPELINE_ROOT"] = ROOT
    worker = start_worker(live_log_dir, **env)
    scheduler = start_scheduler(live_log_dir, **env)  # the persistence agent
    try:
        yield SimpleNamespace(url=live_server.url, cluster=cluster, s3=endpoint)
    finally:
        worker.discard()
        scheduler.stop()
        cluster.stop()
        s3.stop()


def test_the_kfp_client_runs_on_argo_unchanged(
    argo_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    user = UserFactory(username="argo-kfp", namespace__role=Membership.Role.OWNER)
    token = api_token_create(actor=user, user=user, name="kfp")[1]
    Experiment.objects.create(
        namespace=user.namespaces.get(), display_name="on-argo", execution_backend=RunExecutor.ARGO
    )
    client = kfp.Client(host=argo_stack.url, existing_token=token)
    package = compile_to(hello_pipeline, tmp_path / "hello.yaml")
    result = client.create_run_from_pipeline_package(
        str(package), arguments={}, experiment_name="on-argo", run_name="hello on argo"
    )
    finished = client.wait_for_run_completion(result.run_id, timeout=300)
    assert finished.state == "SUCCEEDED", finished.error
    run = Run.objects.get(pk=result.run_id)
    assert run.executor == RunExecutor.ARGO
    assert argo_stack.cluster.workflow(NS, run.executor_state["workflow"])["status"]["phase"] == "Succeeded"
    details = client.get_run(result.run_id).run_details
    steps = [t for t in details.task_details if t.child_tasks is None or not t.child_tasks]
    assert steps and all(t.state == "SUCCEEDED" for t in steps)


def test_an_argo_backed_run_page_shows_its_dag_logs_and_artifacts(
    argo_stack: Any, browser_page: Any, screenshot_dir: Path
) -> None:
    expect = playwright_expect()
    page, base = browser_page, argo_stack.url
    UserFactory(username="argo-ui")
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = metrics_pipeline_file(Path(tmp))
        log_in(page, base, "argo-ui")
        upload_pipeline(page, base, spec_file, "metrics-on-argo")
    page.click("text=Create run")
    page.click("details.advanced > summary")
    page.select_option("select[name=executor]", "argo")
    page.click("#start-run")
    expect(page.locator("[data-executor]")).to_contain_text("Argo Workflows")
    wait_run_finished(page)
    expect(page.locator("#run-state .status")).to_have_attribute("data-state", "SUCCEEDED")
    run = Run.objects.get(display_name__startswith="Run of metrics-on-argo")
    assert run.executor == RunExecutor.ARGO and run.state == RuntimeState.SUCCEEDED
    page.reload()  # the summary is drawn with the page; the DAG and states update live
    expect(page.locator("[data-executor]")).to_contain_text(run.executor_state["workflow"])
    # The DAG: the step's node is drawn in the state its Argo pods ended in.
    node = page.locator("#dag-canvas g[data-node='root/evaluate']")
    expect(node).to_have_attribute("data-state", "SUCCEEDED")
    node.click()
    panel = page.locator("#node-panel-body")
    # Its log, copied from the pod-log API into Canal's log store.
    page.click("#node-panel [data-ptab=logs]")
    log = page.locator("#node-panel pre.log-view")
    expect(log).to_have_attribute("data-log-complete", "1", timeout=60_000)
    assert Task.objects.get(run=run, key="root/evaluate").log_path
    # Its artifacts, read back from the bucket the cluster wrote them to.
    panel.locator("[data-ptab=viz]").click()
    expect(panel.locator("table.confusion-matrix")).to_be_visible()
    expect(panel.locator("table.confusion-matrix td.cm-cell")).to_have_count(9)
    expect(panel.locator(".markdown-body h1")).to_have_text("Report")
    screenshots(page, screenshot_dir, "11-argo-run")
    assert page.canal_errors == []  # type: ignore[attr-defined]
