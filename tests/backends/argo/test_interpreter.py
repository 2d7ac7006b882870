"""The interpreter as a state machine: driven with a fake clock and fake pods, no processes."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from apps.backends.argo.interpreter import (
    Interpreter,
    Limits,
    PodRequest,
    PodResult,
    WorkflowRefused,
    node_id_for,
    run_workflow,
)
from tests.backends.argo.fake import START, Harness, nodes_by_display, ok, roundtrip, wf

DIAMOND = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: diamond}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: A, template: echo, arguments: {parameters: [{name: msg, value: A}]}}
      - name: B
        depends: A
        template: echo
        arguments: {parameters: [{name: msg, value: "{{tasks.A.outputs.result}}"}]}
      - {name: C, depends: A, template: echo, arguments: {parameters: [{name: msg, value: C}]}}
      - {name: D, depends: B && C, template: echo, arguments: {parameters: [{name: msg, value: D}]}}
  - name: echo
    inputs: {parameters: [{name: msg}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.msg}}"]}
"""


def test_a_dag_runs_in_dependency_order_with_argo_shaped_nodes() -> None:
    harness = Harness(Interpreter(wf(DIAMOND)))
    status = harness.run()
    assert status["phase"] == "Succeeded"
    assert [r.node_name for r in harness.started] == ["diamond.A", "diamond.B", "diamond.C", "diamond.D"]
    # B got A's stdout (captured because the DAG reads tasks.A.outputs.result).
    assert harness.started[1].main.argv == ("echo", "echo A")
    nodes = nodes_by_display(status)
    assert nodes["diamond"]["type"] == "DAG"
    assert nodes["A"]["id"] == node_id_for("diamond", "diamond.A")
    assert nodes["A"]["boundaryID"] == "diamond"
    assert nodes["A"]["templateName"] == "echo"
    assert nodes["A"]["outputs"] == {"exitCode": "0", "result": "echo A"}
    assert nodes["A"]["inputs"] == {"parameters": [{"name": "msg", "value": "A"}]}
    assert set(nodes["A"]["children"]) == {nodes["B"]["id"], nodes["C"]["id"]}
    assert nodes["B"]["children"] == [nodes["D"]["id"]]
    assert nodes["diamond"]["outboundNodes"] == [nodes["D"]["id"]]
    assert status["startedAt"] == "2024-01-02T03:04:05Z"


STEPS = """
metadata: {name: steps}
spec:
  entrypoint: main
  arguments: {parameters: [{name: who, value: world}]}
  templates:
  - name: main
    steps:
    - - {name: gen, template: gen}
    - - name: each
        template: echo
        arguments: {parameters: [{name: msg, value: "{{item}} {{workflow.parameters.who}}"}]}
        withParam: "{{steps.gen.outputs.parameters.list}}"
      - name: seq
        template: echo
        arguments: {parameters: [{name: msg, value: "n{{item}}"}]}
        withSequence: {start: "1", end: "2"}
      - name: never
        template: echo
        when: "{{steps.gen.outputs.parameters.list}} == nothing"
        arguments: {parameters: [{name: msg, value: x}]}
  - name: gen
    container: {image: busybox, command: [sh, -c, "echo"]}
    outputs: {parameters: [{name: list, valueFrom: {path: /tmp/list}}]}
  - name: echo
    inputs: {parameters: [{name: msg}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.msg}}"]}
"""


def test_steps_expand_with_param_and_sequence_and_skip_on_when() -> None:
    def decide(request: PodRequest) -> PodResult:
        if request.template_name == "gen":
            return PodResult(exit_code=0, parameters={"list": '["a", "b"]'})
        return ok(request)

    harness = Harness(Interpreter(wf(STEPS)), decide=decide)
    status = harness.run()
    assert status["phase"] == "Succeeded"
    messages = sorted(r.main.argv[1] for r in harness.started if r.template_name == "echo")
    assert messages == ["a world", "b world", "n1", "n2"]
    nodes = nodes_by_display(status)
    assert {"each(0:a)", "each(1:b)", "seq(0:1)", "seq(1:2)"} <= set(nodes)
    assert nodes["never"]["type"] == "Skipped"
    assert nodes["never"]["message"] == """when '["a", "b"] == nothing' evaluated false"""
    assert nodes["[0]"]["type"] == "StepGroup"
    assert nodes["gen"]["outputs"]["parameters"] == [
        {"name": "list", "value": '["a", "b"]', "valueFrom": {"path": "/tmp/list"}}
    ]


