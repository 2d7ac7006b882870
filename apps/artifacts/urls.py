from django.urls import path  # noqa: F401

app_name = "artifacts"
urlpatterns: list = []  # type: ignore[type-arg]
