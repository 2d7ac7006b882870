"""The members page: owners (and admins) add people by username, change roles and remove
members; everyone else in the namespace only sees who is in it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.core.models import Membership
from tests.factories import NamespaceFactory, PipelineFactory, UserFactory

URL = "/namespaces/team-a/members/"


@pytest.fixture
def team(db: Any) -> dict[str, Any]:
    ns = NamespaceFactory(name="team-a")
    people = {
        "owner": UserFactory(username="olga", namespace=ns, namespace__role=Membership.Role.OWNER),
        "viewer": UserFactory(username="victor", namespace=ns, namespace__role=Membership.Role.VIEWER),
        "stranger": UserFactory(username="sam", namespace=NamespaceFactory(name="team-b")),
        "admin": UserFactory(username="root", is_staff=True, is_superuser=True, namespace=NamespaceFactory()),
    }
    return {"ns": ns, "pipeline": PipelineFactory(namespace=ns), **people}


def _as(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _role(team: dict[str, Any], who: str) -> str | None:
    row = Membership.objects.filter(namespace=team["ns"], user=team[who]).first()
    return row.role if row else None


def _membership(team: dict[str, Any], who: str) -> Membership:
    return Membership.objects.get(namespace=team["ns"], user=team[who])


def test_owner_adds_a_user_who_then_sees_the_namespace(team: dict[str, Any]) -> None:
    stranger = _as(team["stranger"])
    assert stranger.get(f"/pipelines/{team['pipeline'].pk}/").status_code == 404

    response = _as(team["owner"]).post(URL, {"username": "sam", "role": "editor"})
    assert response.status_code == 302
    assert _role(team, "stranger") == "editor"
    assert stranger.get(f"/pipelines/{team['pipeline'].pk}/").status_code == 200
    assert stranger.get("/experiments/new/").status_code == 200  # an editor may create


def test_adding_an_unknown_or_existing_user_names_the_problem(team: dict[str, Any]) -> None:
    owner = _as(team["owner"])
    response = owner.post(URL, {"username": "nobody", "role": "viewer"})
    assert response.status_code == 400
    assert "there is no active user named" in response.content.decode()
    response = owner.post(URL, {"username": "victor", "role": "owner"})
    assert response.status_code == 400
    assert "already a member" in response.content.decode()
    assert _role(team, "viewer") == "viewer"


def test_owner_changes_a_role_and_removes_a_member(team: dict[str, Any]) -> None:
    owner, viewer = _as(team["owner"]), _as(team["viewer"])
    assert viewer.get("/experiments/new/").status_code == 403
    membership = _membership(team, "viewer")
    response = owner.post(f"{URL}{membership.pk}/role/", {f"m{membership.pk}-role": "editor"})
    assert response.status_code == 302
    assert viewer.get("/experiments/new/").status_code == 200

    assert owner.post(f"{URL}{membership.pk}/remove/").status_code == 302
    assert _role(team, "viewer") is None
    assert viewer.get(f"/pipelines/{team['pipeline'].pk}/").status_code == 404


def test_the_last_owner_can_be_neither_demoted_nor_removed(team: dict[str, Any]) -> None:
    owner = _as(team["owner"])
    mine = _membership(team, "owner")
    page = owner.post(f"{URL}{mine.pk}/role/", {f"m{mine.pk}-role": "viewer"}, follow=True)
    assert "last owner" in page.content.decode()
    page = owner.post(f"{URL}{mine.pk}/remove/", follow=True)
    assert "last owner" in page.content.decode()
    assert _role(team, "owner") == "owner"

    # With a second owner, the first may step down.
    viewer_membership = _membership(team, "viewer")
    owner.post(f"{URL}{viewer_membership.pk}/role/", {f"m{viewer_membership.pk}-role": "owner"})
    owner.post(f"{URL}{mine.pk}/role/", {f"m{mine.pk}-role": "editor"})
    assert _role(team, "owner") == "editor" and _role(team, "viewer") == "owner"


def test_members_see_the_list_but_only_owners_manage_it(team: dict[str, Any]) -> None:
    viewer = _as(team["viewer"])
    page = viewer.get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert "olga" in html and "victor" in html
    assert "/remove/" not in html and "Change role" not in html and 'id="add-member"' not in html
    mine = _membership(team, "viewer")
    assert viewer.post(URL, {"username": "sam", "role": "owner"}).status_code == 403
    assert viewer.post(f"{URL}{mine.pk}/role/", {f"m{mine.pk}-role": "owner"}).status_code == 403
    assert viewer.post(f"{URL}{_membership(team, 'owner').pk}/remove/").status_code == 403
    assert _role(team, "viewer") == "viewer" and _role(team, "owner") == "owner"
    assert _role(team, "stranger") is None


def test_outsiders_get_404_and_admins_manage_any_namespace(team: dict[str, Any]) -> None:
    assert _as(team["stranger"]).get(URL).status_code == 404
    assert _as(team["stranger"]).post(URL, {"username": "sam", "role": "owner"}).status_code == 404
    assert _role(team, "stranger") is None

    admin = _as(team["admin"])
    assert admin.get(URL).status_code == 200
    assert admin.post(URL, {"username": "sam", "role": "viewer"}).status_code == 302
    assert _role(team, "stranger") == "viewer"


def test_member_changes_need_the_csrf_token(team: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(team["owner"])
    assert client.post(URL, {"username": "sam", "role": "viewer"}).status_code == 403
    mine = _membership(team, "viewer")
    assert client.post(f"{URL}{mine.pk}/remove/").status_code == 403
    assert _role(team, "stranger") is None and _role(team, "viewer") == "viewer"


def test_the_top_bar_links_to_the_current_namespace_members(team: dict[str, Any]) -> None:
    viewer = _as(team["viewer"])
    html = viewer.get("/pipelines/").content.decode()
    assert 'href="/namespaces/team-a/members/"' in html
