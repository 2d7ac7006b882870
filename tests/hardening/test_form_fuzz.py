"""Every web form, discovered rather than listed, takes the hostile values of issue 9
without a 500, and writes nothing where it refuses.

**Discovery.** The URL conf is walked (the REST API has its own fuzz, and the Django
admin is left out, see below): every route is filled with the ids of objects that
exist and fetched by a logged-in owner of the namespace; every page's links are
followed too, once per route and set of query keys, which is how the new-run form
is reached with a pipeline version's typed parameter fields. Every ``<form>`` on
every page is parsed as a browser sees it: its method, action and encoding, its
inputs, selects, textareas and named submit buttons, and buttons with their own
``formaction``. A second test checks that every route that accepts a POST is the
action of some discovered form, so a new form is covered, or the test says it is
not.

**Hostile values.** Each field of each form, in turn, gets each value of
``HOSTILE`` while the others keep what the page rendered (and, for each radio
group, each of its choices, so the recurring-run half of the new-run form is
fuzzed too; under such a choice, the fields it reveals: those the page renders
inside a ``hidden`` element, such as the trigger's fields, since every other field
was fuzzed already and is parsed the same way whatever the radio says); file inputs
get hostile files. A POST carries the form's CSRF token
from a client that enforces CSRF, and runs in a savepoint that is rolled back.
It must not answer 5xx; if it refuses (a 4xx, a re-rendered form, or a redirect
with an error message) every table's row count must be unchanged.

**The admin** (staff only) is Django's own ModelAdmin; the fields it lets operators
edit are names and descriptions (specs, parameters and triggers are read-only
there), so it is not fuzzed here.

The counts are printed in pytest's terminal summary ("form fuzz" section).
"""

from __future__ import annotations

import functools
import re
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urljoin, urlsplit

import pytest
from django.conf import settings
from django.contrib.messages import constants as message_levels
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404

from apps.core.choices import RuntimeState, StorageState, TaskKind
from apps.core.models import Membership
from tests.factories import (
    HELLO_IR_TEXT,
    ArtifactFactory,
    ExperimentFactory,
    RecurringRunFactory,
    RunFactory,
    TaskFactory,
    UserFactory,
)

from .hostile import DEEP, report, row_counts, typed_version

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

#: Routes under these prefixes are not web forms of the dashboard (see the docstring).
EXCLUDED_PREFIXES = ("/apis/", "/admin/", "/static/")
#: Elements without an end tag (HTML's void elements).
VOID_ELEMENTS = frozenset(
    ["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"]
)
#: A sentinel for "the bytes of a lone surrogate", which only a raw body can carry.
SURROGATE_BYTES = object()
HOSTILE: list[tuple[str, Any]] = [
    ("surrogate escape in JSON", '"\\ud800"'),
    ("surrogate in a JSON list", '["ok", "\\ud800"]'),
    ("surrogate as a JSON key", '{"\\udc00": 1}'),
    ("surrogate bytes", SURROGATE_BYTES),
    ("NUL", "a\x00b"),
    ("JSON 100,000 deep", "[" * DEEP + "]" * DEEP),
    ("5,000-digit number", "9" * 5000),
    ("beyond int64", str(2**70)),
    ("beyond double", "1e400"),
    ("negative", "-1"),
    ("year 9999", "9999-12-31T23:59:59"),
    ("year 1", "0001-01-01T00:00:00"),
    ("empty", ""),
    ("100,000 characters", "x" * 100_000),
]
HOSTILE_FILES: list[tuple[str, bytes]] = [
    (
        "YAML with a surrogate escape",
        HELLO_IR_TEXT.replace("name: hello\nroot", 'name: "a\\ud800"\nroot').encode(),
    ),
    ("YAML with a NUL escape", HELLO_IR_TEXT.replace("name: hello\nroot", 'name: "a\\0"\nroot').encode()),
    ("YAML nested 100,000 deep", b"a: " + b"[" * DEEP + b"]" * DEEP),
    ("empty file", b""),
    ("binary", bytes(range(256)) * 4),
    ("not UTF-8", b"a: \xed\xa0\x80\n"),
]


# --- The world the forms act on -----------------------------------------------------------


