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
from apps.runs.forms import PARAM_PREFIX, TaskRerunForm
from apps.web.runs.views.common import run_or_404


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


def _refuse(request: HttpRequest, run: Any, task: Any, form: TaskRerunForm) -> HttpResponse:
    # The run page again, its panel open on the task with the form and its errors (400).
    from apps.web.runs.views.detail import render_run_page  # the run page imports this module

    messages.error(request, "Not re-run: " + "; ".join(_problems(form)))
    return render_run_page(request, run, task_panel_for=task, rerun={"form": form}, status=400)


def _problems(form: TaskRerunForm) -> list[str]:
    out = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        text = " ".join(str(error) for error in errors)  # an ErrorList yields its messages
        out.append(f"{label}: {text}" if label else text)
    return out


@require_POST
def task_rerun(request: HttpRequest, run_id: str, task_id: str) -> HttpResponse:
    """Start a child run re-running one step, then show it; a refusal shows the run page
    again with the panel's form and what is wrong (400), and creates nothing."""
    run = run_or_404(request, run_id)
    require_role(request, run.namespace, Action.RUN_CREATE)
    try:
        task = selectors.task_get(run=run, task_id=task_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    try:
        plan = services.rerun_plan(run=run, task=task)
    except ServiceError as exc:
        messages.error(request, f"Not re-run: {exc.message}")
        return HttpResponseRedirect(_panel_url(run, task))
    form = TaskRerunForm(request.POST, parameters=_parameter_specs(plan), prefix="rerun")
    if not form.is_valid():
        return _refuse(request, run, task, form)
    try:
        child = services.task_rerun(
            actor=request.user,
            run=run,
            task_ref=task.pk,
            parameters=form.parameters(),
            include_downstream=form.cleaned_data["include_downstream"],
        )
    except ServiceError as exc:
        field = (exc.field or "").removeprefix("parameters.")
        form.add_error(PARAM_PREFIX + field if PARAM_PREFIX + field in form.fields else None, exc.message)
        return _refuse(request, run, task, form)
    messages.success(request, f"Re-running {task.display_name or task.name} as a new run.")
    return HttpResponseRedirect(reverse("runs:detail", kwargs={"run_id": child.pk}))
