"""Canal's Argo interpreter as the emulated cluster's controller, seen through the real ``kubernetes`` client.

Argo's own examples are submitted with ``CustomObjectsApi`` and must end as the
in-process driver (``run_interpreter``) ends them: the same Workflow phase and
message, and the same nodes (ids, names, types, phases, messages, children,
outputs), times aside. Then the faults: a controller restart (and a controller
that was down while a pod ended) resumes to the same outcome without running a
pod twice, a deleted pod fails its node with Argo's "pod deleted" (and a retry
takes over), a deleted Workflow takes its running pods with it.

Nothing waits on a duration: every test polls the API until a condition holds.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.backends.argo.emulator.interpreter_executor import POD_DELETED, pod_outcome, pod_result
from apps.backends.argo.emulator.kubelet import pod_view
from apps.backends.argo.interpreter import (
    ContainerSpec,
    Interpreter,
    PodRequest,
    PodResult,
    pod_name_for,
    run_interpreter,
)
from apps.backends.argo.local_runner import LocalArtifactRepository, LocalPodRunner
from apps.backends.local import LocalBackend, TaskEnvManager
from tests.backends.argo.emulator.conftest import (
    GROUP,
    NS,
    PLURAL,
    VERSION,
    Cluster,
    make_workflow,
    wait_until,
)
from tests.backends.conftest import process_alive
from tests.paths import ARGO_EXAMPLES, missing

TABLE = yaml.safe_load(Path(__file__).parents[1].joinpath("argo_examples_expected.yaml").read_text())

# Argo's examples with short sleeps: steps, a DAG, a loop, conditions, an exit handler,
# output parameters, artifact passing, a step timeout (10 s) and a random retry with backoff.
EXAMPLES = (
    "dag-diamond.yaml",
    "steps.yaml",
    "loops.yaml",
    "conditionals.yaml",
    "exit-handlers.yaml",
    "output-parameter.yaml",
    "artifact-passing.yaml",
    "timeouts-step.yaml",
    "retry-backoff.yaml",
)
# Their exits are random: the phase must be one the table allows, the nodes cannot match a second run.
RANDOM = frozenset({"retry-backoff.yaml"})

DEADLINE = "Pod was active on the node longer than the specified deadline"
# Node fields that depend on when things ran.
_TIMES = ("startedAt", "finishedAt", "estimatedDuration", "resourcesDuration", "progress", "hostNodeName")


def _container(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "container": {"image": "busybox", "command": ["sh", "-c"], "args": [script]},
        **extra,
    }


# Timers the controller must honour at its resync: a retry backoff, a suspend with a duration.
RETRIES = make_workflow(
    "retry-until-third",
    _container(
        "main",
        "echo attempt {{retries}}; test {{retries}} -ge 2",
        retryStrategy={"limit": "3", "retryPolicy": "Always", "backoff": {"duration": "1", "factor": "2"}},
    ),
)
SUSPEND = make_workflow(
    "suspend-for-a-second",
    {
        "name": "main",
        "steps": [
            [
                {
                    "name": "before",
                    "template": "say",
                    "arguments": {"parameters": [{"name": "m", "value": "1"}]},
                }
            ],
            [{"name": "pause", "template": "pause"}],
            [
                {
                    "name": "after",
                    "template": "say",
                    "arguments": {"parameters": [{"name": "m", "value": "2"}]},
                }
            ],
        ],
    },
    {"name": "pause", "suspend": {"duration": "1"}},
    _container("say", "echo {{inputs.parameters.m}}", inputs={"parameters": [{"name": "m"}]}),
)


def _example(name: str) -> dict[str, Any]:
    """An example with a fixed name (so that node ids are the same here and in the reference run)."""
    manifest: dict[str, Any] = yaml.safe_load((ARGO_EXAMPLES / name).read_text())
    metadata = manifest["metadata"]
    prefix = metadata.pop("generateName", None) or f"{metadata['name']}-"
    metadata["name"] = f"{prefix}emu"
    return manifest


def _comparable(status: dict[str, Any]) -> dict[str, Any]:
    """A final status without its times, nor the exit codes of containers killed at their deadline
    (SIGTERM, or SIGKILL after the grace period: it depends on the machine's load)."""
    nodes = {}
    for node_id, node in (status.get("nodes") or {}).items():
        kept = {key: value for key, value in node.items() if key not in _TIMES}
        outputs = kept.get("outputs") or {}
        if node.get("message") == DEADLINE and "exitCode" in outputs:
            kept["outputs"] = {key: value for key, value in outputs.items() if key != "exitCode"}
        if "children" in kept:
            kept["children"] = sorted(kept["children"])
        nodes[node_id] = kept
    return {"phase": status.get("phase"), "message": status.get("message", ""), "nodes": nodes}


@pytest.fixture(scope="module")
def reference(envs: TaskEnvManager, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPodRunner]:
    """The in-process driver's pod runner (its own backend: step ids must not clash with the cluster's)."""
    base = tmp_path_factory.mktemp("reference")
    backend = LocalBackend(envs=envs, terminate_grace=1.0, work_root=base / "work")
    if not backend.sandbox.active:
        backend.close()
        pytest.skip("Argo pods need the step sandbox: " + backend.sandbox.status().summary())
    yield LocalPodRunner(
        backend, artifacts=LocalArtifactRepository(base / "artifacts"), logs_dir=base / "logs"
    )
    backend.close()


def _reference_run(runner: LocalPodRunner, manifest: dict[str, Any]) -> dict[str, Any]:
    interpreter = Interpreter(copy.deepcopy(manifest), name=manifest["metadata"]["name"], namespace=NS)
    return run_interpreter(interpreter, runner, max_workers=16)


def _node(status: dict[str, Any], display_name: str) -> dict[str, Any]:
    found = [n for n in status["nodes"].values() if n["displayName"] == display_name]
    assert len(found) == 1, (display_name, [n["displayName"] for n in status["nodes"].values()])
    return found[0]


def _stored_node(cluster: Cluster, workflow: str, display_name: str, *phases: str) -> dict[str, Any]:
    """Wait until the stored status has the node in one of ``phases``; return it."""

    def reached() -> dict[str, Any] | None:
        nodes = (cluster.get(workflow).get("status") or {}).get("nodes") or {}
        found = [n for n in nodes.values() if n.get("displayName") == display_name]
        return found[0] if found and found[0].get("phase") in phases else None

    found: dict[str, Any] = wait_until(reached, f"node {display_name} of {workflow} to be {phases}")
    return found


def _pod_of(cluster: Cluster, workflow: str, node_id: str) -> Any:
    return wait_until(
        lambda: next(
            (
                p
                for p in cluster.pods(workflow)
                if p.metadata.annotations["workflows.argoproj.io/node-id"] == node_id
            ),
            None,
        ),
        f"the pod of {node_id}",
    )


@pytest.mark.slow
def test_examples_end_as_the_in_process_interpreter_ends_them(
    cluster: Cluster, reference: LocalPodRunner
) -> None:
    if not ARGO_EXAMPLES.is_dir():
        pytest.skip(missing(ARGO_EXAMPLES))
    manifests = {name: _example(name) for name in EXAMPLES}
    manifests["retries"] = RETRIES
    manifests["suspend"] = SUSPEND
    for manifest in manifests.values():
        cluster.submit(manifest)
    deterministic = {key: m for key, m in manifests.items() if key not in RANDOM}
    with ThreadPoolExecutor(max_workers=len(deterministic)) as pool:
        futures = {key: pool.submit(_reference_run, reference, m) for key, m in deterministic.items()}
        finals = {key: cluster.wait_phase(m["metadata"]["name"])["status"] for key, m in manifests.items()}
        expected = {key: future.result() for key, future in futures.items()}

    for key, status in finals.items():
        if key in TABLE:
            allowed = [TABLE[key]["phase"], *(TABLE[key].get("or") or [])]
            assert status["phase"] in allowed, (key, status.get("message"))
        if key in expected:
            assert _comparable(status) == _comparable(expected[key]), key
        assert status["progress"].endswith(
            "/" + str(sum(n["type"] == "Pod" for n in status["nodes"].values()))
        )

    # Every Pod node had its pod, named as Argo names it, and its log is readable after the end.
    for key, manifest in manifests.items():
        name = manifest["metadata"]["name"]
        pods = {p.metadata.name: p for p in cluster.pods(name)}
        pod_nodes = [n for n in finals[key]["nodes"].values() if n["type"] == "Pod"]
        assert len(pods) == len(pod_nodes), key  # no pod ran twice
        for node in pod_nodes:
            assert (
                pods[_pod_name(name, node)].metadata.annotations["workflows.argoproj.io/node-id"]
                == node["id"]
            )
    diamond = finals["dag-diamond.yaml"]
    assert cluster.log(_pod_name("dag-diamond-emu", _node(diamond, "D"))) == "D\n"
    passing = finals["artifact-passing.yaml"]
    assert (
        cluster.log(_pod_name("artifact-passing-emu", _node(passing, "consume-artifact"))) == "hello world\n"
    )
    produced = _node(passing, "generate-artifact")["outputs"]["artifacts"][0]
    assert (cluster.emulator.artifacts_dir / produced["s3"]["key"]).read_text() == "hello world\n"
    exit_handler = finals["exit-handlers.yaml"]
    assert _node(exit_handler, "cry")["phase"] == "Succeeded"
    assert _node(exit_handler, "celebrate")["phase"] == "Skipped"
    timeout = _node(finals["timeouts-step.yaml"], "timeouts-step-emu")
    assert timeout["message"] == DEADLINE
    assert timeout["outputs"].get("exitCode") in ("137", "143")  # killed: 128 + the signal, as on Kubernetes
    [timed_out] = cluster.pods("timeouts-step-emu")
    assert timed_out.status.reason == "DeadlineExceeded"  # the pod's own reason, as Kubernetes gives it
    attempts = sorted(
        (n for n in finals["retries"]["nodes"].values() if n["type"] == "Pod"), key=lambda n: n["name"]
    )
    assert [n["phase"] for n in attempts] == ["Failed", "Failed", "Succeeded"]
    assert [cluster.log(_pod_name("retry-until-third", n)) for n in attempts] == [
        "attempt 0\n",
        "attempt 1\n",
        "attempt 2\n",
    ]
    assert _node(finals["suspend"], "pause")["phase"] == "Succeeded"
    # A random retry: every attempt but the last failed, and the last one decided the Workflow.
    backoff = finals["retry-backoff.yaml"]
    # By attempt number: up to 11 attempts, and by name "(10)" sorts before "(2)".
    tries = sorted((n for n in backoff["nodes"].values() if n["type"] == "Pod"), key=_attempt)
    assert [_attempt(n) for n in tries] == list(range(len(tries)))
    assert all(n["phase"] == "Failed" for n in tries[:-1])
    assert tries[-1]["phase"] == backoff["phase"]


def _attempt(node: dict[str, Any]) -> int:
    """A retry's attempt number, from its node name: ``retry-backoff-emu(3)`` is 3."""
    match = re.search(r"\((\d+)\)$", node["name"])
    assert match, node["name"]
    return int(match.group(1))


def _wait_gone(pid: int) -> None:
    wait_until(lambda: not process_alive(pid), f"process {pid} to end")


def _pod_name(workflow: str, node: dict[str, Any]) -> str:
    return pod_name_for(workflow, node["name"], node["templateName"])


def test_a_restarted_controller_resumes_to_the_same_outcome(
    cluster: Cluster, reference: LocalPodRunner
) -> None:
    gated = (
        "echo start; while [ {{workflow.parameters.gate}} = wait ] && [ ! -e /tmp/go ]; do sleep 0.05; done"
    )
    manifest = make_workflow(
        "resumed",
        {
            "name": "main",
            "steps": [
                [{"name": "gen", "template": "gen"}, {"name": "quick", "template": "quick"}],
                [
                    {
                        "name": "use",
                        "template": "use",
                        "arguments": {
                            "parameters": [{"name": "v", "value": "{{steps.gen.outputs.parameters.v}}"}]
                        },
                    }
                ],
            ],
        },
        _container(
            "gen",
            f"{gated}; printf generated > /tmp/v",
            outputs={"parameters": [{"name": "v", "valueFrom": {"path": "/tmp/v"}}]},
        ),
        _container("quick", "echo quick"),
        _container(
            "use", f"{gated}; echo got {{{{inputs.parameters.v}}}}", inputs={"parameters": [{"name": "v"}]}
        ),
    )
    manifest["spec"]["arguments"] = {"parameters": [{"name": "gate", "value": "wait"}]}
    opened = copy.deepcopy(manifest)
    opened["spec"]["arguments"]["parameters"][0]["value"] = "open"
    expected = _reference_run(reference, opened)
    assert expected["phase"] == "Succeeded"

    cluster.submit(manifest)
    emulator = cluster.emulator
    gen = _stored_node(cluster, "resumed", "gen", "Running")
    gen_pod = _pod_of(cluster, "resumed", gen["id"])
    wait_until(lambda: cluster.log(gen_pod.metadata.name) == "start\n", "gen's first line, while it runs")
    _stored_node(cluster, "resumed", "quick", "Succeeded")

    # The controller is down while gen ends: its outputs are picked up when it is back.
    emulator.stop_controller()
    (cluster.pod_root(gen_pod.metadata.name) / "tmp" / "go").touch()
    wait_until(
        lambda: cluster.core.read_namespaced_pod(gen_pod.metadata.name, NS).status.phase == "Succeeded",
        "gen's pod to end",
    )
    assert _node(cluster.get("resumed")["status"], "gen")["phase"] == "Running"
    emulator.start_controller()

    # The controller restarts while use runs: the running pod is re-attached, not run again.
    use = _stored_node(cluster, "resumed", "use", "Running")
    use_pod = _pod_of(cluster, "resumed", use["id"])
    emulator.restart_controller()
    (cluster.pod_root(use_pod.metadata.name) / "tmp" / "go").touch()

    final = cluster.wait_phase("resumed")["status"]
    assert _comparable(final) == _comparable(expected)
    assert _node(final, "use")["inputs"]["parameters"] == [{"name": "v", "value": "generated"}]
    assert len(cluster.pods("resumed")) == 3  # gen, quick, use: each ran once
    assert cluster.log(use_pod.metadata.name) == "start\ngot generated\n"
    assert cluster.log(gen_pod.metadata.name) == "start\n"


def test_a_deleted_pod_errors_its_node_and_a_retry_takes_over(cluster: Cluster) -> None:
    manifest = make_workflow(
        "tolerant",
        _container(
            "main",
            "if [ {{retries}} = 0 ]; then echo first; sleep 300; fi; echo retried",
            retryStrategy={"limit": "2", "retryPolicy": "OnError"},
        ),
    )
    cluster.submit(manifest)
    first = _stored_node(cluster, "tolerant", "tolerant(0)", "Running")
    pod = _pod_of(cluster, "tolerant", first["id"])
    wait_until(lambda: cluster.log(pod.metadata.name) == "first\n", "the first attempt's line")
    pid = cluster.emulator.pod_pid(NS, pod.metadata.name)
    assert pid is not None and process_alive(pid)

    cluster.core.delete_namespaced_pod(pod.metadata.name, NS)
    status = cluster.wait_phase("tolerant")["status"]
    assert status["phase"] == "Succeeded"
    lost, retried = _node(status, "tolerant(0)"), _node(status, "tolerant(1)")
    assert lost["phase"] == "Error" and lost["message"] == POD_DELETED  # Argo's words
    assert retried["phase"] == "Succeeded"
    assert _node(status, "tolerant")["type"] == "Retry"
    _wait_gone(pid)
    [survivor] = cluster.pods("tolerant")
    assert cluster.log(survivor.metadata.name) == "retried\n"


def test_the_missing_pod_of_a_pending_node_is_created_again(cluster: Cluster) -> None:
    # Argo's podReconciliation: only a node that was seen running errors with "pod deleted";
    # a Pending node whose pod is gone gets a new one (here, under the same name).
    script = "echo run; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done"
    cluster.submit(make_workflow("recreated", _container("main", script)))
    _stored_node(cluster, "recreated", "recreated", "Running")
    [old] = cluster.pods("recreated")
    old_pid = cluster.emulator.pod_pid(NS, old.metadata.name)
    assert old_pid is not None

    # As if the controller had not yet seen the pod run when it was deleted.
    cluster.emulator.stop_controller()
    pending = {"status": {"nodes": {"recreated": {"phase": "Pending"}}}}
    cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "recreated", pending)
    cluster.core.delete_namespaced_pod(old.metadata.name, NS)
    cluster.emulator.start_controller()

    def replacement() -> Any:
        return next(
            (p for p in cluster.pods("recreated") if p.metadata.uid != old.metadata.uid),
            None,
        )

    new = wait_until(replacement, "a new pod for the Pending node")
    assert new.metadata.name == old.metadata.name
    _wait_gone(old_pid)
    _stored_node(cluster, "recreated", "recreated", "Running")
    wait_until(lambda: cluster.log(new.metadata.name) == "run\n", "the new pod's first line")
    (cluster.pod_root(new.metadata.name) / "tmp" / "go").touch()
    status = cluster.wait_phase("recreated")["status"]
    assert status["phase"] == "Succeeded"
    assert cluster.log(new.metadata.name) == "run\ndone\n"


