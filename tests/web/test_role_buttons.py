"""A page never offers an action its user may not take.

For a viewer, an editor and an owner, each page's forms are submitted (every submit
button, with the form's fields) and its links to write forms are followed, as a person
clicking through would; none may answer 403. And each role is offered what it may do
(an owner deletes, an editor terminates, a viewer only reads), so the test cannot pass
by a page offering nothing.
"""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from django.db import transaction
from django.test import Client

from tests.hardening.world import World, build_world

WRITE_PAGES = ("/upload/", "/upload-version/", "/new/", "/clone/")


class _Actions(HTMLParser):
    """The page's POST forms (action, fields, submit buttons) and its links."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.links: list[str] = []
        self._form: dict[str, Any] | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "").lower() == "post":
            self._form = {"action": a.get("action", ""), "fields": {}, "buttons": []}
            self.forms.append(self._form)
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif self._form is not None:
            if tag == "input" and a.get("name") and a.get("type") in ("hidden", "checkbox", "text", None, ""):
                self._form["fields"].setdefault(a["name"], []).append(a.get("value", "on"))
            elif tag == "select" and a.get("name"):
                self._select = a["name"]
            elif tag == "option" and self._select and self._select not in self._form["fields"]:
                self._form["fields"][self._select] = [a.get("value", "")]
            elif tag == "button" and a.get("type", "submit") == "submit" and "formmethod" not in a:
                self._form["buttons"].append((a.get("name"), a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def _offered(client: Client, url: str) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    response = client.get(url)
    assert response.status_code == 200, url
    parser = _Actions()
    parser.feed(response.content.decode())
    posts = []
    for form in parser.forms:
        target = urljoin(url, form["action"] or url)
        for name, value in form["buttons"] or [(None, "")]:
            data = dict(form["fields"])
            if name:
                data[name] = value
            posts.append((target, data))
    gets = [urljoin(url, h) for h in parser.links if urlsplit(h).path.endswith(WRITE_PAGES)]
    return posts, gets


def _pages(w: World) -> list[str]:
    return [
        "/pipelines/",
        f"/pipelines/{w.pipeline.pk}/",
        "/experiments/",
        f"/experiments/{w.experiment.pk}/",
        "/runs/",
        f"/runs/{w.run.pk}/",
        f"/recurring-runs/{w.recurring_run.pk}/",
        f"/namespaces/{w.a.name}/members/",
    ]


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(db: Any) -> World:
    return build_world()


@pytest.mark.parametrize("role", ["viewer", "editor", "owner", "admin"])
def test_nothing_offered_is_refused(world: World, role: str) -> None:
    client = _client(world.users[role])
    offered: set[str] = set()
    refused = []
    for page in _pages(world):
        posts, gets = _offered(client, page)
        for target, data in posts:
            offered.add(urlsplit(target).path.rstrip("/").rsplit("/", 1)[-1])
            cookies = copy.deepcopy(client.cookies)  # logging out changes the session key
            with transaction.atomic():
                status = client.post(target, data).status_code
                transaction.set_rollback(True)
            client.cookies = cookies
            if status == 403:
                refused.append(f"{page}: POST {target} {data}")
        for target in gets:
            offered.add(urlsplit(target).path.rstrip("/").rsplit("/", 1)[-1])
            if client.get(target).status_code == 403:
                refused.append(f"{page}: GET {target}")
    assert not refused, "pages offered actions that are refused:\n" + "\n".join(refused)

    # What each role is offered (the last path segment of each form or link).
    everyone = {"logout", "namespace"}
    editing = {"upload", "upload-version", "new", "retry", "archive", "enable", "clone"}
    owning = {"delete", "remove", "role", "members"}
    assert everyone <= offered
    if role == "viewer":
        assert not (editing | {"delete", "remove", "role"}) & offered, offered
    if role in ("editor", "owner", "admin"):
        assert editing <= offered, editing - offered
    if role == "editor":
        assert not {"delete", "remove", "role"} & offered, offered
    if role in ("owner", "admin"):
        assert owning <= offered, owning - offered
