"""`manage.py check --deploy` is clean with the documented production environment
(deploy/canal.env.example, which README's "Production settings" describes), run as a
separate process with exactly that environment; and it is not clean without it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import PROJECT

pytestmark = pytest.mark.slow

ENV_FILE = PROJECT / "deploy" / "canal.env.example"
CHECK = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]


def documented_environment() -> dict[str, str]:
    """The KEY=VALUE lines of the example environment file (systemd's syntax)."""
    env: dict[str, str] = {}
    for line in ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def _process_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """``env`` and nothing else from this test session, except what any process needs
    to start (PATH, HOME) and a data directory of its own."""
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path))}
    return {
        **base,
        **env,
        "CANAL_DATA_DIR": str(tmp_path / "data"),
        "CANAL_CACHE_DIR": str(tmp_path / "cache"),
    }


def _run(argv: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=PROJECT,
        env=_process_env(env, tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _check(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return _run(CHECK, env, tmp_path)


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path: Path) -> None:
    env = documented_environment()
    assert env["CANAL_HTTPS"] == "1" and env["CANAL_DEBUG"] == "0"
    # The one value the file cannot hold for real: the operator's own secret key.
    env["CANAL_SECRET_KEY"] = secrets.token_urlsafe(50)
    result = _check(env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout


def test_the_placeholder_secret_key_is_refused(tmp_path: Path) -> None:
    result = _check(documented_environment(), tmp_path)
    assert result.returncode != 0
    assert "security.W009" in result.stderr, result.stderr  # the SECRET_KEY warning


def test_without_https_settings_check_deploy_warns(tmp_path: Path) -> None:
    """The defaults are for `make run` on http://127.0.0.1, and --deploy says so."""
    env = documented_environment()
    env["CANAL_SECRET_KEY"] = secrets.token_urlsafe(50)
    del env["CANAL_HTTPS"]
    result = _check(env, tmp_path)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr, (warning, result.stderr)


# Run inside a Canal process started with the documented environment.
PROBE = """
from django.test import Client
c = Client(HTTP_HOST="canal.example.com")
plain = c.get("/login/")
print("plain", plain.status_code, plain.get("Location"))
print("health", c.get("/healthz").status_code)
tls = c.get("/login/", HTTP_X_FORWARDED_PROTO="https")
print("tls", tls.status_code, tls.get("Strict-Transport-Security"))
print("cookie-secure", bool(tls.cookies["csrftoken"]["secure"]))
"""


def test_the_documented_settings_redirect_to_https_and_secure_the_cookies(tmp_path: Path) -> None:
    env = documented_environment()
    env["CANAL_SECRET_KEY"] = secrets.token_urlsafe(50)
    result = _run([sys.executable, "manage.py", "shell", "-c", PROBE], env, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["plain"] == "301 https://canal.example.com/login/"
    assert lines["health"] != "301"  # a load balancer's plain-HTTP probe is answered
    assert lines["tls"] == "200 max-age=31536000; includeSubDomains; preload"
    assert lines["cookie-secure"] == "True"
