"""The KFP v2beta1-compatible REST API, mounted at /apis/v2beta1/."""

from django.urls import path  # noqa: F401

app_name = "api"
urlpatterns: list = []  # type: ignore[type-arg]
