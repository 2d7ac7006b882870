from django.urls import path

from apps.web.runs import views

app_name = "runs"
urlpatterns = [
    path("", views.run_list, name="list"),
    path("new/", views.run_new, name="new"),
    path("bulk/", views.run_bulk, name="bulk"),
    path("compare/", views.run_compare, name="compare"),
    path("<uuid:run_id>/", views.run_detail, name="detail"),
    path("<uuid:run_id>/status/", views.run_status, name="status"),
    path("<uuid:run_id>/graph/", views.run_graph_svg, name="graph"),
    path("<uuid:run_id>/panel/", views.run_panel, name="panel"),
    path("<uuid:run_id>/tasks/", views.run_tasks_fragment, name="tasks"),
    path("<uuid:run_id>/tasks/<str:task_id>/log/", views.task_log, name="task-log"),
    path(
        "<uuid:run_id>/tasks/<str:task_id>/log/download/", views.task_log_download, name="task-log-download"
    ),
    path("<uuid:run_id>/tasks/<str:task_id>/rerun/", views.task_rerun, name="task-rerun"),
    path("<uuid:run_id>/terminate/", views.run_terminate, name="terminate"),
    path("<uuid:run_id>/retry/", views.run_retry, name="retry"),
    path("<uuid:run_id>/archive/", views.run_archive, name="archive"),
    path("<uuid:run_id>/unarchive/", views.run_unarchive, name="unarchive"),
    path("<uuid:run_id>/delete/", views.run_delete, name="delete"),
]