class World:
    """An owner of the namespace and one object in every state a page offers a form
    for (a running run can be terminated, an archived one restored, a disabled
    schedule enabled, ...), and the clients that browse them."""

    def __init__(self) -> None:
        self.user = UserFactory(username="owner")
        Membership.objects.filter(user=self.user).update(role=Membership.Role.OWNER)
        version = typed_version()
        experiment = ExperimentFactory()
        archived_experiment = ExperimentFactory(display_name="archived", storage_state=StorageState.ARCHIVED)
        run = RunFactory(experiment=experiment, pipeline_version=version, state=RuntimeState.FAILED)
        running = RunFactory(experiment=experiment, pipeline_version=version, state=RuntimeState.RUNNING)
        archived_run = RunFactory(
            experiment=experiment, pipeline_version=version, storage_state=StorageState.ARCHIVED
        )
        root = TaskFactory(run=run, key="root", name="root", kind=TaskKind.ROOT)
        writer = TaskFactory(run=run, parent=root, key="root/writer", name="writer")
        # The typed pipeline's own step, failed: its panel offers "Re-run this step".
        TaskFactory(
            run=run,
            parent=root,
            key="root/show",
            name="show",
            state=RuntimeState.FAILED,
            inputs={"parameters": {"text": "hello"}},
        )
        content = Path(settings.CANAL_PIPELINE_ROOT) / "form-fuzz" / "artifact.txt"
        content.parent.mkdir(parents=True, exist_ok=True)
        content.write_bytes(b"artifact bytes")
        artifact = ArtifactFactory(producer_task=writer, run=run, name="out", uri=str(content))
        writer.outputs = {
            "artifacts": {"out": [{"id": str(artifact.pk), "name": "out", "uri": str(content)}]}
        }
        writer.save()
        enabled = RecurringRunFactory(experiment=experiment, pipeline_version=version)
        disabled = RecurringRunFactory(
            experiment=experiment, pipeline_version=version, mode="DISABLE", status="DISABLED"
        )
        #: Every route parameter, with one value per object state worth a page of its own.
        self.kwargs: dict[str, list[str]] = {
            "run_id": [str(run.pk), str(running.pk), str(archived_run.pk)],
            "pipeline_id": [str(version.pipeline_id)],
            "pipeline_version_id": [str(version.pk)],
            "experiment_id": [str(experiment.pk), str(archived_experiment.pk)],
            "recurring_run_id": [str(enabled.pk), str(disabled.pk)],
            "artifact_id": [str(artifact.pk)],
            "task_id": [str(writer.pk)],
            "index": ["0"],
            "name": [self.user.namespaces.first().name],
            "membership_id": [str(self.user.membership_set.first().pk)],
        }
        self.clients = {
            "owner": Client(enforce_csrf_checks=True, raise_request_exception=False),
            "anonymous": Client(enforce_csrf_checks=True, raise_request_exception=False),
        }
        self.login()

    def login(self) -> None:
        self.clients["owner"].force_login(self.user)


def _routes(resolvers: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    """(route text, pattern) of every URL pattern, nested includes expanded."""
    for entry in resolvers:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


def _fill(route: str, pattern: URLPattern, world: World) -> list[str]:
    """URLs for ``route``: one per value of each of its parameters (the others at their first)."""
    names = list(pattern.pattern.converters)
    missing = [name for name in names if name not in world.kwargs]
    assert not missing, f"route {route!r} takes {missing}: give the form fuzz's World such an object"

    def url(choice: dict[str, str]) -> str:
        first = {name: values[0] for name, values in world.kwargs.items()}
        values = {**first, **choice}
        return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: values[match.group(1)], route)

    urls = [url({})]
    for name in names:
        urls.extend(url({name: value}) for value in world.kwargs[name][1:])
    return urls


def ui_routes(world: World) -> list[tuple[str, str]]:
    """(route, URL) for every dashboard route, once per object state its parameters take."""
    out = []
    for route, pattern in _routes(get_resolver().url_patterns):
        if not ("/" + route).startswith(EXCLUDED_PREFIXES):
            out.extend((route, url) for url in _fill(route, pattern, world))
    return out


# --- Reading forms as a browser does ---------------------------------------------------------


@dataclass
class Field:
    """One named control: its kind, the value the page gives it, and its choices."""

    name: str
    kind: str  # text, textarea, select, radio, checkbox, file, submit, hidden
    value: str | None = None
    choices: list[str] = field(default_factory=list)
    #: Rendered inside an element with the ``hidden`` attribute: a radio choice reveals it.
    concealed: bool = False


