"""Canal's local engine against kfp.local, measured side by side in one run.

For each workload the same kfp pipeline (bench/bench_pipelines.py) runs
* under kfp.local (SubprocessRunner, use_venv=False) in its own virtualenv with
  kfp 2.17.3 (cached in ~/.cache/canal/bench), timed around the pipeline call;
* under Canal: compiled to IR, submitted through the service layer (run_create)
  to a live Celery worker on a scratch SQLite database, timed from submission
  until the run is terminal.
Each side gets one warm-up run (task environments, zygotes, pip caches), then
``--repeat`` timed runs; the medians and their ratio are printed.

    .venv/bin/python bench/engine_vs_kfp_local.py [--repeat 3] [--only chain-20,fan-8,fan-1000]
        [--database-url mysql://root@127.0.0.1:3306/canal_bench --broker-url redis://127.0.0.1:6379/9]
        [--json FILE]

Canal's time is also read off the run itself (``finished_at - created_at``: server
time, without the client's polling). ``chain-20-process`` times the whole
``manage.py run_pipeline --wait`` process against the whole kfp.local process; that
process runs in a virtualenv with Canal's runtime requirements only, as ``make run``
installs them (``canal_python``).
``fan-1000`` and ``fan-5000`` (a ParallelFor of container steps that only write
their input, then a dsl.Collected fan-in) have no peer (kfp.local refuses
ParallelFor); they print steps/s and the worker's resident memory. With
``--database-url`` (a MySQL/MariaDB database, dropped and created afresh) and
``--broker-url`` Canal runs on them instead of SQLite and the filesystem broker.
Both sides' processes run with Python's bytecode cache on (``python_env``), as on a
user's machine, even where the environment sets PYTHONDONTWRITEBYTECODE.

With ``--sandbox-overhead`` it also runs the chain-20 and fan-8 workloads on a
worker with ``CANAL_STEP_SANDBOX=off`` in the same run, and prints what the step
sandbox adds (the goal is at most 15%).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "canal" / "bench"
PEER_VENV = CACHE / "kfp-local-2.17.3"
KFP_VERSION = "2.17.3"


def python_env(**extra: str) -> dict[str, str]:
    """The environment of the processes measured, Canal's and kfp.local's alike: with
    Python's bytecode cache on, as on a user's machine (in a cache directory, not next to
    the sources). Where PYTHONDONTWRITEBYTECODE is set (this development machine sets
    it), every process would otherwise compile every module it imports: about 0.6 s of
    a Canal command's start."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
    return {**env, **extra}


def peer_python() -> Path:
    """A virtualenv with kfp for kfp.local (built once, cached)."""
    python = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / ".ready"
    if not marker.exists():
        shutil.rmtree(PEER_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"kfp=={KFP_VERSION}"], check=True)
        marker.touch()
    return python


def canal_python() -> Path:
    """A virtualenv with only Canal's runtime requirements (requirements.lock, hash-checked),
    the ones ``make run`` installs: the interpreter of the timed ``manage.py`` process.
    Built once per lock file, cached. The development venv the benchmark itself runs in
    also holds the kfp SDK (the tests and the peer use it), and there importing KFP's
    ``kfp.pipeline_spec`` protobuf runs the SDK's ``kfp/__init__.py``, which imports
    kfp.client and the kubernetes client: 0.8 s that no user's Canal process pays."""
    lock = ROOT / "requirements.lock"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:12]
    venv = CACHE / f"canal-runtime-{digest}"
    python = venv / "bin" / "python"
    marker = venv / ".ready"
    if not marker.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "--require-hashes", "-r", str(lock)], check=True)
        marker.touch()
    return python


PEER_SCRIPT = textwrap.dedent(
    """
    import json, sys, time, tempfile
    sys.path.insert(0, {bench_dir!r})
    from kfp import local
    from bench_pipelines import PIPELINES
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=tempfile.mkdtemp())
    pipeline = PIPELINES[sys.argv[1]]
    started = time.perf_counter()
    pipeline()
    print(json.dumps({{"seconds": time.perf_counter() - started}}))
    """
)


