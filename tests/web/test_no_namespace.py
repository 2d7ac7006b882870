"""A signed-in user who is in no namespace yet (an admin has not added them) sees the
list pages empty, never an error. request.namespace is then a lazy object wrapping
None, which the list views once passed on as if it were a namespace: HTTP 500."""

from __future__ import annotations

import pytest

from apps.core.models import Membership
from tests.factories import ExperimentFactory, PipelineFactory, RunFactory, TaskFactory, UserFactory

LISTS = ["/runs/", "/pipelines/", "/experiments/", "/artifacts/", "/recurring-runs/", "/executions/"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", LISTS)
def test_a_user_in_no_namespace_sees_empty_lists(client, url: str) -> None:  # type: ignore[no-untyped-def]
    # Someone else's rows exist, in the default namespace.
    run = RunFactory(display_name="someone-elses-run", experiment=ExperimentFactory(display_name="their-exp"))
    TaskFactory(run=run, name="their-step")
    PipelineFactory(name="their-pipeline")
    newcomer = UserFactory(username="newcomer")
    Membership.objects.filter(user=newcomer).delete()
    client.force_login(newcomer)
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("someone-elses-run", "their-exp", "their-step", "their-pipeline"):
        assert name not in html
