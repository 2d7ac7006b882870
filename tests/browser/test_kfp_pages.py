"""KFP's pages Canal adds, in Chromium against a live server and a real worker:

- the links the real ``kfp.Client`` prints (``http://host/#/runs/details/<id>``: KFP's
  UI routes on the URL fragment) open Canal's run page, signed in or after signing in;
- the lineage of a Model artifact, written by a step that read a Dataset, shows the
  Dataset's producer, and its links lead to the right pages;
- the Executions list filters real steps by state and by cache.

No timed assertions: Playwright's expect() waits for each state to appear.
"""

# No "from __future__ import annotations": kfp reads the real annotation objects.

import re
import time
from pathlib import Path
from typing import Any

import kfp
import pytest
from kfp import compiler, dsl

from apps.core.choices import RuntimeState, TaskKind
from apps.core.models import Membership
from apps.core.services import api_token_create
from apps.runs.models import Run, Task
from tests.browser.test_ui_flows import PASSWORD, log_in, playwright_expect, screenshots
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:This client only works:FutureWarning"),
]

RUN_TIMEOUT = 300  # s: a busy 2-core machine


@dsl.container_component
def make_dataset(rows: str, data: dsl.Output[dsl.Dataset]):  # type: ignore[no-untyped-def]
    return dsl.ContainerSpec(
        image="alpine:3.20",
        command=["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf "rows=%s\\n" "$0" > "$1"'],
        args=[rows, data.path],
    )


@dsl.container_component
def train_model(data: dsl.Input[dsl.Dataset], model: dsl.Output[dsl.Model]):  # type: ignore[no-untyped-def]
    return dsl.ContainerSpec(
        image="alpine:3.20",
        command=["sh", "-c", 'mkdir -p "$(dirname "$1")" && { echo model-of; cat "$0"; } > "$1"'],
        args=[data.path, model.path],
    )


@dsl.pipeline(name="lineage-two-steps")
def two_steps(rows: str = "12"):  # type: ignore[no-untyped-def]
    dataset = make_dataset(rows=rows)
    train_model(data=dataset.outputs["data"])


@dsl.container_component
def fail_step():  # type: ignore[no-untyped-def]
    return dsl.ContainerSpec(image="alpine:3.20", command=["sh", "-c", "echo broken >&2; exit 3"])


@dsl.pipeline(name="always-fails")
def failing():  # type: ignore[no-untyped-def]
    fail_step()


@pytest.fixture
def kfp_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ~/.config/kfp/context.json from the developer's machine leaks in."""
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    for name in ("KF_PIPELINES_DEFAULT_EXPERIMENT_NAME", "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("KF_PIPELINES_UI_ENDPOINT", raising=False)


@pytest.fixture
def kfp_user(live_stack: Any, kfp_context: None) -> Any:
    """A signed-up user (owner of 'default') and a kfp.Client acting as them."""
    from types import SimpleNamespace

    user = UserFactory(username="kfp-pages", namespace__role=Membership.Role.OWNER)
    token = api_token_create(actor=user, user=user, name="kfp client")[1]
    return SimpleNamespace(user=user, client=kfp.Client(host=live_stack.url, existing_token=token))


def _finished(run_id: str, timeout: float = RUN_TIMEOUT) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        run = Run.objects.get(pk=run_id)
        if run.is_terminal:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} is still {run.state}")
        time.sleep(0.3)


def _start(client: kfp.Client, pipeline: Any, path: Path, **arguments: str) -> str:
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(path))
    return client.create_run_from_pipeline_package(str(path), arguments=arguments, enable_caching=True).run_id


def _watch_csp(page: Any) -> list[str]:
    """Chromium's console lines reporting a Content-Security-Policy violation (these
    pages must draw with no inline style or script)."""
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    return console


def _csp_violations(console: list[str]) -> list[str]:
    return [line for line in console if re.search(r"Content[ -]Security[ -]Policy", line)]


def _printed_link(capsys: pytest.CaptureFixture[str], what: str) -> str:
    match = re.search(rf"(http://\S+/#/{what}/details/\S+)", capsys.readouterr().out)
    assert match, f"kfp printed no {what} link"
    return match.group(1)


