"""Re-run one step of a finished run from its task panel (a child run; see
apps.runs.services.rerun)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core.authz import Action, namespace_permissions
from apps.core.choices import PipelineFormat, RuntimeState, TaskKind
from apps.core.exceptions import NotFound, ServiceError
from apps.core.views import require_role
from apps.engine.runtime_params import ParameterSpec
from apps.runs import selectors, services
from apps.runs.forms import TaskRerunForm
from apps.runs.views.common import _get_run


def _parameter_specs(plan: Any) -> list[ParameterSpec]:
    defaults = ((plan.pipeline_spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    return [
        ParameterSpec(
            name=name,
            type=ptype,
            default=(defaults.get(name) or {}).get("defaultValue"),
            has_default=True,
            optional=True,
            description="",
        )
        for name, ptype in plan.parameters.items()
    ]


def rerun_panel_context(request: HttpRequest, run: Any, task: Any) -> dict[str, Any] | None:
    """The task panel's "Re-run this step" block: None when it is not offered (a viewer,
    a run still active, not a KFP container step); else the form, or why it cannot."""
    if not namespace_permissions(actor=request.user, namespace=run.namespace).run_create:
        return None
    if run.state not in RuntimeState.terminal():
        return None
    if run.spec_format != PipelineFormat.KFP_IR or task.kind != TaskKind.CONTAINER:
        return None
    try:
        plan = services.rerun_plan(run=run, task=task)
    except ServiceError as exc:
        return {"problem": exc.message}
    return {"form": TaskRerunForm(parameters=_parameter_specs(plan), prefix="rerun")}


def _panel_url(run: Any, task: Any) -> str:
    return f"{reverse('runs:detail', kwargs={'run_id': run.pk})}?task={task.pk}#graph"


@require_POST
def task_rerun(request: HttpRequest, run_id: str, task_id: str) -> HttpResponse:
    """Start a child run re-running one step, then show it."""
    run = _get_run(request, run_id)
    require_role(request, run.namespace, Action.RUN_CREATE)
    try:
        task = selectors.task_get(run=run, task_id=task_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    back = HttpResponseRedirect(_panel_url(run, task))
    try:
        plan = services.rerun_plan(run=run, task=task)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return back
    form = TaskRerunForm(request.POST, parameters=_parameter_specs(plan), prefix="rerun")
    if not form.is_valid():
        problems = [
            f"{form.fields[name].label or name}: {' '.join(errors)}" for name, errors in form.errors.items()
        ]
        messages.error(request, "Not re-run. " + "; ".join(problems))
        return back
    try:
        child = services.task_rerun(
            actor=request.user,
            run=run,
            task_ref=task.pk,
            parameters=form.parameters(),
            include_downstream=form.cleaned_data["include_downstream"],
        )
    except ServiceError as exc:
        messages.error(request, f"Not re-run: {exc.message}")
        return back
    messages.success(request, f"Re-running {task.display_name or task.name} as a new run.")
    return HttpResponseRedirect(reverse("runs:detail", kwargs={"run_id": child.pk}))
