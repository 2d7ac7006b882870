"""The new-run form: typed parameter fields from the spec with defaults and
descriptions, JSON-checked lists and structs, inline errors, clone pre-fill."""

from __future__ import annotations

import hashlib
import re

import pytest
import yaml

from apps.core.choices import RuntimeState, StorageState
from apps.runs.models import Run
from tests.factories import ExperimentFactory, PipelineVersionFactory, RunFactory

TYPED_IR = """\
components:
  comp-show:
    executorLabel: exec-show
    inputDefinitions:
      parameters:
        count: {parameterType: NUMBER_INTEGER}
deploymentSpec:
  executors:
    exec-show:
      container: {image: python:3.11, command: [echo], args: ["{{$.inputs.parameters['count']}}"]}
pipelineInfo: {name: typed}
root:
  dag:
    tasks:
      show:
        componentRef: {name: comp-show}
        inputs: {parameters: {count: {componentInputParameter: count}}}
        taskInfo: {name: show}
  inputDefinitions:
    parameters:
      count: {parameterType: NUMBER_INTEGER, defaultValue: 3.0, isOptional: true, description: How many times}
      rate: {parameterType: NUMBER_DOUBLE, defaultValue: 0.5, isOptional: true}
      verbose: {parameterType: BOOLEAN, defaultValue: false, isOptional: true}
      name: {parameterType: STRING, description: Who to greet}
      tags: {parameterType: LIST, defaultValue: [a, b], isOptional: true}
      config: {parameterType: STRUCT, defaultValue: {depth: 2}, isOptional: true}
schemaVersion: 2.1.0
sdkVersion: kfp-2.14.6
"""


def _version():  # type: ignore[no-untyped-def]
    return PipelineVersionFactory(
        source=TYPED_IR,
        pipeline_spec=yaml.safe_load(TYPED_IR),
        content_hash=hashlib.sha256(TYPED_IR.encode()).hexdigest(),
    )


