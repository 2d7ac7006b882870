"""The eight operations Canal added for KFP swagger parity, called through the real
kfp 2.17 packages against pytest-django's live server (no worker: nothing runs).

``kfp.Client`` has no methods for them, so the calls go through the generated
``kfp_server_api`` classes on the client's own ``ApiClient`` (same host, same token),
as a script using the low-level API would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api
import pytest

from apps.core.models import Membership
from apps.core.services import api_token_create
from apps.pipelines.models import Pipeline, PipelineVersion
from tests.factories import HELLO_IR_TEXT, UserFactory

pytestmark = [
    pytest.mark.live,
    pytest.mark.filterwarnings("ignore:This client only works:FutureWarning"),
]


@pytest.fixture
def client(
    live_server: Any, transactional_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> kfp.Client:
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    user = UserFactory(username="kfp-editor", namespace__role=Membership.Role.EDITOR)
    return kfp.Client(host=live_server.url, existing_token=api_token_create(actor=user, user=user)[1])


def test_pipeline_create_and_updates_through_kfp_server_api(client: kfp.Client, tmp_path: Path) -> None:
    api = client._pipelines_api  # the kfp_server_api.PipelineServiceApi kfp.Client builds
    created = api.pipeline_service_create_pipeline(
        kfp_server_api.V2beta1Pipeline(display_name="From the API", description="empty", namespace="default")
    )
    assert isinstance(created, kfp_server_api.V2beta1Pipeline)
    assert (created.display_name, created.name, created.namespace) == (
        "From the API",
        "From the API",
        "default",
    )
    assert Pipeline.objects.get(pk=created.pipeline_id).versions.count() == 0

    renamed = api.pipeline_service_update_pipeline(
        created.pipeline_id, kfp_server_api.V2beta1Pipeline(display_name="Renamed")
    )
    assert (renamed.display_name, renamed.name) == ("Renamed", "From the API")
    assert client.get_pipeline(created.pipeline_id).display_name == "Renamed"

    spec = tmp_path / "hello.yaml"
    spec.write_text(HELLO_IR_TEXT)
    version = client.upload_pipeline_version(str(spec), "v1", pipeline_id=created.pipeline_id)
    updated = api.pipeline_service_update_pipeline_version(
        created.pipeline_id,
        version.pipeline_version_id,
        kfp_server_api.V2beta1PipelineVersion(display_name="Version renamed"),
    )
    assert (updated.display_name, updated.name) == ("Version renamed", "v1")
    assert PipelineVersion.objects.get(pk=version.pipeline_version_id).display_name == "Version renamed"

    with pytest.raises(kfp_server_api.ApiException) as refused:
        api.pipeline_service_update_pipeline(
            created.pipeline_id, kfp_server_api.V2beta1Pipeline(display_name="x", tags={"team": "ml"})
        )
    assert refused.value.status == 400 and "does not store tags" in json.loads(refused.value.body)["message"]


def test_auth_filters_reports_and_visualizations_through_kfp_server_api(client: kfp.Client) -> None:
    api_client = client._pipelines_api.api_client
    auth = kfp_server_api.AuthServiceApi(api_client)
    assert auth.auth_service_authorize(namespace="default", resources="VIEWERS", verb="CREATE") == {}
    with pytest.raises(kfp_server_api.ApiException) as denied:
        auth.auth_service_authorize(namespace="default", resources="VIEWERS", verb="DELETE")
    assert denied.value.status == 403 and json.loads(denied.value.body)["code"] == 7

    found = kfp_server_api.DummyFilterServiceApi(api_client).dummy_filter_service_get_filter()
    assert isinstance(found, kfp_server_api.V2beta1Filter) and not found.predicates

    reports = kfp_server_api.ReportServiceApi(api_client)
    for call in (reports.report_service_report_workflow, reports.report_service_report_scheduled_workflow):
        with pytest.raises(kfp_server_api.ApiException) as unimplemented:
            call(json.dumps({"kind": "Workflow"}))
        assert unimplemented.value.status == 501 and json.loads(unimplemented.value.body)["code"] == 12

    with pytest.raises(kfp_server_api.ApiException) as unimplemented:
        kfp_server_api.VisualizationServiceApi(api_client).visualization_service_create_visualization_v1(
            "default", kfp_server_api.V2beta1Visualization(type="TABLE", source="x.csv", arguments="{}")
        )
    assert (
        unimplemented.value.status == 501
        and "visualizations" in json.loads(unimplemented.value.body)["message"]
    )
