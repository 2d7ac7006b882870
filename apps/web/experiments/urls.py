from django.urls import path

from apps.web.experiments import views

app_name = "experiments"
urlpatterns = [
    path("", views.experiment_list, name="list"),
    path("new/", views.experiment_new, name="new"),
    path("<uuid:experiment_id>/", views.experiment_detail, name="detail"),
    path("<uuid:experiment_id>/archive/", views.experiment_archive, name="archive"),
    path("<uuid:experiment_id>/unarchive/", views.experiment_unarchive, name="unarchive"),
]
