"""Recurring-run pages: list (top level, or one experiment's), detail with the run
history, enable/disable/delete (POST), clone, and the fire-time preview (JSON)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.authz import Action, namespace_permissions
from apps.core.exceptions import NotFound, ServiceError
from apps.core.listing import PAGE_SIZES, BoundedPaginator, page_size
from apps.core.middleware import NamespacedRequest
from apps.core.views import require_role
from apps.experiments.selectors import experiment_get
from apps.schedules import selectors, services
from apps.schedules.forms import CloneForm, EnableForm, TriggerForm, instant_display


def _get(request: HttpRequest, recurring_run_id: str):  # type: ignore[no-untyped-def]
    try:
        return selectors.recurring_run_get(user=request.user, recurring_run_id=recurring_run_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def recurring_run_list(request: NamespacedRequest) -> HttpResponse:
    """Recurring runs in the current namespace (or of one experiment: ?experiment=<id>)."""
    experiment = None
    wanted = request.GET.get("experiment", "").strip()
    if wanted:
        try:
            experiment = experiment_get(user=request.user, experiment_id=wanted)
        except NotFound as exc:
            raise Http404(exc.message) from exc
    found = selectors.recurring_run_filter(
        user=request.user,
        namespace=None if experiment is not None else request.namespace or None,
        experiment=experiment,
        params=request.GET,
        request=request,
    )
    page = BoundedPaginator(found.qs, page_size(request)).get_page(request.GET.get("page"))
    return render(
        request,
        "schedules/list.html",
        {
            "page": page,
            "query": found.query,
            "sort": found.sort,
            "page_sizes": PAGE_SIZES,
            "experiment": experiment,
        },
    )


def recurring_run_detail(request: HttpRequest, recurring_run_id: str) -> HttpResponse:
    """One schedule: trigger, policy, last/next fire times, parameters, and its runs (paged)."""
    rr = _get(request, recurring_run_id)
    runs = BoundedPaginator(selectors.recurring_run_runs(recurring_run=rr), page_size(request)).get_page(
        request.GET.get("page")
    )
    try:
        next_times = [instant_display(t) for t in selectors.recurring_run_next_fire_times(recurring_run=rr)]
    except ServiceError:
        next_times = []
    return render(
        request,
        "schedules/detail.html",
        {
            "rr": rr,
            "page": runs,
            "page_sizes": PAGE_SIZES,
            "next_times": next_times,
            "active_count": selectors.recurring_run_active_count(recurring_run=rr),
            "trigger_text": selectors.recurring_run_describe(recurring_run=rr),
            "can": namespace_permissions(actor=request.user, namespace=rr.namespace),
        },
    )


def _back(request: HttpRequest, rr_id: str) -> HttpResponse:
    return redirect("schedules:detail", recurring_run_id=rr_id)


@require_POST
def recurring_run_enable(request: HttpRequest, recurring_run_id: str) -> HttpResponse:
    """Enable; with catch_up=on, backfill what was missed while disabled (if catch-up is on)."""
    rr = _get(request, recurring_run_id)
    require_role(request, rr.namespace, Action.RECURRING_RUN_ENABLE)
    form = EnableForm(request.POST)
    catch_up = form.is_valid() and form.cleaned_data["catch_up"]
    try:
        services.recurring_run_enable(actor=request.user, recurring_run=rr, catch_up=catch_up)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Enabled {rr.display_name}.")
    return _back(request, recurring_run_id)


@require_POST
def recurring_run_disable(request: HttpRequest, recurring_run_id: str) -> HttpResponse:
    """Disable: no new runs until enabled again (active runs go on)."""
    rr = _get(request, recurring_run_id)
    require_role(request, rr.namespace, Action.RECURRING_RUN_ENABLE)
    services.recurring_run_disable(actor=request.user, recurring_run=rr)
    messages.success(request, f"Disabled {rr.display_name}.")
    return _back(request, recurring_run_id)


@require_POST
def recurring_run_delete(request: HttpRequest, recurring_run_id: str) -> HttpResponse:
    """Delete the schedule; the runs it started stay."""
    rr = _get(request, recurring_run_id)
    require_role(request, rr.namespace, Action.RECURRING_RUN_DELETE)
    services.recurring_run_delete(actor=request.user, recurring_run=rr)
    messages.success(request, f"Deleted recurring run {rr.display_name}. Its runs are kept.")
    return redirect("schedules:list")


@require_http_methods(["GET", "POST"])
def recurring_run_clone(request: HttpRequest, recurring_run_id: str) -> HttpResponse:
    """A new schedule with the same pipeline and parameters; name and trigger editable."""
    rr = _get(request, recurring_run_id)
    require_role(request, rr.namespace, Action.RECURRING_RUN_CREATE)
    if request.method == "POST":
        form = CloneForm(request.POST)
        trigger_form = TriggerForm(request.POST, prefix="trigger")
        if form.is_valid() and trigger_form.is_valid():
            try:
                clone = services.recurring_run_clone(
                    actor=request.user,
                    recurring_run=rr,
                    display_name=form.cleaned_data["display_name"],
                    description=form.cleaned_data["description"],
                    **trigger_form.trigger_kwargs(),
                )
            except ServiceError as exc:
                if exc.field in form.fields:
                    form.add_error(exc.field, exc.message)
                else:
                    trigger_form.add_service_error(exc)
            else:
                messages.success(request, f"Created recurring run {clone.display_name}.")
                return redirect("schedules:detail", recurring_run_id=clone.pk)
        status = 400
    else:
        form = CloneForm(
            initial={"display_name": f"Copy of {rr.display_name}"[:255], "description": rr.description}
        )
        trigger_form = TriggerForm(initial=TriggerForm.initial_from(rr), prefix="trigger")
        status = 200
    return render(
        request,
        "schedules/clone.html",
        {"rr": rr, "form": form, "trigger_form": trigger_form},
        status=status,
    )


@require_GET
def trigger_preview(request: HttpRequest) -> JsonResponse:
    """The next fire times of the trigger in the query string (TriggerForm's field
    names, unprefixed): {"times": [{"iso", "text"}], "error": "...", "errors": {...}}."""
    data = request.GET.copy()
    data.setdefault("max_concurrency", "1")
    data.setdefault("timezone", "UTC")
    form = TriggerForm(data)
    if not form.is_valid():
        errors = {name: [str(e) for e in errs] for name, errs in form.errors.items()}
        first = next((msgs[0] for _, msgs in errors.items() if msgs), "invalid schedule")
        return JsonResponse({"times": [], "error": first, "errors": errors})
    return JsonResponse({"times": form.preview(), "error": "", "errors": {}})