RETRY = """
metadata: {name: retry}
spec:
  entrypoint: flaky
  templates:
  - name: flaky
    retryStrategy:
      limit: "3"
      backoff: {duration: "10", factor: "2", maxDuration: "5m"}
    container: {image: busybox, command: [sh, -c, "exit 1"]}
"""


def test_retries_wait_for_their_backoff_on_the_clock() -> None:
    failures = iter([1, 1, 0])
    interpreter = Interpreter(wf(RETRY))
    harness = Harness(interpreter, decide=lambda r: PodResult(exit_code=next(failures)))
    status = harness.run()
    assert status["phase"] == "Succeeded"
    attempts = [r.node_name for r in harness.started]
    assert attempts == ["retry(0)", "retry(1)", "retry(2)"]
    nodes = nodes_by_display(status)
    assert nodes["retry"]["type"] == "Retry"
    assert nodes["retry"]["phase"] == "Succeeded"
    # Each attempt takes 1 s; the waits are 10 s, then 20 s (duration * factor ** n).
    second = nodes["retry(1)"]["startedAt"]
    third = nodes["retry(2)"]["startedAt"]
    assert second == "2024-01-02T03:04:16Z"
    assert third == "2024-01-02T03:04:37Z"


def test_a_backoff_is_not_cut_short_by_an_early_advance() -> None:
    interpreter = Interpreter(wf(RETRY))
    tick = interpreter.advance(START)
    (first,) = tick.start
    interpreter.pod_finished(first.node_id, PodResult(exit_code=1), START + timedelta(seconds=1))
    early = interpreter.advance(START + timedelta(seconds=5))
    assert early.start == ()
    assert early.wake_at == START + timedelta(seconds=11)
    retry_node = interpreter.status["nodes"][node_id_for("retry", "retry")]
    assert retry_node["message"] == "Backoff for 10 seconds"
    assert len(interpreter.advance(START + timedelta(seconds=11)).start) == 1


def test_retries_stop_at_the_limit_and_follow_the_policy() -> None:
    limited = Harness(Interpreter(wf(RETRY)), decide=lambda r: PodResult(exit_code=1))
    status = limited.run()
    assert status["phase"] == "Failed"
    assert len(limited.started) == 4  # the first try and three retries
    assert nodes_by_display(status)["retry"]["message"] == "No more retries left"

    on_error = wf(RETRY)
    on_error["spec"]["templates"][0]["retryStrategy"] = {"limit": 3, "retryPolicy": "OnError"}
    harness = Harness(Interpreter(on_error), decide=lambda r: PodResult(exit_code=2))
    assert harness.run()["phase"] == "Failed"
    assert len(harness.started) == 1  # a failure is not an error: no retry


EXIT = """
metadata: {name: exits}
spec:
  entrypoint: fail
  onExit: report
  templates:
  - name: fail
    container: {image: busybox, command: [sh, -c, "exit 3"]}
  - name: report
    container: {image: busybox, command: [echo, "{{workflow.status}} {{workflow.name}}"]}
"""


def test_the_exit_handler_sees_the_final_workflow_status() -> None:
    harness = Harness(Interpreter(wf(EXIT)), decide=lambda r: ok(r) if r.on_exit else PodResult(exit_code=3))
    status = harness.run()
    assert status["phase"] == "Failed"
    assert status["message"] == "Error (exit code 3)"
    report = harness.started[-1]
    assert report.on_exit
    assert report.main.argv == ("echo", "Failed exits")
    exit_node = status["nodes"][node_id_for("exits", "exits.onExit")]
    assert exit_node["phase"] == "Succeeded"
    assert exit_node["nodeFlag"] == {"hooked": True}


def test_a_failing_exit_handler_fails_a_successful_workflow() -> None:
    spec = wf(EXIT)
    harness = Harness(Interpreter(spec), decide=lambda r: PodResult(exit_code=1) if r.on_exit else ok(r))
    status = harness.run()
    assert status["phase"] == "Failed"


def _run_with_restart(stop_after: int) -> dict[str, object]:
    """Run DIAMOND, 'restarting the controller' after ``stop_after`` advances."""
    first = Interpreter(wf(DIAMOND), uid="uid-1")
    harness = Harness(first)
    for _ in range(stop_after):
        harness.step()
    saved = roundtrip(first.status)
    resumed = Interpreter(wf(DIAMOND), uid="uid-1", status=saved)
    rest = Harness(resumed, now=harness.now)
    rest.run()
    return resumed.status