def test_a_deleted_workflow_takes_its_running_pods(cluster: Cluster) -> None:
    dag = {
        "name": "main",
        "dag": {"tasks": [{"name": "left", "template": "sleep"}, {"name": "right", "template": "sleep"}]},
    }
    cluster.submit(make_workflow("doomed-dag", dag, _container("sleep", "echo up; sleep 300")))
    left = _stored_node(cluster, "doomed-dag", "left", "Running")
    right = _stored_node(cluster, "doomed-dag", "right", "Running")
    pods = [_pod_of(cluster, "doomed-dag", node["id"]) for node in (left, right)]
    pids = [cluster.emulator.pod_pid(NS, pod.metadata.name) for pod in pods]
    assert all(pid is not None and process_alive(pid) for pid in pids)
    assert [cluster.log(pod.metadata.name) for pod in pods] == ["up\n", "up\n"]

    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "doomed-dag")
    assert cluster.pods("doomed-dag") == []
    for pid in pids:
        assert pid is not None
        _wait_gone(pid)


def test_stop_kills_the_running_pod_and_still_runs_the_exit_handler(cluster: Cluster) -> None:
    manifest = make_workflow(
        "stopped",
        _container("main", "echo up; sleep 300"),
        _container("cleanup", "echo cleaning up after {{workflow.status}}"),
    )
    manifest["spec"]["onExit"] = "cleanup"
    cluster.submit(manifest)
    _stored_node(cluster, "stopped", "stopped", "Running")
    pid = cluster.emulator.pod_pid(NS, "stopped")
    assert pid is not None

    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "stopped", {"spec": {"shutdown": "Stop"}}
    )
    status = cluster.wait_phase("stopped")["status"]
    assert status["phase"] == "Failed"
    assert status["message"] == "Stopped with strategy 'Stop'"
    main = status["nodes"]["stopped"]
    assert main["phase"] == "Failed" and main["message"] == "workflow shutdown with strategy:  Stop"
    handler = _node(status, "stopped.onExit")
    assert handler["phase"] == "Succeeded"
    _wait_gone(pid)
    assert cluster.log(_pod_name("stopped", handler)) == "cleaning up after Failed\n"


