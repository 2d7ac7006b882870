"""Cache fingerprints: KFP's golden vectors, stability across runs, sensitivity to inputs."""

from __future__ import annotations

from typing import Any

from apps.engine.cache import build_cache_key, custom_key_fingerprint, fingerprint
from apps.engine.execution import ActiveExecution
from apps.engine.keys import NodeState
from apps.engine.model import ArtifactRef, RunContext, StepLaunch
from apps.engine.spec import ArtifactTypeSpec, OutputArtifactDef, parse_pipeline_spec
from tests.engine import compiled
from tests.engine.corpus import minimal_ir

# The CacheKey of KFP's backend/src/v2/cacheutils/cache_test.go (TestGenerateFingerPrint),
# whose expected fingerprints were produced with the image "python:3.9".
KFP_GOLDEN_KEY: dict[str, Any] = {
    "inputArtifactNames": {"dataset_one": {"artifactNames": ["1"]}, "dataset_two": {"artifactNames": ["2"]}},
    "inputParameterValues": {"message": "Some string value", "num_steps": 5},
    "outputArtifactsSpec": {
        "model": {
            "name": "model",
            "type": {
                "instanceSchema": "title: kfp.Model\ntype: object\nproperties:\n"
                "  framework:\n    type: string\n  framework_version:\n    type: string\n"
            },
            "metadata": {"name": "model"},
        },
        "metrics": {
            "name": "metrics",
            "type": {"schemaTitle": "kfp.Metrics"},
            "metadata": {"name": "metrics"},
        },
    },
    "outputParametersSpec": {"output_parameter_one": "STRING", "output_parameter_two": "INT"},
    "containerSpec": {"cmdArgs": ["sh", "ec", "test"], "image": "python:3.9"},
}


def test_fingerprint_matches_kfp_golden_vector() -> None:
    assert fingerprint(KFP_GOLDEN_KEY) == "4e8a5d7d70997b0a35429fcd481af8fcd5b9f58ef4391bdb6ad900fd1c63622b"


def test_built_cache_key_matches_kfp_golden_vector() -> None:
    key = build_cache_key(
        input_parameters={},
        input_artifacts={"dataset": [ArtifactRef("10", "dataset", "gs://x")]},
        output_parameter_types={"output_parameter": "DOUBLE"},
        output_artifacts={},
        image="python:3.9",
        command=["sh", "ec"],
        args=["run"],
    )
    assert key == {
        "inputArtifactNames": {"dataset": {"artifactNames": ["10"]}},
        "outputParametersSpec": {"output_parameter": "DOUBLE"},
        "containerSpec": {"image": "python:3.9", "cmdArgs": ["sh", "ec", "run"]},
    }
    assert fingerprint(key) == "0a4cc1f15cdfad5170e1358518f7128c5278500a670db1b9a3f3d83b93db396e"


def test_int_and_equal_float_give_the_same_fingerprint() -> None:
    # KFP stores every number as a float64, so 5 and 5.0 are the same value to it.
    assert fingerprint(
        {**KFP_GOLDEN_KEY, "inputParameterValues": {"message": "Some string value", "num_steps": 5.0}}
    ) == (fingerprint(KFP_GOLDEN_KEY))


def test_cache_key_wipes_uris_and_sorts_pvcs() -> None:
    def key_for(uri: str, pvcs: list[str]) -> dict[str, Any]:
        return build_cache_key(
            input_parameters={"x": 1},
            input_artifacts={"data": [ArtifactRef("7", "data", uri)]},
            output_parameter_types={},
            output_artifacts={"model": OutputArtifactDef("model", ArtifactTypeSpec("system.Model", "0.0.1"))},
            image="img",
            command=["run"],
            args=["{{$.inputs.parameters['x']}}"],
            pvc_names=pvcs,
        )

    first = key_for("gs://a", ["b", "a", "b"])
    assert first["containerSpec"]["pvcNames"] == ["a", "b"]
    assert first["containerSpec"]["cmdArgs"] == ["run", "{{$.inputs.parameters['x']}}"]  # raw, unrendered
    assert first["outputArtifactsSpec"] == {
        "model": {"type": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"}}
    }
    # The input artifact is identified by its id, not its URI.
    assert fingerprint(first) == fingerprint(key_for("gs://elsewhere", ["a", "b"]))
    assert fingerprint(first) != fingerprint(key_for("gs://a", ["a"]))


def _launches(params: dict[str, Any] | None = None, **ctx: Any) -> dict[str, StepLaunch]:
    spec = compiled.cached_steps()
    plan = ActiveExecution(
        spec, RunContext(run_id=ctx.pop("run_id", "r1"), parameters=params or {}, **ctx), []
    ).plan()
    return {launch.task_name: launch for launch in plan.launches}


def test_fingerprints_are_stable_across_runs_and_differ_with_inputs() -> None:
    one = _launches(run_id="run-a")
    two = _launches(run_id="run-b")
    assert one["square"].caching.fingerprint == two["square"].caching.fingerprint
    assert len(one["square"].caching.fingerprint) == 64
    # Same component, different input value (a=2, b=3).
    assert one["square"].caching.fingerprint != one["square-2"].caching.fingerprint
    changed = _launches({"a": 3})
    assert changed["square"].caching.fingerprint == one["square-2"].caching.fingerprint


def test_custom_cache_key_ignores_inputs() -> None:
    launches = _launches()
    custom = launches["square-3"].caching
    assert custom.cache_key == "v1"
    assert custom.fingerprint == custom_key_fingerprint(launches["square-3"].component_name, "v1")
    # Another input value for the same task: the custom key still matches...
    other_inputs = _launches({"a": 10}, run_id="r2")["square-3"].caching
    assert other_inputs.fingerprint == custom.fingerprint
    assert other_inputs.computed_fingerprint != custom.computed_fingerprint
    # ...but the component name keeps two tasks with the same custom key apart.
    assert launches["square-4"].caching.fingerprint != custom.fingerprint


def test_enable_cache_and_the_run_override() -> None:
    launches = _launches()
    assert launches["square"].caching.enabled is True
    assert launches["square-5"].caching.enabled is False
    off = _launches(enable_caching=False)
    assert not any(launch.caching.enabled for launch in off.values())
    on = _launches(enable_caching=True)
    assert all(launch.caching.enabled for launch in on.values())


def test_an_input_that_cannot_be_fingerprinted_fails_the_task_and_the_run_with_the_reason() -> None:
    # A lone surrogate (what JSON's "\ud800" escape decodes to) cannot be encoded as UTF-8,
    # so it cannot be hashed: the task is created FAILED naming the input, and the run ends.
    ir = minimal_ir()
    ir["root"]["inputDefinitions"]["parameters"]["n"] = {"parameterType": "STRING"}
    ir["components"]["comp-a"]["inputDefinitions"]["parameters"]["x"] = {"parameterType": "STRING"}
    spec = parse_pipeline_spec(ir)
    plan = ActiveExecution(spec, RunContext(run_id="r", parameters={"n": "ok \ud800"}), []).plan()
    step = next(c for c in plan.creates if c.key == "root/a")
    assert step.state == NodeState.FAILED
    assert step.launch is None
    expected = "cannot compute the cache fingerprint of task 'a': input 'x' holds a lone surrogate (\\ud800)"
    assert (step.error or "").startswith(expected)
    assert plan.run_outcome is not None
    assert plan.run_outcome.state == NodeState.FAILED
    assert expected in (plan.run_outcome.error or "")
    # The reason itself is storable text.
    (plan.run_outcome.error or "").encode("utf-8")