def test_resuming_from_a_persisted_status_gives_the_same_final_status() -> None:
    straight = Harness(Interpreter(wf(DIAMOND), uid="uid-1"))
    expected = straight.run()
    for stop_after in (1, 2, 3):
        assert _run_with_restart(stop_after) == expected


def test_a_pod_running_at_restart_is_handed_out_again_or_reattached() -> None:
    first = Interpreter(wf(DIAMOND))
    (pod_a,) = first.advance(START).start
    saved = roundtrip(first.status)
    assert saved["nodes"][pod_a.node_id]["phase"] == "Pending"

    rerun = Interpreter(wf(DIAMOND), status=saved)
    again = rerun.advance(START + timedelta(seconds=5)).start
    assert [r.node_id for r in again] == [pod_a.node_id]
    assert again[0].main == pod_a.main

    attached = Interpreter(wf(DIAMOND), status=saved, running=[pod_a.node_id])
    assert attached.advance(START + timedelta(seconds=5)).start == ()
    assert attached.pod_request(pod_a.node_id) == pod_a
    attached.pod_finished(pod_a.node_id, PodResult(exit_code=0, stdout="A\n"), START + timedelta(seconds=6))
    assert [r.node_name for r in attached.advance(START + timedelta(seconds=6)).start] == [
        "diamond.B",
        "diamond.C",
    ]


PARALLEL = """
metadata: {name: par}
spec:
  entrypoint: main
  parallelism: 2
  templates:
  - name: main
    steps:
    - - {name: s, template: echo, withItems: [1, 2, 3, 4, 5]}
  - name: echo
    container: {image: busybox, command: [echo, "{{pod.name}}"]}
"""


def test_workflow_parallelism_bounds_running_pods() -> None:
    interpreter = Interpreter(wf(PARALLEL))
    tick = interpreter.advance(START)
    assert len(tick.start) == 2
    assert interpreter.advance(START).start == ()
    interpreter.pod_finished(tick.start[0].node_id, PodResult(exit_code=0), START)
    assert len(interpreter.advance(START).start) == 1
    harness = Harness(Interpreter(wf(PARALLEL)))
    assert harness.run()["phase"] == "Succeeded"
    assert len(harness.started) == 5


def test_terminate_stops_running_pods_and_fails_the_workflow() -> None:
    interpreter = Interpreter(wf(PARALLEL))
    running = interpreter.advance(START).start
    interpreter.terminate()
    tick = interpreter.advance(START + timedelta(seconds=1))
    assert set(tick.stop) >= {r.node_id for r in running}
    assert tick.start == ()
    assert interpreter.status["phase"] == "Failed"
    assert interpreter.status["message"] == "Stopped with strategy 'Terminate'"


DEADLINE = """
metadata: {name: late}
spec:
  entrypoint: sleep
  activeDeadlineSeconds: 30
  templates:
  - name: sleep
    container: {image: busybox, command: [sleep, "3600"]}
"""


def test_the_workflow_deadline_fails_a_running_pod() -> None:
    interpreter = Interpreter(wf(DEADLINE))
    tick = interpreter.advance(START)
    (pod,) = tick.start
    assert tick.wake_at == START + timedelta(seconds=30)
    assert pod.deadline_seconds == 30
    assert interpreter.advance(START + timedelta(seconds=29)).stop == ()
    late = interpreter.advance(START + timedelta(seconds=31))
    assert late.stop == (pod.node_id,)
    assert interpreter.status["phase"] == "Failed"
    assert interpreter.status["nodes"][pod.node_id]["message"] == "Step exceeded its deadline"


SUSPEND = """
metadata: {name: nap}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: wait, template: wait}
    - - {name: after, template: echo}
  - name: wait
    suspend: {duration: "1m"}
  - name: echo
    container: {image: busybox, command: [echo, done]}
"""


def test_suspend_with_a_duration_resumes_by_itself() -> None:
    interpreter = Interpreter(wf(SUSPEND))
    tick = interpreter.advance(START)
    assert tick.start == ()
    assert tick.wake_at == START + timedelta(minutes=1)
    assert interpreter.advance(START + timedelta(seconds=59)).start == ()
    after = interpreter.advance(START + timedelta(minutes=1))
    assert [r.node_name for r in after.start] == ["nap[1].after"]
    nodes = nodes_by_display(interpreter.status)
    assert nodes["wait"]["type"] == "Suspend"
    assert nodes["wait"]["phase"] == "Succeeded"


