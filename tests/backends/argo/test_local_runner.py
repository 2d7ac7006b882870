"""LocalPodRunner: Argo pods as sandboxed host processes with their own root filesystem."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from apps.backends.argo.interpreter import (
    ContainerSpec,
    InputArtifact,
    OutputArtifactSpec,
    OutputParameterSpec,
    PodRequest,
    VolumeMount,
)
from apps.backends.argo.local_runner import LocalArtifactRepository, LocalPodRunner
from apps.backends.local import LocalBackend, TaskEnvManager


@pytest.fixture(scope="module")
def runner(envs: TaskEnvManager, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPodRunner]:
    base = tmp_path_factory.mktemp("pods")
    backend = LocalBackend(envs=envs, terminate_grace=1.0, work_root=base / "work")
    if not backend.sandbox.active:
        backend.close()
        pytest.skip("Argo pods need the step sandbox: " + backend.sandbox.status().summary())
    yield LocalPodRunner(
        backend, artifacts=LocalArtifactRepository(base / "artifacts"), logs_dir=base / "logs"
    )
    backend.close()


def _pod(name: str, argv: list[str], **extra: object) -> PodRequest:
    main = extra.pop("main", None) or ContainerSpec(name="main", image="busybox", argv=tuple(argv))
    return PodRequest(
        node_id=f"wf-{name}",
        node_name=f"wf.{name}",
        pod_name=f"wf-{name}",
        workflow_name="wf",
        template_name=name,
        kind="container",
        main=main,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def test_inputs_in_outputs_out_and_the_log_is_the_result(runner: LocalPodRunner) -> None:
    request = _pod(
        "io",
        ["sh", "-c", "cat /tmp/in; mkdir -p /out/dir; echo art > /out/dir/f; printf p > /result.txt"],
        input_artifacts=(
            InputArtifact(name="in", path="/tmp/in", location={"raw": {"data": "raw input\n"}}),
        ),
        output_parameters=(OutputParameterSpec(name="p", path="/result.txt"),),
        output_artifacts=(OutputArtifactSpec(name="a", path="/out", key="wf/wf-io/a"),),
    )
    result = runner.run(request, threading.Event())
    assert result.exit_code == 0, result
    assert result.stdout == "raw input\n"
    assert result.parameters == {"p": "p"}
    assert result.artifacts == {"a": {"s3": {"key": "wf/wf-io/a"}}}
    assert isinstance(runner.artifacts, LocalArtifactRepository)
    assert (runner.artifacts.path("wf/wf-io/a") / "dir" / "f").read_text() == "art\n"
    assert runner.log_path(request).read_text() == "raw input\n"


def test_an_output_that_links_out_of_the_pod_is_not_read(runner: LocalPodRunner) -> None:
    request = _pod(
        "escape",
        ["sh", "-c", "ln -s /etc/passwd /tmp/p; ln -s /etc /tmp/a"],
        output_parameters=(OutputParameterSpec(name="p", path="/tmp/p"),),
        output_artifacts=(OutputArtifactSpec(name="a", path="/tmp/a", key="wf/escape/a"),),
    )
    result = runner.run(request, threading.Event())
    assert result.exit_code == 0
    assert result.parameters == {}
    assert result.artifacts == {}


def test_init_containers_share_empty_dir_volumes_with_main(runner: LocalPodRunner) -> None:
    mount = VolumeMount(name="shared", mount_path="/mnt/shared")
    init = ContainerSpec(
        name="prepare",
        image="busybox",
        argv=("sh", "-c", "echo ready > /mnt/shared/flag"),
        volume_mounts=(mount,),
    )
    main = ContainerSpec(
        name="main", image="busybox", argv=("cat", "/mnt/shared/flag"), volume_mounts=(mount,)
    )
    result = runner.run(
        _pod("init", [], main=main, init_containers=(init,), volumes=("shared",)), threading.Event()
    )
    assert result.exit_code == 0, result
    assert result.stdout == "ready\n"


def test_a_program_only_in_the_image_fails_with_the_backends_message(runner: LocalPodRunner) -> None:
    result = runner.run(_pod("argosay", ["argosay", "echo", "hi"]), threading.Event())
    assert result.exit_code is None
    assert result.error
    assert "executable 'argosay' was not found" in result.message
    assert "not inside the image" in result.message


def test_a_container_without_a_command_says_its_entrypoint_cannot_run(runner: LocalPodRunner) -> None:
    main = ContainerSpec(name="main", image="argoproj/argosay:v2", argv=("echo", "hi"), has_command=False)
    result = runner.run(_pod("entry", [], main=main), threading.Event())
    assert result.error
    assert "gives no command" in result.message
    assert "argoproj/argosay:v2" in result.message


def test_a_deadline_stops_the_pod(runner: LocalPodRunner) -> None:
    result = runner.run(_pod("slow", ["sleep", "30"], deadline_seconds=1.0), threading.Event())
    assert result.timed_out
    assert not result.error


def test_pods_do_not_see_each_others_files(runner: LocalPodRunner) -> None:
    first = runner.run(_pod("one", ["sh", "-c", "echo mine > /tmp/shared-name"]), threading.Event())
    second = runner.run(_pod("two", ["sh", "-c", "cat /tmp/shared-name || echo absent"]), threading.Event())
    assert first.exit_code == 0
    assert "absent" in second.stdout


def test_a_pod_placed_by_its_caller_logs_there_and_reports_its_pid(
    runner: LocalPodRunner, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The emulated cluster's kubelet gives each pod its own directory and log files.
    place = tmp_path_factory.mktemp("placed")
    pids: list[int] = []
    request = _pod(
        "placed",
        [],
        init_containers=(ContainerSpec(name="init", image="busybox", argv=("sh", "-c", "echo in-init")),),
        main=ContainerSpec(name="main", image="busybox", argv=("echo", "in-main")),
    )
    pod_dir = runner.tenant_dir / "placed-pod"  # a pod's directory lies in the tenant's, like work_dir
    result = runner.run(
        request, threading.Event(), pod_dir=pod_dir, log_dir=place / "logs", on_started=pids.append
    )
    assert result.exit_code == 0, result
    assert (place / "logs" / "init.log").read_text() == "in-init\n"
    assert (place / "logs" / "main.log").read_text() == result.stdout == "in-main\n"
    assert len(pids) == 1 and pids[0] > 0
    assert not pod_dir.exists()  # removed after the pod, as the default directories are
    assert not runner.log_path(request).exists()
