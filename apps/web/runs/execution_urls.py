"""KFP's Executions pages, under /executions/ (the steps of every run)."""

from django.urls import path

from apps.web.runs.views import executions

app_name = "executions"
urlpatterns = [
    path("", executions.execution_list, name="list"),
    path("<str:task_id>/", executions.execution_detail, name="detail"),
]