@dataclass
class Form:
    """A ``<form>`` as it will be submitted (a button's formaction/formmethod is a Form of its own)."""

    page: str
    method: str
    action: str
    multipart: bool
    fields: list[Field] = field(default_factory=list)
    who: str = "owner"  # the client that saw it: "owner", or "anonymous" for the login page

    @property
    def route(self) -> str:
        return _route_of(self.action) or self.action

    def defaults(self) -> list[tuple[str, str]]:
        """What a browser sends when the form is submitted untouched."""
        data: list[tuple[str, str]] = []
        for f in self.fields:
            # A checkbox, radio or select sends its checked/selected value; a text control its text.
            if f.kind != "file" and f.kind != "submit" and f.value is not None:
                data.append((f.name, f.value))
        return data


class FormReader(HTMLParser):
    """Collects the forms of one page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.page = page
        self.forms: list[Form] = []
        self.links: list[str] = []
        self._form: Form | None = None
        self._extra: list[Form] = []
        self._select: Field | None = None
        self._textarea: Field | None = None
        #: The open elements (void ones never are), each with whether it is ``hidden``.
        self._open: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag not in VOID_ELEMENTS:
            self._open.append((tag, "hidden" in a))
        fields = list(self._form.fields) if self._form is not None else []
        self._start(tag, a)
        if self._form is not None and tag in ("input", "select", "textarea", "button"):
            concealed = any(hidden for _tag, hidden in self._open) or "hidden" in a
            # The control this tag made, or the radio group or button it added a choice to.
            touched = [f for f in self._form.fields if f not in fields] or [
                f for f in self._form.fields if f.name == a.get("name")
            ]
            for control in touched:
                control.concealed = control.concealed or concealed

    def _start(self, tag: str, a: dict[str, str]) -> None:
        if tag == "a" and a.get("href"):
            self.links.append(urljoin(self.page, a["href"]))
        if tag == "form":
            action = urljoin(self.page, a.get("action") or self.page)
            multipart = a.get("enctype", "") == "multipart/form-data"
            self._form = Form(self.page, (a.get("method") or "get").lower(), action, multipart)
            self._extra = []
            return
        form = self._form
        if form is None:
            return
        name = a.get("name", "")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ("radio", "checkbox"):
                existing = next((f for f in form.fields if f.name == name and f.kind == kind), None)
                if existing is None:
                    existing = Field(name, kind)
                    form.fields.append(existing)
                existing.choices.append(a.get("value", "on"))
                if "checked" in a and existing.value is None:
                    existing.value = a.get("value", "on")
            elif kind == "file":
                form.fields.append(Field(name, "file"))
            elif kind == "submit":
                form.fields.append(Field(name, "submit", None, [a.get("value", "")]))
            elif kind not in ("button", "reset", "image"):
                form.fields.append(Field(name, "hidden" if kind == "hidden" else "text", a.get("value", "")))
        elif tag == "select" and name:
            self._select = Field(name, "select")
            form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            self._select.choices.append(value)
            if "selected" in a or self._select.value is None:
                self._select.value = value
        elif tag == "textarea" and name:
            self._textarea = Field(name, "textarea", "")
            form.fields.append(self._textarea)
        elif tag == "button":
            if a.get("formaction") or a.get("formmethod"):
                action = urljoin(self.page, a.get("formaction") or form.action)
                self._extra.append(
                    Form(self.page, (a.get("formmethod") or form.method).lower(), action, False)
                )
            if name:
                existing = next((f for f in form.fields if f.name == name and f.kind == "submit"), None)
                if existing is None:
                    existing = Field(name, "submit")
                    form.fields.append(existing)
                existing.choices.append(a.get("value", ""))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.value = (self._textarea.value or "") + data

    def handle_endtag(self, tag: str) -> None:
        if any(open_tag == tag for open_tag, _hidden in self._open):
            while self._open and self._open.pop()[0] != tag:
                pass
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form" and self._form is not None:
            self.forms.append(self._form)
            for extra in self._extra:
                extra.fields = self._form.fields
                self.forms.append(extra)
            self._form = None


def _route_of(url: str) -> str | None:
    try:
        return resolve(urlsplit(url).path).route
    except Resolver404:
        return None


def _inside(url: str) -> bool:
    parts = urlsplit(url)
    return parts.netloc in ("", "testserver") and not parts.path.startswith(EXCLUDED_PREFIXES)


def discover(world: World) -> tuple[list[Form], set[str]]:
    """Every form on every page reachable from the URL conf, as the owner and as an
    anonymous visitor sees them; and the routes visited. Pages are told apart by path
    and query keys, so each object's page is read but a sort link is followed once."""
    forms: dict[tuple[str, str, str, tuple[str, ...]], Form] = {}
    visited: set[str] = set()
    for who, client in world.clients.items():
        queue = [url for _route, url in ui_routes(world)]
        seen: set[tuple[str, tuple[str, ...]]] = set()
        while queue:
            url = queue.pop(0)
            route = _route_of(url)
            if route is None or not _inside(url) or "/logout" in url:
                continue
            parts = urlsplit(url)
            key = (parts.path, tuple(sorted({k for k, _v in parse_qsl(parts.query)})))
            if key in seen:
                continue
            seen.add(key)
            response = client.get(url)
            if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
                continue
            visited.add(route)
            reader = FormReader("http://testserver" + url)
            reader.feed(response.content.decode("utf-8", "replace"))
            for form in reader.forms:
                if _inside(form.action):
                    form.who = who
                    names = tuple(sorted({f.name for f in form.fields}))
                    forms.setdefault((who, form.method, form.route, names), form)
            for link in reader.links:
                if _inside(link):
                    parts = urlsplit(link)
                    queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return list(forms.values()), visited


