"""Canal's settings, driven entirely by the environment.

Every variable read here is documented in README.md and .env.example. The
defaults give the embedded setup: SQLite and a file-based store under
``CANAL_DATA_DIR``, the local execution backend and a Celery broker that needs
no server (kombu's filesystem transport), so ``make run`` needs nothing but
Python.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# --- Where Canal keeps its files ------------------------------------------------

CANAL_DATA_DIR = Path(os.environ.get("CANAL_DATA_DIR", str(BASE_DIR / ".canal"))).resolve()
CANAL_DATA_DIR.mkdir(parents=True, exist_ok=True)

# Task environments (virtualenvs for lightweight Python components) are a cache:
# they live under the user's cache directory, never in the repository.
_xdg_cache = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")))
CANAL_CACHE_DIR = Path(os.environ.get("CANAL_CACHE_DIR", str(_xdg_cache / "canal"))).resolve()


def _secret_key() -> str:
    """Use CANAL_SECRET_KEY, else a random key persisted once in the data dir."""
    configured = os.environ.get("CANAL_SECRET_KEY", "").strip()
    if configured:
        return configured
    key_file = CANAL_DATA_DIR / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        pass
    # Write a private temp file, then hard-link it into place: the key file
    # appears whole or not at all, and if web and worker start together the
    # first link wins and the other process reads the winner's key.
    key = secrets.token_urlsafe(50)
    tmp = key_file.with_name(f".secret_key.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(tmp, key_file)
    except FileExistsError:
        key = key_file.read_text().strip()
    finally:
        tmp.unlink()
    return key


SECRET_KEY = _secret_key()
DEBUG = _env_bool("CANAL_DEBUG", False)
ALLOWED_HOSTS = _env_list("CANAL_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = _env_list("CANAL_CSRF_TRUSTED_ORIGINS", "")

# --- Applications ------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.core",
    "apps.pipelines",
    "apps.experiments",
    "apps.runs",
    "apps.artifacts",
    "apps.schedules",
    "apps.api",
    "axes",
    "csp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Early, so that its response hook runs late and covers every page, including
    # the CSRF-failure and login-lockout pages (static files need no policy).
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login except the ones marked @login_not_required
    # (login, health). The REST API answers 401 itself (see apps.core.middleware).
    "apps.core.middleware.CanalLoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.core.middleware.NamespaceMiddleware",
    # Last, as django-axes asks: it turns a lockout signalled by its auth backend
    # into the "locked out" page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "pipelines_site.urls"
WSGI_APPLICATION = "pipelines_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "apps.core.templating.DjangoTemplates",  # never a 500 for a stored lone surrogate
        # The alias Django and DRF look this engine up by (it would be "templating").
        "NAME": "django",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.canal",
            ],
        },
    },
]

# --- Database ------------------------------------------------------------------
# DATABASE_URL=mysql://user:pass@host:3306/db switches to MySQL/MariaDB (mysqlclient).

_default_db_url = f"sqlite:///{CANAL_DATA_DIR / 'canal.sqlite3'}"
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip() or _default_db_url
_db = dj_database_url.parse(DATABASE_URL, conn_max_age=_env_int("CANAL_DB_CONN_MAX_AGE", 60))
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Web, workers and the scheduler are separate processes writing one file:
    # WAL lets readers proceed during a write, IMMEDIATE takes the write lock at
    # BEGIN (no deadlocking lock upgrades), and the timeout waits out the others.
    _db["OPTIONS"] = {
        "timeout": _env_int("CANAL_SQLITE_TIMEOUT", 30),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    _db["CONN_MAX_AGE"] = 0
    # Tests use a file (not :memory:) so that a real worker process sees the rows.
    _db["TEST"] = {"NAME": str(CANAL_DATA_DIR / "test.sqlite3")}
elif _db["ENGINE"] == "django.db.backends.mysql":
    # Django's MySQL backend, but a transaction begins with START TRANSACTION instead of
    # SET autocommit=0 ... SET autocommit=1: one round trip less each (pipelines_site/mysql).
    _db["ENGINE"] = "pipelines_site.mysql"
    _db["OPTIONS"] = {
        "charset": "utf8mb4",
        # READ COMMITTED: a worker polling for new rows sees other processes'
        # commits, and SELECT ... FOR UPDATE SKIP LOCKED claims behave as expected.
        "isolation_level": "read committed",
    }
    _db["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes). Its backend comes first: it refuses a locked-out
# (username, IP) before the password is even checked, on /login/ and /admin/login/
# alike (both call authenticate()). API tokens are not passwords and are not throttled.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _env_int("CANAL_LOGIN_FAILURE_LIMIT", 5)
# 0 = no cool-down: locked until an admin runs `manage.py axes_reset_username <name>`.
_login_cooloff = _env_int("CANAL_LOGIN_COOLOFF_SECONDS", 900)
AXES_COOLOFF_TIME = timedelta(seconds=_login_cooloff) if _login_cooloff > 0 else None
# Keyed on the pair: a wrong password from one address cannot lock the user out
# everywhere (nobody can lock the admin out from afar), and one user's failures
# never lock another user. Behind a reverse proxy every client has the proxy's
# address, so the key degrades to the username alone (see README).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a successful login clears that pair's failures
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429  # Too Many Requests: the client should wait, not re-authenticate

# --- I18N / static ------------------------------------------------------------

LANGUAGE_CODE = "en-us"
# The admin shows times as every Canal page does: "2026-03-29 09:00:07 UTC".
FORMAT_MODULE_PATH = ["pipelines_site.formats"]
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# `collectstatic` writes here. A container image collects at build time into a directory
# of its own (CANAL_STATIC_ROOT), so the data directory can be an empty volume at run time.
_static_root = os.environ.get("CANAL_STATIC_ROOT", "").strip()
STATIC_ROOT = (Path(_static_root) if _static_root else CANAL_DATA_DIR / "staticfiles").resolve()
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# WhiteNoise serves static files from the app and finder directories directly,
# so `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Uploads and hostile input ---------------------------------------------------

# KFP accepts pipeline packages up to 32 MiB; so do we.
CANAL_MAX_UPLOAD_BYTES = _env_int("CANAL_MAX_UPLOAD_BYTES", 32 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = CANAL_MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 10

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# --- HTTPS (production) ------------------------------------------------------------------
# Off by default, for `make run` on http://127.0.0.1. With CANAL_HTTPS=1 (Canal served
# over HTTPS, itself or behind a TLS proxy) plain HTTP is redirected, cookies are
# HTTPS-only and HSTS is sent: `manage.py check --deploy` is then clean (README,
# "Production settings"; deploy/canal.env.example is that environment).
CANAL_HTTPS = _env_bool("CANAL_HTTPS", False)
SECURE_SSL_REDIRECT = _env_bool("CANAL_SSL_REDIRECT", CANAL_HTTPS)
# A load balancer probes health over plain HTTP on the inside: answer it, don't redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _env_bool("CANAL_SECURE_COOKIES", CANAL_HTTPS)
SECURE_HSTS_SECONDS = _env_int("CANAL_HSTS_SECONDS", 31536000 if CANAL_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("CANAL_HSTS_INCLUDE_SUBDOMAINS", CANAL_HTTPS)
SECURE_HSTS_PRELOAD = _env_bool("CANAL_HSTS_PRELOAD", CANAL_HTTPS)
# Behind a proxy that terminates TLS, Django sees plain HTTP; trust the proxy's
# X-Forwarded-Proto (only if the proxy sets it and clients cannot reach Canal directly),
# or the SSL redirect would loop.
if _env_bool("CANAL_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy of every dashboard page (django-csp): everything from
# Canal's own origin, no inline script or style, no plugins, never framed.
# Responses that set their own policy keep it: the artifact downloads and views
# (a `sandbox` policy) and the HTML-artifact frames (apps.artifacts.views.FRAME_CSP).
# frame-src 'self' is what lets those frames load: an iframe's srcdoc document
# would inherit this page's policy, so HTML artifacts are framed by URL instead.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Execution -------------------------------------------------------------------

# The default run executor: local (the engine, steps as sandboxed processes on the
# workers) or argo (each run is one Argo Workflow on Kubernetes). An experiment may
# override it, and so may a run when it is created.
CANAL_EXECUTION_BACKEND = os.environ.get("CANAL_EXECUTION_BACKEND", "local").strip().lower() or "local"
if CANAL_EXECUTION_BACKEND not in ("local", "argo"):
    raise ValueError(f"CANAL_EXECUTION_BACKEND must be local or argo, not {CANAL_EXECUTION_BACKEND!r}")
# Default pipeline root when neither the run nor the IR gives one.
CANAL_PIPELINE_ROOT = os.environ.get("CANAL_PIPELINE_ROOT", str(CANAL_DATA_DIR / "artifacts"))
# The roots a run may write to: its pipeline_root must be one of these (or CANAL_PIPELINE_ROOT),
# or a directory inside one. Directories and s3://bucket/prefix, minio://bucket/prefix.
CANAL_PIPELINE_ROOTS = _env_list("CANAL_PIPELINE_ROOTS", "")
# External prefixes any namespace's importers may reference (and read), besides the
# namespace's own run directories. Empty: importers reference only their namespace's runs.
CANAL_IMPORT_ALLOWED_PREFIXES = _env_list("CANAL_IMPORT_ALLOWED_PREFIXES", "")
CANAL_LOG_DIR = Path(os.environ.get("CANAL_LOG_DIR", str(CANAL_DATA_DIR / "logs"))).resolve()
CANAL_TASK_ENV_DIR = Path(os.environ.get("CANAL_TASK_ENV_DIR", str(CANAL_CACHE_DIR / "envs"))).resolve()
CANAL_WORKER_CONCURRENCY = _env_int("CANAL_WORKER_CONCURRENCY", 8)
# A running step renews its lease every heartbeat; a lease that lapses means the
# worker died, and the scheduler's reaper retries or fails the step.
CANAL_HEARTBEAT_SECONDS = _env_float("CANAL_HEARTBEAT_SECONDS", 2.0)
CANAL_TASK_LEASE_SECONDS = _env_float("CANAL_TASK_LEASE_SECONDS", 30.0)
CANAL_STEP_TIMEOUT_SECONDS = _env_float("CANAL_STEP_TIMEOUT_SECONDS", 0.0)  # 0 = none
CANAL_SCHEDULER_TICK_SECONDS = _env_float("CANAL_SCHEDULER_TICK_SECONDS", 1.0)
# The step sandbox (apps/backends/local/sandbox.py). auto: sandbox when the host can,
# warn loudly when it cannot; on: refuse to run steps unsandboxed; off: plain processes.
CANAL_STEP_SANDBOX = os.environ.get("CANAL_STEP_SANDBOX", "auto").strip().lower() or "auto"
if CANAL_STEP_SANDBOX not in ("auto", "on", "off"):
    raise ValueError(f"CANAL_STEP_SANDBOX must be auto, on or off, not {CANAL_STEP_SANDBOX!r}")
CANAL_STEP_NETWORK = _env_bool("CANAL_STEP_NETWORK", True)
# The uid/gid steps run as when Canal runs as root (default: nobody).
CANAL_STEP_UID = _env_int("CANAL_STEP_UID", -1) if os.environ.get("CANAL_STEP_UID") else None
CANAL_STEP_GID = _env_int("CANAL_STEP_GID", -1) if os.environ.get("CANAL_STEP_GID") else None
# More host directories steps may read (tools installed outside /usr and /opt).
CANAL_STEP_READ_ONLY_PATHS = _env_list("CANAL_STEP_READ_ONLY_PATHS", "")
# Host directories every step may read and write, like a shared volume (all namespaces share them).
CANAL_STEP_SHARED_PATHS = _env_list("CANAL_STEP_SHARED_PATHS", "")
# A delegated cgroup v2 directory for per-step cgroups (default: found automatically).
CANAL_CGROUP_ROOT = os.environ.get("CANAL_CGROUP_ROOT", "").strip()
# Liveness of the background processes, for /healthz: each worker and scheduler
# records a heartbeat this often; one older than CANAL_PROCESS_STALE_SECONDS is dead.
CANAL_PROCESS_HEARTBEAT_SECONDS = _env_float("CANAL_PROCESS_HEARTBEAT_SECONDS", 5.0)
CANAL_PROCESS_STALE_SECONDS = _env_float("CANAL_PROCESS_STALE_SECONDS", 30.0)
# S3-compatible artifact store (used when a pipeline root is s3:// or minio://).
CANAL_S3_ENDPOINT_URL = os.environ.get("CANAL_S3_ENDPOINT_URL", "")
# The Argo run executor: the namespace its Workflows go to, and the kubeconfig to reach
# the cluster (empty: the in-cluster service account). The compiler's own settings are
# CANAL_ARGO_<FIELD> (apps/backends/argo/compiler.py ArgoSettings.from_env).
CANAL_ARGO_NAMESPACE = os.environ.get("CANAL_ARGO_NAMESPACE", "kubeflow")
CANAL_KUBECONFIG = os.environ.get("CANAL_KUBECONFIG", "")
CANAL_KUBE_CONTEXT = os.environ.get("CANAL_KUBE_CONTEXT", "")
# An active Argo run whose cluster cannot be reached (outage, refused credentials) for
# this long fails with the reason; until then the reason is shown on the run.
CANAL_ARGO_UNREACHABLE_SECONDS = _env_float("CANAL_ARGO_UNREACHABLE_SECONDS", 300.0)

# --- Celery ------------------------------------------------------------------------

_broker_dir = CANAL_DATA_DIR / "broker"
# canalfs:// is kombu's filesystem transport with atomic writes (pipelines_site/broker.py).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "").strip() or "canalfs://localhost/"
if urlparse(CELERY_BROKER_URL).scheme in ("canalfs", "filesystem"):
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The filesystem transport polls; keep the hop between steps short.
        "polling_interval": _env_float("CANAL_BROKER_POLL_SECONDS", 0.05),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than any countdown we use, so Redis does not redeliver early; the
        # database lease, not the broker, is what recovers lost work.
        "visibility_timeout": _env_int("CANAL_BROKER_VISIBILITY_TIMEOUT", 3600),
    }
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CANAL_QUEUE", "canal")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False  # poison tasks must not loop; the reaper decides
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]  # never pickle (CVE-2021-23727)
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_CONCURRENCY = CANAL_WORKER_CONCURRENCY

# --- REST API ------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.core.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Canal API (KFP v2beta1 compatible)",
    "VERSION": "2.17.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    # A run's executor and an experiment's execution backend take the same values: one enum.
    "ENUM_NAME_OVERRIDES": {"RunExecutorEnum": "apps.core.choices.RunExecutor"},
}

# --- Logging --------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("CANAL_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # django-axes: keep its warnings (failures, lockouts), not its start-up banner in
        # every process or a line per successful login (the admin lists access logs).
        "axes": {"level": "WARNING"},
    },
}

# A queued step not picked up within this many seconds is queued again (its message
# may have been lost with a killed worker); duplicates are harmless no-ops.
CANAL_REDISPATCH_SECONDS = _env_float("CANAL_REDISPATCH_SECONDS", 60.0)
# Of the steps one advance makes ready, at most this many go out as broker messages; the
# rest wait in the database and the threads running the run's steps take them as their
# steps end. Set it to at least the number of worker threads that should share a fan-out.
CANAL_DISPATCH_MESSAGES = _env_int("CANAL_DISPATCH_MESSAGES", 32)
