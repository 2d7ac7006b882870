"""WSGI entry point (gunicorn ``pipelines_site.wsgi``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipelines_site.settings")
application = get_wsgi_application()
