#!/usr/bin/env python3
"""Screenshot review: every page of Canal at 800, 1280 and 1600 px, into one directory.

Two modes:

* Against a running Canal (starts nothing)::

    .venv/bin/python scripts/screenshots.py --out /tmp/shots \\
        --base-url http://127.0.0.1:8000 --username admin --password '…'

  It only reads: it finds a run, a pipeline, an experiment, an artifact and a
  recurring run from the list pages (pages whose list is empty are skipped, and
  said so). ``--seed`` uploads and runs the corpus pipelines first, as below.

* Self-contained (``--self-contained``): a temporary data directory, ``migrate``, an
  admin user, then web (gunicorn) and a real Celery worker on a free port; it uploads
  two corpus pipelines through the UI, runs them (one twice, for compare), schedules a
  recurring run, captures everything, and stops what it started::

    .venv/bin/python scripts/screenshots.py --out /tmp/shots --self-contained

Files are named ``NN-page-WIDTH.png`` (full-page captures). Chromium is Debian's
(/usr/bin/chromium), through Playwright; ``playwright install`` is never needed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
WIDTHS = (800, 1280, 1600)
HEIGHT = 900
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CORPUS = Path(os.environ.get("CANAL_SHARED_DIR", PROJECT.parent / "shared")) / "corpus" / "kfp"
ESSENTIAL = CORPUS / "sdk_compiled_pipelines" / "valid" / "essential"
SEED_PIPELINES = (
    ("reused-adder", ESSENTIAL / "pipeline_with_reused_component.yaml", 2),
    ("metrics-outputs", ESSENTIAL / "pipeline_with_metrics_outputs.yaml", 1),
)
RUN_TIMEOUT_MS = 600_000


def log(message: str) -> None:
    print(f"[screenshots] {message}", flush=True)


# --- the self-contained stack -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)


@contextlib.contextmanager
def self_contained_stack(keep: bool) -> Iterator[tuple[str, str, str]]:
    """(base URL, username, password) of a fresh Canal: web and worker, stopped on exit."""
    data = Path(tempfile.mkdtemp(prefix="canal-shots-"))
    username, password = "reviewer", secrets.token_urlsafe(12)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(
        CANAL_DATA_DIR=str(data),
        CANAL_ADMIN_USERNAME=username,
        CANAL_ADMIN_PASSWORD=password,
        DJANGO_SETTINGS_MODULE="pipelines_site.settings",
        PYTHONUNBUFFERED="1",
    )
    python = sys.executable
    log(f"data directory {data}")
    for argv in (["manage.py", "migrate", "--noinput"], ["manage.py", "ensure_admin"]):
        subprocess.run([python, *argv], cwd=PROJECT, env=env, check=True, stdout=subprocess.DEVNULL)
    port = _free_port()
    commands = {
        "web": [python, "-m", "gunicorn", "pipelines_site.wsgi", "--bind", f"127.0.0.1:{port}",
                "--workers", "2", "--threads", "4", "--no-control-socket"],
        "worker": [python, "-m", "celery", "-A", "pipelines_site", "worker", "--pool", "threads",
                   "--concurrency", "4", "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
    }  # fmt: skip
    processes: list[Process] = []
    try:
        for name, argv in commands.items():
            log_path = data / f"{name}.log"
            out = open(log_path, "wb")  # noqa: SIM115 (the child keeps it)
            proc = subprocess.Popen(
                argv, cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            processes.append(Process(name, proc, log_path))
        base = f"http://127.0.0.1:{port}"
        _wait_for(lambda: _answers(f"{base}/healthz"), 120, "the web server")
        _wait_for(lambda: b"ready." in (data / "worker.log").read_bytes(), 120, "the worker")
        log(f"Canal at {base} (user {username})")
        yield base, username, password
    finally:
        for process in reversed(processes):
            process.stop()
        if keep:
            log(f"kept {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (our own server)
            return bool(response.status == 200)
    except OSError:
        return False


def _wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up in {seconds:.0f}s")
        time.sleep(0.3)


# --- driving the UI ---------------------------------------------------------------------------


def login(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r".*/(runs|pipelines|experiments)/.*"))


def seed(page: Any, base: str) -> None:
    """Upload the corpus pipelines, run them, schedule one (through the UI, as a user would)."""
    run_urls = []
    for name, path, runs in SEED_PIPELINES:
        if not path.exists():
            log(f"corpus file {path} is missing: skipped")
            continue
        page.goto(f"{base}/pipelines/upload/")
        page.set_input_files("input[name=file]", str(path))
        page.fill("input[name=name]", name)
        page.click("main form.form button[type=submit]")
        page.wait_for_url(re.compile(rf".*/pipelines/{UUID}/.*"))
        pipeline_url = page.url
        for index in range(runs):
            page.goto(pipeline_url)
            page.click("text=Create run")
            page.fill("#id_display_name", f"{name} run {index + 1}")
            page.click("#start-run")
            page.wait_for_url(re.compile(rf".*/runs/{UUID}/.*"))
            run_urls.append(page.url)
            log(f"started {page.url}")
    for url in run_urls:
        page.goto(url)
        page.wait_for_selector("#run-page[data-finished='1']", state="attached", timeout=RUN_TIMEOUT_MS)
        log(f"finished {url}: {page.locator('#run-state .status').get_attribute('data-state')}")
    # A recurring run (disabled right away, so it never fires during the review).
    page.goto(f"{base}/pipelines/")
    page.locator("table a[href^='/pipelines/']").first.click()
    page.click("text=Create run")
    page.fill("#id_display_name", "nightly")
    page.check("input[name=run_type][value=recurring]")
    page.click("#start-run")
    with contextlib.suppress(Exception):
        page.wait_for_url(re.compile(r".*/recurring-runs/.+/"), timeout=30_000)
        disable = page.locator("form[action$='/disable/'] button")
        if disable.count():
            disable.first.click()
    log(f"recurring run: {page.url}")


def first_link(page: Any, base: str, list_url: str, pattern: str) -> str | None:
    """The first link on a list page whose path matches ``pattern``."""
    page.goto(f"{base}{list_url}")
    for href in page.eval_on_selector_all("main a[href]", "els => els.map(e => e.getAttribute('href'))"):
        if re.fullmatch(pattern, href or ""):
            return str(href)
    return None


@dataclass
class Shot:
    name: str
    url: str
    prepare: Callable[[Any], None] | None = None
    signed_out: bool = False


def _click_first_node(page: Any) -> None:
    node = page.locator("#dag-canvas g.node").first
    if node.count():
        node.click()
        page.wait_for_selector("#node-panel:not([hidden])")
        page.wait_for_timeout(500)  # the panel's fragment settles (a picture, not an assertion)


def _tab(name: str) -> Callable[[Any], None]:
    def prepare(page: Any) -> None:
        tab = page.locator(f"button[data-tab={name}]")
        if tab.count():
            tab.first.click()

    return prepare


def plan(page: Any, base: str) -> list[Shot]:
    runs = []
    page.goto(f"{base}/runs/")
    for href in page.eval_on_selector_all("main a[href]", "els => els.map(e => e.getAttribute('href'))"):
        if re.fullmatch(rf"/runs/{UUID}/", href or "") and href not in runs:
            runs.append(href)
    pipeline = first_link(page, base, "/pipelines/", rf"/pipelines/{UUID}/")
    experiment = first_link(page, base, "/experiments/", rf"/experiments/{UUID}/")
    artifact = first_link(page, base, "/artifacts/", r"/artifacts/[^/]+/")
    schedule = first_link(page, base, "/recurring-runs/", r"/recurring-runs/[^/]+/")
    execution = first_link(page, base, "/executions/", rf"/executions/{UUID}/")
    shots = [
        Shot("login", "/login/", signed_out=True),
        Shot("runs", "/runs/"),
    ]
    if runs:
        shots += [
            Shot("run", runs[0]),
            Shot("run-task-panel", runs[0], _click_first_node),
            Shot("run-task-list", runs[0], _tab("tasks")),
        ]
    if len(runs) >= 2:
        # The oldest two: with --self-contained, the two runs of one pipeline.
        older, oldest = runs[-2].split("/")[2], runs[-1].split("/")[2]
        shots.append(Shot("compare", f"/runs/compare/?run={oldest}&run={older}"))
    shots.append(Shot("pipelines", "/pipelines/"))
    if pipeline:
        shots += [
            Shot("pipeline", pipeline),
            Shot("pipeline-node-panel", pipeline, _click_first_node),
            Shot("pipeline-versions", pipeline, _tab("versions")),
        ]
    shots.append(Shot("experiments", "/experiments/"))
    if experiment:
        shots.append(Shot("experiment", experiment))
    shots.append(Shot("artifacts", "/artifacts/"))
    if artifact:
        shots.append(Shot("artifact", artifact))
    shots.append(Shot("executions", "/executions/"))
    if execution:
        shots.append(Shot("execution", execution))
    shots.append(Shot("recurring-runs", "/recurring-runs/"))
    if schedule:
        shots.append(Shot("recurring-run", schedule))
    shots += [
        Shot("new-run", f"/runs/new/?pipeline={pipeline.split('/')[2]}" if pipeline else "/runs/new/"),
        Shot("not-found", "/no/such/page/"),
        Shot("admin", "/admin/"),
    ]
    missing = [
        what
        for what, found in (
            ("run", runs),
            ("pipeline", pipeline),
            ("experiment", experiment),
            ("artifact", artifact),
            ("execution", execution),
            ("recurring run", schedule),
        )
        if not found
    ]
    if missing:
        log(f"no {', '.join(missing)} to show: those pages are skipped")
    return shots


def capture(base: str, username: str, password: str, out: Path, do_seed: bool) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": WIDTHS[1], "height": HEIGHT})
            context.set_default_timeout(60_000)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            login(page, base, username, password)
            if do_seed:
                seed(page, base)
            shots = plan(page, base)
            anonymous = browser.new_context(viewport={"width": WIDTHS[1], "height": HEIGHT})
            for number, shot in enumerate(shots, start=1):
                target = anonymous.new_page() if shot.signed_out else page
                for width in WIDTHS:
                    target.set_viewport_size({"width": width, "height": HEIGHT})
                    target.goto(f"{base}{shot.url}")
                    if shot.prepare:
                        shot.prepare(target)
                    path = out / f"{number:02d}-{shot.name}-{width}.png"
                    target.screenshot(path=str(path), full_page=True)
                    written.append(path)
                if shot.signed_out:
                    target.close()
                log(f"{number:02d} {shot.name}: {shot.url}")
            if errors:
                log("browser errors seen: " + " | ".join(dict.fromkeys(errors)))
        finally:
            browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the PNG files")
    parser.add_argument("--self-contained", action="store_true", help="start a temporary Canal of its own")
    parser.add_argument("--base-url", default="", help="a running Canal, e.g. http://127.0.0.1:8000")
    parser.add_argument("--username", default="")
    parser.add_argument("--password", default=os.environ.get("CANAL_SCREENSHOT_PASSWORD", ""))
    parser.add_argument("--seed", action="store_true", help="with --base-url: upload and run pipelines first")
    parser.add_argument("--keep", action="store_true", help="keep the self-contained data directory")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: install Debian's chromium")
    if args.self_contained:
        with self_contained_stack(args.keep) as (base, username, password):
            written = capture(base, username, password, args.out, do_seed=True)
    else:
        if not (args.base_url and args.username and args.password):
            parser.error("give --self-contained, or --base-url, --username and --password")
        written = capture(args.base_url.rstrip("/"), args.username, args.password, args.out, args.seed)
    log(f"{len(written)} screenshots in {args.out}")


if __name__ == "__main__":
    main()
