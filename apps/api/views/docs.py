"""The OpenAPI document and the Swagger UI page. Both need a login, like every API
route but healthz; the page's scripts and styles are served from the installed
drf-spectacular-sidecar package (no CDN)."""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from apps.api import errors


class OpenApiView(SpectacularAPIView):
    renderer_classes = [OpenApiJsonRenderer]
    permission_classes = [IsAuthenticated]

    def get_exception_handler(self) -> Callable[..., Response]:
        return errors.exception_handler


class SwaggerView(SpectacularSwaggerView):
    permission_classes = [IsAuthenticated]
