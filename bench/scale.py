"""Canal at scale: the lists at 100k runs / 1M tasks, a 5,000-iteration run's page and
status poll, and importing a 1,000-task pipeline (issue 12, items 4 and 5).

Generates (or reuses, see bench/generate_data.py) the dataset in a scratch MariaDB
database ``canal_scale``, migrates it (so the list indexes exist), then measures in
this one process, through Django's test client (the whole request: middleware,
authentication, queries, serialisation or templates), ``--repeat`` requests each:

* the runs list API (``GET /apis/v2beta1/runs``, page_size 50) and the runs list page
  (``/runs/``, 50 a page): page 1 and a deep page (the API's through its page token,
  ~10,000 rows in; the UI's ``?page=200``), sorted by creation (newest first) and by
  name, filtered by state and by experiment;
* the executions list page (``/executions/``, 50 a page, every step of the namespace's
  runs): newest first (page 1 and ``?page=200``), by name, filtered by state;
* the run page and the status poll of the ``--iterations``-iteration ParallelFor run;
* validating (the importer) and importing (the upload service: validate and store) a
  generated 1,000-task IR.

It prints a table: workload, p50 and p95 server time, the p50 CPU time of this process
(the database server's time is not in it, nor time spent waiting for a core: on a
shared machine it tells load from cost), queries per request, response size, the goal
and whether it is met. Timings are wall time of the in-process request on a shared
2-core machine: noisy; the query counts are exact.

Usage::

    .venv/bin/python bench/scale.py                 # MariaDB canal_scale, 100k runs, 1M tasks
    .venv/bin/python bench/scale.py --sqlite        # a quick small run: SQLite, 3,000 runs
    .venv/bin/python bench/scale.py --repeat 10 --database-url mysql://root@127.0.0.1:3306/canal_scale2

MariaDB needs the ``mysqlclient`` driver (requirements-mysql.lock; ``make bench`` installs
it). ``SCALE_DATABASE_URL`` names another database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import generate_data  # noqa: E402  (bench/ is on the path only now)

API = "/apis/v2beta1"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", action="store_true", help="a quick small run on a scratch SQLite file")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--tasks-per-run", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--ir-tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the rows here (bench/report.py)")
    return parser.parse_args()


def ir_with_tasks(n: int) -> str:
    """A KFP IR whose root DAG has ``n`` container tasks: a binary tree of
    dependencies, each task taking its parent's output parameter."""
    tasks: dict[str, Any] = {}
    for i in range(n):
        task: dict[str, Any] = {
            "componentRef": {"name": "comp-step"},
            "taskInfo": {"name": f"step-{i}"},
            "inputs": {"parameters": {"x": {"runtimeValue": {"constant": i}}}},
        }
        if i:
            parent = f"step-{(i - 1) // 2}"
            task["dependentTasks"] = [parent]
            task["inputs"] = {
                "parameters": {
                    "x": {"taskOutputParameter": {"producerTask": parent, "outputParameterKey": "y"}}
                }
            }
        tasks[f"step-{i}"] = task
    spec = {
        "pipelineInfo": {"name": f"wide-{n}"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.3",
        "components": {
            "comp-step": {
                "executorLabel": "exec-step",
                "inputDefinitions": {"parameters": {"x": {"parameterType": "NUMBER_INTEGER"}}},
                "outputDefinitions": {"parameters": {"y": {"parameterType": "NUMBER_INTEGER"}}},
            }
        },
        "deploymentSpec": {
            "executors": {
                "exec-step": {
                    "container": {
                        "image": "python:3.11",
                        "command": ["sh", "-c", 'echo $(($0 + 1)) > "$1"'],
                        "args": [
                            "{{$.inputs.parameters['x']}}",
                            "{{$.outputs.parameters['y'].output_file}}",
                        ],
                    }
                }
            }
        },
        "root": {"dag": {"tasks": tasks}},
    }
    return json.dumps(spec)


class Bench:
    """Times requests and collects the table's rows."""

    def __init__(self, repeat: int) -> None:
        self.repeat = repeat
        self.rows: list[tuple[str, ...]] = []
        self.report: list[dict[str, Any]] = []  # for bench/report.py (--json)

    def measure(
        self, name: str, call: Callable[[], Any], goal_ms: float, *, repeat: int | None = None
    ) -> None:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        call()  # warm: imports, template compilation, the graph cache
        samples, cpu, queries, size = [], [], 0, 0
        for _ in range(repeat or self.repeat):
            with CaptureQueriesContext(connection) as captured:
                start, start_cpu = time.perf_counter(), time.process_time()
                response = call()
                samples.append((time.perf_counter() - start) * 1000)
                cpu.append((time.process_time() - start_cpu) * 1000)
            queries = len(captured.captured_queries)
            if response is not None and hasattr(response, "status_code"):
                assert response.status_code == 200, (name, response.status_code, response.content[:300])
                size = len(response.content)
        samples.sort()
        p50 = statistics.median(samples)
        p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
        met = "yes" if p95 < goal_ms else "NO"
        cpu50 = f"{statistics.median(cpu):.1f}"
        kib = f"{size / 1024:.1f}" if size else "-"
        self.rows.append((name, f"{p50:.1f}", f"{p95:.1f}", cpu50, str(queries), kib, f"< {goal_ms:g} {met}"))
        self.report.append(
            {
                "workload": f"{name}: p95",
                "canal": p95,
                "peer": None,
                "unit": "ms",
                "backing": connection.vendor,
                "note": f"p50 {p50:.1f} ms, {queries} queries; goal < {goal_ms:g} ms: {met}",
            }
        )
        print(f"  {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, {queries} queries", file=sys.stderr)

    def print(self, title: str) -> None:
        head = ("workload", "p50 ms", "p95 ms", "p50 cpu ms", "queries", "KiB", "goal ms (p95) met")
        widths = [max(len(str(r[i])) for r in [head, *self.rows]) for i in range(len(head))]
        print(f"\n{title}\n")
        for i, row in enumerate([head, *self.rows]):
            print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
            if i == 0:
                print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main() -> None:
    args = parse_args()
    if args.sqlite:
        scratch = tempfile.mkdtemp(prefix="canal-bench-scale-")
        url = args.database_url or f"sqlite:///{scratch}/scale.sqlite3"
        runs = args.runs or 3000
    else:
        scratch = tempfile.mkdtemp(prefix="canal-bench-scale-")
        url = args.database_url or os.environ.get("SCALE_DATABASE_URL") or generate_data.DEFAULT_URL
        runs = args.runs or 100_000
    os.environ["CANAL_DATA_DIR"] = scratch
    started = time.perf_counter()
    generate_data.setup_django(url)  # migrates: creates the list indexes on a reused dataset
    print(f"migrated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    data_args = generate_data.parse_args(
        [
            "--database-url", url, "--runs", str(runs), "--tasks-per-run", str(args.tasks_per_run),
            "--iterations", str(args.iterations),
        ]
    )  # fmt: skip
    generate_data.generate(data_args)

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from apps.core.middleware import SESSION_NAMESPACE_KEY
    from apps.core.models import Namespace
    from apps.experiments.models import Experiment
    from apps.importers import import_pipeline
    from apps.pipelines import services as pipeline_services
    from apps.runs.models import Run, Task

    setup_test_environment()
    user = get_user_model().objects.get(username=generate_data.SCALE_USER)
    client = Client()
    client.force_login(user)
    session = client.session
    session[SESSION_NAMESPACE_KEY] = "scale-0"
    session.save()
    namespace = Namespace.objects.get(name="scale-0")
    experiment = Experiment.objects.filter(namespace=namespace).order_by("display_name").first()
    assert experiment is not None
    big = Run.objects.get(display_name=generate_data.BIG_RUN_NAME, namespace=namespace)
    total_runs = Run.objects.count()
    total_tasks = Task.objects.count()
    in_namespace = Run.objects.filter(namespace=namespace).count()
    big_tasks = Task.objects.filter(run=big).count()
    print(
        f"{connection.vendor}: {total_runs:,} runs ({in_namespace:,} in scale-0), {total_tasks:,} tasks; "
        f"the big run has {big_tasks:,} tasks",
        file=sys.stderr,
    )

    bench = Bench(args.repeat)

    def state_filter(state: str) -> str:
        return json.dumps({"predicates": [{"operation": "EQUALS", "key": "state", "string_value": state}]})

    def api(params: dict[str, Any]) -> Callable[[], Any]:
        return lambda: client.get(f"{API}/runs", {"namespace": "scale-0", "page_size": 50, **params})

    def deep_token(params: dict[str, Any], rows: int = min(10_000, in_namespace // 3)) -> str:
        """The token of the page ~``rows`` rows into the list, walked with page_size 200."""
        token = ""
        for _ in range(rows // 200):
            page = client.get(
                f"{API}/runs", {"namespace": "scale-0", "page_size": 200, "page_token": token, **params}
            ).json()
            if not page.get("next_page_token"):
                break
            token = page["next_page_token"]
            params = {k: v for k, v in params.items() if k == "experiment_id"}
        return token

    api_lists = {
        "created_at desc": {"sort_by": "created_at desc"},
        "name": {"sort_by": "name"},
        "state=FAILED, created_at desc": {"sort_by": "created_at desc", "filter": state_filter("FAILED")},
        "experiment, created_at desc": {"sort_by": "created_at desc", "experiment_id": str(experiment.pk)},
    }
    print("runs list API", file=sys.stderr)
    for label, params in api_lists.items():
        bench.measure(f"API runs, {label}, page 1", api(params), 50)
        token = deep_token(params)
        keep = {k: v for k, v in params.items() if k == "experiment_id"}
        bench.measure(f"API runs, {label}, deep page", api({**keep, "page_token": token}), 50)

    def ui(params: dict[str, Any]) -> Callable[[], Any]:
        return lambda: client.get("/runs/", {"page_size": 50, **params})

    ui_lists = {
        "newest first": {"sort": "-created"},
        "name": {"sort": "name"},
        "state=FAILED": {"sort": "-created", "state": "FAILED"},
    }
    print("runs list page", file=sys.stderr)
    for label, params in ui_lists.items():
        bench.measure(f"UI runs, {label}, page 1", ui(params), 50)
        bench.measure(f"UI runs, {label}, page 200", ui({**params, "page": 200}), 50)
    exp_url = f"/experiments/{experiment.pk}/"
    bench.measure("UI experiment page (its runs), page 1", lambda: client.get(exp_url, {"page_size": 50}), 50)

    def executions(params: dict[str, Any]) -> Callable[[], Any]:
        return lambda: client.get("/executions/", {"page_size": 50, **params})

    print("executions list page", file=sys.stderr)
    bench.measure("UI executions, newest first, page 1", executions({}), 50)
    bench.measure("UI executions, newest first, page 200", executions({"page": 200}), 50)
    bench.measure("UI executions by name, page 1", executions({"sort": "name"}), 50)
    bench.measure("UI executions, state=FAILED, page 1", executions({"state": "FAILED"}), 50)

    print(f"{args.iterations:,}-iteration run", file=sys.stderr)
    bench.measure("run page, big ParallelFor", lambda: client.get(f"/runs/{big.pk}/"), 300)
    bench.measure("status poll, big ParallelFor", lambda: client.get(f"/runs/{big.pk}/status/"), 300)

    print(f"{args.ir_tasks:,}-task IR", file=sys.stderr)
    text = ir_with_tasks(args.ir_tasks).encode()
    bench.measure(
        f"validate a {args.ir_tasks:,}-task IR (importer)",
        lambda: import_pipeline(text, "wide.yaml"),
        1000,
        repeat=5,
    )
    counter = iter(range(10**6))

    def upload() -> None:
        pipeline_services.pipeline_create_from_upload(
            actor=user,
            namespace=namespace,
            data=text,
            filename="wide.yaml",
            name=f"wide-{next(counter)}-{time.time()}",
        )

    bench.measure(f"import a {args.ir_tasks:,}-task IR (upload service)", upload, 1000, repeat=5)
    from apps.pipelines.models import Pipeline

    Pipeline.objects.filter(namespace=namespace, name__startswith="wide-").delete()

    bench.print(
        f"Canal at scale ({connection.vendor}; {total_runs:,} runs, {total_tasks:,} tasks; "
        f"{args.iterations:,}-iteration run; {args.repeat} requests each, imports 5 each)"
    )
    if args.json:
        for row in bench.report:
            row["backing"] = f"{connection.vendor}, {total_runs:,} runs, {total_tasks:,} tasks"
        args.json.write_text(json.dumps(bench.report, indent=1))


if __name__ == "__main__":
    main()
