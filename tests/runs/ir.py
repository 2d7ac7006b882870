"""Small KFP IR documents built in tests (same shape kfp.compiler writes)."""

from __future__ import annotations

from typing import Any


def container_pipeline(
    name: str,
    steps: dict[str, dict[str, Any]],
    *,
    parameters: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A pipeline of container steps. Each step: command, args, after (list), retry
    (dict of retryPolicy), outputs (list of output parameter names), inputs
    (name -> {"param": pipeline param} or {"task": producer, "output": key})."""
    components: dict[str, Any] = {}
    executors: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    for step, spec in steps.items():
        comp: dict[str, Any] = {"executorLabel": f"exec-{step}"}
        task: dict[str, Any] = {"componentRef": {"name": f"comp-{step}"}, "taskInfo": {"name": step}}
        if spec.get("outputs"):
            comp["outputDefinitions"] = {
                "parameters": {o: {"parameterType": "STRING"} for o in spec["outputs"]}
            }
        if spec.get("inputs"):
            comp["inputDefinitions"] = {
                "parameters": {i: {"parameterType": "STRING"} for i in spec["inputs"]}
            }
            params: dict[str, Any] = {}
            for input_name, source in spec["inputs"].items():
                if "param" in source:
                    params[input_name] = {"componentInputParameter": source["param"]}
                else:
                    params[input_name] = {
                        "taskOutputParameter": {
                            "producerTask": source["task"],
                            "outputParameterKey": source["output"],
                        }
                    }
            task["inputs"] = {"parameters": params}
        deps = list(spec.get("after", []))
        deps += [s["task"] for s in spec.get("inputs", {}).values() if "task" in s and s["task"] not in deps]
        if deps:
            task["dependentTasks"] = deps
        if spec.get("retry"):
            task["retryPolicy"] = spec["retry"]
        if spec.get("cache"):
            task["cachingOptions"] = {"enableCache": True}
        components[f"comp-{step}"] = comp
        executors[f"exec-{step}"] = {
            "container": {
                "image": spec.get("image", "alpine:3"),
                "command": spec["command"],
                "args": spec.get("args", []),
            }
        }
        tasks[step] = task
    root: dict[str, Any] = {"dag": {"tasks": tasks}}
    if parameters:
        root["inputDefinitions"] = {"parameters": parameters}
    return {
        "pipelineInfo": {"name": name},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.6",
        "components": components,
        "deploymentSpec": {"executors": executors},
        "root": root,
    }
