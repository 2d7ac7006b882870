"""What the Argo compiler emits for each KFP feature, asserted on the Workflow's structure."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from apps.backends.argo.compiler import ABSENT, ArgoSettings, CompileError, compile_workflow, workflow_name
from apps.importers.argo import validate_argo
from tests.backends.argo.helpers import (
    RUN_ID,
    compile_corpus,
    compile_ir,
    dag_task,
    driver_config,
    ir_with_platform,
    role,
    templates,
)
from tests.engine.corpus import container_executor, minimal_ir
from tests.paths import KFP_VALID, missing

corpus = pytest.mark.skipif(not KFP_VALID.is_dir(), reason=missing(KFP_VALID))
TAG = "{" + "{"


def _t(expr: str) -> str:
    return TAG + expr + "}" + "}"


def _valid(workflow: dict[str, Any]) -> dict[str, Any]:
    validate_argo(workflow, filename=None, locate=None)
    return workflow


# -- the Workflow itself -------------------------------------------------------------------


def test_the_workflow_is_named_after_the_run_and_compiles_identically_twice() -> None:
    first = compile_ir(minimal_ir())
    second = compile_ir(minimal_ir())
    assert first == second
    assert first["metadata"]["name"] == f"canal-{RUN_ID}" == workflow_name(RUN_ID)
    assert first["metadata"]["labels"]["canal.io/run-id"] == RUN_ID
    assert first["apiVersion"] == "argoproj.io/v1alpha1" and first["kind"] == "Workflow"
    _valid(first)


def test_hostile_run_ids_and_names_become_bounded_dns_labels() -> None:
    name = workflow_name("Run/../" + "x" * 300)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63
    ir = minimal_ir()
    tasks = ir["root"]["dag"]["tasks"]
    hostile = "A Very Long Task Name With Spaces And ÜNICODE " * 3
    tasks[hostile] = tasks.pop("a")
    tasks["b"]["dependentTasks"] = [hostile]
    tasks["b"]["inputs"]["parameters"]["y"]["taskOutputParameter"]["producerTask"] = hostile
    workflow = _valid(compile_ir(ir))
    for template in workflow["spec"]["templates"]:
        assert re.fullmatch(r"[a-z][-a-z0-9]*", template["name"]) and len(template["name"]) <= 63
        for task in (template.get("dag") or {}).get("tasks", []):
            assert re.fullmatch(r"[a-z][-a-z0-9]*", task["name"]) and len(task["name"]) <= 63


def test_text_argo_would_substitute_is_refused_or_routed_through_the_driver() -> None:
    ir = minimal_ir()
    ir["deploymentSpec"]["executors"]["exec-a"] = container_executor(
        image="alpine", command=["echo", _t("workflow.name"), "plain"]
    )
    workflow = compile_ir(ir)
    main = role(workflow, "executor", "root/a")["container"]
    # The user's literal {{workflow.name}} reaches the program verbatim: the driver renders it.
    assert main["command"][0] == "echo" and main["command"][2] == "plain"
    assert main["command"][1] == _t("inputs.parameters.a0")
    assert driver_config(role(workflow, "driver", "root/a"))["render"]["a0"] == _t("workflow.name")
    bad = minimal_ir()
    bad["deploymentSpec"]["executors"]["exec-a"]["container"]["image"] = "alpine:" + _t("x")
    with pytest.raises(CompileError, match="image"):
        compile_ir(bad)


def test_bad_input_is_a_compile_error_naming_the_field() -> None:
    with pytest.raises(CompileError) as exc:
        compile_ir(minimal_ir(), parameters={"n": "seven"})
    assert "n" in str(exc.value) and "root.inputDefinitions.parameters" in str(exc.value)
    with pytest.raises(CompileError, match="unknown parameter"):
        compile_ir(minimal_ir(), parameters={"nope": 1})
    with pytest.raises(CompileError, match="s3:// or minio://"):
        compile_ir(minimal_ir(), pipeline_root="/var/lib/canal/artifacts")
    broken = minimal_ir()
    broken["root"]["dag"]["tasks"]["b"]["componentRef"]["name"] = "comp-missing"
    with pytest.raises(CompileError, match="comp-missing"):
        compile_ir(broken)


# -- parameters and the command line -------------------------------------------------------


def test_a_task_output_reaches_its_consumer_through_the_drivers_recipe() -> None:
    workflow = _valid(compile_ir(minimal_ir(), parameters={"n": 5}))
    producer = driver_config(role(workflow, "driver", "root/a"))
    assert producer["params"]["x"] == ["c", 5]  # a pipeline parameter is known when compiling
    consumer = driver_config(role(workflow, "driver", "root/b"))
    out = consumer["params"]["y"]
    assert out[0] == "out" and out[1] == {"task": "a", "key": "out", "type": "NUMBER_INTEGER"}
    leaves = dag_task(workflow, "root", "b-drv")["arguments"]["parameters"]
    values = [p["value"] for p in leaves]
    assert values[out[2]] == _t("tasks.a.outputs.parameters.o-out")
    assert values[out[3]] == _t("tasks.a.outputs.parameters.executor-output")
    assert values[out[4]] == _t("tasks.a.outputs.parameters.ran")
    # Dependencies sit on the driver, and the executor runs after its driver.
    assert dag_task(workflow, "root", "b-drv")["depends"] == "a.Succeeded"
    assert dag_task(workflow, "root", "b")["depends"] == "b-drv.Succeeded"
    # Every output a skipped step never writes reads as absent.
    outputs = role(workflow, "executor", "root/a")["outputs"]["parameters"]
    assert {o["name"]: o["valueFrom"]["default"] for o in outputs} == {
        "o-out": ABSENT,
        "executor-output": ABSENT,
        "ran": ABSENT,
    }


def test_placeholders_are_rendered_by_the_driver_and_literals_stay_in_the_manifest() -> None:
    ir = minimal_ir()
    ir["deploymentSpec"]["executors"]["exec-a"] = {
        "container": {
            "image": "python:3.11",
            "command": ["sh", "-c", "echo $0 > $1"],
            "args": ["{{$.inputs.parameters['x']}}", "{{$.outputs.parameters['out'].output_file}}"],
        }
    }
    workflow = compile_ir(ir)
    main = role(workflow, "executor", "root/a")["container"]
    assert main["command"] == ["sh", "-c", "echo $0 > $1"]
    assert main["args"] == [_t("inputs.parameters.a0"), _t("inputs.parameters.a1")]
    config = driver_config(role(workflow, "driver", "root/a"))
    assert config["outputs"]["params"] == {"out": "/canal/outputs/p-out"}
    assert config["render"] == {
        "a0": "{{$.inputs.parameters['x']}}",
        "a1": ir["deploymentSpec"]["executors"]["exec-a"]["container"]["args"][1],
    }


@pytest.mark.parametrize("passed", [True, False])
def test_ifpresent_is_decided_when_compiling_and_checked_by_the_driver(passed: bool) -> None:
    ir = minimal_ir()
    ir["components"]["comp-a"]["inputDefinitions"]["parameters"]["flag"] = {
        "parameterType": "STRING",
        "isOptional": True,
    }
    ir["deploymentSpec"]["executors"]["exec-a"]["container"]["args"] = [
        '{"IfPresent": {"InputName": "flag", "Then": ["--flag", "{{$.inputs.parameters[\'flag\']}}"], '
        '"Else": ["--no-flag"]}}'
    ]
    if passed:
        ir["root"]["dag"]["tasks"]["a"]["inputs"]["parameters"]["flag"] = {"runtimeValue": {"constant": "on"}}
    workflow = _valid(compile_ir(ir))
    args = role(workflow, "executor", "root/a")["container"]["args"]
    config = driver_config(role(workflow, "driver", "root/a"))
    assert config["presence"] == {"flag": passed}
    if passed:
        assert args == ["--flag", _t("inputs.parameters.a0")]
        assert config["render"]["a0"] == "{{$.inputs.parameters['flag']}}"
    else:
        assert args == ["--no-flag"]


# -- conditions, loops, OneOf, Collected -----------------------------------------------------


@corpus
def test_a_condition_is_evaluated_by_the_driver_and_skips_the_group() -> None:
    workflow = _valid(compile_corpus("critical/flip_coin.yaml"))
    gates = [
        t for t in workflow["spec"]["templates"] if (t.get("script") and driver_config(t).get("condition"))
    ]
    assert gates
    config = driver_config(gates[0])
    tree, text = config["condition"]
    assert tree[0] in ("op", "not", "and") and "inputs.parameter_values" in text
    conditional = [
        task
        for template in workflow["spec"]["templates"]
        for task in (template.get("dag") or {}).get("tasks", [])
        if "condition" in task.get("when", "")
    ]
    assert conditional
    for task in conditional:
        name = task["name"]
        assert task["when"] == _t(f"tasks.{name}-drv.outputs.parameters.condition") + " == true"
        assert task["depends"] == f"{task['name']}-drv.Succeeded"


@corpus
def test_parallelism_limit_sets_the_loop_templates_parallelism() -> None:
    workflow = _valid(compile_corpus("pipeline_with_parallelfor_parallelism.yaml"))
    loop = role(workflow, "loop", "root/for-loop-1")
    assert loop["parallelism"] == 2
    assert loop["dag"]["tasks"][0]["withParam"] == _t("inputs.parameters.items")
    unlimited = [
        t for t in workflow["spec"]["templates"] if t["metadata"]["annotations"]["canal.io/role"] == "loop"
    ]
    assert sorted(t.get("parallelism", 0) for t in unlimited).count(0) >= 1


def test_a_static_loop_needs_no_driver_and_items_are_lossless() -> None:
    ir = minimal_ir()
    ir["components"]["comp-loop"] = {
        "dag": {
            "tasks": {
                "b": {
                    "componentRef": {"name": "comp-b"},
                    "taskInfo": {"name": "b"},
                    "inputs": {"parameters": {"y": {"componentInputParameter": "item"}}},
                }
            }
        },
        "inputDefinitions": {"parameters": {"item": {"parameterType": "NUMBER_INTEGER"}}},
    }
    ir["root"]["dag"]["tasks"] = {
        "loop": {
            "componentRef": {"name": "comp-loop"},
            "taskInfo": {"name": "loop"},
            "parameterIterator": {"itemInput": "item", "items": {"raw": '[1, 2, "{{workflow.name}}"]'}},
            "iteratorPolicy": {"parallelismLimit": 1},
        }
    }
    workflow = _valid(compile_ir(ir))
    loop = role(workflow, "loop", "root/loop")
    assert loop["parallelism"] == 1
    items = loop["dag"]["tasks"][0]["withItems"]
    assert [i["i"] for i in items] == [0, 1, 2]
    assert [json.loads(i["v"]) for i in items] == [1, 2, "{{workflow.name}}"]
    assert TAG not in json.dumps(items)  # braces escaped: Argo leaves the item alone
    assert not any(t["name"] == "loop-drv" for t in templates(workflow)["root"]["dag"]["tasks"])
    recipe = driver_config(role(workflow, "driver", "root/loop/b"))["params"]["y"]
    assert recipe[0] == "item"


@corpus
def test_collected_outputs_are_read_from_argos_aggregation() -> None:
    workflow = _valid(compile_corpus("critical/collected_parameters.yaml"))
    found = [
        recipe
        for t in workflow["spec"]["templates"]
        if t.get("script")
        for recipe in driver_config(t).get("params", {}).values()
        if recipe[0] == "collect"
    ] + [
        recipe
        for t in workflow["spec"]["templates"]
        if t.get("script")
        for group in driver_config(t).get("groups", {}).values()
        for recipe in group.get("params", {}).values()
        if recipe[0] == "collect"
    ]
    assert found
    # The loop template exposes each iteration's values, which Argo aggregates into a list.
    loops = [
        t for t in workflow["spec"]["templates"] if t["metadata"]["annotations"]["canal.io/role"] == "loop"
    ]
    outputs = [o for loop in loops for o in loop.get("outputs", {}).get("parameters", [])]
    assert outputs and all(o["valueFrom"]["parameter"].startswith(TAG + "tasks.it.outputs") for o in outputs)


@corpus
def test_collected_artifacts_are_downloaded_as_the_loops_directory() -> None:
    workflow = _valid(compile_corpus("collected_artifacts.yaml"))
    prefixed = [
        t for t in workflow["spec"]["templates"] if t.get("script") and driver_config(t).get("prefix_slots")
    ]
    assert prefixed
    slot, spec = next(iter(driver_config(prefixed[0])["prefix_slots"].items()))
    assert spec["base"].startswith("v2/artifacts/collected-artifact-pipeline/")
    executor = templates(workflow)["ex-" + prefixed[0]["name"].removeprefix("drv-")]
    inputs = {a["name"]: a for a in executor["inputs"]["artifacts"]}
    keyed = [a for a in inputs.values() if a.get("s3", {}).get("key") == _t(f"inputs.parameters.{slot}")]
    assert keyed and keyed[0]["optional"]


@corpus
def test_oneof_parameters_pick_the_branch_that_ran() -> None:
    workflow = _valid(compile_corpus("critical/parameter_oneof.yaml"))
    oneofs = [
        recipe
        for t in workflow["spec"]["templates"]
        if t.get("script")
        for recipe in driver_config(t).get("params", {}).values()
        if recipe[0] == "oneof"
    ]
    assert oneofs and all(len(r[1]) >= 2 for r in oneofs)


@corpus
def test_oneof_artifacts_are_optional_on_both_sides() -> None:
    workflow = _valid(compile_corpus("critical/if_else_with_oneof_artifacts.yaml"))
    for template in workflow["spec"]["templates"]:
        for art in (template.get("outputs") or {}).get("artifacts", []):
            if "from" in art:
                assert art["optional"] is True
        for task in (template.get("dag") or {}).get("tasks", []):
            for art in (task.get("arguments") or {}).get("artifacts", []):
                assert art["optional"] is True


# -- exit handlers, ignore_upstream_failure -----------------------------------------------------


@corpus
def test_an_exit_task_runs_whatever_the_body_did_and_the_dag_still_fails_like_the_engine() -> None:
    workflow = _valid(compile_corpus("critical/pipeline_with_input_status_state.yaml"))
    root = templates(workflow)["root"]
    assert root["dag"]["failFast"] is False
    exit_driver = dag_task(workflow, "root", "echo-state-drv")
    assert exit_driver["depends"] == (
        "(exit-handler-1.Succeeded || exit-handler-1.Failed || exit-handler-1.Errored || "
        "exit-handler-1.Skipped || exit-handler-1.Omitted)"
    )
    status = driver_config(role(workflow, "driver", "root/echo-state"))["params"]["status"]
    assert status[0] == "status" and status[1] == {"task": "exit-handler-1"}
    values = [p["value"] for p in exit_driver["arguments"]["parameters"]]
    assert values[status[2]] == _t("tasks.exit-handler-1.status")
    check = dag_task(workflow, "root", "canal-check")
    assert "exit-handler-1.Failed" in check["depends"] and "echo-state.Failed" in check["depends"]


@corpus
def test_ignore_upstream_failure_depends_on_any_outcome() -> None:
    workflow = _valid(compile_corpus("pipeline_with_task_using_ignore_upstream_failure.yaml"))
    consumer = dag_task(workflow, "root", "print-op-drv")
    assert "fail-op.Failed" in consumer["depends"] and "fail-op.Omitted" in consumer["depends"]


# -- retries, deadlines, caching ----------------------------------------------------------------


@corpus
def test_a_retry_policy_becomes_argos_retry_strategy_with_a_capped_backoff() -> None:
    workflow = _valid(compile_corpus("critical/pipeline_with_retry.yaml"))
    strategy = role(workflow, "executor", "root/add")["retryStrategy"]
    assert strategy == {"limit": 3, "retryPolicy": "Always"}  # backoffDuration 0s: no backoff
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["a"]["retryPolicy"] = {
        "maxRetryCount": 2,
        "backoffDuration": "5s",
        "backoffFactor": 1.5,
        "backoffMaxDuration": "60s",
    }
    strategy = role(_valid(compile_ir(ir)), "executor", "root/a")["retryStrategy"]
    assert strategy == {
        "limit": 2,
        "retryPolicy": "Always",
        "backoff": {"duration": "5s", "factor": "1.5", "cap": "60s"},
    }


def test_a_step_timeout_becomes_the_pods_deadline() -> None:
    platform = ir_with_platform("exec-a", {"activeDeadlineSeconds": "90"})
    workflow = _valid(compile_ir(minimal_ir(), platform))
    assert role(workflow, "executor", "root/a")["activeDeadlineSeconds"] == 90
    assert "activeDeadlineSeconds" not in role(workflow, "executor", "root/b")


def test_caching_is_argo_memoization_keyed_by_the_drivers_fingerprint() -> None:
    ir = minimal_ir()
    ir["root"]["dag"]["tasks"]["a"]["cachingOptions"] = {"enableCache": True}
    workflow = _valid(compile_ir(ir))
    memo = role(workflow, "executor", "root/a")["memoize"]
    assert memo["key"] == _t("inputs.parameters.cache-key")
    assert memo["cache"] == {"configMap": {"name": "canal-step-cache"}}
    args = {p["name"]: p["value"] for p in dag_task(workflow, "root", "a")["arguments"]["parameters"]}
    assert args["cache-key"] == _t("tasks.a-drv.outputs.parameters.cache-key")
    assert driver_config(role(workflow, "driver", "root/a"))["cache"]["enabled"] is True
    assert "memoize" not in role(workflow, "executor", "root/b")
    off = compile_ir(ir, enable_caching=False)
    assert "memoize" not in role(off, "executor", "root/a")
    on = compile_ir(minimal_ir(), enable_caching=True)
    assert "memoize" in role(on, "executor", "root/b")


# -- artifacts and importers ---------------------------------------------------------------------


@corpus
def test_outputs_are_uploaded_at_canals_layout_and_passed_on_with_from() -> None:
    workflow = _valid(compile_corpus("critical/pythonic_artifacts_test_pipeline.yaml"))
    producer = role(workflow, "executor", "root/gen-data")
    [upload] = producer["outputs"]["artifacts"]
    assert upload["path"] == "/canal/outputs" and upload["archive"] == {"none": {}} and upload["optional"]
    assert upload["s3"] == {
        "key": f"v2/artifacts/pythonic-artifacts-test/{RUN_ID}/gen-data/{_t('inputs.parameters.keydir')}"
    }
    consumer = dag_task(workflow, "root", "train-model")
    [art] = consumer["arguments"]["artifacts"]
    assert art["from"] == _t("tasks.gen-data.outputs.artifacts.outputs") and art["optional"]


def test_inline_artifact_locations_carry_the_configured_repository() -> None:
    ir = minimal_ir()
    ir["components"]["comp-a"]["outputDefinitions"]["artifacts"] = {
        "model": {"artifactType": {"schemaTitle": "system.Model"}}
    }
    settings = ArgoSettings(
        artifact_repository="inline", s3_endpoint="s3.example:9000", s3_credentials_secret="creds"
    )
    workflow = _valid(compile_ir(ir, settings=settings, pipeline_root="s3://bucket/root"))
    s3 = role(workflow, "executor", "root/a")["outputs"]["artifacts"][0]["s3"]
    assert s3["endpoint"] == "s3.example:9000" and s3["bucket"] == "bucket"
    assert s3["accessKeySecret"] == {"name": "creds", "key": "accesskey"}
    assert s3["key"].startswith(f"root/mini/{RUN_ID}/a/")
    with pytest.raises(CompileError, match="bucket 'other'"):
        compile_ir(ir, settings=ArgoSettings(s3_bucket="other"), pipeline_root="s3://bucket/root")


@corpus
def test_an_importer_is_a_driver_and_its_artifact_is_fetched_by_key() -> None:
    workflow = _valid(compile_corpus("pipeline_with_importer.yaml"))
    importer = role(workflow, "importer", "root/importer")
    assert driver_config(importer)["mode"] == "importer"
    assert {o["name"] for o in importer["outputs"]["parameters"]} >= {"artifact", "bucket", "key", "url"}
    consumers = [
        t
        for t in workflow["spec"]["templates"]
        if t.get("container") and any("gcs" in a for a in t["inputs"].get("artifacts", []))
    ]
    assert consumers  # the sample imports from gs://
    gcs = next(a["gcs"] for a in consumers[0]["inputs"]["artifacts"] if "gcs" in a)
    assert gcs["bucket"].startswith(TAG + "inputs.parameters.") and gcs["key"].startswith(
        TAG + "inputs.parameters."
    )


# -- the Kubernetes platform spec ----------------------------------------------------------------


@corpus
def test_a_toleration_in_the_platform_spec_appears_on_the_pod() -> None:
    workflow = _valid(compile_corpus("gpu-scheduling/nvidia_gpu_scheduling_check.yaml"))
    template = role(workflow, "executor", "root/verify-gpu-scheduled")
    assert template["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


@corpus
def test_pod_labels_annotations_and_field_path_env() -> None:
    workflow = _valid(compile_corpus("critical/pipeline_with_pod_metadata.yaml"))
    executors = [
        t
        for t in workflow["spec"]["templates"]
        if t["metadata"]["annotations"]["canal.io/role"] == "executor"
    ]
    labelled = [t for t in executors if t["metadata"].get("labels")]
    assert labelled
    assert any(k.startswith("task-annotation") for t in executors for k in t["metadata"]["annotations"])
    env = [
        e for t in executors for e in t["container"].get("env", []) if "fieldRef" in e.get("valueFrom", {})
    ]
    assert env and env[0]["valueFrom"]["fieldRef"]["fieldPath"].startswith("metadata.")


@corpus
def test_secrets_from_a_pipeline_parameter_are_resolved_when_compiling() -> None:
    workflow = _valid(
        compile_corpus("pipeline_with_secret_as_volume.yaml", parameters={"secret_param": "my-secret"})
    )
    template = next(
        t for t in workflow["spec"]["templates"] if any("secret" in v for v in t.get("volumes", []))
    )
    secret_volume = next(v for v in template["volumes"] if "secret" in v)
    assert secret_volume["secret"]["secretName"] == "my-secret"
    mount = next(m for m in template["container"]["volumeMounts"] if m["name"] == secret_volume["name"])
    assert mount["mountPath"].startswith("/")


def test_secret_and_config_map_env_node_selector_affinity_pull_settings() -> None:
    platform = ir_with_platform(
        "exec-a",
        {
            "secretAsEnv": [{"secretName": "s1", "keyToEnv": [{"secretKey": "pw", "envVar": "PASSWORD"}]}],
            "configMapAsEnv": [
                {
                    "configMapName": "cm",
                    "keyToEnv": [{"configMapKey": "k", "envVar": "SETTING"}],
                    "optional": True,
                }
            ],
            "configMapAsVolume": [{"configMapName": "cm", "mountPath": "/etc/cm"}],
            "nodeSelector": {"labels": {"disktype": "ssd"}},
            "nodeAffinity": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}],
            "podAffinity": [
                {"matchPodLabels": {"app": "db"}, "topologyKey": "kubernetes.io/hostname", "anti": True}
            ],
            "imagePullSecret": [{"secretName": "regcred"}],
            "imagePullPolicy": "Always",
            "emptyDirMounts": [{"volumeName": "scratch", "mountPath": "/scratch", "medium": "Memory"}],
            "enabledSharedMemory": {"size": "1Gi"},
            "securityContext": {"runAsUser": 1000},
        },
    )
    workflow = _valid(compile_ir(minimal_ir(), platform))
    template = role(workflow, "executor", "root/a")
    env = {e["name"]: e for e in template["container"]["env"]}
    assert env["PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "s1", "key": "pw"}
    assert env["SETTING"]["valueFrom"]["configMapKeyRef"] == {"name": "cm", "key": "k", "optional": True}
    assert template["nodeSelector"] == {"disktype": "ssd"}
    terms = template["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    ]
    anti = template["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti == [
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "db"}}}
    ]
    assert workflow["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert template["container"]["imagePullPolicy"] == "Always"
    assert template["container"]["securityContext"] == {"runAsUser": 1000}
    mounts = {m["mountPath"]: m["name"] for m in template["container"]["volumeMounts"]}
    volumes = {v["name"]: v for v in template["volumes"]}
    assert volumes[mounts["/etc/cm"]]["configMap"] == {"name": "cm"}
    assert volumes[mounts["/scratch"]]["emptyDir"] == {"medium": "Memory"} and mounts["/scratch"] == "scratch"
    assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    # Nothing leaks onto the other task.
    other = role(workflow, "executor", "root/b")
    assert "nodeSelector" not in other and "affinity" not in other


def test_platform_settings_are_checked() -> None:
    with pytest.raises(CompileError, match="imagePullPolicy"):
        compile_ir(minimal_ir(), ir_with_platform("exec-a", {"imagePullPolicy": "Sometimes"}))
    with pytest.raises(CompileError, match="reserved"):
        compile_ir(
            minimal_ir(),
            ir_with_platform(
                "exec-a", {"configMapAsVolume": [{"configMapName": "c", "mountPath": "/canal/x"}]}
            ),
        )
    with pytest.raises(CompileError, match="label"):
        compile_ir(minimal_ir(), ir_with_platform("exec-a", {"podMetadata": {"labels": {"bad key!": "v"}}}))


def test_settings_read_from_a_task_output_go_through_the_driver() -> None:
    ir = minimal_ir()
    ir["components"]["comp-a"]["outputDefinitions"]["parameters"]["out"]["parameterType"] = "STRING"
    platform = ir_with_platform(
        "exec-b",
        {
            "pvcMount": [
                {
                    "mountPath": "/data",
                    "pvcNameParameter": {
                        "taskOutputParameter": {"producerTask": "a", "outputParameterKey": "out"}
                    },
                }
            ],
            "nodeSelector": {
                "nodeSelectorJson": {
                    "taskOutputParameter": {"producerTask": "a", "outputParameterKey": "out"}
                }
            },
        },
    )
    workflow = _valid(compile_ir(ir, platform))
    template = role(workflow, "executor", "root/b")
    claim = next(v for v in template["volumes"] if "persistentVolumeClaim" in v)["persistentVolumeClaim"]
    slot = claim["claimName"]
    assert re.fullmatch(re.escape(TAG) + r"inputs\.parameters\.p\d+\}\}", slot)
    assert template["podSpecPatch"] == _t("inputs.parameters.pod-spec-patch")
    config = driver_config(role(workflow, "driver", "root/b"))
    pvc_slot = slot[len(TAG + "inputs.parameters.") : -2]
    assert config["platform"][pvc_slot]["pvc"] is True
    assert config["patch"]["nodeSelector"]["slots"]


def test_resources_and_accelerators_from_the_ir() -> None:
    ir = minimal_ir()
    ir["deploymentSpec"]["executors"]["exec-a"]["container"]["resources"] = {
        "resourceCpuLimit": "2",
        "resourceMemoryRequest": "512Mi",
        "accelerator": {"resourceType": "nvidia.com/gpu", "resourceCount": "1"},
    }
    workflow = _valid(compile_ir(ir))
    resources = role(workflow, "executor", "root/a")["container"]["resources"]
    assert resources == {"limits": {"cpu": "2", "nvidia.com/gpu": "1"}, "requests": {"memory": "512Mi"}}
    ir["deploymentSpec"]["executors"]["exec-a"]["container"]["resources"] = {"resourceCpuLimit": "lots"}
    with pytest.raises(CompileError, match="quantity"):
        compile_ir(ir)


@corpus
def test_machine_fields_read_from_a_pipeline_parameter_are_resolved_when_compiling() -> None:
    workflow = _valid(compile_corpus("pipeline_with_string_machine_fields_pipeline_input.yaml"))
    resources = role(workflow, "executor", "root/sum-numbers")["container"]["resources"]
    assert TAG not in json.dumps(resources)
    assert resources["limits"]


@corpus
def test_pvcs_are_created_and_deleted_by_resource_templates() -> None:
    workflow = _valid(compile_corpus("pipeline_with_volume.yaml"))
    create = role(workflow, "pvc", "root/createpvc")
    assert create["resource"] == {"action": "create", "manifest": _t("inputs.parameters.manifest")}
    assert create["outputs"]["parameters"][0]["valueFrom"]["jsonPath"] == "{.metadata.name}"
    delete = role(workflow, "pvc", "root/deletepvc")
    assert delete["resource"]["action"] == "delete"
    consumer = role(workflow, "executor", "root/producer")
    claim = next(v for v in consumer["volumes"] if "persistentVolumeClaim" in v)
    assert claim["persistentVolumeClaim"]["claimName"].startswith(TAG + "inputs.parameters.p")


@corpus
def test_the_workspace_is_a_volume_claim_template_mounted_in_every_step() -> None:
    workflow = _valid(compile_corpus("critical/pipeline_with_workspace.yaml"))
    [claim] = workflow["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "kfp-workspace"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert claim["spec"]["storageClassName"] == "standard"
    for template in workflow["spec"]["templates"]:
        if template.get("container"):
            assert {"name": "kfp-workspace", "mountPath": "/kfp-workspace"} in template["container"][
                "volumeMounts"
            ]


def test_pipeline_config_sets_the_workflows_ttl_and_deadline() -> None:
    platform = {
        "platforms": {
            "kubernetes": {"pipelineConfig": {"resourceTtlOnCompletion": 600, "activeDeadlineSeconds": 3600}}
        }
    }
    workflow = _valid(compile_ir(minimal_ir(), platform))
    assert workflow["spec"]["ttlStrategy"] == {"secondsAfterCompletion": 600}
    assert workflow["spec"]["activeDeadlineSeconds"] == 3600


def test_settings_come_from_canal_argo_variables() -> None:
    settings = ArgoSettings.from_env(
        {
            "CANAL_ARGO_RUNTIME_IMAGE": "python:3.13-slim",
            "CANAL_ARGO_S3_INSECURE": "false",
            "CANAL_ARGO_MAX_LOOP_ITEMS": "5",
        }
    )
    assert settings.runtime_image == "python:3.13-slim" and settings.s3_insecure is False
    assert settings.max_loop_items == 5
    with pytest.raises(CompileError, match="CANAL_ARGO_MAX_LOOP_ITEMS"):
        ArgoSettings.from_env({"CANAL_ARGO_MAX_LOOP_ITEMS": "many"})
    workflow = compile_workflow(copy.deepcopy(minimal_ir()), run_id=RUN_ID, settings=settings, namespace="ml")
    assert workflow["metadata"]["namespace"] == "ml"
    assert role(workflow, "driver", "root/a")["script"]["image"] == "python:3.13-slim"
