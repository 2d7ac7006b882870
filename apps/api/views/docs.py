"""The OpenAPI document and the Swagger UI page. Both need a login, like every API
route but healthz; the page's scripts and styles are served from the installed
drf-spectacular-sidecar package (no CDN)."""

from __future__ import annotations

from collections.abc import Callable

from csp.decorators import csp_update
from django.utils.decorators import method_decorator
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from apps.api import errors


class OpenApiView(SpectacularAPIView):
    renderer_classes = [OpenApiJsonRenderer]
    permission_classes = [IsAuthenticated]

    def get_exception_handler(self) -> Callable[..., Response]:
        return errors.exception_handler


# The site's CSP allows no inline script: the "split" view serves the page's init
# script from this same URL (?script), instead of inlining it. Swagger UI's own
# stylesheet draws its icons with data: URIs, which this page alone may load.
@method_decorator(csp_update({"img-src": ["data:"]}), name="dispatch")
class SwaggerView(SpectacularSwaggerSplitView):
    permission_classes = [IsAuthenticated]
