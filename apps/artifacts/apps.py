from django.apps import AppConfig


class ArtifactsConfig(AppConfig):
    """Artifact pages, and the storage-ownership rules every read of them follows."""

    name = "apps.artifacts"
    label = "artifacts"

    def ready(self) -> None:
        # Registers the system check of the pipeline roots and import prefixes.
        from apps.core import storage  # noqa: F401
