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

With ``--sandbox-overhead`` it also runs the chain-20 and fan-8 workloads on a
worker with ``CANAL_STEP_SANDBOX=off`` in the same run, and prints what the step
sandbox adds (the goal is at most 15%).
"""

from __future__ import annotations

import argparse
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
        [str(python), "-c", script, name], capture_output=True, text=True, check=True, cwd=tempfile.mkdtemp()
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


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
    """A scratch Canal: SQLite database, one worker (the `make run` command)."""

    def __init__(self, concurrency: int) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="canal-bench-"))
        os.environ["CANAL_DATA_DIR"] = str(self.data_dir)
        os.environ.setdefault("CANAL_LOG_LEVEL", "WARNING")
        os.environ["CANAL_WORKER_CONCURRENCY"] = str(concurrency)
        os.environ["DJANGO_SETTINGS_MODULE"] = "pipelines_site.settings"
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self.concurrency = concurrency
        self.worker: subprocess.Popen[bytes] | None = None
        self.start_worker()

    def start_worker(self, **env: str) -> None:
        """(Re)start the one worker, with ``env`` added to its environment."""
        self.stop_worker()
        self.worker = subprocess.Popen(
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
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=open(self.data_dir / "worker.log", "ab"),  # noqa: SIM115
            start_new_session=True,
        )

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(timeout=30)
            self.worker = None

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
            state = Run.objects.filter(pk=run.pk).values_list("state", flat=True).get()
            if state in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"):
                return time.perf_counter() - started, state
            time.sleep(0.01)

    def close(self) -> None:
        self.stop_worker()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="chain-20,fan-8,fan-1000")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--sandbox-overhead", action="store_true", help="also time chain-20/fan-8 unsandboxed"
    )
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]

    python = peer_python()
    compiled = compile_pipelines(python, names, Path(tempfile.mkdtemp(prefix="canal-bench-ir-")))
    canal = Canal(args.concurrency)
    rows = []
    try:
        for name in names:
            canal_times = []
            canal.run(compiled[name])  # warm-up: task environment, zygote
            for _ in range(args.repeat):
                seconds, state = canal.run(compiled[name])
                if state != "SUCCEEDED":
                    raise SystemExit(f"{name}: Canal run ended {state}")
                canal_times.append(seconds)
            canal_s = statistics.median(canal_times)
            if name == "fan-1000":
                rows.append((name, None, canal_s, f"{1000 / canal_s:.0f} steps/s (kfp.local: not measured)"))
                continue
            run_peer(python, name)  # warm-up
            peer_s = statistics.median(run_peer(python, name) for _ in range(args.repeat))
            rows.append((name, peer_s, canal_s, f"{peer_s / canal_s:.1f}x faster"))
        overhead = []
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
                overhead.append((n, plain, sandboxed, (sandboxed / plain - 1) * 100))
    finally:
        canal.close()
    print(f"{'workload':<10} {'kfp.local':>10} {'canal':>8}  result")
    for name, peer_s, canal_s, note in rows:
        peer_text = f"{peer_s:.2f}s" if peer_s is not None else "-"
        print(f"{name:<10} {peer_text:>10} {canal_s:>7.2f}s  {note}")
    if overhead:
        print()
        print(f"{'workload':<10} {'no sandbox':>11} {'sandbox':>9}  added by the step sandbox")
        for name, plain_s, sandboxed_s, percent in overhead:
            print(f"{name:<10} {plain_s:>10.2f}s {sandboxed_s:>8.2f}s  {percent:+.0f}%")


def _runs(canal: Canal, path: Path, repeat: int) -> list[float]:
    canal.run(path)  # warm-up: task environment, zygote
    times = []
    for _ in range(repeat):
        seconds, state = canal.run(path)
        if state != "SUCCEEDED":
            raise SystemExit(f"{path.stem}: Canal run ended {state}")
        times.append(seconds)
    return times


if __name__ == "__main__":
    main()
