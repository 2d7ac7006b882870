"""Fixtures for the REST API tests: a user with a bearer token, clients, and a
second namespace the user is not a member of."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.core.services import api_token_create
from tests.factories import HELLO_IR_TEXT, NamespaceFactory, UserFactory

API = "/apis/v2beta1"


@pytest.fixture
def token(user: Any) -> str:
    return api_token_create(actor=user, user=user, name="tests")[1]


@pytest.fixture
def api(token: str) -> APIClient:
    """A client sending ``Authorization: Bearer <token>`` for alice (member of 'default')."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def other_namespace(db: Any) -> Any:
    """'team-b', with a member who is not alice."""
    namespace = NamespaceFactory(name="team-b")
    UserFactory(username="bob", namespace=namespace)
    return namespace


@pytest.fixture
def hello_yaml() -> bytes:
    return HELLO_IR_TEXT.encode()


def upload(
    client: APIClient, data: bytes, path: str = "pipelines/upload", filename: str = "p.yaml", **params: str
):
    """POST a pipeline file as kfp_server_api does: multipart ``uploadfile`` + query params."""
    from io import BytesIO
    from urllib.parse import urlencode

    handle = BytesIO(data)
    handle.name = filename
    query = f"?{urlencode(params)}" if params else ""
    return client.post(f"{API}/{path}{query}", {"uploadfile": handle}, format="multipart")


@pytest.fixture
def run_with_tasks(tmp_path: Any) -> Any:
    """A finished run in 'default' with a root DAG, a step that wrote an artifact
    (a file on disk) and a step that read it, and a log for the first step."""
    from django.conf import settings

    from apps.core.choices import RuntimeState, TaskKind
    from tests.factories import ArtifactFactory, RunFactory, TaskFactory, artifact_file

    run = RunFactory(display_name="with-tasks", state=RuntimeState.SUCCEEDED)
    root = TaskFactory(run=run, key="root", name="root", kind=TaskKind.ROOT)
    writer = TaskFactory(run=run, parent=root, key="root/writer", name="writer", display_name="writer")
    # In the run's own directory: Canal serves only what the run's namespace owns.
    content = artifact_file(writer, "artifact.txt", b"artifact bytes")
    artifact = ArtifactFactory(producer_task=writer, run=run, name="out", uri=str(content))
    ref = {"id": str(artifact.pk), "name": "out", "uri": str(content), "schema_title": "system.Artifact"}
    writer.outputs = {"parameters": {"n": 1}, "artifacts": {"out": [ref]}}
    log = settings.CANAL_LOG_DIR / str(run.pk) / str(writer.pk) / "attempt-1.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"line one\nline two\n")
    writer.log_path = str(log)
    writer.attempt = 1
    writer.save()
    reader = TaskFactory(
        run=run, parent=root, key="root/reader", name="reader", inputs={"artifacts": {"data": [ref]}}
    )
    return SimpleNamespace(run=run, root=root, writer=writer, reader=reader, artifact=artifact)
