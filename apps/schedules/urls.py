from django.urls import path  # noqa: F401

app_name = "schedules"
urlpatterns: list = []  # type: ignore[type-arg]
