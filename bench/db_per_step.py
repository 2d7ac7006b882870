"""Database work per step of a fan-out: statements, writes, transactions, rows.

Drives a ParallelFor of ``--width`` container steps and its dsl.Collected fan-in
through the services a worker calls (claim, record, advance, and the claim of the
next step: the same group commit), in this process and without running the steps'
processes, on a scratch SQLite database (or ``--database-url``, a scratch MySQL one).
Steps finish ``--batch`` at a time, as a worker's threads that finish together do,
and each takes the next queued step as a worker's thread does. Counts every SQL
statement; ``--profile`` prints where the group commit's own time goes.

    .venv/bin/python bench/db_per_step.py [--width 1000] [--batch 8] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", action="store_true", help="cProfile the steps (not the first advance)")
    args = parser.parse_args()

    os.environ["CANAL_DATA_DIR"] = tempfile.mkdtemp(prefix="canal-bench-db-")
    os.environ.setdefault("CANAL_LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "pipelines_site.settings"
    if args.database_url:
        sys.path.insert(0, str(ROOT / "bench"))
        from engine_vs_kfp_local import fresh_mysql_database

        fresh_mysql_database(args.database_url)
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)

    from apps.artifacts.models import Artifact
    from apps.core.authz import OPERATOR
    from apps.core.services import namespace_ensure
    from apps.engine.model import NodeIO
    from apps.runs import dispatch
    from apps.runs.models import Task, TaskAttempt
    from apps.runs.services import local_steps, run_advance, run_create
    from apps.runs.services.local_steps import StepOutcome
    from tests.engine.compiled import fan_out_ir

    dispatch.send_now = lambda *a, **k: None  # no broker: this process runs every step

    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="db-per-step",
        pipeline_spec=fan_out_ir(),
        parameters={"numbers": list(range(args.width))},
        enable_caching=False,
    )
    queue = list(run_advance(run_id=run.pk))
    steps = 0
    captured: list[str] = []

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        captured.append(sql)
        return execute(sql, params, many, context)

    # Every statement (CaptureQueriesContext keeps only the last 9,000).
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    import time

    started, cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(count):
        # ``--batch`` threads, as a worker's: each claims a step from a message, then
        # records it and takes the next (handed over, or pulled from the run's queue) in
        # the same group commit; their command lines are stored with their outcome.
        work = [local_steps._Work(task_id=step) for step in queue[: args.batch]]
        local_steps._record_batch(work)
        claims = [w.claimed for w in work if isinstance(w.claimed, local_steps._Claim)]
        while claims:
            finished = []
            for claim in claims:
                given = claim.launch.input_parameters  # what double / total were given
                value = sum(given["xs"]) if "xs" in given else 2 * given["x"]
                outcome = StepOutcome(outputs=NodeIO({"Output": value}), error="", argv=["echo", str(value)])
                finished.append(
                    local_steps._Work(
                        task_id=claim.task_id, token=claim.token, attempt=claim.attempt,
                        outcome=outcome, run_id=claim.run_id, pull=True,
                    )
                )  # fmt: skip
            local_steps._record_batch(finished)
            steps += len(claims)
            claims = []
            for w in finished:
                if w.error is not None:
                    raise w.error
                if isinstance(w.claimed, local_steps._Claim):
                    claims.append(w.claimed)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if profile is not None:
        import pstats

        profile.disable()
        stats = pstats.Stats(profile).sort_stats("tottime")
        stats.print_stats(30)
        stats.sort_stats("cumulative").print_stats("apps/", 40)
        if os.environ.get("CANAL_BENCH_CALLERS"):
            stats.print_callers(os.environ["CANAL_BENCH_CALLERS"])
    run.refresh_from_db()
    assert run.state == "SUCCEEDED", (run.state, run.error)
    statements = [sql.lstrip().split(None, 1)[0].upper() for sql in captured]
    writes = sum(1 for s in statements if s in ("INSERT", "UPDATE", "DELETE"))
    commits = sum(1 for s in statements if s in ("BEGIN", "SAVEPOINT"))
    rows = {
        "tasks": Task.objects.filter(run=run).count(),
        "attempts": TaskAttempt.objects.filter(task__run=run).count(),
        "artifacts": Artifact.objects.filter(run=run).count(),
    }
    name = f"fan-{args.width}, {args.batch} steps per group commit, per step:"
    table = [
        {"workload": f"{name} SQL statements", "canal": len(statements) / steps, "unit": "", "note": ""},
        {"workload": f"{name} writes", "canal": writes / steps, "unit": "", "note": "INSERT/UPDATE/DELETE"},
        {"workload": f"{name} rows", "canal": sum(rows.values()) / steps, "unit": "",
         "note": ", ".join(f"{v} {k}" for k, v in rows.items())},
    ]  # fmt: skip
    for row in table:
        row.update(peer=None, backing="MariaDB" if args.database_url else "SQLite")
    if os.environ.get("CANAL_BENCH_SQL"):
        import collections
        import re

        shapes = collections.Counter(re.sub(r"'[^']*'|\b\d+\b|%s", "?", sql)[:110] for sql in captured)
        for shape, count in shapes.most_common(25):
            print(f"{count / steps:6.2f}  {shape}")
    print(
        f"{steps} steps; {len(statements)} statements ({writes} writes, {commits} BEGIN/SAVEPOINT)",
        f"rows {rows}",
    )
    print(
        f"  one thread's time per step, SQL included: {seconds / steps * 1000:.2f} ms"
        f" ({cpu / steps * 1000:.2f} ms of CPU)"
    )
    for row in table:
        print(f"  {row['workload']}: {row['canal']:.1f}  {row['note']}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
