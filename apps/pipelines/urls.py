from django.urls import path

from apps.pipelines import views

app_name = "pipelines"
urlpatterns = [
    path("", views.pipeline_list, name="list"),
    path("upload/", views.pipeline_upload, name="upload"),
    path("<str:pipeline_id>/", views.pipeline_detail, name="detail"),
    path("<str:pipeline_id>/upload-version/", views.pipeline_version_upload, name="upload-version"),
    path("<str:pipeline_id>/delete/", views.pipeline_delete, name="delete"),
]
