"""The new-run form: a pipeline version (or a cloned run), typed parameters, one-off or recurring."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from apps.core.authz import Action
from apps.core.choices import StorageState
from apps.core.exceptions import NotFound, ServiceError
from apps.core.middleware import NamespacedRequest
from apps.core.views import require_role
from apps.engine.runtime_params import root_parameters
from apps.experiments import selectors as experiment_selectors
from apps.pipelines import selectors as pipeline_selectors
from apps.runs import selectors, services
from apps.runs.forms import RunForm
from apps.schedules.forms import TriggerForm
from apps.schedules.services import recurring_run_create
from apps.web.runs.views.common import (
    TRIGGER_ERROR_FIELDS,
)


def _new_run_source(request: HttpRequest) -> dict[str, Any]:
    """What the form runs: a pipeline version (chosen, or the cloned run's), or the
    cloned run's inline spec. Raises Http404 for ids the user may not see."""
    params = request.GET
    out: dict[str, Any] = {"pipeline": None, "version": None, "clone": None, "spec": None}
    try:
        if params.get("clone"):
            clone = selectors.run_get(user=request.user, run_id=params["clone"])
            out["clone"] = clone
            if clone.pipeline_version is not None:
                out["version"] = clone.pipeline_version
                out["pipeline"] = clone.pipeline_version.pipeline
            else:
                out["spec"] = clone.pipeline_spec
        if params.get("pipeline") and not out["clone"]:
            out["pipeline"] = pipeline_selectors.pipeline_get(
                user=request.user, pipeline_id=params["pipeline"]
            )
        if params.get("version") and not out["clone"]:
            version = pipeline_selectors.pipeline_version_get(user=request.user, version_id=params["version"])
            out["version"] = version
            out["pipeline"] = version.pipeline
        if out["pipeline"] is not None and out["version"] is None:
            out["version"] = pipeline_selectors.pipeline_version_latest(pipeline=out["pipeline"])
    except NotFound as exc:
        raise Http404(exc.message) from exc
    if out["version"] is not None:
        out["spec"] = out["version"].pipeline_spec
    return out


def _form_initial(source: dict[str, Any], request: HttpRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    clone = source["clone"]
    now = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")
    if clone is not None:
        initial = {
            "display_name": f"Clone of {clone.display_name}"[:255],
            "description": clone.description,
            "experiment": str(clone.experiment_id)
            if clone.experiment.storage_state == StorageState.AVAILABLE
            else "",
            "pipeline_root": clone.pipeline_root if clone.pipeline_root != "" else "",
            "enable_caching": "" if clone.enable_caching is None else str(clone.enable_caching).lower(),
            "service_account": clone.service_account,
        }
        return initial, dict(clone.runtime_parameters or {})
    name = source["pipeline"].display_name if source["pipeline"] else "pipeline"
    initial = {
        "display_name": f"Run of {name} ({now})"[:255],
        "experiment": request.GET.get("experiment", ""),
        "run_type": "recurring" if request.GET.get("type") == "recurring" else "one-off",
    }
    return initial, {}


@require_http_methods(["GET", "POST"])
def run_new(request: NamespacedRequest) -> HttpResponse:
    """Start a run (or a recurring run) of a pipeline version, with typed parameters."""
    source = _new_run_source(request)
    scheduling = request.POST.get("run_type") == "recurring" or request.GET.get("type") == "recurring"
    require_role(request, request.namespace, Action.RECURRING_RUN_CREATE if scheduling else Action.RUN_CREATE)
    pipelines = pipeline_selectors.pipeline_choices(user=request.user, namespace=request.namespace)
    versions = (
        list(pipeline_selectors.pipeline_version_list(pipeline=source["pipeline"]))
        if source["pipeline"]
        else []
    )
    experiments = [
        (str(e.pk), e.display_name)
        for e in experiment_selectors.experiment_choices(user=request.user, namespace=request.namespace)
    ]
    spec = source["spec"]
    parameters = root_parameters(spec) if spec else []
    initial, initial_params = _form_initial(source, request)
    form = RunForm(
        request.POST or None,
        parameters=parameters,
        experiments=experiments,
        initial=initial,
        initial_parameters=initial_params,
    )
    trigger_form = TriggerForm(request.POST or None, prefix="trigger")
    status = 200
    if request.method == "POST":
        status = 400
        recurring = request.POST.get("run_type") == "recurring"
        if spec is None:
            # Not form.add_error: the form is unbound when the POST has no body, and then
            # it has no cleaned_data to attach an error to (that was a 500).
            messages.error(request, "Choose a pipeline and version first.")
        elif form.is_valid() and (not recurring or trigger_form.is_valid()):
            response = _create_from_form(request, form, trigger_form if recurring else None, source)
            if response is not None:
                return response
    return render(
        request,
        "runs/new.html",
        {
            "form": form,
            "trigger_form": trigger_form,
            "source": source,
            "pipelines": pipelines,
            "versions": versions,
        },
        status=status,
    )


def _create_from_form(
    request: NamespacedRequest, form: RunForm, trigger_form: Any, source: dict[str, Any]
) -> HttpResponse | None:
    data = form.cleaned_data
    if not request.namespace:
        form.add_error(None, "You are not a member of any namespace: ask an administrator to add you to one.")
        return None
    experiment = None
    try:
        if data.get("experiment"):
            experiment = experiment_selectors.experiment_get(
                user=request.user, experiment_id=data["experiment"]
            )
    except NotFound:
        form.add_error("experiment", "Choose an experiment from the list.")
        return None
    common: dict[str, Any] = {
        "actor": request.user,
        "namespace": experiment.namespace if experiment else request.namespace,
        "display_name": data["display_name"],
        "experiment": experiment,
        "pipeline_version": source["version"],
        "pipeline_spec": None if source["version"] else source["spec"],
        "platform_spec": None
        if source["version"]
        else (source["clone"].platform_spec if source["clone"] else None),
        "description": data.get("description", ""),
        "parameters": form.parameter_values(),
        "pipeline_root": data.get("pipeline_root", ""),
        "service_account": data.get("service_account", ""),
    }
    try:
        if trigger_form is not None:
            kwargs = dict(common)
            kwargs["pipeline"] = source["pipeline"]
            if data.get("always_latest") and source["pipeline"] is not None:
                kwargs["pipeline_version"] = None  # each firing runs the newest version
            recurring = recurring_run_create(**kwargs, **trigger_form.trigger_kwargs())
            messages.success(request, f"Created recurring run {recurring.display_name}.")
            return redirect("schedules:detail", recurring.pk)
        run = services.run_create(
            **common,
            enable_caching=form.caching(),
            cloned_from=source["clone"],
            executor=data.get("executor") or "",
        )
    except ServiceError as exc:
        field = form.error_field_for(exc.field)
        trigger_fields = (
            set(trigger_form.fields) | TRIGGER_ERROR_FIELDS if trigger_form is not None else set()
        )
        if field is None and exc.field in trigger_fields:
            trigger_form.add_service_error(exc)
        else:
            form.add_error(field, exc.message)
        return None
    messages.success(request, f"Started run {run.display_name}.")
    return redirect("runs:detail", run_id=run.pk)
