"""``make bench``: every benchmark, then one table (workload, Canal, peer, ratio, machine).

Runs, each in its own process, and collects their ``--json`` rows:

* ``engine_vs_kfp_local.py``: chain-20 (server time and the whole process) and fan-8
  against kfp.local measured in the same run, fan-1000 and fan-5000, the step
  sandbox's overhead; on SQLite and the filesystem broker (the embedded default);
* the same script's fan-1000 on MariaDB + Redis (``--mysql-url``/``--redis-url``)
  with 1, 2 and 4 worker processes (skipped, saying so, when either does not answer);
* ``db_per_step.py``: SQL statements, writes and rows per step of a fan-out;
* ``scale.py``: the lists at 100k runs, the run page of a 5,000-iteration run,
  importing a 1,000-task IR.

The table is printed as Markdown (the README keeps the last one) and written to
``--out`` (default: ``$XDG_CACHE_HOME/canal/bench/last.md``).

    .venv/bin/python bench/report.py [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "canal" / "bench"


def machine() -> str:
    """One line: cores, memory, CPU model, Python."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    return (
        f"{os.cpu_count()} cores{memory}, {model or platform.machine()}, Python {platform.python_version()}"
    )


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def run_script(args: list[str]) -> list[dict[str, object]]:
    """Run one benchmark script with ``--json``; its rows ([] and a note if it failed)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = Path(out.name)
    print(f"$ {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, *args, "--json", str(path)], cwd=ROOT, check=False)
    if done.returncode != 0 or not path.stat().st_size:
        return [
            {
                "workload": Path(args[0]).stem,
                "canal": None,
                "peer": None,
                "backing": "",
                "note": "FAILED: see above",
            }
        ]
    rows: list[dict[str, object]] = json.loads(path.read_text())
    path.unlink()
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}.",
        "",
        "| workload | backing | Canal | peer | result |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        canal = row.get("canal")
        peer = row.get("peer")
        unit = str(row.get("unit", "s"))
        canal_text = "-" if canal is None else f"{canal:.2f} {unit}" if unit == "s" else f"{canal:.1f} {unit}"
        peer_text = "-" if peer is None else f"{peer:.2f} {unit}" if unit == "s" else f"{peer:.1f} {unit}"
        lines.append(
            f"| {row['workload']} | {row.get('backing', '')} | {canal_text} | {peer_text} | {row['note']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", default="3")
    parser.add_argument("--quick", action="store_true", help="one repeat, no fan-5000, small scale data")
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306/canal_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--out", type=Path, default=CACHE / "last.md")
    args = parser.parse_args()
    repeat = "1" if args.quick else args.repeat
    engine = str(BENCH / "engine_vs_kfp_local.py")
    workloads = "chain-20,chain-20-process,fan-8,fan-1000" + ("" if args.quick else ",fan-5000")

    rows = run_script([engine, "--repeat", repeat, "--only", workloads, "--sandbox-overhead"])
    if answers("127.0.0.1", 3306) and answers("127.0.0.1", 6379):
        # 1, 2 and 4 worker processes (8 threads each) on one MariaDB and one Redis.
        for workers in ("1", "2", "4"):
            rows += run_script(
                [engine, "--repeat", repeat, "--only", "fan-1000", "--workers", workers,
                 "--database-url", args.mysql_url, "--broker-url", args.redis_url]
            )  # fmt: skip
    else:
        rows.append({"workload": "fan-1000", "backing": "MariaDB + Redis", "canal": None, "peer": None,
                     "note": "not measured: MariaDB or Redis does not answer on 127.0.0.1"})  # fmt: skip
    for batch in ("1", "8"):
        rows += run_script([str(BENCH / "db_per_step.py"), "--width", "1000", "--batch", batch])
    scale = BENCH / "scale.py"
    if scale.exists():
        rows += run_script([str(scale), *(["--sqlite"] if args.quick else [])])
    text = table(rows)
    print()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"\n(written to {args.out})")


if __name__ == "__main__":
    main()