CONTINUE = """
metadata: {name: cont}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: A, template: fail, continueOn: {failed: true}}
      - {name: B, depends: A, template: ok}
      - {name: C, depends: A.Failed, template: ok}
      - {name: D, depends: A.Succeeded, template: ok}
  - name: fail
    container: {image: busybox, command: [sh, -c, "exit 1"]}
  - name: ok
    container: {image: busybox, command: ["true"]}
"""


def _fail_template(request: PodRequest) -> PodResult:
    return PodResult(exit_code=1 if request.template_name == "fail" else 0)


def test_continue_on_failed_lets_dependents_run() -> None:
    status = Harness(Interpreter(wf(CONTINUE)), decide=_fail_template).run()
    nodes = nodes_by_display(status)
    assert nodes["A"]["phase"] == "Failed"
    assert nodes["B"]["phase"] == "Succeeded"
    assert nodes["C"]["phase"] == "Succeeded"
    assert nodes["D"]["phase"] == "Omitted"
    assert nodes["D"]["message"] == "omitted: depends condition not met"
    # As in Argo, an omitted leaf inherits its branch's phase (A failed): the DAG fails.
    assert status["phase"] == "Failed"

    without_d = wf(CONTINUE)
    without_d["spec"]["templates"][0]["dag"]["tasks"].pop()
    assert Harness(Interpreter(without_d), decide=_fail_template).run()["phase"] == "Succeeded"


def test_parameters_override_arguments_and_enum_is_checked() -> None:
    spec = wf(STEPS)
    spec["spec"]["arguments"]["parameters"][0]["enum"] = ["world", "moon"]
    Interpreter(spec, parameters={"who": "moon"})
    with pytest.raises(Exception, match="not one of"):
        Interpreter(spec, parameters={"who": "mars"})
    with pytest.raises(Exception, match="no parameter 'whom'"):
        Interpreter(spec, parameters={"whom": "x"})


def test_loops_are_bounded() -> None:
    spec = wf(PARALLEL)
    spec["spec"]["templates"][0]["steps"][0][0]["withItems"] = list(range(50))
    harness = Harness(Interpreter(spec, limits=Limits(max_items=10)))
    status = harness.run()
    assert status["phase"] == "Failed"
    group = nodes_by_display(status)["[0]"]
    assert group["phase"] == "Error"
    assert "withItems has 50 items; at most 10 are allowed" in group["message"]


def test_recursion_is_bounded() -> None:
    spec = wf(
        """
metadata: {name: rec}
spec:
  entrypoint: again
  templates:
  - name: again
    steps:
    - - {name: deeper, template: again}
"""
    )
    status = Harness(Interpreter(spec, limits=Limits(max_depth=5))).run()
    assert status["phase"] in ("Failed", "Error")
    assert any("Maximum recursion depth exceeded" in n.get("message", "") for n in status["nodes"].values())


