from django.contrib.auth import views as auth_views
from django.urls import path

from apps.core import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("namespace/", views.namespace_switch, name="namespace-switch"),
    path("namespaces/<slug:name>/members/", views.namespace_members, name="namespace-members"),
    path(
        "namespaces/<slug:name>/members/<int:membership_id>/role/",
        views.namespace_member_role,
        name="namespace-member-role",
    ),
    path(
        "namespaces/<slug:name>/members/<int:membership_id>/remove/",
        views.namespace_member_remove,
        name="namespace-member-remove",
    ),
    path("", views.home, name="home"),
]
