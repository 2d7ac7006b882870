"""Experiment pages: list (active/archived, last five runs' states), create, detail
(runs, active and archived, and recurring runs), archive and restore."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.authz import Action, namespace_permissions
from apps.core.exceptions import NotFound, ServiceError
from apps.core.listing import PAGE_SIZES, BoundedPaginator, page_size
from apps.core.middleware import NamespacedRequest
from apps.core.views import require_role
from apps.experiments import selectors, services
from apps.experiments.forms import ExperimentForm
from apps.runs import selectors as run_selectors
from apps.schedules.selectors import recurring_run_filter
from apps.web.runs.tables import runs_table_context


@require_GET
def experiment_list(request: NamespacedRequest) -> HttpResponse:
    """Experiments of the current namespace with the states of their last five runs."""
    archived = request.GET.get("view") == "archived"
    found = selectors.experiment_filter(
        user=request.user,
        namespace=request.namespace or None,
        archived=archived,
        params=request.GET,
        request=request,
    )
    page = BoundedPaginator(found.qs, page_size(request)).get_page(request.GET.get("page"))
    experiments = list(page.object_list)
    recent = run_selectors.run_recent_by_experiment(experiment_ids=[e.pk for e in experiments])
    rows = [{"experiment": e, "recent": recent.get(e.pk, [])} for e in experiments]
    return render(
        request,
        "experiments/list.html",
        {
            "page": page,
            "rows": rows,
            "query": found.query,
            "sort": found.sort,
            "archived": archived,
            "page_sizes": PAGE_SIZES,
        },
    )


@require_http_methods(["GET", "POST"])
def experiment_new(request: NamespacedRequest) -> HttpResponse:
    """Create an experiment in the current namespace."""
    require_role(request, request.namespace, Action.EXPERIMENT_CREATE)
    form = ExperimentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            experiment = services.experiment_create(
                actor=request.user,
                namespace=request.namespace,
                display_name=form.cleaned_data["display_name"],
                description=form.cleaned_data["description"],
                execution_backend=form.cleaned_data.get("execution_backend") or "",
            )
        except ServiceError as exc:
            form.add_error("display_name" if exc.field == "display_name" else None, exc.message)
        else:
            messages.success(request, f"Created experiment {experiment.display_name}.")
            return redirect("experiments:detail", experiment_id=experiment.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "experiments/new.html", {"form": form}, status=status)


def _get(request: HttpRequest, experiment_id: Any) -> Any:
    try:
        return selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@require_GET
def experiment_detail(request: HttpRequest, experiment_id: str) -> HttpResponse:
    """One experiment: its runs (active or archived) and its recurring runs."""
    experiment = _get(request, experiment_id)
    tab = "recurring" if request.GET.get("tab") == "recurring" else "runs"
    archived = request.GET.get("view") == "archived"
    qs = run_selectors.run_list_with_duration(user=request.user, experiment=experiment)
    context: dict[str, Any] = {
        "experiment": experiment,
        "tab": tab,
        "recurring": [],
        "can": namespace_permissions(actor=request.user, namespace=experiment.namespace),
    }
    if tab == "runs":
        context.update(runs_table_context(request, qs, archived=archived, extra_params={"tab": "runs"}))
    else:
        schedules = recurring_run_filter(
            user=request.user, experiment=experiment, params=request.GET, request=request, search=False
        )
        context["recurring_page"] = BoundedPaginator(schedules.qs, page_size(request)).get_page(
            request.GET.get("page")
        )
        context["sort"] = schedules.sort
    return render(request, "experiments/detail.html", context)


@require_POST
def experiment_archive(request: HttpRequest, experiment_id: str) -> HttpResponse:
    """Archive an experiment (its runs are archived and its recurring runs disabled)."""
    experiment = _get(request, experiment_id)
    require_role(request, experiment.namespace, Action.EXPERIMENT_ARCHIVE)
    try:
        services.experiment_archive(actor=request.user, experiment=experiment)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Archived experiment {experiment.display_name} and its runs.")
    return redirect("experiments:detail", experiment_id=experiment.pk)


@require_POST
def experiment_unarchive(request: HttpRequest, experiment_id: str) -> HttpResponse:
    """Restore an archived experiment (its runs stay archived until restored)."""
    experiment = _get(request, experiment_id)
    require_role(request, experiment.namespace, Action.EXPERIMENT_ARCHIVE)
    try:
        services.experiment_unarchive(actor=request.user, experiment=experiment)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Restored experiment {experiment.display_name}.")
    return redirect("experiments:detail", experiment_id=experiment.pk)
