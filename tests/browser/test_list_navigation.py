"""Every list page, clicked through in Chromium as a person would, with JavaScript on
and off: page 2 and back, every sortable column in both directions, Active and
Archived, the page size, the filter box. Each step asserts the exact rows shown, in
order, computed here from the rows this test created (sorted in Python the way the
list's SQL sorts: the column, then the primary key in the same direction, as the
database orders it).

The lists: runs (and its metric column), pipelines, experiments, artifacts, recurring
runs, and the run page's task list. Until 8004431 every such link was "??…", so Next
reloaded page 1 and no sort did anything; no browser had ever clicked them.

No timed assertions: each click waits for the page it leads to, and expect() waits for
the rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.utils import timezone

from apps.artifacts.models import Artifact
from apps.core.choices import RuntimeState, StorageState, TaskKind
from apps.experiments.models import Experiment
from apps.pipelines.models import Pipeline
from apps.runs.models import Run, Task
from apps.schedules.models import RecurringRun
from apps.web.runs.views.common import TASK_PAGE
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, NARROW, WIDE
from tests.factories import (
    ArtifactFactory,
    ExperimentFactory,
    PipelineFactory,
    PipelineVersionFactory,
    RecurringRunFactory,
    RunFactory,
    TaskFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.slow]

PASSWORD = "pw-canal-test"
DEFAULT_PAGE = 20  # apps.core.listing.page_size's default
SMALL_PAGE = 10
# 28 distinct lowercase words: names sort the same under any collation.
WORDS = [
    *("amber", "birch", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper"),
    *("kestrel", "lagoon", "marble", "nectar", "orchid", "pepper", "quartz", "raven", "saffron"),
    *("tundra", "umber", "violet", "walnut", "xenon", "yarrow", "zephyr", "basalt", "cobalt"),
]
BASE_TIME = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)


def _in_pk_order(model: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record where the database puts each row in the lists' tie-break, the primary key
    in the sort's direction ("-pk" descending, "pk" ascending): UUIDs are hex text on
    SQLite but a native type on MariaDB, which orders them otherwise."""
    rank = {pk: index for index, pk in enumerate(model.objects.order_by("-pk").values_list("pk", flat=True))}
    for row in rows:
        row["pk_rank"] = rank[row["pk"]]
    return rows


def _name(index: int, count: int) -> str:
    """A name whose order is not the creation order; every third one is an 'eval'."""
    word = WORDS[(index * 11) % count]
    return f"{word}-{'eval' if index % 3 == 0 else 'train'}"


def _when(index: int, count: int, *, minutes: int = 1) -> dt.datetime:
    """Distinct times in an order that is neither the creation nor the name order."""
    return BASE_TIME + dt.timedelta(minutes=minutes * ((index * 7 + 3) % count))


@dataclass
class Sort:
    label: str  # the column header's text
    key: str  # the row field the list sorts by
    nulls_last: bool = False  # rows without a value come last in both directions


@dataclass
class Case:
    id: str
    build: Callable[[], tuple[str, list[dict[str, Any]]]]  # -> url, rows
    sorts: list[Sort]
    default: tuple[str, bool]  # (key, descending)
    filter_name: str = "q"
    filter_text: str = "train"
    page_size: int = DEFAULT_PAGE
    sizes: bool = True  # offers rows-per-page links
    tabs: bool = False  # offers Active / Archived
    scope: str = "main"  # where its table, pager and filter form are
    name_cell: str = "tbody tr td:first-child a"
    tab: str = ""  # the run page's tab to open first (with JavaScript)
    extra: dict[str, Any] = field(default_factory=dict)


def _order(rows: list[dict[str, Any]], key: str, descending: bool, *, nulls_last: bool = False) -> list[str]:
    tie_order = sorted(rows, key=lambda r: r["pk_rank"], reverse=not descending)
    present = [r for r in tie_order if r[key] is not None]
    missing = [r for r in tie_order if r[key] is None]
    assert nulls_last or not missing, f"rows without {key}: the test data must give every row one"
    ordered = sorted(present, key=lambda r: r[key], reverse=descending) + missing
    return [r["name"] for r in ordered]