# --- Sending ------------------------------------------------------------------------------


def _refused(response: Any) -> bool:
    if response.status_code >= 400:
        return True
    if response.status_code in (301, 302, 303, 307, 308):
        return any(m.level >= message_levels.ERROR for m in get_messages(response.wsgi_request))
    return True  # a POST answered with a page is a form shown again with its errors


def _csrf_token(world: World, form: Form) -> str:
    """A fresh token from the form's own page (the page is fetched again: a POST may
    have logged the client out or rotated its token)."""
    client = world.clients[form.who]
    if form.who == "owner" and "_auth_user_id" not in client.session:
        world.login()
    parts = urlsplit(form.page)
    page = client.get(parts.path + (f"?{parts.query}" if parts.query else ""))
    marker = 'name="csrfmiddlewaretoken" value="'
    text = page.content.decode("utf-8", "replace")
    start = text.find(marker)
    assert start >= 0, f"{form.page} renders a POST form without a CSRF token"
    return text[start + len(marker) : text.index('"', start + len(marker))]


@dataclass
class Outcome:
    """What the fuzz did, for the summary and the failure report."""

    sent: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


@functools.lru_cache(maxsize=512)
def _quoted(text: str) -> str:
    """``text`` as a form encodes it; the hostile values are quoted once, not per request
    (the 100,000-character ones are 300 KB encoded)."""
    return quote_plus(text)


def urlencode(pairs: Any) -> str:
    """``urllib.parse.urlencode`` of (name, text) pairs, with each text quoted once."""
    return "&".join(f"{_quoted(str(k))}={_quoted(str(v))}" for k, v in pairs)


def _send(
    world: World, form: Form, data: list[tuple[str, Any]], what: str, outcome: Outcome, token: str
) -> None:
    client = world.clients[form.who]
    action = urlsplit(form.action)
    url = action.path + (f"?{action.query}" if action.query else "")
    outcome.sent[f"{form.method.upper()} {form.route}" + (" (anonymous)" if form.who != "owner" else "")] += 1
    before = row_counts()
    savepoint = transaction.savepoint()
    try:
        if form.method == "get":
            pairs = [(k, v) for k, v in data if v is not SURROGATE_BYTES]
            query = urlencode(pairs)
            if any(v is SURROGATE_BYTES for _k, v in data):
                query += "".join(f"&{k}=%ED%A0%80" for k, v in data if v is SURROGATE_BYTES)
            response = client.get(f"{action.path}?{query}")
        elif form.multipart:
            fields: dict[str, Any] = {}
            for key, value in [("csrfmiddlewaretoken", token), *data]:
                if value is SURROGATE_BYTES:
                    continue  # a multipart part is decoded like a urlencoded one: nothing new to try
                fields.setdefault(key, []).append(value)
            response = client.post(url, fields)
        else:
            body = urlencode(
                [("csrfmiddlewaretoken", token), *((k, v) for k, v in data if v is not SURROGATE_BYTES)]
            )
            body += "".join(f"&{k}=%ED%A0%80" for k, v in data if v is SURROGATE_BYTES)
            response = client.post(url, body, content_type="application/x-www-form-urlencoded")
        after = row_counts()
        refused = form.method == "post" and _refused(response)
        landing = None
        if form.method == "post" and not refused and response.status_code in (301, 302, 303):
            # A browser follows the redirect: the page showing what was accepted must render.
            location = urlsplit(response["Location"])
            if _inside(response["Location"]) and "/logout" not in location.path:
                landing = client.get(location.path + (f"?{location.query}" if location.query else ""))
    finally:
        transaction.savepoint_rollback(savepoint)
    where = f"{form.method.upper()} {url[:100]} ({what})"
    if form.method == "post":
        outcome.verdicts["refused" if refused else "accepted"] += 1
    if response.status_code >= 500:
        outcome.problems.append(f"{where} -> {response.status_code}")
    elif landing is not None and landing.status_code >= 500:
        outcome.problems.append(f"{where} -> accepted, then {response['Location']} -> {landing.status_code}")
    elif response.status_code == 403 and form.method == "post":
        outcome.problems.append(f"{where} -> 403: refused for permission or CSRF, not for its input")
    elif refused and after != before:
        outcome.problems.append(
            f"{where} -> refused ({response.status_code}) but rows changed: {after - before}"
        )


