"""Server time of the run page for a run with a 1,000-iteration ParallelFor.

Builds the run's rows directly (root, loop, 1,000 iterations, 1,000 steps: 2,002
tasks) in a scratch SQLite database, then times, through Django's test client (the
whole request: middleware, queries, graph overlay, drawing, templates):

* the first request (the DAG is laid out by dot and cached),
* later requests (the drawing comes from the cache),
* the status endpoint the page polls while the run is active,
* the loop's panel (iterations paged).

Nothing else runs; the numbers are medians over ``--repeat`` requests.
Usage: .venv/bin/python bench/ui_run_page.py [--iterations 1000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="canal-bench-ui-")
    os.environ["CANAL_DATA_DIR"] = scratch
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipelines_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0, interactive=False)

    from tests.factories import UserFactory
    from tests.web.fanout import LOOP_NODE, create_fanout_run

    user = UserFactory(username="bench")
    run = create_fanout_run(args.iterations)
    client = Client()
    client.force_login(user)

    def timed(url: str, **headers: str) -> tuple[float, int, int]:
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url, **headers)
            elapsed = time.perf_counter() - start
        assert response.status_code == 200, (url, response.status_code)
        return elapsed, len(queries.captured_queries), len(response.content)

    # Warm the process (imports, template compilation) on another, small run first, so
    # the first request to the big run measures its own cost: queries, overlay, dot.
    cold, _, _ = timed(f"/runs/{create_fanout_run(3).pk}/")
    page = f"/runs/{run.pk}/"
    first, first_queries, size = timed(page)
    html = client.get(page).content.decode()
    svg = html[html.index("<svg") : html.index("</svg>")]
    drawn = svg.count('class="node"') + svg.count('class="cluster"')

    def median(url: str, **headers: str) -> tuple[float, int]:
        samples = [timed(url, **headers) for _ in range(args.repeat)]
        return statistics.median(s[0] for s in samples), samples[-1][1]

    warm, warm_queries = median(page)
    status, status_queries = median(f"/runs/{run.pk}/status/")
    panel, panel_queries = median(f"/runs/{run.pk}/panel/?node={LOOP_NODE}", HTTP_X_CANAL_FRAGMENT="1")
    tasks = run.tasks.count()
    print(
        f"run page, {args.iterations}-iteration ParallelFor ({tasks} task rows, {drawn} drawn graph elements)"
    )
    print(f"  process warm-up (a 3-iteration run, first request of the process): {cold * 1000:.1f} ms")
    kib = size / 1024
    print(f"  first request (dot lays out):  {first * 1000:7.1f} ms  {first_queries} queries  {kib:.0f} KiB")
    print(f"  later requests (median of {args.repeat}): {warm * 1000:7.1f} ms  {warm_queries} queries")
    print(f"  status poll (median):          {status * 1000:7.1f} ms  {status_queries} queries")
    print(f"  loop panel, page 1 (median):   {panel * 1000:7.1f} ms  {panel_queries} queries")
    verdict = "under" if max(first, warm) < 1.0 else "OVER"
    print(f"  => {verdict} the 1 s budget")


if __name__ == "__main__":
    main()
