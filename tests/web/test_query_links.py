"""Sort headers, list tabs and pagers link to what they say: a person who clicks
"Run name" gets the runs sorted by name, with the filter they typed kept.

Django's {% querystring %} returns the leading "?" itself; the templates added
another, so every such link read "??sort=name": the first parameter arrived as
"?sort" and was ignored, and each click grew the URL by one more "%3F".
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

import pytest
from django.test import Client

from apps.core.choices import RuntimeState, StorageState
from tests.factories import ExperimentFactory, RunFactory, TaskFactory


def _href(page: str, text: str) -> str:
    match = re.search(r'<a[^>]*href="([^"]*)"[^>]*>\s*' + re.escape(text) + r"\s*<", page)
    assert match, f"no link {text!r}"
    return html.unescape(match.group(1))


@pytest.mark.django_db
def test_clicking_a_sort_header_sorts_and_keeps_the_filter(logged_in: Client) -> None:
    RunFactory(display_name="beta train", state=RuntimeState.SUCCEEDED)
    RunFactory(display_name="alpha train", state=RuntimeState.FAILED)
    RunFactory(display_name="gamma eval")
    page = logged_in.get("/runs/?q=train&sort=-created").content.decode()
    href = _href(page, "Run name")
    assert not href.startswith("??")
    sorted_page = logged_in.get(urljoin("/runs/", href)).content.decode()
    assert sorted_page.index("alpha train") < sorted_page.index("beta train")
    assert "gamma eval" not in sorted_page
    # Clicking again reverses it, and the link does not grow.
    again = _href(sorted_page, "Run name")
    assert len(again) <= len(href) + 1
    reversed_page = logged_in.get(urljoin("/runs/", again)).content.decode()
    assert reversed_page.index("beta train") < reversed_page.index("alpha train")


@pytest.mark.django_db
def test_the_archived_tab_and_the_pager_links_work(logged_in: Client) -> None:
    ExperimentFactory(display_name="kept")
    ExperimentFactory(display_name="shelved", storage_state=StorageState.ARCHIVED)
    page = logged_in.get("/experiments/?q=e").content.decode()
    archived = logged_in.get(urljoin("/experiments/", _href(page, "Archived"))).content.decode()
    assert "shelved" in archived and "kept" not in archived
    RunFactory.create_batch(12)
    first = logged_in.get("/runs/?page_size=10").content.decode()
    next_label, prev_label = "Next \u203a", "\u2039 Prev"  # the pager's arrows
    second = logged_in.get(urljoin("/runs/", _href(first, next_label))).content.decode()
    assert prev_label in second and next_label not in second


@pytest.mark.django_db
def test_the_task_table_sort_header_sorts_tasks(logged_in: Client) -> None:
    run = RunFactory()
    TaskFactory(run=run, key="root/b-step", name="b-step")
    TaskFactory(run=run, key="root/a-step", name="a-step")
    page = logged_in.get(f"/runs/{run.pk}/").content.decode()
    href = _href(page, "Task")
    assert not href.startswith("??")
    tasks = logged_in.get(urljoin(f"/runs/{run.pk}/", href)).content.decode()
    assert tasks.index("root/a-step") < tasks.index("root/b-step")
