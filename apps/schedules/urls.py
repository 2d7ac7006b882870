from django.urls import path

from apps.schedules import views

app_name = "schedules"
urlpatterns = [
    path("", views.recurring_run_list, name="list"),
    path("preview/", views.trigger_preview, name="preview"),
    path("<str:recurring_run_id>/", views.recurring_run_detail, name="detail"),
    path("<str:recurring_run_id>/enable/", views.recurring_run_enable, name="enable"),
    path("<str:recurring_run_id>/disable/", views.recurring_run_disable, name="disable"),
    path("<str:recurring_run_id>/delete/", views.recurring_run_delete, name="delete"),
    path("<str:recurring_run_id>/clone/", views.recurring_run_clone, name="clone"),
]
