from django.urls import path

from apps.pipelines import views

app_name = "pipelines"
urlpatterns = [
    path("", views.pipeline_list, name="list"),
    path("upload/", views.pipeline_upload, name="upload"),
    path("bulk-delete/", views.pipeline_bulk_delete, name="bulk-delete"),
    path("<str:pipeline_id>/", views.pipeline_detail, name="detail"),
    path("<str:pipeline_id>/upload-version/", views.pipeline_version_upload, name="upload-version"),
    path("<str:pipeline_id>/delete/", views.pipeline_delete, name="delete"),
    path(
        "<str:pipeline_id>/versions/<str:pipeline_version_id>/delete/",
        views.pipeline_version_delete,
        name="version-delete",
    ),
]
