from django.urls import path

from apps.artifacts import views

app_name = "artifacts"
urlpatterns = [
    path("", views.artifact_list, name="list"),
    path("<str:artifact_id>/", views.artifact_detail, name="detail"),
    path("<str:artifact_id>/download/", views.artifact_download, name="download"),
    path("<str:artifact_id>/view/", views.artifact_view, name="view"),
    path("<str:artifact_id>/frame/<int:index>/", views.artifact_frame, name="frame"),
]
