from django.urls import path  # noqa: F401

app_name = "runs"
urlpatterns: list = []  # type: ignore[type-arg]
