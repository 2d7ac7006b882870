"""A step with its own root filesystem (``root_dir``/``mounts``), as Argo pods need."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.backends import StepSpec
from apps.backends.local import LocalBackend, TaskEnvManager
from apps.backends.local.sandbox import SandboxConfig


def _pod(tmp_path: Path) -> tuple[Path, Path, Path]:
    tenant = tmp_path / "tenant"
    root = tenant / "pod" / "root"
    volume = tenant / "pod" / "volume"
    for directory in (root / "tmp", root / "work", volume):
        directory.mkdir(parents=True)
    return tenant, root, volume


def test_a_rooted_step_sees_only_its_root_the_system_and_its_mounts(
    backend: LocalBackend, tmp_path: Path
) -> None:
    if not backend.sandbox.active:
        pytest.skip("the step sandbox is not available here")
    tenant, root, volume = _pod(tmp_path)
    (root / "tmp" / "input").write_text("from the input\n")
    secret = tenant / "other-step" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not yours")
    script = (
        "cat /tmp/input; pwd; echo made > /result.txt; echo vol > /mnt/vol/v; "
        f"cat {secret} || echo no-secret; touch /usr/x 2>/dev/null || echo usr-read-only"
    )
    spec = StepSpec(
        step_id="rooted",
        argv=["sh", "-c", script],
        image="busybox",
        log_path=tmp_path / "rooted.log",
        workdir=root / "work",
        tenant_dir=tenant,
        read_write=(root, volume),
        root_dir=root,
        mounts=((volume, "/mnt/vol"),),
    )
    result = backend.run(spec)
    log = (tmp_path / "rooted.log").read_text()
    assert result.succeeded, log
    lines = log.splitlines()
    assert lines[:2] == ["from the input", "/work"]
    assert "no-secret" in lines  # another step's files are not in this step's view
    assert "usr-read-only" in lines
    assert (root / "result.txt").read_text() == "made\n"
    assert (volume / "v").read_text() == "vol\n"


def test_a_rooted_step_needs_the_sandbox(envs: TaskEnvManager, tmp_path: Path) -> None:
    backend = LocalBackend(envs=envs, sandbox=SandboxConfig(mode="off"))
    try:
        tenant, root, _ = _pod(tmp_path)
        result = backend.run(
            StepSpec(
                step_id="unsandboxed",
                argv=["true"],
                workdir=root,
                tenant_dir=tenant,
                root_dir=root,
                log_path=tmp_path / "u.log",
            )
        )
    finally:
        backend.close()
    assert not result.succeeded
    assert result.exit_code is None
    assert "own root filesystem" in (result.error or "")
    assert "sandbox" in (result.error or "")
