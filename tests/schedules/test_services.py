"""recurring_run_create's validation, the pipeline it runs, macros, clone and delete."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import time_machine
import yaml

from apps.core.authz import OPERATOR
from apps.core.choices import PipelineFormat, RecurringRunMode, RecurringRunStatus, StorageState
from apps.core.exceptions import FailedPrecondition, InvalidInput
from apps.core.services import namespace_ensure
from apps.runs.models import Run
from apps.schedules.models import RecurringRun
from apps.schedules.services import (
    recurring_run_clone,
    recurring_run_create,
    recurring_run_delete,
    recurring_run_disable,
    recurring_run_enable,
    run_id_for,
)
from tests.factories import ExperimentFactory, NamespaceFactory, PipelineFactory, PipelineVersionFactory
from tests.paths import ARGO_EXAMPLES
from tests.schedules.helpers import IDENTITY_TEXT, identity_version, tick_at, utc

pytestmark = pytest.mark.django_db

BASE = {"trigger_type": "PERIODIC", "interval_second": 3600}


def create(**kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("namespace", namespace_ensure(actor=OPERATOR))
    kwargs.setdefault("actor", OPERATOR)
    kwargs.setdefault("display_name", "nightly")
    for key, value in BASE.items():
        kwargs.setdefault(key, value)
    if not {"pipeline", "pipeline_version", "pipeline_spec"} & set(kwargs):
        kwargs["pipeline_version"] = PipelineVersionFactory()
    return recurring_run_create(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"display_name": "  "}, "display_name"),
        ({"display_name": "x" * 256}, "display_name"),
        ({"trigger_type": "DAILY"}, "trigger_type"),
        ({"trigger_type": "CRON", "cron": ""}, "cron"),
        ({"trigger_type": "CRON", "cron": "0 9 * *"}, "cron"),
        ({"trigger_type": "CRON", "cron": "0 0 9 ? * 8"}, "cron"),
        ({"trigger_type": "PERIODIC", "interval_second": 0}, "interval_second"),
        ({"trigger_type": "PERIODIC", "interval_second": None}, "interval_second"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"start_time": utc(2026, 2, 1), "end_time": utc(2026, 1, 1)}, "end_time"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 101}, "max_concurrency"),
        ({"max_concurrency": "many"}, "max_concurrency"),
        ({"pipeline_root": "relative/path"}, "pipeline_root"),
    ],
)
def test_invalid_input_names_the_field(kwargs, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as err:
        create(**kwargs)
    assert err.value.field == field
    assert RecurringRun.objects.count() == 0


def test_parameters_are_checked_against_the_spec_and_strings_may_hold_macros() -> None:
    version = identity_version()
    with pytest.raises(InvalidInput) as err:
        create(pipeline_version=version, parameters={})
    assert err.value.field == "parameters.value"
    with pytest.raises(InvalidInput) as err:
        create(pipeline_version=version, parameters={"value": "x", "extra": 1})
    assert err.value.field == "parameters.extra"
    rr = create(pipeline_version=version, parameters={"value": "day-[[ScheduledTime.2006-01-02]]"})
    assert rr.runtime_parameters == {"value": "day-[[ScheduledTime.2006-01-02]]"}


def test_pipeline_source_must_be_exactly_one() -> None:
    version = PipelineVersionFactory()
    with pytest.raises(InvalidInput) as err:
        create(pipeline_version=None, pipeline=None, pipeline_spec=None)
    assert err.value.field == "pipeline_spec"
    with pytest.raises(InvalidInput):
        create(pipeline_version=version, pipeline_spec=version.pipeline_spec)
    with pytest.raises(InvalidInput) as err:
        create(pipeline_version=version, pipeline=PipelineFactory())
    assert err.value.field == "pipeline_version"
    with pytest.raises(InvalidInput) as err:
        create(pipeline=PipelineFactory())  # no versions
    assert err.value.field == "pipeline"
    with pytest.raises(InvalidInput) as err:
        create(pipeline_spec={"not": "a pipeline"})
    assert err.value.field == "pipeline_spec"
    # An Argo Workflow that needs a cluster (a resource template) cannot run locally.
    jobs = yaml.safe_load((ARGO_EXAMPLES / "k8s-jobs.yaml").read_text())
    argo = PipelineVersionFactory(format=PipelineFormat.ARGO, pipeline_spec=jobs)
    with pytest.raises(InvalidInput, match="resource") as err:
        create(pipeline_version=argo)
    assert err.value.field == "pipeline_version"


def test_experiment_must_be_in_the_namespace_and_not_archived() -> None:
    other = ExperimentFactory(namespace=NamespaceFactory(name="team-b"))
    with pytest.raises(InvalidInput) as err:
        create(experiment=other)
    assert err.value.field == "experiment"
    archived = ExperimentFactory(storage_state=StorageState.ARCHIVED)
    with pytest.raises(FailedPrecondition):
        create(experiment=archived)
    rr = create()
    assert rr.experiment.display_name == "Default"


def test_created_schedule_fields() -> None:
    with time_machine.travel(utc(2026, 5, 1, 10, 0, 0, 500000), tick=False):
        rr = create(trigger_type="CRON", cron=" 0  9 * * * ", timezone="Europe/Paris", no_catchup=True)
    assert rr.cron == "0 9 * * *" and rr.interval_second is None
    assert rr.mode == RecurringRunMode.ENABLE and rr.status == RecurringRunStatus.ENABLED
    assert rr.enabled_at == utc(2026, 5, 1, 10, 0, 0, 500000)
    assert rr.next_fire_time == utc(2026, 5, 2, 7)  # 09:00 CEST
    with time_machine.travel(utc(2026, 5, 1, 10, 0, 0, 500000), tick=False):
        periodic = create(interval_second=90, cron="ignored")
    assert periodic.cron == "" and periodic.next_fire_time == utc(2026, 5, 1, 10, 1, 30)
    disabled = create(enabled=False)
    assert disabled.mode == RecurringRunMode.DISABLE and disabled.next_fire_time is None


def test_pinned_version_vs_latest_version_at_fire_time() -> None:
    pipeline = PipelineFactory()
    with time_machine.travel(utc(2026, 5, 1, 9), tick=False):
        v1 = PipelineVersionFactory(pipeline=pipeline)
    with time_machine.travel(utc(2026, 5, 1, 10), tick=False):
        pinned = create(pipeline_version=v1, max_concurrency=10)
        latest = create(pipeline=pipeline, max_concurrency=10)
    assert latest.pipeline_version is None and latest.pipeline == pipeline
    assert pinned.pipeline == pipeline and pinned.pipeline_version == v1
    tick_at(utc(2026, 5, 1, 11, 0, 1))
    with time_machine.travel(utc(2026, 5, 1, 11, 30), tick=False):
        v2 = PipelineVersionFactory(pipeline=pipeline)
    tick_at(utc(2026, 5, 1, 12, 0, 1))
    assert list(
        Run.objects.filter(recurring_run=pinned)
        .order_by("scheduled_at")
        .values_list("pipeline_version", flat=True)
    ) == [v1.pk, v1.pk]
    assert list(
        Run.objects.filter(recurring_run=latest)
        .order_by("scheduled_at")
        .values_list("pipeline_version", flat=True)
    ) == [v1.pk, v2.pk]


def test_inline_spec_schedule_runs_the_spec() -> None:
    spec = yaml.safe_load(IDENTITY_TEXT)
    with time_machine.travel(utc(2026, 5, 1, 10), tick=False):
        rr = create(pipeline_spec=spec, parameters={"value": "v"})
    assert rr.pipeline is None and rr.pipeline_spec["pipelineInfo"]["name"] == spec["pipelineInfo"]["name"]
    tick_at(utc(2026, 5, 1, 11, 0, 1))
    run = Run.objects.get(recurring_run=rr)
    assert run.pipeline_version is None and run.pipeline_spec == rr.pipeline_spec
    assert run.runtime_parameters == {"value": "v"}


def test_macros_in_run_name_and_string_parameters() -> None:
    with time_machine.travel(utc(2026, 5, 1, 10), tick=False):
        rr = create(
            display_name="report-[[ScheduledTime.2006-01-02-15]]-#[[Index]]",
            pipeline_version=identity_version(),
            parameters={"value": "[[ScheduledTime]]|[[CurrentTime.15:04:05]]|[[RunUUID]]|[[Index]]"},
            timezone="Europe/Paris",
            max_concurrency=10,
        )
    tick_at(utc(2026, 5, 1, 12, 0, 7))
    runs = list(Run.objects.filter(recurring_run=rr).order_by("scheduled_at"))
    assert [r.display_name for r in runs] == ["report-2026-05-01-13-#1", "report-2026-05-01-14-#2"]
    first = runs[0]
    assert first.runtime_parameters == {"value": f"20260501130000|14:00:07|{first.pk}|1"}
    assert first.pk == run_id_for(rr.pk, utc(2026, 5, 1, 11))
    assert first.pk == uuid.uuid5(rr.pk, "2026-05-01T11:00:00+00:00")


def test_a_firing_that_cannot_start_is_recorded_and_passed_over() -> None:
    pipeline = PipelineFactory()
    version = PipelineVersionFactory(pipeline=pipeline)
    with time_machine.travel(utc(2026, 5, 1, 10), tick=False):
        rr = create(pipeline=pipeline)
    Run.objects.all().delete()
    version.delete()
    report = tick_at(utc(2026, 5, 1, 11, 0, 1))
    rr.refresh_from_db()
    assert report.fired == [] and "has no versions" in rr.error
    assert rr.next_fire_time == utc(2026, 5, 1, 12)
    PipelineVersionFactory(pipeline=pipeline)
    assert len(tick_at(utc(2026, 5, 1, 12, 0, 1)).fired) == 1
    rr.refresh_from_db()
    assert rr.error == ""


def test_enable_and_disable_are_idempotent_and_refused_in_an_archived_experiment() -> None:
    rr = create()
    assert recurring_run_enable(actor=OPERATOR, recurring_run=rr).mode == RecurringRunMode.ENABLE
    recurring_run_disable(actor=OPERATOR, recurring_run=rr)
    recurring_run_disable(actor=OPERATOR, recurring_run=rr)
    rr.refresh_from_db()
    assert rr.mode == RecurringRunMode.DISABLE and rr.status == RecurringRunStatus.DISABLED
    assert rr.next_fire_time is None
    rr.experiment.storage_state = StorageState.ARCHIVED
    rr.experiment.save()
    with pytest.raises(FailedPrecondition):
        recurring_run_enable(actor=OPERATOR, recurring_run=rr)


def test_clone_copies_everything_and_overrides_the_trigger() -> None:
    pipeline = PipelineFactory()
    PipelineVersionFactory(pipeline=pipeline)
    source = create(
        pipeline=pipeline,
        description="d",
        trigger_type="CRON",
        cron="0 9 * * *",
        timezone="Europe/Paris",
        max_concurrency=3,
        no_catchup=True,
    )
    copy = recurring_run_clone(recurring_run=source, actor=OPERATOR)
    assert copy.pk != source.pk and copy.display_name == "Copy of nightly"
    for name in (
        "pipeline_id",
        "pipeline_version_id",
        "cron",
        "timezone",
        "max_concurrency",
        "no_catchup",
        "description",
    ):
        assert getattr(copy, name) == getattr(source, name), name
    other = recurring_run_clone(
        recurring_run=source,
        actor=OPERATOR,
        display_name="hourly",
        trigger_type="PERIODIC",
        interval_second=3600,
        enabled=False,
    )
    assert other.trigger_type == "PERIODIC" and other.cron == "" and other.mode == RecurringRunMode.DISABLE
    with pytest.raises(InvalidInput):
        recurring_run_clone(recurring_run=source, actor=OPERATOR, color="red")


def test_delete_keeps_the_runs() -> None:
    with time_machine.travel(utc(2026, 5, 1, 10), tick=False):
        rr = create(max_concurrency=5)
    tick_at(utc(2026, 5, 1, 12, 0, 1))
    assert Run.objects.filter(recurring_run=rr).count() == 2
    recurring_run_delete(actor=OPERATOR, recurring_run=rr)
    assert not RecurringRun.objects.filter(pk=rr.pk).exists()
    assert Run.objects.filter(recurring_run__isnull=True, scheduled_at__gte=utc(2026, 5, 1, 11)).count() == 2


def test_max_concurrency_accepts_the_kfp_client_string_form() -> None:
    rr = create(max_concurrency="2", interval_second="60")
    assert rr.max_concurrency == 2 and rr.interval_second == 60
    assert rr.next_fire_time is not None and rr.next_fire_time - rr.created_at <= timedelta(seconds=60)
