"""Resource limits from the spec, enforced on local steps: by cgroups where Canal may make
them (root here), and by the step's own rlimit / CPU affinity where it may not."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.backends.base import StepSpec
from apps.backends.local import LocalBackend, TaskEnvManager
from apps.backends.local.limits import CgroupTree, parse_limits, parse_quantity

ALLOCATE = "b = bytearray({mib} * 1024 * 1024); print('allocated', len(b) >> 20)"
# Busy for 2 s of wall time, then report the CPU time it got.
BURN = "import time; s = time.time()\nwhile time.time() - s < 2: pass\nprint(round(time.process_time(), 2))"


def test_quantities_are_kubernetes_quantities() -> None:
    assert parse_quantity("650M") == 650_000_000
    assert parse_quantity("500Mi") == 500 * 2**20
    assert parse_quantity("0.5") == parse_quantity("500m")
    assert parse_quantity("1e3") == 1000
    limits = parse_limits("256M", "250m")
    assert limits.memory_bytes == 256_000_000 and limits.cpu == 0.25
    assert "memory limit of 256M" in limits.memory_message()
    for bad in ("", "12 apples", "-1", "M"):
        with pytest.raises(ValueError):
            parse_limits(bad or "x", "")


@pytest.fixture(params=["cgroup", "rlimit"])
def limited_backend(request: pytest.FixtureRequest, envs: TaskEnvManager) -> Iterator[LocalBackend]:
    if request.param == "cgroup":
        if not CgroupTree().available:
            pytest.skip("this process may not create cgroups (not root, no delegated v2 tree)")
        backend = LocalBackend(envs=envs, terminate_grace=1.0)
    else:
        # A cgroup root that cannot be used: the step caps itself instead.
        backend = LocalBackend(envs=envs, terminate_grace=1.0, cgroup_root="/nonexistent-cgroup")
    yield backend
    backend.close()


def _python(tmp_path: Path, name: str, code: str, **limits: str) -> StepSpec:
    return StepSpec(
        step_id=name,
        argv=["python3", "-c", code],
        log_path=tmp_path / f"{name}.log",
        workdir=tmp_path / "work",
        **limits,
    )  # type: ignore[arg-type]


def test_memory_over_the_limit_fails_naming_it_and_under_it_succeeds(
    limited_backend: LocalBackend, tmp_path: Path
) -> None:
    over = limited_backend.run(_python(tmp_path, "over", ALLOCATE.format(mib=1024), memory_limit="256M"))
    assert not over.succeeded
    assert over.out_of_memory
    assert over.error == "the step exceeded its memory limit of 256M and was killed (OOMKilled)"
    under = limited_backend.run(_python(tmp_path, "under", ALLOCATE.format(mib=1024), memory_limit="2G"))
    assert under.succeeded, (tmp_path / "under.log").read_text()
    assert "allocated 1024" in (tmp_path / "under.log").read_text()


def test_cpu_limit(limited_backend: LocalBackend, tmp_path: Path) -> None:
    if limited_backend.cgroups() is not None and limited_backend.cgroups().enforces_cpu():  # type: ignore[union-attr]
        # cpu.max / cfs quota: 0.2 of a CPU for 2 s is at most ~0.4 s of CPU time.
        result = limited_backend.run(_python(tmp_path, "burn", BURN, cpu_limit="200m"))
        assert result.succeeded, (tmp_path / "burn.log").read_text()
        assert float((tmp_path / "burn.log").read_text().split()[-1]) < 0.9
    else:
        # Without cgroups: pinned to ceil(limit) CPUs.
        code = "import os; print(len(os.sched_getaffinity(0)))"
        result = limited_backend.run(_python(tmp_path, "cpus", code, cpu_limit="500m"))
        assert result.succeeded, (tmp_path / "cpus.log").read_text()
        assert (tmp_path / "cpus.log").read_text().split()[-1] == "1"


def test_an_invalid_limit_fails_the_step_with_the_reason(
    limited_backend: LocalBackend, tmp_path: Path
) -> None:
    result = limited_backend.run(_python(tmp_path, "bad", "print(1)", memory_limit="lots"))
    assert not result.succeeded
    assert result.error is not None and "invalid resource limit" in result.error
    assert os.path.exists(tmp_path / "bad.log")
