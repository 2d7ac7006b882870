"""A real S3 service (moto's server on 127.0.0.1) for the Argo artifact repository's tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from apps.backends.argo.s3_artifacts import S3ArtifactRepository

REGION = "us-east-1"
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}  # moto accepts any


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server for the session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    """A plain boto3 client of that server (what the tests look through)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket of its own for the test."""
    name = f"canal-{secrets.token_hex(6)}"
    s3_client(moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_repository(moto_endpoint: str, bucket: str) -> S3ArtifactRepository:
    """The artifact repository on that bucket."""
    return S3ArtifactRepository(bucket, endpoint_url=moto_endpoint, region=REGION, **CREDENTIALS)
