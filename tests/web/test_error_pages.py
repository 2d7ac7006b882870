"""Canal's own 404 and 500 pages (DEBUG off), instead of Django's bare ones. The 500
page is rendered without the database and without a request context."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings
from django.urls import include, path
from django.views.defaults import server_error


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_unknown_page_is_canal_404_with_the_layout(logged_in) -> None:  # type: ignore[no-untyped-def]
    response = logged_in.get("/no-such-page/here/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "<title>Not found · Canal</title>" in html
    assert "/no-such-page/here/" in html
    assert 'class="mainnav"' in html  # the site's own layout, navigation included
    assert "/static/css/canal.css" in html
    assert "Resolver404" not in html


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_missing_object_404_says_what_is_missing(logged_in) -> None:  # type: ignore[no-untyped-def]
    response = logged_in.get(
        "/runs/compare/?run=00000000-0000-0000-0000-000000000001&run=00000000-0000-0000-0000-000000000002"
    )
    assert response.status_code == 404
    html = response.content.decode()
    assert "Not found · Canal" in html
    assert "one of these runs does not exist" in html


@override_settings(DEBUG=False)
def test_500_page_renders_without_database_or_context() -> None:
    # No django_db mark: any database access here fails the test.
    request = RequestFactory().get("/anything/")
    response = server_error(request)
    assert response.status_code == 500
    html = response.content.decode()
    assert "<title>Server error · Canal</title>" in html
    assert "/static/css/canal.css" in html and "/static/css/finish.css" in html
    assert "Something went wrong" in html


def _boom(request):  # type: ignore[no-untyped-def]
    raise RuntimeError("kaboom: a secret detail")


# This module doubles as a URL conf: Canal's routes plus one view that fails.
urlpatterns = [path("boom/", _boom), path("", include("pipelines_site.urls"))]


@pytest.mark.django_db
@override_settings(DEBUG=False, ROOT_URLCONF=__name__)
def test_an_exception_in_a_view_answers_the_styled_500(logged_in) -> None:  # type: ignore[no-untyped-def]
    logged_in.raise_request_exception = False
    response = logged_in.get("/boom/")
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html
    assert "kaboom" not in html
