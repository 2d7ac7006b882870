# Canal: ONE image for the web server, the Celery worker and the scheduler; the command
# chooses. These are the commands `manage.py canal_supervise` (make run) and deploy/systemd
# start, with the web server listening on all interfaces inside the container:
#
#   web (default):  python -m gunicorn pipelines_site.wsgi --bind 0.0.0.0:8000 --workers 2 --threads 4 --access-logfile - --graceful-timeout 5 --no-control-socket
#   worker:         python -m celery -A pipelines_site worker --pool threads --concurrency 8 --loglevel INFO --without-gossip --without-mingle
#   scheduler:      python manage.py canal_scheduler
#   migrations:     python manage.py migrate --noinput
#   first admin:    python manage.py ensure_admin
#
# deploy/kubernetes/ runs it; tests/deploy/ checks this file against the code (COPY sources,
# requirements files, commands), since it cannot be built where the tests run.
#
# Runs execute on Argo Workflows in this image (CANAL_EXECUTION_BACKEND=argo): every step is
# a pod of its own, isolated by Kubernetes. The local backend's step sandbox (bubblewrap,
# slirp4netns) is therefore not installed, and the local backend must not be used with it.
#
# Nothing secret is baked in: CANAL_SECRET_KEY, DATABASE_URL and the S3 credentials come
# from the environment at run time (deploy/kubernetes/secrets.example.yaml).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the locked runtime requirements (mysqlclient needs a compiler) ---
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libmariadb-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.lock requirements-mysql.lock /tmp/requirements/
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements/requirements.lock -r /tmp/requirements/requirements-mysql.lock

# --- runtime ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# graphviz draws the DAGs; libmariadb3 is mysqlclient's runtime library.
RUN apt-get update \
 && apt-get install -y --no-install-recommends graphviz libmariadb3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 canal \
 && useradd --system --uid 10001 --gid canal --home-dir /var/lib/canal --shell /usr/sbin/nologin canal
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CANAL_DATA_DIR=/var/lib/canal \
    CANAL_CACHE_DIR=/var/cache/canal \
    CANAL_STATIC_ROOT=/opt/canal/staticfiles \
    CANAL_EXECUTION_BACKEND=argo
WORKDIR /opt/canal
COPY manage.py ./
COPY pipelines_site ./pipelines_site
COPY apps ./apps
COPY templates ./templates
COPY static ./static
# collectstatic imports the settings, which would create a data directory (and a secret
# key in it): give it a throwaway one, removed in the same layer, and a key that is not
# a secret. Then the writable directories, owned by the runtime user.
RUN CANAL_DATA_DIR=/tmp/canal-build CANAL_SECRET_KEY=collectstatic-at-build-time-only \
    python manage.py collectstatic --noinput \
 && rm -rf /tmp/canal-build \
 && python -m compileall -q manage.py pipelines_site apps \
 && install -d -o canal -g canal -m 0750 /var/lib/canal /var/cache/canal
USER 10001:10001
EXPOSE 8000
# The web server's health (Kubernetes ignores HEALTHCHECK and uses the Deployment's probes).
# A worker or scheduler container serves no HTTP: run those with `docker run --no-healthcheck`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8000/healthz', timeout=4)"]
CMD ["python", "-m", "gunicorn", "pipelines_site.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--access-logfile", "-", "--graceful-timeout", "5", "--no-control-socket"]
