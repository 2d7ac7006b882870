from django.urls import path  # noqa: F401

app_name = "experiments"
urlpatterns: list = []  # type: ignore[type-arg]
