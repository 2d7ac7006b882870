"""Per-step cost of the local backend: zygote fork vs a cold interpreter vs the prelude as written.

Runs a chain of trivial lightweight steps (the corpus's ``add_numbers``, each
adding 1 to the previous step's output) through ``LocalBackend``:

* zygote: the default (a warm interpreter of the task env forks each step);
* cold:   ``use_zygote=False`` (``python -m kfp.dsl.executor_main`` per step, no pip);
* prelude: the kfp-generated command run as written (its ``pip install kfp==X``
  check every step, which is what kfp.local's SubprocessRunner does), inside the
  cached task env so nothing touches this interpreter.

Usage: .venv/bin/python bench/local_backend_steps.py [--steps 20] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apps.backends import StepSpec  # noqa: E402
from apps.backends.local import LocalBackend, TaskEnvManager  # noqa: E402
from apps.backends.local.environment import step_environment  # noqa: E402
from apps.backends.local.sandbox import SandboxConfig  # noqa: E402
from tests.paths import KFP_VALID  # noqa: E402 (../shared, or CANAL_SHARED_DIR)

IR = KFP_VALID / "critical" / "add_numbers.yaml"


def chain(backend: LocalBackend, workdir: Path, steps: int, label: str, first: int = 0) -> list[float]:
    container = yaml.safe_load(IR.read_text())["deploymentSpec"]["executors"]["exec-add-numbers"]["container"]
    value = first
    times = []
    for i in range(steps):
        out = workdir / f"{label}-{i}"
        out.mkdir(parents=True)
        ei = {
            "inputs": {"parameterValues": {"a": value, "b": 1}},
            "outputs": {
                "parameters": {"Output": {"outputFile": str(out / "Output")}},
                "outputFile": str(out / "executor_output.json"),
            },
        }
        args = [json.dumps(ei) if a == "{{$}}" else a for a in container["args"]]
        spec = StepSpec(
            step_id=f"{label}-{i}",
            argv=container["command"] + args,
            log_path=out / "log",
            workdir=out,
            tenant_dir=workdir,  # one tenant: one zygote for the whole chain, as in a run
        )
        start = time.perf_counter()
        result = backend.run(spec)
        times.append(time.perf_counter() - start)
        if not result.succeeded:
            raise SystemExit(f"{label} step {i} failed: {result.error}\n{(out / 'log').read_text()}")
        value = json.loads((out / "executor_output.json").read_text())["parameterValues"]["Output"]
    if value != first + steps:
        raise SystemExit(f"{label}: chain computed {value}, expected {first + steps}")
    return times


def prelude_as_written(envs: TaskEnvManager, workdir: Path, steps: int) -> list[float]:
    container = yaml.safe_load(IR.read_text())["deploymentSpec"]["executors"]["exec-add-numbers"]["container"]
    backend = LocalBackend(envs=envs, use_zygote=False)
    env = envs.lookup(backend.plan(container["command"]).env_spec)
    assert env is not None
    step_env = step_environment({}, task_env=env.path)
    times = []
    for i in range(steps):
        out = workdir / f"prelude-{i}"
        out.mkdir(parents=True)
        ei = {"inputs": {"parameterValues": {"a": i, "b": 1}}, "outputs": {"outputFile": str(out / "o.json")}}
        args = [json.dumps(ei) if a == "{{$}}" else a for a in container["args"]]
        start = time.perf_counter()
        subprocess.run(container["command"] + args, env=step_env, cwd=out, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--prelude-steps", type=int, default=3)
    parser.add_argument("--cache", default=None, help="task env cache (default: a temporary one)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        envs = TaskEnvManager(options.cache or work / "envs")
        zygote = LocalBackend(envs=envs)
        plain = LocalBackend(envs=envs, sandbox=SandboxConfig(mode="off"))
        cold = LocalBackend(envs=envs, use_zygote=False)
        try:
            t0 = time.perf_counter()
            chain(zygote, work, 1, "warmup")  # builds the env (once) and starts the zygote
            print(f"first step (env build if needed + zygote start): {time.perf_counter() - t0:.2f}s")
            chain(plain, work, 1, "warmup-plain")
            # Interleaved, so that both see the same machine load.
            z, u = [], []
            for i in range(options.steps):
                z += chain(zygote, work, 1, f"zygote-{i}", first=i)
                u += chain(plain, work, 1, f"plain-{i}", first=i)
            c = chain(cold, work, options.steps, "cold")
            p = prelude_as_written(envs, work, options.prelude_steps)
        finally:
            zygote.close()
            plain.close()
            cold.close()
    rows = [
        ("zygote fork, sandboxed", z),
        ("zygote fork, no sandbox", u),
        ("cold interpreter", c),
        ("prelude as written (kfp.local)", p),
    ]
    for name, times in rows:
        print(
            f"{name:32s} median {statistics.median(times) * 1000:7.1f} ms/step  "
            f"total for {len(times)}: {sum(times):6.2f}s"
        )
    zm, um, cm, pm = (statistics.median(t) for _, t in rows)
    print(f"the sandbox adds {(zm - um) * 1000:.1f} ms per step ({(zm / um - 1) * 100:+.0f}%)")
    print(f"zygote vs cold: {cm / zm:.1f}x   zygote vs prelude-as-written: {pm / zm:.1f}x")
    print(
        f"{options.steps}-step chain through the zygote: {sum(z):.2f}s "
        "(engine_vs_kfp_local.py measures kfp.local side by side)"
    )


if __name__ == "__main__":
    main()
