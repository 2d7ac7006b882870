"""URL configuration. Every route needs a login except /login/ and /healthz
(see apps.core.middleware); the REST API under /apis/ answers 401 itself."""

from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Canal administration"
admin.site.site_title = "Canal admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("apis/v2beta1/", include("apps.api.urls")),
    path("pipelines/", include("apps.pipelines.urls")),
    path("experiments/", include("apps.web.experiments.urls")),
    path("runs/", include("apps.web.runs.urls")),
    path("executions/", include("apps.web.runs.execution_urls")),
    path("recurring-runs/", include("apps.schedules.urls")),
    path("artifacts/", include("apps.artifacts.urls")),
    path("", include("apps.core.urls")),
]