@pytest.mark.parametrize(
    ("template", "field", "reason"),
    [
        (
            {"resource": {"action": "create", "manifest": "x"}},
            "resource",
            "create, patch or delete Kubernetes",
        ),
        (
            {"daemon": True, "container": {"image": "nginx", "command": ["nginx"]}},
            "daemon",
            "daemon templates",
        ),
        (
            {"container": {"image": "a", "command": ["a"]}, "sidecars": [{"name": "s", "image": "b"}]},
            "sidecars",
            "sidecar",
        ),
        ({"suspend": {}}, "suspend", "waits for 'argo resume'"),
        ({"http": {"url": "http://x"}}, "http", "http templates"),
        (
            {
                "container": {
                    "image": "a",
                    "command": ["a"],
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                }
            },
            "container.volumeMounts[0]",
            "is not an emptyDir volume",
        ),
        (
            {
                "container": {"image": "a", "command": ["a"]},
                "inputs": {"artifacts": [{"name": "a", "path": "/a", "git": {"repo": "x"}}]},
            },
            "inputs.artifacts[0].git",
            "fetched from git",
        ),
        (
            {
                "container": {
                    "image": "a",
                    "command": ["a"],
                    "env": [{"name": "P", "valueFrom": {"secretKeyRef": {}}}],
                }
            },
            "container.env[0].valueFrom",
            "comes from a secretKeyRef",
        ),
        (
            {
                "container": {
                    "image": "a",
                    "command": ["a"],
                    "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                }
            },
            "container.env[0].valueFrom.fieldRef",
            "'NODE': field path 'spec.nodeName' has no value outside a Kubernetes pod",
        ),
        (
            {"container": {"image": "a", "command": ["echo", "{{=sprig.date('2006', 'x')}}"]}},
            "container.command[1]",
            "function 'sprig.date' is not supported",
        ),
    ],
)
def test_what_needs_a_cluster_is_refused_before_anything_runs(
    template: dict[str, object], field: str, reason: str
) -> None:
    spec = {"metadata": {"name": "r"}, "spec": {"entrypoint": "t", "templates": [{"name": "t", **template}]}}
    with pytest.raises(WorkflowRefused) as caught:
        Interpreter(spec)
    assert caught.value.template == "t"
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_field_ref_variables_read_the_pods_own_metadata() -> None:
    def ref(path: str) -> dict[str, object]:
        return {"fieldRef": {"fieldPath": path}}

    spec = wf(
        """
metadata: {name: meta, namespace: team-a}
spec:
  entrypoint: t
  podMetadata: {labels: {shared: wf, over: wf}, annotations: {note: wf}}
  templates:
  - name: t
    metadata: {labels: {over: template}}
    container: {image: a, command: [a], env: [{name: PLAIN, value: p}]}
"""
    )
    spec["spec"]["templates"][0]["container"]["env"] += [
        {"name": "SHARED", "valueFrom": ref("metadata.labels['shared']")},
        {"name": "OVER", "valueFrom": ref("metadata.labels['over']")},
        {"name": "NOTE", "valueFrom": ref("metadata.annotations['note']")},
        {"name": "ABSENT", "valueFrom": ref("metadata.labels['absent']")},
        {"name": "NAME", "valueFrom": ref("metadata.name")},
        {"name": "NS", "valueFrom": ref("metadata.namespace")},
    ]
    harness = Harness(Interpreter(spec))
    assert harness.run()["phase"] == "Succeeded"
    (request,) = harness.started
    assert dict(request.main.env) == {
        "PLAIN": "p",
        "SHARED": "wf",
        "OVER": "template",
        "NOTE": "wf",
        "ABSENT": "",
        "NAME": request.pod_name,
        "NS": "team-a",
    }


def test_spec_level_refusals_name_the_field() -> None:
    spec = wf(DIAMOND)
    spec["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "w"}}]
    with pytest.raises(WorkflowRefused, match="volumeClaimTemplates create PersistentVolumeClaims") as caught:
        Interpreter(spec)
    assert caught.value.field == "spec.volumeClaimTemplates"
    spec = wf(DIAMOND)
    spec["spec"]["templates"][0]["dag"]["tasks"][0] = {
        "name": "A",
        "templateRef": {"name": "lib", "template": "x"},
    }
    with pytest.raises(WorkflowRefused, match="not part of the uploaded bundle"):
        Interpreter(spec)


def test_template_ref_into_the_bundle() -> None:
    library = wf(
        """
kind: WorkflowTemplate
metadata: {name: lib}
spec:
  templates:
  - name: hello
    inputs: {parameters: [{name: who}]}
    container: {image: busybox, command: [echo, "hi {{inputs.parameters.who}}"]}
"""
    )
    spec = wf(
        """
metadata: {name: user}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: call
        templateRef: {name: lib, template: hello}
        arguments: {parameters: [{name: who, value: you}]}
"""
    )
    harness = Harness(Interpreter(spec, templates=[library]))
    status = harness.run()
    assert status["phase"] == "Succeeded"
    assert harness.started[0].main.argv == ("echo", "hi you")
    call = nodes_by_display(status)["call"]
    assert call["templateRef"] == {"name": "lib", "template": "hello"}
    assert call["templateScope"] == "namespaced/lib"


class _ThreadedRunner:
    """A pod runner for the real driver: succeeds at once, remembers what it ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def run(self, request: PodRequest, cancel: threading.Event) -> PodResult:
        self.ran.append(request.node_name)
        return ok(request)


def test_run_workflow_drives_the_interpreter_to_the_end() -> None:
    runner = _ThreadedRunner()
    seen: list[str] = []
    status = run_workflow(wf(DIAMOND), runner, on_change=lambda s: seen.append(s["phase"]))
    assert status["phase"] == "Succeeded"
    assert sorted(runner.ran) == ["diamond.A", "diamond.B", "diamond.C", "diamond.D"]
    assert seen[0] == "Running" and seen[-1] == "Succeeded"
