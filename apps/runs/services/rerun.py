"""Re-run one step of a finished run, with its recorded inputs or edited ones.

The result is a new child run (``Run.rerun_of`` + ``rerun_of_task_key``) whose pipeline
is the step alone, plus optionally the tasks that depend on it (apps.engine.rerun builds
that reduced KFP IR). Upstream outputs come from what the origin run recorded; nothing
upstream runs again. The child is created by ``run_create``, so roles, validation,
parameter types, pipeline roots, importer URIs and the executor all apply as for any run.
"""

from __future__ import annotations

from typing import Any

from apps.core.authz import Action, Actor, namespace_authorize
from apps.core.choices import PipelineFormat, RuntimeState, StorageState, TaskKind
from apps.core.exceptions import FailedPrecondition, InvalidInput
from apps.engine.rerun import RecordedIO, RerunError, RerunPlan, build_rerun_spec
from apps.runs import selectors
from apps.runs.models import Run, Task
from apps.runs.services.lifecycle import MAX_NAME, run_create


def rerun_plan(*, run: Run, task: Task, include_downstream: bool = False) -> RerunPlan:
    """The reduced pipeline that re-runs ``task`` of ``run`` (InvalidInput if it cannot be)."""
    if run.spec_format != PipelineFormat.KFP_IR:
        raise InvalidInput("only steps of KFP pipelines can be re-run on their own", field="task")
    if task.kind != TaskKind.CONTAINER:
        raise InvalidInput(
            f"'{task.key}' is a {task.get_kind_display().lower()}, not a container step: "
            "choose one of the steps",
            field="task",
        )
    siblings = selectors.task_siblings(task=task) if include_downstream else []
    parent = selectors.task_parent(task=task)
    try:
        return build_rerun_spec(
            run.pipeline_spec,
            task_key=task.key,
            step_inputs=RecordedIO.from_json(task.inputs),
            include_downstream=include_downstream,
            sibling_outputs={s.name: RecordedIO.from_json(s.outputs) for s in siblings},
            parent_inputs=RecordedIO.from_json(parent.inputs if parent is not None else None),
        )
    except RerunError as exc:
        if task.state == RuntimeState.SKIPPED and task.status_message.startswith("upstream "):
            upstream = task.status_message.split("'")[1] if task.status_message.count("'") >= 2 else ""
            hint = f" re-run '{upstream}' with its downstream tasks instead" if upstream else ""
            raise InvalidInput(
                f"'{task.name}' was not reached ({task.status_message}), so it has no recorded "
                f"inputs to re-run it with;{hint or ' re-run the failed upstream step instead'}.",
                field="task",
            ) from exc
        why = f" ({task.status_message})" if task.status_message else ""
        raise InvalidInput(f"cannot re-run '{task.key}': {exc.message}{why}", field=exc.field) from exc


def task_rerun(
    *,
    actor: Actor,
    run: Run,
    task_ref: Any,
    parameters: dict[str, Any] | None = None,
    include_downstream: bool = False,
    display_name: str = "",
) -> Run:
    """Start a child run re-running one step of a finished ``run``.

    ``task_ref`` is the task's id or key. ``parameters`` override the step's recorded
    input parameters by name (strings are parsed to the declared type, as the new-run
    form's are). Editor role and up. Raises NotFound (unknown task), FailedPrecondition
    (the run is still active), InvalidInput (not a step, an input that cannot be
    replayed, an unknown or mistyped parameter) — and then nothing is created.
    """
    namespace_authorize(actor=actor, namespace=run.namespace, action=Action.RUN_CREATE)
    if run.state not in RuntimeState.terminal():
        raise FailedPrecondition(f"the run is {run.state}; re-run a step once the run has finished")
    task = selectors.task_get(run=run, task_id=task_ref)
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidInput("parameters must be an object of name: value", field="parameters")
    plan = rerun_plan(run=run, task=task, include_downstream=include_downstream)
    for name in parameters or {}:
        if name not in plan.parameters:
            known = ", ".join(sorted(plan.parameters)) or "none"
            raise InvalidInput(
                f"'{task.name}' has no input parameter {name!r} (its parameters: {known})",
                field=f"parameters.{name}",
            )
    label = task.display_name or task.name
    name = display_name.strip() or f"Re-run of {label} from {run.display_name}"
    experiment = run.experiment if run.experiment.storage_state == StorageState.AVAILABLE else None
    return run_create(
        actor=actor,
        namespace=run.namespace,
        display_name=name[:MAX_NAME],
        experiment=experiment,
        pipeline_spec=plan.pipeline_spec,
        platform_spec=run.platform_spec,
        description=f"Re-run of task {task.key} of run {run.pk}.",
        parameters=parameters or {},
        pipeline_root=run.pipeline_root,
        service_account=run.service_account,
        executor=run.executor,
        rerun_of=run,
        rerun_of_task_key=task.key,
    )