def _baselines(form: Form) -> list[list[tuple[str, str]]]:
    """The untouched form, then each other choice of each radio group, cumulatively
    (so the new-run form is fuzzed one-off, recurring, and recurring on a cron)."""
    current = form.defaults()
    out = [current]
    for f in form.fields:
        if f.kind != "radio":
            continue
        for choice in f.choices:
            if choice != f.value:
                current = [(k, v) for k, v in current if k != f.name] + [(f.name, choice)]
                out.append(current)
    return out


def _fresh(world: World, form: Form, token: str) -> str:
    """The token to use next: a new one if the last POST logged the owner out."""
    if (
        form.method == "post"
        and form.who == "owner"
        and "_auth_user_id" not in world.clients["owner"].session
    ):
        return _csrf_token(world, form)
    return token


def _fuzz_form(world: World, form: Form, outcome: Outcome) -> None:
    token = _csrf_token(world, form) if form.method == "post" else ""
    targets = [f for f in form.fields if f.name != "csrfmiddlewaretoken"]
    if not targets:  # nothing to type into: an unexpected field is all a client can add
        targets = [Field("unexpected", "text")]
    # Under a radio choice other than the page's own, the fields it reveals (a form that
    # hides nothing gets every field fuzzed again under each choice).
    revealed = [f for f in targets if f.concealed] or targets
    for number, baseline in enumerate(_baselines(form)):
        for target in targets if number == 0 else revealed:
            others = [(k, v) for k, v in baseline if k != target.name]
            if target.kind == "file":
                for label, content in HOSTILE_FILES:
                    upload = SimpleUploadedFile("pipeline.yaml", content)
                    _send(
                        world,
                        form,
                        [*others, (target.name, upload)],
                        f"{target.name}: {label}",
                        outcome,
                        token,
                    )
                    token = _fresh(world, form, token)
                continue
            for label, value in HOSTILE:
                _send(world, form, [*others, (target.name, value)], f"{target.name}: {label}", outcome, token)
                token = _fresh(world, form, token)


@pytest.fixture
def world(db: Any) -> World:
    return World()


def test_every_route_that_takes_a_post_has_a_discovered_form(world: World) -> None:
    """A route that answers GET with 405 is there to be posted to: some page must
    render its form, or the fuzz below would never reach it. Every route also gets an
    empty POST (with a valid CSRF token, in the header as a script sends it): no 5xx."""
    forms, _visited = discover(world)
    posted = {form.route for form in forms if form.method == "post"}
    owner = world.clients["owner"]
    owner.get("/runs/")  # sets the CSRF cookie
    token = owner.cookies["csrftoken"].value
    post_only, crashed = set(), []
    for route, url in ui_routes(world):
        world.login()
        if owner.get(url).status_code == 405:
            post_only.add(route)
        savepoint = transaction.savepoint()
        try:
            status = owner.post(url, {}, HTTP_X_CSRFTOKEN=token).status_code
        finally:
            transaction.savepoint_rollback(savepoint)
        if status >= 500:
            crashed.append(f"POST {url} (empty) -> {status}")
    assert not crashed, crashed
    assert len(post_only) >= 10, post_only  # the actions: archive, delete, terminate, enable, ...
    missing = sorted(post_only - posted)
    assert not missing, f"routes that take only a POST but no page renders a form for: {missing}"


