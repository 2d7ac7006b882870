"""HealthzService: answered without authentication (kfp.Client calls it first)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import schema
from apps.api.views.base import KfpView, answer

# The KFP API version Canal speaks; reported as tag_name.
KFP_API_VERSION = "2.17.0"


@lru_cache(maxsize=1)
def commit_sha() -> str:
    """The checked-out commit, read from .git without running git; "unknown" otherwise."""
    git = Path(settings.BASE_DIR) / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:].strip()
            ref_file = git / ref
            if ref_file.is_file():
                return ref_file.read_text().strip()
            for line in (git / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
            return "unknown"
        return head
    except OSError:
        return "unknown"


class HealthzView(KfpView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="healthz_service_get_healthz",
        tags=["HealthzService"],
        auth=[],
        responses={200: schema.HealthzSerializer},
    )
    def get(self, request: Request) -> Response:
        # multi_user stays false: kfp.Client would otherwise read a Kubernetes
        # service-account namespace file and send that namespace, which means
        # nothing to Canal. Namespaces are still enforced on every call.
        health = {"commit_sha": commit_sha(), "tag_name": KFP_API_VERSION, "multi_user": False}
        return answer(schema.HealthzSerializer, {**health, "pipeline_store": "database"})
