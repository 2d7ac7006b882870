"""Canal's Django project package.

The Celery app is imported here so that ``@shared_task`` functions bind to it
whenever Django starts (web, worker, scheduler or a management command).
"""

from .celery import app as celery_app

__all__ = ("celery_app",)
