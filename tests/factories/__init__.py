"""factory-boy factories for Canal's models."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import factory
import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from apps.artifacts.models import Artifact
from apps.core.choices import PipelineFormat, RuntimeState, TaskKind, TriggerType
from apps.core.models import Membership, Namespace
from apps.engine.keys import node_key
from apps.experiments.models import Experiment
from apps.pipelines.models import Pipeline, PipelineVersion
from apps.runs.models import Run, Task
from apps.schedules.models import RecurringRun
from apps.storage import run_dir_uri

HELLO_IR_TEXT = """\
# PIPELINE DEFINITION
# Name: hello
components:
  comp-echo:
    executorLabel: exec-echo
deploymentSpec:
  executors:
    exec-echo:
      container:
        args: [hello world]
        command: [echo]
        image: python:3.12
pipelineInfo:
  name: hello
root:
  dag:
    tasks:
      echo:
        componentRef: {name: comp-echo}
        taskInfo: {name: echo}
schemaVersion: 2.1.0
sdkVersion: kfp-2.14.6
"""


TEST_PASSWORD = "pw-canal-test"


@functools.cache
def _test_password_hash() -> str:
    return make_password(TEST_PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    # Every test user has the same password: hash it once per process with the real
    # hasher (PBKDF2 at Django's cost), not once per user, which was most of the
    # suite's time in fixtures.
    password = factory.LazyFunction(lambda: _test_password_hash())

    @factory.post_generation
    def namespace(self, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        """A member of ``namespace`` (default: 'default'), as an editor unless
        ``namespace__role`` says otherwise."""
        if create:
            ns = extracted or Namespace.objects.get_or_create(name=Namespace.DEFAULT)[0]
            role = kwargs.get("role", Membership.Role.EDITOR)
            Membership.objects.get_or_create(user=self, namespace=ns, defaults={"role": role})


class NamespaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Namespace
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"team-{n}")


def default_namespace() -> Namespace:
    return Namespace.objects.get_or_create(name=Namespace.DEFAULT)[0]


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pipeline

    namespace = factory.LazyFunction(default_namespace)
    name = factory.Sequence(lambda n: f"pipeline-{n}")
    display_name = factory.LazyAttribute(lambda o: o.name)


class PipelineVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PipelineVersion

    pipeline = factory.SubFactory(PipelineFactory)
    name = factory.Sequence(lambda n: f"v{n}")
    display_name = factory.LazyAttribute(lambda o: o.name)
    source = HELLO_IR_TEXT
    format = PipelineFormat.KFP_IR
    pipeline_spec = factory.LazyAttribute(lambda o: yaml.safe_load(o.source))
    content_hash = factory.LazyAttribute(lambda o: hashlib.sha256(o.source.encode()).hexdigest())


class ExperimentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Experiment

    namespace = factory.LazyFunction(default_namespace)
    display_name = factory.Sequence(lambda n: f"experiment-{n}")


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    namespace = factory.LazyFunction(default_namespace)
    experiment = factory.SubFactory(ExperimentFactory, namespace=factory.SelfAttribute("..namespace"))
    pipeline_version = factory.SubFactory(PipelineVersionFactory)
    display_name = factory.Sequence(lambda n: f"run-{n}")
    pipeline_spec = factory.LazyAttribute(lambda o: o.pipeline_version.pipeline_spec)
    pipeline_name = "hello"
    # run_create always decides a run's root; rows made here get the default one.
    pipeline_root = factory.LazyFunction(lambda: str(settings.CANAL_PIPELINE_ROOT))
    state = RuntimeState.PENDING


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    run = factory.SubFactory(RunFactory)
    namespace = factory.SelfAttribute("run.namespace")
    name = factory.Sequence(lambda n: f"task-{n}")
    key = factory.LazyAttribute(lambda o: f"root/{o.name}")
    node = factory.LazyAttribute(lambda o: node_key(o.key))
    kind = TaskKind.CONTAINER
    state = RuntimeState.SUCCEEDED


class ArtifactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Artifact

    producer_task = factory.SubFactory(TaskFactory)
    run = factory.SelfAttribute("producer_task.run")
    name = "output"
    schema_title = "system.Artifact"
    uri = factory.Sequence(lambda n: f"/tmp/canal-artifacts/{n}")


class RecurringRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RecurringRun

    namespace = factory.LazyFunction(default_namespace)
    experiment = factory.SubFactory(ExperimentFactory, namespace=factory.SelfAttribute("..namespace"))
    display_name = factory.Sequence(lambda n: f"schedule-{n}")
    pipeline_version = factory.SubFactory(PipelineVersionFactory)
    pipeline = factory.SelfAttribute("pipeline_version.pipeline")
    trigger_type = TriggerType.PERIODIC
    interval_second = 3600


def run_artifact_dir(run: Run) -> Path:
    """Where the run's artifacts live (``<root>/<pipeline>/<run id>``): the storage its
    namespace owns, so content written under it can be served."""
    return Path(run_dir_uri(run.pipeline_root, run.pipeline_name or "pipeline", str(run.pk)))


def artifact_file(task: Task, name: str, content: str | bytes) -> str:
    """Write an output file of ``task`` where the launcher would put it; returns its URI."""
    path = run_artifact_dir(task.run) / task.name / "t" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)