def test_pod_outcomes_travel_through_the_pod_object() -> None:
    request = PodRequest(
        node_id="wf-1",
        node_name="wf[0].a",
        pod_name="wf-a-1",
        workflow_name="wf",
        template_name="a",
        kind="script",
        main=ContainerSpec(name="main", image="python", argv=("python", "/argo/staging/script")),
        capture_result=True,
    )
    result = PodResult(
        exit_code=0,
        stdout="[1, 2]\n",
        parameters={"p": "v"},
        artifacts={"a": {"s3": {"key": "wf/wf-a-1/a"}}},
    )
    outcome = pod_outcome(request, result)
    assert outcome.outputs == {
        "exitCode": "0",
        "result": "[1, 2]\n",
        "parameters": [{"name": "p", "value": "v"}],
        "artifacts": [{"name": "a", "s3": {"key": "wf/wf-a-1/a"}}],
    }
    pod = {
        "metadata": {
            "name": "wf-a-1",
            "annotations": {
                "workflows.argoproj.io/node-id": "wf-1",
                "workflows.argoproj.io/outputs": json.dumps(dict(outcome.outputs or {})),
            },
        },
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": "main",
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": "2026-01-01T00:00:00Z",
                            "finishedAt": "2026-01-01T00:00:05Z",
                        }
                    },
                }
            ],
        },
    }
    back = pod_result(pod_view(pod))
    assert (back.exit_code, back.stdout, dict(back.parameters), dict(back.artifacts)) == (
        0,
        "[1, 2]\n",
        {"p": "v"},
        {"a": {"s3": {"key": "wf/wf-a-1/a"}}},
    )
    assert back.finished_at is not None and back.finished_at.second == 5
    timed_out = pod_outcome(request, PodResult(exit_code=-15, timed_out=True))
    assert timed_out.reason == "DeadlineExceeded"