@pytest.mark.django_db
def test_one_typed_field_per_parameter_with_defaults_and_descriptions(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = _version()
    html = logged_in.get(f"/runs/new/?version={version.pk}").content.decode()
    assert 'type="number" name="param__count" value="3"' in html
    assert 'name="param__rate" value="0.5" step="any"' in html
    assert '<select name="param__verbose"' in html and '<option value="false" selected>' in html
    assert 'name="param__name"' in html and "required" in html[html.index('name="param__name"') - 200 :][:400]
    assert "How many times" in html and "Who to greet" in html
    assert "[\n  &quot;a&quot;,\n  &quot;b&quot;\n]</textarea>" in html
    assert "&quot;depth&quot;: 2" in html
    assert "integer" in html and "float" in html and "boolean" in html and ">list<" in html
    assert "NUMBER_INTEGER" not in html


@pytest.mark.django_db
def test_errors_appear_inline_and_nothing_is_created(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = _version()
    response = logged_in.post(
        f"/runs/new/?version={version.pk}",
        {
            "display_name": "bad",
            "run_type": "one-off",
            "param__count": "three",
            "param__rate": "fast",
            "param__verbose": "maybe",
            "param__name": "",
            "param__tags": '{"not": "a list"}',
            "param__config": "{depth: 2",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert html.count('class="field-error"') >= 6
    assert "Enter a whole number." in html
    assert "Expected a JSON list" in html
    assert "Not valid JSON" in html
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_valid_form_starts_a_run_with_typed_values(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = _version()
    experiment = ExperimentFactory(display_name="tuning")
    response = logged_in.post(
        f"/runs/new/?version={version.pk}",
        {
            "display_name": "typed run",
            "description": "d",
            "experiment": str(experiment.pk),
            "run_type": "one-off",
            "param__count": "7",
            "param__rate": "0.25",
            "param__verbose": "true",
            "param__name": "world",
            "param__tags": '["x"]',
            "param__config": "",  # empty optional: the pipeline's default applies
            "enable_caching": "false",
        },
    )
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert run.runtime_parameters == {
        "count": 7,
        "rate": 0.25,
        "verbose": True,
        "name": "world",
        "tags": ["x"],
    }
    assert run.experiment == experiment and run.pipeline_version == version
    assert run.enable_caching is False and run.description == "d"


@pytest.mark.django_db
def test_service_errors_land_on_their_field(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = _version()
    response = logged_in.post(
        f"/runs/new/?version={version.pk}",
        {"display_name": "x", "run_type": "one-off", "param__name": "n", "pipeline_root": "relative/dir"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    root_field = html[html.index('name="pipeline_root"') :][:800]
    assert "it must be an absolute path or a URI" in root_field
    assert "use one of the configured roots" in root_field
    archived = ExperimentFactory(storage_state=StorageState.ARCHIVED)
    response = logged_in.post(
        f"/runs/new/?version={version.pk}",
        {"display_name": "x", "run_type": "one-off", "param__name": "n", "experiment": str(archived.pk)},
    )
    assert response.status_code == 400  # archived experiments are not offered


@pytest.mark.django_db
def test_clone_prefills_the_form(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = _version()
    source = RunFactory(
        pipeline_version=version,
        pipeline_spec=version.pipeline_spec,
        display_name="original",
        description="first try",
        runtime_parameters={"count": 9, "name": "again", "tags": ["z"]},
        state=RuntimeState.SUCCEEDED,
    )
    html = logged_in.get(f"/runs/new/?clone={source.pk}").content.decode()
    assert 'value="Clone of original"' in html
    assert "first try" in html
    assert 'name="param__count" value="9"' in html
    assert 'name="param__name" value="again"' in html
    assert "&quot;z&quot;" in html
    response = logged_in.post(
        f"/runs/new/?clone={source.pk}",
        {"display_name": "copy", "run_type": "one-off", "param__count": "9", "param__name": "again"},
    )
    clone = Run.objects.get(display_name="copy")
    assert response.status_code == 302
    assert clone.cloned_from == source and clone.pipeline_version == version


@pytest.mark.django_db
def test_picker_lists_pipelines_and_versions(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = _version()
    html = logged_in.get("/runs/new/").content.decode()
    assert version.pipeline.display_name in html and 'name="param__' not in html
    html = logged_in.get(f"/runs/new/?pipeline={version.pipeline_id}").content.decode()
    assert 'name="param__count"' in html  # the latest version is chosen
    assert logged_in.get("/runs/new/?pipeline=not-a-uuid").status_code == 404


@pytest.mark.django_db
def test_recurring_choice_creates_a_recurring_run(logged_in) -> None:  # type: ignore[no-untyped-def]
    from apps.schedules.models import RecurringRun

    version = _version()
    page = logged_in.get(f"/runs/new/?version={version.pk}&type=recurring").content.decode()
    assert 'name="trigger-trigger_type"' in page  # the schedules app's trigger fields
    assert 'value="recurring" checked' in page or 'value="recurring" id' in page
    # The timezone picker offers every IANA zone, UTC first.
    offered = re.findall(
        r'<option value="([^"]*)">', page.split('<datalist id="canal-timezones">')[1].split("</datalist>")[0]
    )
    assert offered[0] == "UTC" and "Europe/Paris" in offered and "America/Argentina/Buenos_Aires" in offered
    assert len(offered) > 300 and offered[1:] == sorted(offered[1:])
    base = {"display_name": "nightly", "run_type": "recurring", "param__name": "n", "param__count": "4"}
    trigger = {
        "trigger-trigger_type": "PERIODIC",
        "trigger-interval_value": "2",
        "trigger-interval_unit": "3600",
        "trigger-timezone": "Europe/Paris",
        "trigger-max_concurrency": "1",
        "trigger-enabled": "on",
    }
    bad = logged_in.post(
        f"/runs/new/?version={version.pk}", {**base, **trigger, "trigger-timezone": "Mars/Base"}
    )
    assert bad.status_code == 400 and RecurringRun.objects.count() == 0
    response = logged_in.post(f"/runs/new/?version={version.pk}", {**base, **trigger, "always_latest": "on"})
    rr = RecurringRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/recurring-runs/{rr.pk}/"
    assert rr.interval_second == 7200 and rr.timezone == "Europe/Paris"
    assert rr.pipeline == version.pipeline and rr.pipeline_version is None  # always the latest
    assert rr.runtime_parameters == {"name": "n", "count": 4}
    assert Run.objects.count() == 0
