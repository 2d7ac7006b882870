from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Accounts, namespaces, API tokens and the shared web plumbing."""

    name = "apps.core"
    label = "core"
    verbose_name = "Canal core"