def test_every_form_survives_hostile_values(world: World, request: Any) -> None:
    started = time.monotonic()
    forms, visited = discover(world)
    assert any(f.name.startswith("param__") for form in forms for f in form.fields), (
        "discovery reached the new-run form with a version's typed parameter fields"
    )
    assert any(form.who == "anonymous" for form in forms), "the login form was discovered"
    outcome = Outcome()
    for form in forms:
        _fuzz_form(world, form, outcome)
    fields = sum(len([f for f in form.fields if f.name != "csrfmiddlewaretoken"]) for form in forms)
    lines = [f"{route}: {count} requests" for route, count in sorted(outcome.sent.items())]
    lines.append(
        f"forms: {len(forms)} discovered on {len(visited)} routes ({fields} fields), "
        f"{sum(outcome.sent.values())} hostile submissions in {time.monotonic() - started:.0f}s "
        f"(POSTs refused: {outcome.verdicts['refused']}, accepted: {outcome.verdicts['accepted']})"
    )
    report(request.config, "form fuzz", lines)
    assert not outcome.problems, f"{len(outcome.problems)} problems:\n" + "\n".join(outcome.problems[:60])


def test_the_reader_sees_forms_as_a_browser_does() -> None:
    page = """
    <form method="post" action="/x/" enctype="multipart/form-data">
      <input type="hidden" name="csrfmiddlewaretoken" value="t">
      <input name="a" value="1"><input type="file" name="f">
      <input type="radio" name="r" value="one" checked><input type="radio" name="r" value="two">
      <input type="checkbox" name="c" value="on">
      <select name="s"><option value="p">P</option><option value="q" selected>Q</option></select>
      <textarea name="t">text</textarea>
      <button type="submit" name="action" value="go">Go</button>
      <button type="submit" formmethod="get" formaction="/y/">Elsewhere</button>
    </form>"""
    reader = FormReader("http://testserver/page/")
    reader.feed(page)
    first, second = reader.forms
    assert (first.method, first.action, first.multipart) == ("post", "http://testserver/x/", True)
    kinds = {f.name: (f.kind, f.value, f.choices) for f in first.fields}
    assert kinds["r"] == ("radio", "one", ["one", "two"])
    assert kinds["s"] == ("select", "q", ["p", "q"])
    assert kinds["t"] == ("textarea", "text", [])
    assert kinds["f"][0] == "file" and kinds["c"] == ("checkbox", None, ["on"])
    assert kinds["action"] == ("submit", None, ["go"])
    assert first.defaults() == [
        ("csrfmiddlewaretoken", "t"),
        ("a", "1"),
        ("r", "one"),
        ("s", "q"),
        ("t", "text"),
    ]
    assert (second.method, second.action) == ("get", "http://testserver/y/")
    assert [b[-1] for b in _baselines(first)] == [("t", "text"), ("r", "two")]
    assert not any(f.concealed for f in first.fields)
    pairs = [("a b", "x&y=z"), ("c", "\u00e9/+"), ("c", "")]
    assert urlencode(pairs) == urllib.parse.urlencode(pairs)


def test_the_reader_sees_which_fields_a_choice_reveals() -> None:
    """A field rendered inside a ``hidden`` element (at any depth, past void elements and
    closed siblings) is what a radio choice reveals; the rest is not."""
    page = """
    <form method="post">
      <input name="shown"><br>
      <fieldset><input type="radio" name="kind" value="one" checked>
        <input type="radio" name="kind" value="two"></fieldset>
      <div class="x" hidden><p>Cron <img src="/i.png"></p>
        <div><input name="cron"><select name="zone"><option value="UTC">UTC</option></select></div>
        <input type="radio" name="sub" value="a" checked>
      </div>
      <div><textarea name="after">t</textarea></div>
      <input name="late" hidden>
    </form>"""
    reader = FormReader("http://testserver/page/")
    reader.feed(page)
    (form,) = reader.forms
    concealed = {f.name: f.concealed for f in form.fields}
    assert concealed == {
        "shown": False,
        "kind": False,
        "cron": True,
        "zone": True,
        "sub": True,
        "after": False,
        "late": True,
    }