# --- The data of each list ---------------------------------------------------------


def _runs() -> tuple[str, list[dict[str, Any]]]:
    experiment = ExperimentFactory(display_name="nav-experiment")
    version = PipelineVersionFactory()
    states = [RuntimeState.SUCCEEDED, RuntimeState.FAILED, RuntimeState.CANCELED]
    count, rows = 28, []
    for index in range(count):
        archived = index >= 25
        start = _when(index, count)
        duration = dt.timedelta(seconds=10 + (index * 13) % count)
        run = RunFactory(
            experiment=experiment,
            pipeline_version=version,
            display_name=_name(index, count),
            state=states[index % 3],
            storage_state=StorageState.ARCHIVED if archived else StorageState.AVAILABLE,
            started_at=start,
            finished_at=start + duration,
        )
        created = _when(index, count, minutes=5) + dt.timedelta(hours=1)
        Run.objects.filter(pk=run.pk).update(created_at=created)
        accuracy = None if index % 5 == 4 else round(((index * 17) % count) / count, 4)
        if accuracy is not None:
            ArtifactFactory(
                producer_task=TaskFactory(run=run),
                name="metrics",
                schema_title="system.Metrics",
                metadata={"accuracy": accuracy},
            )
        rows.append(
            {
                "pk": run.pk,
                "name": run.display_name,
                "archived": archived,
                "state": run.state,
                "duration": duration,
                "created": created,
                "accuracy": accuracy,
            }
        )
    return "/runs/", _in_pk_order(Run, rows)


def _pipelines() -> tuple[str, list[dict[str, Any]]]:
    count, rows = 25, []
    for index in range(count):
        pipeline = PipelineFactory(display_name=_name(index, count))
        created = _when(index, count)
        Pipeline.objects.filter(pk=pipeline.pk).update(created_at=created)
        rows.append({"pk": pipeline.pk, "name": pipeline.display_name, "archived": False, "created": created})
    return "/pipelines/", _in_pk_order(Pipeline, rows)


def _experiments() -> tuple[str, list[dict[str, Any]]]:
    count, rows = 28, []
    for index in range(count):
        archived = index >= 25
        experiment = ExperimentFactory(
            display_name=_name(index, count),
            storage_state=StorageState.ARCHIVED if archived else StorageState.AVAILABLE,
        )
        created, last_run = _when(index, count), _when(index * 5 + 1, count, minutes=3) + dt.timedelta(days=1)
        Experiment.objects.filter(pk=experiment.pk).update(created_at=created, last_run_created_at=last_run)
        rows.append(
            {
                "pk": experiment.pk,
                "name": experiment.display_name,
                "archived": archived,
                "created": created,
                "last_run": last_run,
            }
        )
    return "/experiments/", _in_pk_order(Experiment, rows)


def _artifacts() -> tuple[str, list[dict[str, Any]]]:
    task = TaskFactory()
    types = ["system.Dataset", "system.Model", "system.Metrics"]
    count, rows = 25, []
    for index in range(count):
        artifact = ArtifactFactory(
            producer_task=task, name=_name(index, count), schema_title=types[(index * 2) % 3]
        )
        created = _when(index, count)
        Artifact.objects.filter(pk=artifact.pk).update(created_at=created)
        rows.append(
            {
                "pk": artifact.pk,
                "name": artifact.name,
                "archived": False,
                "type": artifact.schema_title,
                "created": created,
            }
        )
    return "/artifacts/", _in_pk_order(Artifact, rows)