def test_kfp_client_links_open_canal_pages(
    live_stack, kfp_user, browser_page, screenshot_dir, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_expect()
    page, base, client = browser_page, live_stack.url, kfp_user.client
    console = _watch_csp(page)
    compiler.Compiler().compile(pipeline_func=two_steps, package_path=str(tmp_path / "p.yaml"))
    pipeline = client.upload_pipeline(str(tmp_path / "p.yaml"), pipeline_name="linked")
    pipeline_link = _printed_link(capsys, "pipelines")
    version = client.upload_pipeline_version(
        str(tmp_path / "p.yaml"), "linked-v2", pipeline_id=pipeline.pipeline_id
    )
    version_link = _printed_link(capsys, "pipelines")
    assert version_link.endswith(f"/version/{version.pipeline_version_id}")
    experiment = client.create_experiment("linked-experiment")
    experiment_link = _printed_link(capsys, "experiments")
    run_id = _start(client, two_steps, tmp_path / "run.yaml")
    run_link = _printed_link(capsys, "runs")
    assert run_link == f"{base}/#/runs/details/{run_id}"

    # Signed out: the link leads to the login page, and signing in lands on the run.
    page.goto(run_link)
    expect(page).to_have_url(re.compile(r"/login/"))
    page.fill("#id_username", "kfp-pages")
    page.fill("#id_password", PASSWORD)
    page.click("main form.form button[type=submit]")
    expect(page).to_have_url(f"{base}/runs/{run_id}/")
    expect(page.locator("h1")).to_contain_text(Run.objects.get(pk=run_id).display_name)

    # Signed in: each printed link opens its page at once.
    page.goto(f"{base}/pipelines/")
    page.goto(run_link)
    expect(page).to_have_url(f"{base}/runs/{run_id}/")
    page.goto(pipeline_link)
    expect(page).to_have_url(f"{base}/pipelines/{pipeline.pipeline_id}/")
    expect(page.locator("h1")).to_contain_text("linked")
    page.goto(version_link)
    expect(page).to_have_url(
        f"{base}/pipelines/{pipeline.pipeline_id}/?version={version.pipeline_version_id}"
    )
    expect(page.locator("main")).to_contain_text("linked-v2")
    page.goto(experiment_link)
    expect(page).to_have_url(f"{base}/experiments/{experiment.experiment_id}/")
    expect(page.locator("h1")).to_contain_text("linked-experiment")
    # Other KFP routes map to their Canal lists; an unknown one stays where "/" leads.
    page.goto(f"{base}/#/executions")
    expect(page).to_have_url(f"{base}/executions/")
    page.goto(f"{base}/#/archive/runs")
    expect(page).to_have_url(f"{base}/runs/?view=archived")
    page.goto(f"{base}/#/no-such-page/details/x")
    expect(page).to_have_url(re.compile(r"/runs/#/no-such-page/details/x$"))
    # An id that is not an id (an encoded path, another host) is not followed anywhere.
    page.goto(f"{base}/#/runs/details/%2F%2Fevil.example")
    expect(page).to_have_url(re.compile(r"/runs/#/runs/details/%2F%2Fevil\.example$"))
    page.goto(f"{base}/#/runs/details/..")
    expect(page).to_have_url(re.compile(r"/runs/#/runs/details/\.\.$"))
    _finished(run_id)
    screenshots(page, screenshot_dir, "kfp-link-list")
    assert page.canal_errors == []  # type: ignore[attr-defined]
    assert _csp_violations(console) == []


def test_model_lineage_shows_the_datasets_producer(
    live_stack, kfp_user, browser_page, screenshot_dir, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_expect()
    page, base = browser_page, live_stack.url
    console = _watch_csp(page)
    run_id = _start(kfp_user.client, two_steps, tmp_path / "two.yaml", rows="40")
    assert _finished(run_id).state == RuntimeState.SUCCEEDED
    steps = {t.component_name: t for t in Task.objects.filter(run_id=run_id, kind=TaskKind.CONTAINER)}
    producer, trainer = steps["comp-make-dataset"], steps["comp-train-model"]
    model = trainer.produced_artifacts.get(schema_title="system.Model")
    dataset = producer.produced_artifacts.get(schema_title="system.Dataset")

    log_in(page, base, "kfp-pages")
    page.goto(f"{base}/artifacts/{model.pk}/")
    lineage = page.locator("#lineage")
    expect(lineage.locator("svg")).to_be_visible()
    # The drawing: the model's producer (train), its input (the dataset) and that one's producer.
    svg = lineage.locator("svg")
    expect(svg.locator(f'a[data-node="t:{producer.pk}"]')).to_be_visible()
    expect(svg.locator(f'a[data-node="a:{dataset.pk}"]')).to_be_visible()
    expect(svg.locator(f'a[data-node="t:{trainer.pk}"]')).to_be_visible()
    expect(lineage.locator("[data-lineage-input-producer]")).to_have_text(
        producer.display_name or producer.name
    )
    screenshots(page, screenshot_dir, "lineage-model")

    # Its links work: the dataset's producer opens its execution page...
    lineage.locator("[data-lineage-input-producer]").click()
    expect(page).to_have_url(f"{base}/executions/{producer.pk}/")
    expect(page.locator("main")).to_contain_text("comp-make-dataset")
    expect(page.locator(f'a[href="/artifacts/{dataset.pk}/"]').first).to_be_visible()
    screenshots(page, screenshot_dir, "execution-detail")
    # ...and the dataset's box in the drawing opens the dataset, whose lineage shows the model.
    page.go_back()
    svg.locator(f'a[data-node="a:{dataset.pk}"]').click()
    expect(page).to_have_url(f"{base}/artifacts/{dataset.pk}/")
    expect(page.locator("#lineage [data-lineage-consumer]")).to_have_text(
        trainer.display_name or trainer.name
    )
    expect(page.locator(f'#lineage svg a[data-node="a:{model.pk}"]')).to_be_visible()
    screenshots(page, screenshot_dir, "lineage-dataset")
    assert page.canal_errors == []  # type: ignore[attr-defined]
    assert _csp_violations(console) == []


def test_executions_list_filters_by_state_and_cache(
    live_stack, kfp_user, browser_page, screenshot_dir, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_expect()
    page, base, client = browser_page, live_stack.url, kfp_user.client
    console = _watch_csp(page)
    first = _start(client, two_steps, tmp_path / "a.yaml", rows="7")
    assert _finished(first).state == RuntimeState.SUCCEEDED
    second = _start(client, two_steps, tmp_path / "b.yaml", rows="7")  # same inputs: cache hits
    broken = _start(client, failing, tmp_path / "c.yaml")
    assert _finished(second).state == RuntimeState.SUCCEEDED
    assert _finished(broken).state == RuntimeState.FAILED
    containers = Task.objects.filter(kind=TaskKind.CONTAINER)
    cached = {str(t.pk) for t in containers.filter(run_id=second)}
    executed = {str(t.pk) for t in containers.filter(run_id=first)}
    failed = {str(t.pk) for t in containers.filter(run_id=broken)}
    assert len(cached) == 2 and all(t.cached_from_id for t in containers.filter(run_id=second))
    assert len(failed) == 1

    def shown() -> set[str]:
        rows = page.locator("table.executions-table tbody tr[data-execution-id]")
        return {rows.nth(i).get_attribute("data-execution-id") or "" for i in range(rows.count())}

    log_in(page, base, "kfp-pages")
    page.click("nav.mainnav >> text=Executions")
    expect(page).to_have_url(f"{base}/executions/")
    # The filters submit on change from the page's script, bound once the page has
    # loaded; choosing before that (a busy machine) changes a select nobody listens to.
    page.wait_for_load_state("load")
    expect(page.locator("tr[data-execution-id]")).to_have_count(5)
    assert shown() == cached | executed | failed

    page.select_option("select[name=state]", "FAILED")
    expect(page).to_have_url(re.compile(r"state=FAILED"))
    expect(page.locator("tr[data-execution-id]")).to_have_count(1)
    assert shown() == failed
    expect(page.locator("tr[data-execution-id]")).to_contain_text("Failed")

    page.select_option("select[name=state]", "")
    expect(page).not_to_have_url(re.compile(r"state=FAILED"))
    page.wait_for_load_state("load")
    page.select_option("select[name=cache]", "cached")
    expect(page).to_have_url(re.compile(r"cache=cached"))
    expect(page.locator("tr[data-execution-id]")).to_have_count(2)
    assert shown() == cached
    screenshots(page, screenshot_dir, "executions-cached")

    page.wait_for_load_state("load")
    page.select_option("select[name=cache]", "executed")
    expect(page).to_have_url(re.compile(r"cache=executed"))
    expect(page.locator("tr[data-execution-id]")).to_have_count(3)
    assert shown() == executed | failed
    page.wait_for_load_state("load")
    page.select_option("select[name=state]", "SUCCEEDED")
    expect(page).to_have_url(re.compile(r"state=SUCCEEDED.*cache=executed|cache=executed.*state=SUCCEEDED"))
    expect(page.locator("tr[data-execution-id]")).to_have_count(2)
    assert shown() == executed

    # A cached execution's page links to the execution it was cached from.
    hit = containers.get(run_id=second, component_name="comp-make-dataset")
    page.goto(f"{base}/executions/{hit.pk}/")
    page.click(f'a[href="/executions/{hit.cached_from_id}/"]')
    expect(page).to_have_url(f"{base}/executions/{hit.cached_from_id}/")
    assert str(hit.cached_from_id) in executed
    page.goto(f"{base}/executions/")
    screenshots(page, screenshot_dir, "executions-all")
    assert page.canal_errors == []  # type: ignore[attr-defined]
    assert _csp_violations(console) == []