def run_peer(python: Path, name: str) -> float:
    script = PEER_SCRIPT.format(bench_dir=str(ROOT / "bench"))
    out = subprocess.run(
        [str(python), "-c", script, name],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.mkdtemp(),
        env=python_env(),
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def run_peer_process(python: Path, name: str) -> float:
    """The whole kfp.local process (interpreter start, imports, the run)."""
    script = PEER_SCRIPT.format(bench_dir=str(ROOT / "bench"))
    started = time.perf_counter()
    subprocess.run(
        [str(python), "-c", script, name],
        capture_output=True,
        check=True,
        cwd=tempfile.mkdtemp(),
        env=python_env(),
    )
    return time.perf_counter() - started


def fresh_mysql_database(url: str) -> None:
    """Drop and create the database a mysql:// URL names (the benchmark's scratch one)."""
    from urllib.parse import urlparse

    import MySQLdb

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    if not name.startswith("canal_bench"):
        raise SystemExit(f"refusing to drop {name!r}: the benchmark's database must be named canal_bench*")
    conn = MySQLdb.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        passwd=parts.password or "",
    )
    cursor = conn.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn.close()


def compile_pipelines(python: Path, names: list[str], out_dir: Path) -> dict[str, Path]:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT / "bench")!r})
        from kfp import compiler
        from bench_pipelines import PIPELINES
        for name in sys.argv[1:]:
            compiler.Compiler().compile(PIPELINES[name], {str(out_dir)!r} + "/" + name + ".yaml")
        """
    )
    subprocess.run([str(python), "-c", script, *names], check=True)
    return {name: out_dir / f"{name}.yaml" for name in names}


class Canal:
    """A scratch Canal: SQLite database (or a fresh MySQL one), one worker (the `make run`
    command), or ``workers`` of them."""

    def __init__(
        self, concurrency: int, database_url: str = "", broker_url: str = "", workers: int = 1
    ) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="canal-bench-"))
        os.environ["CANAL_DATA_DIR"] = str(self.data_dir)
        os.environ.setdefault("CANAL_LOG_LEVEL", "WARNING")
        os.environ["CANAL_WORKER_CONCURRENCY"] = str(concurrency)
        os.environ["DJANGO_SETTINGS_MODULE"] = "pipelines_site.settings"
        if database_url:
            fresh_mysql_database(database_url)
            os.environ["DATABASE_URL"] = database_url
        if broker_url:
            os.environ["CELERY_BROKER_URL"] = broker_url
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self.concurrency = concurrency
        self.workers = workers
        self.worker: subprocess.Popen[bytes] | None = None
        self.others: list[subprocess.Popen[bytes]] = []
        self.start_worker()

    def start_worker(self, **env: str) -> None:
        """(Re)start the worker(s), with ``env`` added to their environment."""
        self.stop_worker()
        self.worker, *self.others = [self._worker(index, env) for index in range(self.workers)]

    def _worker(self, index: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "pipelines_site",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(self.concurrency),
                "--loglevel",
                "WARNING",
                "--hostname",
                f"bench{index}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=python_env(**env),
            stdout=subprocess.DEVNULL,
            stderr=open(self.data_dir / "worker.log", "ab"),
            start_new_session=True,
        )

    def stop_worker(self) -> None:
        for worker in [self.worker, *self.others]:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=30)
        self.worker, self.others = None, []

    def run(self, path: Path) -> tuple[float, str]:
        from apps.core.authz import OPERATOR
        from apps.core.services import namespace_ensure
        from apps.importers import import_pipeline
        from apps.runs.models import Run
        from apps.runs.services import run_create

        imported = import_pipeline(path.read_bytes(), path.name)
        started = time.perf_counter()
        run = run_create(
            actor=OPERATOR,
            namespace=namespace_ensure(actor=OPERATOR),
            display_name=path.stem,
            pipeline_spec=imported.pipeline_spec,
            platform_spec=imported.platform_spec,
            # kfp.local runs with caching off (its default); so does the benchmark, or the
            # timed runs would just reuse the warm-up's results.
            enable_caching=False,
        )
        while True:
            state, created, finished = (
                Run.objects.filter(pk=run.pk).values_list("state", "created_at", "finished_at").get()
            )
            if state in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"):
                self.last_server_seconds = (finished - created).total_seconds()
                return time.perf_counter() - started, state
            # The figure reported is the run's own server time (finished_at - created_at), so
            # the poll's period does not change it; polling every 10 ms took about 6% of the
            # machine (perf, during fan-1000): CPU the worker being measured did not get.
            time.sleep(0.1)

    def run_process(self, path: Path) -> float:
        """The whole ``manage.py run_pipeline FILE --wait`` process, as a user types it."""
        python = canal_python()  # built before the clock starts
        started = time.perf_counter()
        subprocess.run(
            [str(python), "manage.py", "run_pipeline", str(path), "--wait"],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            env=python_env(CANAL_LOG_LEVEL="WARNING"),
        )
        return time.perf_counter() - started

    def worker_rss_mib(self) -> float:
        """Resident memory of the worker process (not its steps)."""
        assert self.worker is not None
        for line in Path(f"/proc/{self.worker.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        self.stop_worker()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="chain-20,chain-20-process,fan-8,fan-1000")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--database-url", default="", help="a mysql:// URL of a scratch database")
    parser.add_argument("--broker-url", default="", help="e.g. redis://127.0.0.1:6379/9")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (each --concurrency threads)"
    )
    parser.add_argument(
        "--sandbox-overhead", action="store_true", help="also time chain-20/fan-8 unsandboxed"
    )
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    pipelines = sorted({n.removesuffix("-process") for n in names})
    backing = "MariaDB + Redis" if args.database_url else "SQLite + filesystem broker"

    python = peer_python()
    compiled = compile_pipelines(python, pipelines, Path(tempfile.mkdtemp(prefix="canal-bench-ir-")))
    canal = Canal(args.concurrency, args.database_url, args.broker_url, args.workers)
    if args.workers > 1:
        backing += f", {args.workers} workers"
    rows: list[dict[str, object]] = []
    try:
        for name in names:
            if name.endswith("-process"):
                path = compiled[name.removesuffix("-process")]
                canal.run_process(path)  # warm-up
                canal_s = statistics.median(canal.run_process(path) for _ in range(args.repeat))
                run_peer_process(python, name.removesuffix("-process"))
                peer_s = statistics.median(
                    run_peer_process(python, name.removesuffix("-process")) for _ in range(args.repeat)
                )
                rows.append(_row(f"{name} (whole process)", canal_s, peer_s, backing))
                continue
            canal.run(compiled[name])  # warm-up: task environment, zygote
            canal_times, server_times = [], []
            for _ in range(args.repeat):
                seconds, state = canal.run(compiled[name])
                if state != "SUCCEEDED":
                    raise SystemExit(f"{name}: Canal run ended {state}")
                canal_times.append(seconds)
                server_times.append(canal.last_server_seconds)
            canal_s, server_s = statistics.median(canal_times), statistics.median(server_times)
            if name.startswith("fan-") and name != "fan-8":
                width = int(name.split("-")[1])
                rows.append(
                    _row(
                        name,
                        server_s,
                        None,
                        backing,
                        note=f"{width / server_s:.0f} steps/s; worker RSS {canal.worker_rss_mib():.0f} MiB",
                    )
                )
                continue
            run_peer(python, name)  # warm-up
            peer_s = statistics.median(run_peer(python, name) for _ in range(args.repeat))
            rows.append(_row(f"{name} (server time)", server_s, peer_s, backing))
        if args.sandbox_overhead:
            # A-B-A-B blocks (a fresh worker each), so that a drift in the machine's load
            # does not land on one side only.
            compared = [n for n in ("chain-20", "fan-8") if n in compiled]
            times: dict[tuple[str, str], list[float]] = {}
            for _round in range(2):
                for mode in ("auto", "off"):
                    canal.start_worker(CANAL_STEP_SANDBOX=mode)
                    for n in compared:
                        times.setdefault((n, mode), []).extend(_runs(canal, compiled[n], args.repeat))
            for n in compared:
                plain, sandboxed = statistics.median(times[n, "off"]), statistics.median(times[n, "auto"])
                rows.append(
                    _row(
                        f"{n}: step sandbox",
                        sandboxed,
                        plain,
                        backing,
                        note=f"{(sandboxed / plain - 1) * 100:+.0f}% (peer: no sandbox)",
                    )
                )
    finally:
        canal.close()
    print(f"{'workload':<32} {'peer':>9} {'canal':>9}  result")
    for row in rows:
        peer_text = f"{row['peer']:.2f}s" if row["peer"] is not None else "-"
        print(f"{row['workload']:<32} {peer_text:>9} {row['canal']:>8.2f}s  {row['note']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def _row(
    workload: str, canal_s: float, peer_s: float | None, backing: str, note: str = ""
) -> dict[str, object]:
    if not note and peer_s is not None:
        note = f"{peer_s / canal_s:.1f}x faster than kfp.local"
    return {"workload": workload, "canal": canal_s, "peer": peer_s, "backing": backing, "note": note}


def _runs(canal: Canal, path: Path, repeat: int) -> list[float]:
    canal.run(path)  # warm-up: task environment, zygote
    times = []
    for _ in range(repeat):
        _seconds, state = canal.run(path)
        if state != "SUCCEEDED":
            raise SystemExit(f"{path.stem}: Canal run ended {state}")
        times.append(canal.last_server_seconds)  # server time: the poll's period is not in it
    return times


if __name__ == "__main__":
    main()