def _schedules() -> tuple[str, list[dict[str, Any]]]:
    experiment = ExperimentFactory(display_name="nav-schedules")
    version = PipelineVersionFactory()
    count, rows = 25, []
    for index in range(count):
        rr = RecurringRunFactory(
            experiment=experiment, pipeline_version=version, display_name=_name(index, count)
        )
        created = _when(index, count)
        next_fire = _when(index * 3 + 2, count, minutes=60) + dt.timedelta(days=400)
        RecurringRun.objects.filter(pk=rr.pk).update(created_at=created, next_fire_time=next_fire)
        rows.append(
            {"pk": rr.pk, "name": rr.display_name, "archived": False, "created": created, "next": next_fire}
        )
    return "/recurring-runs/", _in_pk_order(RecurringRun, rows)


def _tasks() -> tuple[str, list[dict[str, Any]]]:
    run = RunFactory(
        display_name="nav-tasks",
        state=RuntimeState.SUCCEEDED,
        started_at=BASE_TIME,
        finished_at=timezone.now(),
    )
    kinds = [TaskKind.CONTAINER, TaskKind.IMPORTER, TaskKind.DAG]
    states = [RuntimeState.SUCCEEDED, RuntimeState.FAILED, RuntimeState.SKIPPED]
    count, rows = TASK_PAGE + 6, []
    for index in range(count):
        name = f"{WORDS[(index * 11) % len(WORDS)]}-{'eval' if index % 3 == 0 else 'train'}-{index:02d}"
        start = _when(index, count)
        duration = dt.timedelta(seconds=5 + (index * 19) % count)
        task = TaskFactory(
            run=run,
            name=name,
            key=f"root/{name}",
            kind=kinds[index % 3],
            state=states[(index // 3) % 3],
            started_at=start,
            finished_at=start + duration,
        )
        order = _when(index * 5 + 2, count) - dt.timedelta(days=1)
        Task.objects.filter(pk=task.pk).update(created_at=order, started_at=start)
        rows.append(
            {
                "pk": task.pk,
                "name": task.key,
                "archived": False,
                "order": order,
                "key": task.key,
                "kind": task.kind,
                "state": task.state,
                "started": start,
                "duration": duration,
            }
        )
    return f"/runs/{run.pk}/", _in_pk_order(Task, rows)


CASES = [
    Case(
        "runs",
        _runs,
        [
            Sort("Run name", "name"),
            Sort("Status", "state"),
            Sort("Duration", "duration"),
            Sort("Start time", "created"),
            Sort("accuracy", "accuracy", nulls_last=True),
        ],
        default=("created", True),
        tabs=True,
        name_cell="table.runs-table tbody tr td:nth-child(2) a",
    ),
    Case(
        "pipelines",
        _pipelines,
        [Sort("Name", "name"), Sort("Uploaded", "created")],
        default=("created", True),
    ),
    Case(
        "experiments",
        _experiments,
        [Sort("Name", "name"), Sort("Last run", "last_run"), Sort("Created", "created")],
        default=("created", True),
        tabs=True,
    ),
    Case(
        "artifacts",
        _artifacts,
        [Sort("Name", "name"), Sort("Type", "type"), Sort("Created", "created")],
        default=("created", True),
    ),
    Case(
        "recurring-runs",
        _schedules,
        [Sort("Name", "name"), Sort("Next fire", "next"), Sort("Created", "created")],
        default=("created", True),
    ),
    Case(
        "run-tasks",
        _tasks,
        [
            Sort("Task", "key"),
            Sort("Kind", "kind"),
            Sort("Status", "state"),
            Sort("Started", "started"),
            Sort("Duration", "duration"),
        ],
        default=("order", False),
        filter_name="tq",
        page_size=TASK_PAGE,
        sizes=False,
        scope="section[data-tab-panel=tasks]",
        name_cell="#task-table tbody tr td:first-child a",
        tab="tasks",
    ),
]


# --- The browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One Chromium for the module; each test gets its own context (cookies, JS setting)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium to run the browser tests")
    from playwright.sync_api import expect, sync_playwright

    with pytest.MonkeyPatch.context() as mp:
        # Playwright's sync API runs an event loop in this thread; the test's ORM calls
        # are still synchronous.
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        expect.set_options(timeout=30_000)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


class Person:
    """One person's tab: clicks links and forms and waits for the page they lead to."""

    def __init__(self, page: Any, case: Case) -> None:
        self.page, self.case = page, case
        self.scope = page.locator(case.scope)

    def click(self, locator: Any) -> None:
        with self.page.expect_navigation():
            locator.click()
        # Links never carry a doubled '?' (an escaped one included).
        assert "??" not in self.page.url and "%3F" not in self.page.url.upper(), self.page.url
        # On the run page, whatever was clicked leads back to the same tab.
        _expect()(self.scope).to_be_visible()

    def sort(self, label: str) -> None:
        # By its text: the arrow of the current sort is CSS, part of the accessible name.
        text = re.compile(rf"^\s*{re.escape(label)}\s*$")
        self.click(self.scope.locator("thead a.sort").filter(has_text=text))

    def pager(self, label: str) -> None:
        self.click(self.scope.locator("nav.pagination").get_by_role("link", name=label))

    def rows_per_page(self, size: int) -> None:
        self.click(self.scope.locator("nav.pagination a.pagesize", has_text=re.compile(rf"^{size}$")))

    def tab(self, label: str) -> None:
        self.click(self.page.locator("nav.subtabs").get_by_role("link", name=label, exact=True))

    def filter(self, text: str) -> None:
        self.scope.locator(f"form.filters input[name={self.case.filter_name}]").fill(text)
        self.click(self.scope.locator("form.filters button[type=submit]", has_text="Filter"))

    def sees(self, names: list[str]) -> None:
        _expect()(self.page.locator(self.case.name_cell)).to_have_text(names)


def _log_in(page: Any, base_url: str, username: str) -> None:
    """Through the login form, as a person does (the session cookie then stays on the page)."""
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("main form.form button[type=submit]")


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_list_navigation(live_server: Any, chromium: Any, case: Case, js: bool) -> None:
    expect = _expect()
    url, rows = case.build()
    user = UserFactory(username=f"nav-{case.id}")
    context = chromium.new_context(viewport=WIDE, java_script_enabled=js)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        _log_in(page, live_server.url, user.username)
        expect(page).to_have_url(re.compile(r"/runs/$"))
        page.goto(f"{live_server.url}{url}")
        if case.tab:
            # With JavaScript the run page shows one tab at a time; without it, all of them.
            tab_bar = page.locator("[data-tabs]")
            if js:
                page.click(f"button[data-tab={case.tab}]")
            else:
                expect(tab_bar).to_be_hidden()
            expect(page.locator(case.scope)).to_be_visible()
        _walk(Person(page, case), case, rows)
        assert errors == []
    finally:
        context.close()


def _walk(person: Person, case: Case, rows: list[dict[str, Any]]) -> None:
    expect = _expect()
    size = case.page_size
    active = [r for r in rows if not r["archived"]]
    archived = [r for r in rows if r["archived"]]
    assert len(active) > size, "the test needs at least two pages"

    # Page 2 and back, in the list's default order.
    default = _order(active, *case.default)
    person.sees(default[:size])
    person.pager("Next")
    person.sees(default[size : 2 * size])
    person.pager("Prev")
    person.sees(default[:size])

    # Every sortable column, ascending then descending (a second click reverses it).
    for sort in case.sorts:
        for descending in (False, True):
            person.sort(sort.label)
            person.sees(_order(active, sort.key, descending, nulls_last=sort.nulls_last)[:size])
            header = person.scope.locator("thead a.sort.desc" if descending else "thead a.sort.asc")
            expect(header).to_have_text(sort.label)

    # Page 2 keeps the sort.
    last = case.sorts[-1]
    ordered = _order(active, last.key, True, nulls_last=last.nulls_last)
    person.pager("Next")
    person.sees(ordered[size : 2 * size])

    if case.sizes:
        # Fewer rows per page: back to page 1, same sort.
        person.rows_per_page(SMALL_PAGE)
        size = SMALL_PAGE
        person.sees(ordered[:size])
        person.pager("Next")
        person.sees(ordered[size : 2 * size])

    if case.tabs:
        # The archived rows, found under Archived, in the same sort; and back.
        person.tab("Archived")
        archived_order = _order(archived, last.key, True, nulls_last=last.nulls_last)
        assert archived_order
        person.sees(archived_order[:size])
        person.tab("Active")
        person.sees(ordered[:size])

    # The filter box keeps the sort (and the page size), and starts at page 1.
    matching = [name for name in ordered if case.filter_text in name]
    assert 0 < len(matching) < len(ordered)
    person.filter(case.filter_text)
    person.sees(matching[:size])
    box = person.scope.locator(f"form.filters input[name={case.filter_name}]")
    expect(box).to_have_value(case.filter_text)


def test_runs_table_at_800px_scrolls_and_breaks_names_between_words(
    live_server: Any, chromium: Any, tmp_path: Any
) -> None:
    """At 800 px the runs table's metric columns are reached by scrolling the table
    sideways (not clipped), and run names wrap between words, never inside one."""
    expect = _expect()
    metrics = ["accuracy", "precision_macro", "recall", "f1_weighted", "roc_auc", "final_loss"]
    experiment = ExperimentFactory(display_name="hyperparameter-sweep-experiment")
    names = []
    for index in range(4):
        run = RunFactory(
            experiment=experiment,
            display_name=f"training run with a long name {index} learningrate0.001batchsize64",
            state=RuntimeState.SUCCEEDED,
        )
        ArtifactFactory(
            producer_task=TaskFactory(run=run),
            name="metrics",
            schema_title="system.Metrics",
            metadata={m: index / 10 + position for position, m in enumerate(metrics)},
        )
        names.append(run.display_name)
    user = UserFactory(username="nav-narrow")
    context = chromium.new_context(viewport=NARROW)
    page = context.new_page()
    try:
        _log_in(page, live_server.url, user.username)
        page.goto(f"{live_server.url}/runs/?" + "&".join(f"metric={m}" for m in metrics))
        headers = page.locator("table.runs-table th.metric-col")
        expect(headers).to_have_count(len(metrics))
        page.screenshot(path=str(tmp_path / "runs-800.png"), full_page=True)
        # Every word of every name is on one line: a word split across lines has two boxes.
        split = page.evaluate(
            """() => {
              const split = [];
              for (const link of document.querySelectorAll('table.runs-table td.clamp a[href^="/runs/"]')) {
                const text = link.firstChild;
                let at = 0;
                for (const word of text.data.split(' ')) {
                  const range = document.createRange();
                  range.setStart(text, at);
                  range.setEnd(text, at + word.length);
                  if (range.getClientRects().length > 1) { split.push(word); }
                  at += word.length + 1;
                }
              }
              return split;
            }"""
        )
        assert split == []
        # The last metric column lies beyond the 800 px, inside a wrapper that scrolls to it.
        last = headers.last
        wrap = page.locator("table.runs-table").locator("xpath=..")
        assert wrap.evaluate("w => w.scrollWidth > w.clientWidth && getComputedStyle(w).overflowX === 'auto'")
        last.scroll_into_view_if_needed()
        box, view = last.bounding_box(), wrap.bounding_box()
        assert box is not None and view is not None
        assert view["x"] <= box["x"] and box["x"] + box["width"] <= view["x"] + view["width"] + 1
        expect(last).to_have_text("final_loss")
        page.screenshot(path=str(tmp_path / "runs-800-scrolled.png"), full_page=True)
        print(f"\nscreenshots: {tmp_path}")
    finally:
        context.close()


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_archive_selected_runs_then_find_and_restore_them(live_server: Any, chromium: Any, js: bool) -> None:
    """Tick two runs, Archive them; they leave Active and are found under Archived, where
    Restore brings one back. With JavaScript off the buttons are plain submit buttons."""
    expect = _expect()
    runs = [RunFactory(display_name=f"bulk run {i}", state=RuntimeState.SUCCEEDED) for i in range(3)]
    user = UserFactory(username=f"bulk-{'js' if js else 'nojs'}")
    context = chromium.new_context(viewport=WIDE, java_script_enabled=js)
    context.set_default_timeout(30_000)
    page = context.new_page()
    names = page.locator("table.runs-table td.clamp a[href^='/runs/']")
    try:
        _log_in(page, live_server.url, user.username)
        page.goto(f"{live_server.url}/runs/?sort=name")
        expect(names).to_have_text(["bulk run 0", "bulk run 1", "bulk run 2"])
        for run in runs[:2]:
            page.check(f"input[name=run][value='{run.pk}']")
        with page.expect_navigation():
            page.click("form[data-bulk] button[value=archive]")
        expect(names).to_have_text(["bulk run 2"])
        with page.expect_navigation():
            page.locator("nav.subtabs").get_by_role("link", name="Archived", exact=True).click()
        expect(names).to_have_text(["bulk run 0", "bulk run 1"])
        page.check(f"input[name=run][value='{runs[0].pk}']")
        with page.expect_navigation():
            page.click("form[data-bulk] button[value=restore]")
        expect(names).to_have_text(["bulk run 1"])
        assert Run.objects.get(pk=runs[0].pk).storage_state == StorageState.AVAILABLE
    finally:
        context.close()


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_paging_past_the_counted_rows_reaches_the_last_run(
    live_server: Any, chromium: Any, js: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list longer than its page count reaches (apps.core.listing.COUNT_AHEAD_PAGES,
    lowered to 1 here): Next is offered while the pager says "of more than N", each
    click shows the next rows in order, the last page is exact and has no Next, and
    Prev walks back."""
    from apps.core import listing

    monkeypatch.setattr(listing, "COUNT_AHEAD_PAGES", 1)
    expect = _expect()
    count, size = 45, SMALL_PAGE
    names = []
    for index in range(count):
        name = f"{WORDS[index % len(WORDS)]}-{index:02d}"
        run = RunFactory(display_name=name, state=RuntimeState.SUCCEEDED)
        Run.objects.filter(pk=run.pk).update(created_at=BASE_TIME + dt.timedelta(minutes=index))
        names.append(run.display_name)
    newest_first = names[::-1]
    user = UserFactory(username="nav-bounded")
    context = chromium.new_context(viewport=WIDE, java_script_enabled=js)
    page = context.new_page()
    runs_case = next(c for c in CASES if c.id == "runs")
    case = Case(
        "bounded", runs_case.build, [], runs_case.default, page_size=size, name_cell=runs_case.name_cell
    )
    person = Person(page, case)
    pager = page.locator("main nav.pagination")
    pages = -(-count // size)
    try:
        _log_in(page, live_server.url, user.username)
        page.goto(f"{live_server.url}/runs/?page_size={size}")
        for number in range(1, pages + 1):
            person.sees(newest_first[(number - 1) * size : number * size])
            first, last = (number - 1) * size + 1, min(number * size, count)
            if (number + 1) * size < count:  # counted one page ahead, and more rows beyond
                expect(pager).to_contain_text(f"{first}\N{EN DASH}{last} of more than {(number + 1) * size}")
                expect(pager).not_to_contain_text(f"Page {number} /")
            else:
                expect(pager).to_contain_text(f"{first}\N{EN DASH}{last} of {count}")
                expect(pager).to_contain_text(f"Page {number} / {pages}")
            if number < pages:
                person.pager("Next")
        expect(pager.get_by_role("link", name="Next")).to_have_count(0)
        for number in range(pages - 1, 0, -1):
            person.pager("Prev")
            person.sees(newest_first[(number - 1) * size : number * size])
    finally:
        context.close()
