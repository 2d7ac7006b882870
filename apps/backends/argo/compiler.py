"""KFP v2 IR to an Argo Workflow (``argoproj.io/v1alpha1``): Canal's compiler for the Argo backend.

``compile_workflow(spec_or_ir, run_id=..., ...)`` returns the whole run as one Workflow;
Argo orders the steps. The design, in short (``docs/argo.md`` has the long form):

* **One Argo DAG template per KFP DAG** (the root, each sub-DAG, each ParallelFor
  iteration), ``failFast: false`` so a failure does not stop independent branches,
  as in Canal's engine.
* **The user's container runs only the user's command.** Canal's logic runs in
  *driver* steps (``runtime/driver.py``, standard library only, shipped inside the
  Workflow and run by ``python3`` in ``ArgoSettings.runtime_image``). A container task
  is ``<t>-drv`` (resolve inputs, evaluate the condition, compute the cache key,
  render the command line) then ``<t>`` (the user's image, whose command elements
  that hold placeholders read the driver's outputs; ``when`` skips it on a false
  condition). Images without ``python3`` (alpine, busybox, distroless) run unchanged.
* **Values travel raw, typed by the compiler.** A step's outputs are what Argo reads:
  each output parameter file, ``executor_output.json`` and a "ran" marker, each with
  the default ``__canal_absent__`` (what a skipped step's outputs read as). A
  consumer's driver gets those *leaves* and a *recipe*, computed here, that says how
  to turn them into its inputs: which producer output, which type, a dsl.OneOf over
  branches, a dsl.Collected over Argo's aggregated loop outputs, an enclosing DAG's
  inputs with their defaults, selectors and f-string constants.
* **Artifacts** are uploaded by Argo to the S3 repository at Canal's layout
  (``<pipeline_root>/<pipeline>/<run>/<task>/<uid>/<output>``), passed on with Argo's
  ``from`` (so a memoized step's artifacts are found), and fetched by key for importers.
* **Caching** is Argo memoization keyed by the KFP cache fingerprint the driver
  computes (a ConfigMap per namespace).

The result passes Argo's strict schema; callers validate it with
``apps.importers.argo.validate_argo`` (this package may not import the importers).
"""

from __future__ import annotations

import ast
import base64
import copy
import functools
import json
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Final
from urllib.parse import urlsplit

from apps.backends.argo.compiler_platform import PlatformPod, ResolvedValue, apply_platform, quantity
from apps.backends.argo.compiler_util import (
    ABSENT,
    CompileError,
    NameRegistry,
    argo_safe_json,
    check_no_tags,
    dns_label,
    short_hash,
)
from apps.engine.placeholders import structured_placeholder
from apps.engine.runtime_params import ParameterError, coerce_runtime_parameters
from apps.engine.spec import (
    ARTIFACT_FROM_COMPONENT_INPUT,
    EXECUTOR_CONTAINER,
    EXECUTOR_IMPORTER,
    PARAM_FROM_COMPONENT_INPUT,
    PARAM_FROM_CONSTANT,
    PARAM_FROM_TASK_FINAL_STATUS,
    PARAM_FROM_TASK_OUTPUT,
    STRATEGY_ALL_COMPLETED,
    ComponentSpec,
    ContainerSpec,
    DagSpec,
    ExecutorSpec,
    InputDefinitions,
    PipelineSpec,
    SpecError,
    TaskSpec,
    normalize_parameter_value,
    parse_pipeline_spec,
)
from apps.engine.values import value_to_text
from apps.storage import run_dir_uri
from apps.storage.paths import UnsafePathError, safe_segment

__all__ = [
    "API_VERSION",
    "ArgoSettings",
    "CompileError",
    "compile_workflow",
    "driver_source",
    "workflow_name",
]

API_VERSION: Final = "argoproj.io/v1alpha1"
COMPILER_VERSION: Final = "1"

# Label/annotation keys the persistence agent reads.
LABEL_RUN_ID: Final = "canal.io/run-id"
ANNOTATION_ROLE: Final = (
    "canal.io/role"  # driver | executor | importer | dag | loop | iteration | check | pvc
)
ANNOTATION_TASK: Final = "canal.io/task"  # the task's static key (root/loop/task), iteration indexes dropped
ANNOTATION_OUTPUTS: Final = "canal.io/outputs"  # executor templates: Argo output name -> KFP output name
ANNOTATION_PIPELINE: Final = "canal.io/pipeline-name"

OUTPUT_DIR: Final = "/canal/outputs"
INPUT_DIR: Final = "/canal/inputs"
RAN_PATH: Final = "/canal/ran"
OUTPUTS_ARTIFACT: Final = "outputs"  # the executor's output directory, uploaded as one artifact
EXECUTOR_OUTPUT_PATH: Final = f"{OUTPUT_DIR}/executor-output.json"
DRIVER_OUT: Final = "/tmp/canal/out"  # noqa: S108 - the driver pod's own /tmp
WORKSPACE_PATH: Final = "/kfp-workspace"
WORKSPACE_VOLUME: Final = "kfp-workspace"
RUNTIME_PARAMETER: Final = "canal-driver"
ALL_STATES: Final = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted")

_TAG = "{" + "{"


def _t(expression: str) -> str:
    """An Argo tag: ``_t("inputs.parameters.x")`` is ``{{inputs.parameters.x}}``."""
    return _TAG + expression + "}" + "}"


@dataclass(frozen=True)
class ArgoSettings:
    """Where Canal's Argo Workflows run and keep their artifacts (the Django side fills it)."""

    runtime_image: str = "python:3.12-slim"  # any image with python3: the driver is shipped inline
    service_account: str = ""
    pipeline_root: str = "minio://mlpipeline/v2/artifacts"  # used when the run gives none
    # How artifacts name their S3 location. "repository": only the key (Argo's key-only
    # artifacts), the endpoint, bucket and credentials come from the artifact repository
    # (``artifact_repository_ref``, a ConfigMap, or the controller's default), whose
    # bucket must be the pipeline root's. "inline": every location carries the s3_* below.
    artifact_repository: str = "repository"
    artifact_repository_ref: str = ""  # ConfigMap name; its key is artifact_repository_key
    artifact_repository_key: str = "default-v1"
    s3_bucket: str = ""  # the repository's bucket, when known: a pipeline root elsewhere is refused
    s3_endpoint: str = "minio-service.kubeflow:9000"
    s3_insecure: bool = True
    s3_region: str = ""
    s3_credentials_secret: str = "mlpipeline-minio-artifact"  # noqa: S105 - a Secret's name
    s3_access_key_key: str = "accesskey"
    s3_secret_key_key: str = "secretkey"  # noqa: S105 - a key in that Secret
    gcs_credentials_secret: str = ""  # gs:// importer downloads (secret name; key "key.json")
    cache_config_map: str = "canal-step-cache"
    cache_max_age: str = "87600h"  # Argo needs one; KFP's cache never expires
    max_loop_items: int = 10000
    driver_cpu_request: str = "50m"
    driver_memory_request: str = "64Mi"
    driver_cpu_limit: str = "500m"
    driver_memory_limit: str = "256Mi"
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    step_timeout_seconds: int = 0  # default activeDeadlineSeconds of a step; 0 = none

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ArgoSettings:
        """Settings from ``CANAL_ARGO_<FIELD>`` variables (``CANAL_ARGO_RUNTIME_IMAGE``, ...);
        unset ones keep their defaults. Raises CompileError naming a malformed variable."""
        values: dict[str, Any] = {}
        for name, spec in cls.__dataclass_fields__.items():
            key = f"CANAL_ARGO_{name.upper()}"
            raw = environ.get(key)
            if raw is None or name in ("pod_labels", "pod_annotations"):
                continue
            default = spec.default
            try:
                if isinstance(default, bool):
                    if raw.strip().lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError("expected true or false")
                    values[name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif isinstance(default, int):
                    values[name] = int(raw)
                else:
                    values[name] = raw.strip()
            except ValueError as exc:
                raise CompileError(f"{key}={raw!r}: {exc}") from None
        return cls(**values)


def workflow_name(run_id: str) -> str:
    """The Workflow's name for a run: deterministic, so a repeated submit finds it."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")
    if cleaned != run_id.lower() or not cleaned or len(cleaned) > 50:
        cleaned = f"{cleaned[:40].strip('-')}-{short_hash(run_id, 10)}".strip("-")
    return f"canal-{cleaned}"


@functools.cache
def driver_source(*, plain: bool = False) -> str:
    """The driver as shipped in a Workflow: ``runtime/driver.py`` without docstrings and
    comments, compressed behind a two-line bootstrap (18 KB instead of 60: Argo puts each
    pod's whole template in one environment variable, which Linux caps at 128 KiB).
    ``plain=True`` gives the uncompressed text."""
    text = resources.files("apps.backends.argo.runtime").joinpath("driver.py").read_text(encoding="utf-8")
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            if len(body) == 1:
                body[0] = ast.Pass()
            else:
                del body[0]
    source = ast.unparse(tree) + "\n"
    if _TAG in source:  # pragma: no cover - guarded by a test
        raise RuntimeError("the driver's source must not contain two opening braces")
    if plain:
        return source
    packed = base64.b64encode(zlib.compress(source.encode("utf-8"), 9)).decode("ascii")
    return (
        "# Canal's Argo driver (apps/backends/argo/runtime/driver.py), zlib-compressed.\n"
        "import base64, zlib\n"
        f'exec(compile(zlib.decompress(base64.b64decode("{packed}")), "canal_driver.py", "exec"))\n'
    )


# ---------------------------------------------------------------------------------------
# Leaves, scopes and recipes
# ---------------------------------------------------------------------------------------


class Leaf:
    """A raw value Argo can hand a step: an expression valid in ``scope``'s template."""

    __slots__ = ("expr", "scope")

    def __init__(self, scope: Scope, expr: str) -> None:
        self.scope = scope
        self.expr = expr


class ArtLeaf:
    """An Argo artifact reference (for ``from``) valid in ``scope``'s template."""

    __slots__ = ("expr", "scope")

    def __init__(self, scope: Scope, expr: str) -> None:
        self.scope = scope
        self.expr = expr


@dataclass(eq=False)
class ImpLoc:
    """Where an importer's artifact is, for the consumer to download it by key."""

    kind: str  # s3 | gcs | http | "" (cannot be downloaded: the consumer gets the URI only)
    bucket: Leaf
    key: Leaf
    url: Leaf


class Scope:
    """One Argo DAG template being built, and how values reach it from its parents."""

    def __init__(self, compiler: _Compiler, name: str, parent: Scope | None, key_parts: list[Any]) -> None:
        self.compiler = compiler
        self.name = name
        self.parent = parent
        self.key_parts = key_parts
        self.tasks: list[dict[str, Any]] = []
        self.names = NameRegistry()
        self.input_params: list[dict[str, Any]] = []
        self.input_arts: list[dict[str, Any]] = []
        self.arg_params: list[dict[str, Any]] = []  # for the task that instantiates this template
        self.arg_arts: list[dict[str, Any]] = []
        self.output_params: list[dict[str, Any]] = []
        self.output_arts: list[dict[str, Any]] = []
        self._forwarded: dict[int, str] = {}
        self._exported: dict[int, str] = {}
        self._counter = 0

    def fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def is_ancestor_or_self(self, other: Scope) -> bool:
        scope: Scope | None = self
        while scope is not None:
            if scope is other:
                return True
            scope = scope.parent
        return False

    def local(self, leaf: Leaf) -> str:
        """``leaf`` as an expression in this template, forwarding it down as needed."""
        if leaf.scope is self:
            return leaf.expr
        known = self._forwarded.get(id(leaf))
        if known is not None:
            return known
        if self.parent is None:
            raise CompileError("internal: a value is used outside the DAG that produces it")
        outer = self.parent.local(leaf)
        name = self.fresh("f")
        self.input_params.append({"name": name})
        self.arg_params.append({"name": name, "value": outer})
        expr = _t(f"inputs.parameters.{name}")
        self._forwarded[id(leaf)] = expr
        return expr

    def local_art(self, leaf: ArtLeaf) -> str:
        """An artifact reference in this template, forwarded down as an optional input."""
        if leaf.scope is self:
            return leaf.expr
        known = self._forwarded.get(id(leaf))
        if known is not None:
            return known
        if self.parent is None:
            raise CompileError("internal: an artifact is used outside the DAG that produces it")
        outer = self.parent.local_art(leaf)
        name = self.fresh("fa")
        self.input_arts.append({"name": name, "optional": True})
        # Optional on the argument too: Argo then omits an artifact a skipped branch never made.
        self.arg_arts.append({"name": name, "from": outer, "optional": True})
        expr = _t(f"inputs.artifacts.{name}")
        self._forwarded[id(leaf)] = expr
        return expr

    def export(self, leaf: Leaf, task: str, parent: Scope) -> Leaf:
        """``leaf`` (from this template) as an output of the task ``task`` in ``parent``."""
        if parent.is_ancestor_or_self(leaf.scope) and leaf.scope is not self:
            return leaf  # already visible up there
        name = self._exported.get(id(leaf))
        if name is None:
            name = self.fresh("o")
            self._exported[id(leaf)] = name
            self.output_params.append(
                {"name": name, "valueFrom": {"parameter": self.local(leaf), "default": ABSENT}}
            )
        return Leaf(parent, _t(f"tasks.{task}.outputs.parameters.{name}"))

    def export_art(self, leaf: ArtLeaf, task: str, parent: Scope) -> ArtLeaf:
        """An artifact of this template as an output artifact of ``task`` in ``parent``."""
        if parent.is_ancestor_or_self(leaf.scope) and leaf.scope is not self:
            return leaf
        name = self._exported.get(id(leaf))
        if name is None:
            name = self.fresh("oa")
            self._exported[id(leaf)] = name
            self.output_arts.append({"name": name, "from": self.local_art(leaf), "optional": True})
        return ArtLeaf(parent, _t(f"tasks.{task}.outputs.artifacts.{name}"))

    def aggregate(self, leaf: Leaf, task: str, parent: Scope) -> Leaf:
        """Like ``export``, but always exported: ``parent`` reads it aggregated over a loop."""
        name = self._exported.get(id(leaf))
        if name is None:
            name = self.fresh("o")
            self._exported[id(leaf)] = name
            self.output_params.append(
                {"name": name, "valueFrom": {"parameter": self.local(leaf), "default": ABSENT}}
            )
        return Leaf(parent, _t(f"tasks.{task}.outputs.parameters.{name}"))


Recipe = list[Any]


def _const(value: Any) -> Recipe:
    return ["c", value]


def _none(reason: str) -> Recipe:
    return ["none", reason]


def _map_leaves(recipe: Any, param: Callable[[Leaf], Leaf], art: Callable[[ArtLeaf], ArtLeaf]) -> Any:
    """A copy of ``recipe`` with every leaf passed through ``param`` / ``art``."""
    if isinstance(recipe, Leaf):
        return param(recipe)
    if isinstance(recipe, ArtLeaf):
        return art(recipe)
    if isinstance(recipe, ImpLoc):
        return ImpLoc(recipe.kind, param(recipe.bucket), param(recipe.key), param(recipe.url))
    if isinstance(recipe, list):
        return [_map_leaves(item, param, art) for item in recipe]
    return recipe


def _leaves(recipe: Any) -> list[Leaf]:
    out: list[Leaf] = []
    stack = [recipe]
    while stack:
        node = stack.pop()
        if isinstance(node, Leaf):
            out.append(node)
        elif isinstance(node, ImpLoc):
            out.extend((node.bucket, node.key, node.url))
        elif isinstance(node, list):
            stack.extend(node)
    return out


def _has_art_leaf(recipe: Any) -> bool:
    stack = [recipe]
    while stack:
        node = stack.pop()
        if isinstance(node, ArtLeaf | ImpLoc):
            return True
        if isinstance(node, list):
            stack.extend(node)
    return False


@dataclass
class Produced:
    """What a compiled task offers its siblings: outputs as recipes, and its final Argo task."""

    final: str
    params: dict[str, Recipe]
    arts: dict[str, Recipe]
    status: Leaf


@dataclass
class TaskInputs:
    """A task's inputs as recipes, before serialisation for a driver."""

    task: str  # display name
    key_parts: list[Any]
    params: dict[str, Recipe] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    selectors: dict[str, list[Any]] = field(default_factory=dict)
    defs: dict[str, dict[str, Any]] = field(default_factory=dict)
    arts: dict[str, Recipe] = field(default_factory=dict)
    art_defs: dict[str, dict[str, Any]] = field(default_factory=dict)
    loop_item: str | None = None
    loop_artifact: str | None = None


class DagContext:
    """How the tasks of one DAG read that DAG's own inputs."""

    def __init__(
        self,
        params: Callable[[str], Recipe],
        arts: Callable[[str], Recipe],
        statics: Callable[[str], bool | None] | None = None,
    ) -> None:
        self.param = params
        self.art = arts
        self.present = statics or (lambda name: None)


# ---------------------------------------------------------------------------------------
# The public entry point
# ---------------------------------------------------------------------------------------


def compile_workflow(
    spec_or_ir: PipelineSpec | Mapping[str, Any],
    *,
    run_id: str,
    parameters: Mapping[str, Any] | None = None,
    pipeline_root: str = "",
    namespace: str = "",
    settings: ArgoSettings | None = None,
    platform_spec: Mapping[str, Any] | None = None,
    run_name: str = "",
    resource_name: str = "",
    enable_caching: bool | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """Compile a pipeline run into an Argo Workflow (a plain dict, ready for the API).

    ``spec_or_ir`` is a parsed :class:`PipelineSpec` or the IR dict (then
    ``platform_spec`` is its optional second document). ``parameters`` are the run's
    runtime parameters (coerced to their declared types here); ``run_name`` and
    ``resource_name`` fill ``{{$.pipeline_job_name}}`` and
    ``{{$.pipeline_job_resource_name}}`` (default ``<pipeline name>-<run id>``, as the
    local backend names it); ``enable_caching``
    overrides every task's ``cachingOptions`` when not None. Raises
    :class:`CompileError` naming the task and field when the pipeline cannot run on Argo.
    """
    if not isinstance(run_id, str) or not run_id.strip():
        raise CompileError("run_id is empty")
    if isinstance(spec_or_ir, PipelineSpec):
        spec = spec_or_ir
        raw_ir: Mapping[str, Any] | None = None
    else:
        try:
            spec = parse_pipeline_spec(dict(spec_or_ir), platform_spec)
        except SpecError as exc:
            raise CompileError(exc.message, exc.path) from None
        raw_ir = spec_or_ir
    settings = settings or ArgoSettings()
    compiler = _Compiler(
        spec,
        raw_ir=raw_ir,
        run_id=run_id,
        parameters=dict(parameters or {}),
        pipeline_root=pipeline_root or settings.pipeline_root,
        namespace=namespace,
        settings=settings,
        resource_name=resource_name or f"{spec.name}-{run_id}",
        run_name=run_name or f"{spec.name}-{run_id}",
        enable_caching=enable_caching,
        created_at=created_at,
    )
    return compiler.compile()


class _Compiler:
    def __init__(
        self,
        spec: PipelineSpec,
        *,
        raw_ir: Mapping[str, Any] | None,
        run_id: str,
        parameters: dict[str, Any],
        pipeline_root: str,
        namespace: str,
        settings: ArgoSettings,
        run_name: str,
        resource_name: str,
        enable_caching: bool | None,
        created_at: datetime | None,
    ) -> None:
        self.spec = spec
        self.raw_ir = raw_ir
        self.run_id = run_id
        self.parameters = parameters
        self.namespace = namespace
        self.settings = settings
        self.enable_caching = enable_caching
        self.name = workflow_name(run_id)
        self.templates: list[dict[str, Any]] = []
        self.template_names = NameRegistry(max_length=60)
        self.template_names.reserve(RUNTIME_PARAMETER)
        self.groups: dict[str, tuple[TaskInputs, Scope]] = {}
        self.image_pull_secrets: list[str] = []
        self.no_memoize: set[str] = set()
        self.workspace = bool(spec.platform.pipeline_config.get("workspace"))
        self.pipeline_root = pipeline_root.rstrip("/")
        self.bucket, self.run_prefix = self._artifact_location()
        self.run = {
            "run_id": run_id,
            "run_name": run_name,
            "resource_name": resource_name,
            "pipeline_root": self.pipeline_root,
            "workspace_path": WORKSPACE_PATH,
        }
        if created_at is not None:
            moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
            self.run["created"] = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

    # -- where artifacts go ---------------------------------------------------------------
    def _artifact_location(self) -> tuple[str, str]:
        root = self.pipeline_root
        parts = urlsplit(root)
        if parts.scheme not in ("s3", "minio") or not parts.netloc:
            raise CompileError(
                f"the pipeline root {root!r} is not an s3:// or minio:// location; on Argo, artifacts go "
                "through the S3-compatible artifact repository",
                ("pipeline_root",),
            )
        try:
            run_dir = run_dir_uri(root, self.spec.name or "pipeline", self.run_id)
        except (UnsafePathError, ValueError) as exc:
            raise CompileError(
                f"cannot lay out the run's artifacts: {exc}", ("pipelineInfo", "name")
            ) from None
        prefix = urlsplit(run_dir).path.strip("/")
        s = self.settings
        if s.artifact_repository not in ("repository", "inline"):
            raise CompileError(
                f"artifact_repository must be 'repository' or 'inline', not {s.artifact_repository!r}"
            )
        if s.artifact_repository == "repository" and s.s3_bucket and s.s3_bucket != parts.netloc:
            raise CompileError(
                f"the pipeline root {root!r} is in bucket '{parts.netloc}', but the artifact repository "
                f"stores to bucket '{s.s3_bucket}'",
                ("pipeline_root",),
            )
        return parts.netloc, prefix

    def s3_location(self, bucket: str, key: str, *, inline: bool = False) -> dict[str, Any]:
        s = self.settings
        if s.artifact_repository != "inline" and not inline:
            return {"key": key}
        location: dict[str, Any] = {"endpoint": s.s3_endpoint, "bucket": bucket, "insecure": s.s3_insecure}
        if s.s3_region:
            location["region"] = s.s3_region
        if s.s3_credentials_secret:
            location["accessKeySecret"] = {"name": s.s3_credentials_secret, "key": s.s3_access_key_key}
            location["secretKeySecret"] = {"name": s.s3_credentials_secret, "key": s.s3_secret_key_key}
        location["key"] = key
        return location

    # -- the whole workflow ---------------------------------------------------------------
    def compile(self) -> dict[str, Any]:
        root_inputs = self._root_inputs()
        root = Scope(self, self.template_names.allocate("root"), None, ["root"])
        statics = {name: value is not None for name, value in root_inputs.items()}
        ctx = DagContext(
            params=lambda name: (
                _const(root_inputs[name])
                if root_inputs.get(name) is not None
                else _none(f"the pipeline parameter '{name}' has no value")
            ),
            arts=lambda name: _none(f"the pipeline's input artifact '{name}' was not given"),
            statics=lambda name: statics.get(name, False),
        )
        self.compile_dag(root, self.spec.root, ctx, ("root", "dag"))
        self.templates.insert(0, self._dag_template(root, "dag", "root"))
        for template in self.templates:
            if template["name"] in self.no_memoize and "memoize" in template:
                del template["memoize"]
                template["inputs"]["parameters"] = [
                    p for p in template["inputs"]["parameters"] if p["name"] != "cache-key"
                ]
        return self._workflow(root.name)

    def _root_inputs(self) -> dict[str, Any]:
        definitions = self.spec.root.input_definitions
        missing_artifacts = [n for n, a in definitions.artifacts.items() if not a.is_optional]
        if missing_artifacts:
            raise CompileError(
                "the required input artifact "
                + ", ".join(f"'{n}'" for n in missing_artifacts)
                + " was not given (a run cannot supply the pipeline's input artifacts)",
                ("root", "inputDefinitions", "artifacts", missing_artifacts[0]),
            )
        ir = {"root": {"inputDefinitions": {"parameters": _defs_as_ir(definitions)}}}
        try:
            given = coerce_runtime_parameters(ir, {k: v for k, v in self.parameters.items() if v is not None})
        except ParameterError as exc:
            first = next(iter(exc.errors), "")
            raise CompileError(
                f"runtime parameters: {exc}", ("root", "inputDefinitions", "parameters", first)
            ) from None
        out: dict[str, Any] = {}
        for name, definition in definitions.parameters.items():
            if name in given:
                value = normalize_parameter_value(given[name], definition.parameter_type)
                if definition.literals and value not in definition.literals:
                    raise CompileError(
                        f"runtime parameter '{name}' is {value!r}, which is not one of its allowed values",
                        ("root", "inputDefinitions", "parameters", name),
                    )
                out[name] = value
            elif definition.has_default and definition.default is not None:
                out[name] = definition.default
            else:
                out[name] = None
        return out

    def _workflow(self, entrypoint: str) -> dict[str, Any]:
        s = self.settings
        labels = {LABEL_RUN_ID: _label_value(self.run_id), "canal.io/compiler": COMPILER_VERSION}
        metadata: dict[str, Any] = {
            "name": self.name,
            "labels": labels,
            "annotations": {
                # Informational; a pipeline name is the user's text, never an Argo tag.
                ANNOTATION_PIPELINE: self.spec.name.replace(_TAG, "{ {"),
                "canal.io/run-id": self.run_id,
                "canal.io/pipeline-root": self.pipeline_root,
            },
        }
        if self.namespace:
            metadata["namespace"] = self.namespace
        spec: dict[str, Any] = {
            "entrypoint": entrypoint,
            "arguments": {"parameters": [{"name": RUNTIME_PARAMETER, "value": driver_source()}]},
            "podMetadata": {
                "labels": {**dict(s.pod_labels), LABEL_RUN_ID: _label_value(self.run_id)},
                **({"annotations": dict(s.pod_annotations)} if s.pod_annotations else {}),
            },
            "templates": self.templates,
        }
        if s.service_account:
            spec["serviceAccountName"] = s.service_account
        if s.artifact_repository == "repository" and s.artifact_repository_ref:
            spec["artifactRepositoryRef"] = {
                "configMap": s.artifact_repository_ref,
                "key": s.artifact_repository_key,
            }
        if self.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": n} for n in dict.fromkeys(self.image_pull_secrets)]
        config = self.spec.platform.pipeline_config
        ttl: dict[str, int] = {}
        for key, argo_key in (
            ("resourceTtlOnCompletion", "secondsAfterCompletion"),
            ("resourceTtlOnSuccess", "secondsAfterSuccess"),
            ("resourceTtlOnFailure", "secondsAfterFailure"),
        ):
            value = _int_field(config.get(key), ("platforms", "kubernetes", "pipelineConfig", key))
            if value:
                ttl[argo_key] = value
        if ttl:
            spec["ttlStrategy"] = ttl
        deadline = _int_field(
            config.get("activeDeadlineSeconds"),
            ("platforms", "kubernetes", "pipelineConfig", "activeDeadlineSeconds"),
        )
        if deadline:
            spec["activeDeadlineSeconds"] = deadline
        if self.workspace:
            spec["volumeClaimTemplates"] = [self._workspace_claim()]
        return {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": metadata, "spec": spec}

    def _workspace_claim(self) -> dict[str, Any]:
        path = ("platforms", "kubernetes", "pipelineConfig", "workspace")
        workspace = self.spec.platform.pipeline_config.get("workspace")
        if not isinstance(workspace, dict):
            raise CompileError("workspace must be a mapping", path)
        claim: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {
                "requests": {"storage": quantity(workspace.get("size") or "1Gi", (*path, "size"), "size")}
            },
        }
        patch = (workspace.get("kubernetes") or {}).get("pvcSpecPatch") or {}
        if not isinstance(patch, dict):
            raise CompileError("pvcSpecPatch must be a mapping", (*path, "kubernetes", "pvcSpecPatch"))
        for key, value in patch.items():
            if key not in (
                "accessModes",
                "storageClassName",
                "volumeMode",
                "selector",
                "dataSource",
                "resources",
            ):
                raise CompileError(
                    f"pvcSpecPatch may not set {key!r}", (*path, "kubernetes", "pvcSpecPatch", key)
                )
            claim[key] = copy.deepcopy(value)
        return {"metadata": {"name": WORKSPACE_VOLUME}, "spec": claim}

    # -- templates ------------------------------------------------------------------------
    def _dag_template(self, scope: Scope, role: str, task_key: str, parallelism: int = 0) -> dict[str, Any]:
        template: dict[str, Any] = {
            "name": scope.name,
            "metadata": {"annotations": {ANNOTATION_ROLE: role, ANNOTATION_TASK: task_key}},
            "dag": {"failFast": False, "tasks": scope.tasks},
        }
        if scope.input_params or scope.input_arts:
            template["inputs"] = {}
            if scope.input_params:
                template["inputs"]["parameters"] = scope.input_params
            if scope.input_arts:
                template["inputs"]["artifacts"] = scope.input_arts
        if scope.output_params or scope.output_arts:
            template["outputs"] = {}
            if scope.output_params:
                template["outputs"]["parameters"] = scope.output_params
            if scope.output_arts:
                template["outputs"]["artifacts"] = scope.output_arts
        if parallelism:
            template["parallelism"] = parallelism
        return template

    def _driver_template(
        self,
        name: str,
        role: str,
        task_key: str,
        config: dict[str, Any],
        leaf_count: int,
        outputs: list[str],
    ) -> dict[str, Any]:
        s = self.settings
        env = [
            {"name": "CANAL_CONFIG", "value": argo_safe_json(config)},
            {"name": "CANAL_OUT", "value": DRIVER_OUT},
            {"name": "CANAL_CREATED", "value": _t("workflow.creationTimestamp")},
        ]
        env.extend({"name": f"CANAL_L{i}", "value": _t(f"inputs.parameters.l{i}")} for i in range(leaf_count))
        template: dict[str, Any] = {
            "name": name,
            "metadata": {"annotations": {ANNOTATION_ROLE: role, ANNOTATION_TASK: task_key}},
            "script": {
                "image": s.runtime_image,
                "command": ["python3"],
                "source": _t(f"workflow.parameters.{RUNTIME_PARAMETER}"),
                "env": env,
                "resources": {
                    "requests": {"cpu": s.driver_cpu_request, "memory": s.driver_memory_request},
                    "limits": {"cpu": s.driver_cpu_limit, "memory": s.driver_memory_limit},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            },
            "outputs": {
                "parameters": [
                    {
                        "name": out,
                        "valueFrom": {
                            "path": f"{DRIVER_OUT}/{out}",
                            "default": "" if out != "resolved" else "{}",
                        },
                    }
                    for out in dict.fromkeys(["resolved", "error", *outputs])
                ]
            },
        }
        if leaf_count:
            template["inputs"] = {"parameters": [{"name": f"l{i}"} for i in range(leaf_count)]}
        return template

    # -- DAGs -----------------------------------------------------------------------------
    def compile_dag(
        self, scope: Scope, component: ComponentSpec, ctx: DagContext, path: tuple[str | int, ...]
    ) -> tuple[dict[str, Recipe], dict[str, Recipe]]:
        """Fill ``scope`` with the tasks of ``component``'s DAG; return its outputs as recipes."""
        dag = component.dag
        assert dag is not None
        produced: dict[str, Produced] = {}
        scope.names.reserve("canal-check")
        needs_check = False
        for task in dag.execution_order:
            tpath = (*path, "tasks", task.name)
            produced[task.name] = self.compile_task(scope, task, ctx, produced, tpath)
            if task.trigger.strategy == STRATEGY_ALL_COMPLETED:
                needs_check = True
        if needs_check:
            self._check_task(scope, dag, produced)
        return self._dag_outputs(dag, produced, path)

    def _dag_outputs(
        self, dag: DagSpec, produced: Mapping[str, Produced], path: tuple[str | int, ...]
    ) -> tuple[dict[str, Recipe], dict[str, Recipe]]:
        params: dict[str, Recipe] = {}
        for name, out in dag.output_parameters.items():
            options = []
            for sel in out.selectors:
                source = produced[sel.producer_subtask].params.get(sel.output_parameter_key)
                if source is None:
                    raise CompileError(
                        f"DAG output '{name}' reads output '{sel.output_parameter_key}' of task "
                        f"'{sel.producer_subtask}', which that task does not produce",
                        (*path, "outputs", "parameters", name),
                    )
                options.append(source)
            params[name] = options[0] if len(options) == 1 and not out.oneof else ["oneof", options]
        arts: dict[str, Recipe] = {}
        for name, art in dag.output_artifacts.items():
            options = []
            for art_sel in art.selectors:
                source = produced[art_sel.producer_subtask].arts.get(art_sel.output_artifact_key)
                if source is None:
                    raise CompileError(
                        f"DAG output artifact '{name}' reads artifact '{art_sel.output_artifact_key}' "
                        f"of task "
                        f"'{art_sel.producer_subtask}', which that task does not produce",
                        (*path, "outputs", "artifacts", name),
                    )
                options.append(source)
            arts[name] = options[0] if len(options) == 1 else ["oneof", options]
        return params, arts

    def _check_task(self, scope: Scope, dag: DagSpec, produced: Mapping[str, Produced]) -> None:
        # Argo decides a DAG's phase by its leaf tasks, so an exit handler that succeeds
        # would hide the failure it handled. Canal's engine fails the DAG when any task
        # failed; this step makes Argo agree.
        leaves: list[Leaf] = []
        statuses: dict[str, int] = {}
        for name, result in produced.items():
            statuses[dag.tasks[name].display_name] = len(leaves)
            leaves.append(result.status)
        name = self.template_names.allocate(f"check-{scope.name}")
        config = {"mode": "check", "task": "check", "statuses": statuses, "run": self.run}
        self.templates.append(
            self._driver_template(name, "check", _static_key(scope.key_parts), config, len(leaves), [])
        )
        depends = " && ".join(_any_state(r.final) for r in produced.values())
        scope.tasks.append(
            {
                "name": "canal-check",
                "template": name,
                "depends": depends,
                "arguments": {
                    "parameters": [
                        {"name": f"l{i}", "value": scope.local(leaf)} for i, leaf in enumerate(leaves)
                    ]
                },
            }
        )

    # -- one task -------------------------------------------------------------------------
    def compile_task(
        self,
        scope: Scope,
        task: TaskSpec,
        ctx: DagContext,
        produced: Mapping[str, Produced],
        path: tuple[str | int, ...],
    ) -> Produced:
        component = self.spec.component(task.component_ref)
        inputs = self.task_inputs(scope, task, component, ctx, produced, path)
        depends = self._depends(task, produced)
        if task.is_loop:
            return self.compile_loop(scope, task, component, inputs, depends, path)
        if component.dag is not None:
            return self.compile_subdag(scope, task, component, inputs, depends, path)
        executor = self.spec.executor_for(component)
        assert executor is not None
        if executor.kind == EXECUTOR_IMPORTER:
            return self.compile_importer(scope, task, component, executor, inputs, depends, path)
        if executor.kind != EXECUTOR_CONTAINER or executor.container is None:
            raise CompileError(
                f"task '{task.display_name}' uses a {executor.kind} executor, which neither Canal nor KFP's "
                "backend runs",
                ("deploymentSpec", "executors", executor.label),
            )
        image = executor.container.image
        if image.startswith("argostub/"):
            return self.compile_pvc(scope, task, component, executor, inputs, depends, path)
        return self.compile_container(scope, task, component, executor, inputs, depends, path, ctx, produced)

    def _depends(self, task: TaskSpec, produced: Mapping[str, Produced]) -> str:
        parts = []
        for upstream in task.upstream_tasks:
            final = produced[upstream].final
            if task.trigger.strategy == STRATEGY_ALL_COMPLETED:
                parts.append(_any_state(final))
            else:
                parts.append(f"{final}.Succeeded")
        return " && ".join(parts)

    def _condition(self, task: TaskSpec, path: tuple[str | int, ...]) -> list[Any] | None:
        if not task.trigger.condition:
            return None
        return [
            self._cel(task.trigger.condition, (*path, "triggerPolicy", "condition")),
            task.trigger.condition,
        ]

    def _cel(self, expression: str, path: tuple[str | int, ...]) -> Any:
        # CEL (celpy, lark) loads with the first condition compiled, not with every
        # process that imports the services (which import this module).
        from apps.backends.argo.compiler_cel import CelUnsupported, cel_to_tree
        from apps.engine.cel import CelError

        try:
            return cel_to_tree(expression)
        except CelError as exc:
            raise CompileError(f"the expression {expression!r} is not valid CEL: {exc}", path) from None
        except CelUnsupported as exc:
            raise CompileError(f"the expression {expression!r} cannot run on Argo: {exc}", path) from None

    def task_inputs(
        self,
        scope: Scope,
        task: TaskSpec,
        component: ComponentSpec,
        ctx: DagContext,
        produced: Mapping[str, Produced],
        path: tuple[str | int, ...],
    ) -> TaskInputs:
        """The task's inputs as recipes in ``scope`` (what the engine's _resolve_inputs reads)."""
        inputs = TaskInputs(task=task.display_name, key_parts=[*scope.key_parts, "/" + task.name])
        for name, pin in task.parameters.items():
            ppath = (*path, "inputs", "parameters", name)
            if pin.source == PARAM_FROM_CONSTANT:
                if isinstance(pin.constant, str) and "{{$" in pin.constant:
                    inputs.formats[name] = pin.constant
                    inputs.params[name] = _const(None)
                else:
                    inputs.params[name] = _const(pin.constant)
            else:
                inputs.params[name] = self.source_recipe(scope, pin.source, pin, ctx, produced, ppath)
            if pin.expression_selector:
                inputs.selectors[name] = [
                    self._cel(pin.expression_selector, (*ppath, "parameterExpressionSelector")),
                    pin.expression_selector,
                ]
        for name, ain in task.artifacts.items():
            apath = (*path, "inputs", "artifacts", name)
            if ain.source == ARTIFACT_FROM_COMPONENT_INPUT:
                inputs.arts[name] = ctx.art(ain.component_input_artifact)
            else:
                source = produced[ain.producer_task].arts.get(ain.output_artifact_key)
                if source is None:
                    raise CompileError(
                        f"input artifact '{name}' reads artifact '{ain.output_artifact_key}' of task "
                        f"'{ain.producer_task}', which that task does not produce",
                        (*apath, "taskOutputArtifact"),
                    )
                inputs.arts[name] = source
        definitions = component.input_definitions
        inputs.defs = {
            name: {
                "type": d.parameter_type,
                "has_default": d.has_default,
                "default": d.default,
                "optional": d.is_optional,
                "literals": list(d.literals),
            }
            for name, d in definitions.parameters.items()
        }
        inputs.art_defs = {
            name: {"optional": a.is_optional, "list": a.is_artifact_list}
            for name, a in definitions.artifacts.items()
        }
        if task.parameter_iterator is not None:
            inputs.loop_item = task.parameter_iterator.item_input
        return inputs

    def source_recipe(
        self,
        scope: Scope,
        source: str,
        spec: Any,
        ctx: DagContext,
        produced: Mapping[str, Produced],
        path: tuple[str | int, ...],
    ) -> Recipe:
        """The recipe of one parameter source (a ParameterInputSpec)."""
        if source == PARAM_FROM_COMPONENT_INPUT:
            return ctx.param(spec.component_input_parameter)
        if source == PARAM_FROM_TASK_OUTPUT:
            result = produced.get(spec.producer_task)
            if result is None:
                raise CompileError(f"task '{spec.producer_task}' is not in this DAG", path)
            recipe = result.params.get(spec.output_parameter_key)
            if recipe is None:
                raise CompileError(
                    f"it reads output '{spec.output_parameter_key}' of task '{spec.producer_task}', "
                    "which that task does not produce",
                    (*path, PARAM_FROM_TASK_OUTPUT),
                )
            return recipe
        if source == PARAM_FROM_TASK_FINAL_STATUS:
            result = produced[spec.producer_task]
            return ["status", {"task": spec.producer_task}, result.status]
        if source == PARAM_FROM_CONSTANT:
            return _const(spec.constant)
        raise CompileError(f"unknown parameter source {source!r}", path)

    def platform_ref(
        self,
        scope: Scope,
        ref: Mapping[str, Any],
        ctx: DagContext,
        produced: Mapping[str, Produced],
        path: tuple[str | int, ...],
    ) -> Recipe:
        """The recipe of an InputParameterSpec inside the Kubernetes platform spec."""
        if isinstance(ref.get(PARAM_FROM_COMPONENT_INPUT), str):
            return ctx.param(ref[PARAM_FROM_COMPONENT_INPUT])
        if isinstance(ref.get(PARAM_FROM_TASK_OUTPUT), dict):
            t = ref[PARAM_FROM_TASK_OUTPUT]
            producer, key = str(t.get("producerTask", "")), str(t.get("outputParameterKey", ""))
            result = produced.get(producer)
            if result is None or key not in result.params:
                raise CompileError(
                    f"it reads output '{key}' of task '{producer}', which is not available", path
                )
            return result.params[key]
        if isinstance(ref.get(PARAM_FROM_CONSTANT), dict):
            return _const(ref[PARAM_FROM_CONSTANT].get("constant"))
        raise CompileError("expected componentInputParameter, taskOutputParameter or runtimeValue", path)

    # -- groups (the inputs of DAG and loop tasks) -----------------------------------------
    def _group(self, inputs: TaskInputs, scope: Scope) -> str:
        gid = f"g{len(self.groups)}"
        self.groups[gid] = (inputs, scope)
        return gid

    def _group_ctx(
        self, gid: str, inputs: TaskInputs, item: Leaf | None = None, artifact_list: Recipe | None = None
    ) -> DagContext:
        def param(name: str) -> Recipe:
            if item is not None and name == inputs.loop_item:
                return ["item", item]
            return ["in", gid, name]

        def art(name: str) -> Recipe:
            if item is not None and artifact_list is not None and name == inputs.loop_artifact:
                return ["aitem", artifact_list, item]
            return ["in", gid, name]

        def present(name: str) -> bool | None:
            if item is not None and name in (inputs.loop_item, inputs.loop_artifact):
                return True
            return self._statically_present(inputs, name)

        return DagContext(param, art, present)

    def _statically_present(self, inputs: TaskInputs, name: str) -> bool | None:
        """Whether an input will have a value, as far as the compiler can tell (None: unknown)."""
        if name in inputs.params and name not in inputs.formats:
            known = self._recipe_present(inputs.params[name])
            if known is not False:
                return known
        elif name in inputs.formats:
            return True
        definition = inputs.defs.get(name)
        if definition is not None and definition["has_default"] and definition["default"] is not None:
            return True
        if name in inputs.arts:
            return self._recipe_present(inputs.arts[name])
        return False

    def _recipe_present(self, recipe: Recipe) -> bool | None:
        tag = recipe[0]
        if tag == "c":
            return recipe[1] is not None
        if tag == "none":
            return False
        if tag == "in":
            inputs, _ = self.groups[recipe[1]]
            return self._statically_present(inputs, recipe[2])
        if tag == "oneof":
            return None
        return True

    # -- serialising inputs for a driver ----------------------------------------------------
    def serialize(
        self, scope: Scope, inputs: TaskInputs, slots: _Slots | None
    ) -> tuple[dict[str, Any], list[Leaf]]:
        """The driver configuration of ``inputs`` and the leaves (in order) it reads."""
        ser = _Serializer(self, scope, slots)
        config = ser.inputs(inputs)
        config["groups"] = ser.groups_done
        return config, ser.leaves

    # -- container tasks ---------------------------------------------------------------------
    def compile_container(
        self,
        scope: Scope,
        task: TaskSpec,
        component: ComponentSpec,
        executor: ExecutorSpec,
        inputs: TaskInputs,
        depends: str,
        path: tuple[str | int, ...],
        ctx: DagContext,
        produced: Mapping[str, Produced],
    ) -> Produced:
        container = executor.container
        assert container is not None
        epath: tuple[str | int, ...] = ("deploymentSpec", "executors", executor.label, "container")
        check_no_tags(container.image, "the container image", (*epath, "image"))
        base = scope.names.allocate(task.name, suffixes=("-drv",))
        drv = f"{base}-drv"
        static_key = _static_key(inputs.key_parts)
        outputs = component.output_definitions
        out_names = NameRegistry(max_length=50)
        param_outputs = {name: out_names.allocate(f"o-{name}") for name in outputs.parameters}
        art_outputs = {name: out_names.allocate(f"out-{name}") for name in outputs.artifacts}
        art_paths = _artifact_paths(outputs.artifacts, param_outputs)
        slots = _Slots()

        # The command line: literal elements stay in the manifest; the rest are the driver's.
        presence: dict[str, bool] = {}
        command = self._render_elements(container.command, inputs, presence, slots, (*epath, "command"))
        args = self._render_elements(container.args, inputs, presence, slots, (*epath, "args"))
        env: list[dict[str, Any]] = []
        for name, value in container.env:
            if not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", name):
                raise CompileError(f"{name!r} is not a valid environment variable name", (*epath, "env"))
            if _TAG in value:
                slot = slots.platform_slot(_const(value), f"environment variable {name}")
                env.append({"name": name, "value": _t(f"inputs.parameters.{slot}")})
            else:
                env.append({"name": name, "value": value})
        resources, accelerator = self._resources(container, inputs, slots, epath)

        platform_cfg = self.spec.platform.executors.get(executor.label) or {}
        ppath: tuple[str | int, ...] = (
            "platforms",
            "kubernetes",
            "deploymentSpec",
            "executors",
            executor.label,
        )

        def resolve(
            ref: Mapping[str, Any],
            rpath: tuple[str | int, ...],
            what: str,
            *,
            pvc: bool = False,
            json_kind: str | None = None,
        ) -> ResolvedValue:
            recipe = self.platform_ref(scope, ref, ctx, produced, rpath)
            if recipe[0] == "c":
                return ResolvedValue(recipe[1] is not None, static=recipe[1])
            if recipe[0] == "none":
                return ResolvedValue(False)
            slot = slots.platform_slot(recipe, what, pvc=pvc, json_kind=json_kind)
            return ResolvedValue(True, expression=slot if json_kind else _t(f"inputs.parameters.{slot}"))

        pod = apply_platform(platform_cfg, ppath, resolve) if platform_cfg else PlatformPod()
        self.image_pull_secrets.extend(pod.image_pull_secrets)

        caching = self.enable_caching if self.enable_caching is not None else task.caching.enable_cache
        cache = {
            "enabled": caching,
            "custom_key": task.caching.cache_key,
            "image": container.image,
            "command": list(container.command),
            "args": list(container.args),
            "output_parameters": {n: d.parameter_type for n, d in outputs.parameters.items()},
            "output_artifacts": {
                n: {"type": d.artifact_type.to_json(), "metadata": dict(d.metadata)}
                for n, d in outputs.artifacts.items()
            },
            "prefix": f"canal-{short_hash(self.spec.name, 12)}-",
        }
        config, leaves = self.serialize(scope, inputs, slots)
        config.update(
            {
                "mode": "task",
                "task": task.display_name,
                "name": task.name,
                "component": task.component_ref,
                "run": self.run,
                "condition": self._condition(task, path),
                "render": slots.render,
                "render_resources": slots.resources,
                "platform": slots.platform_serialized,
                "pvc_names": pod.pvc_names,
                "presence": presence,
                "cache": cache,
                "outputs": {
                    "file": EXECUTOR_OUTPUT_PATH,
                    "params": {n: f"{OUTPUT_DIR}/p-{param_outputs[n][2:]}" for n in outputs.parameters},
                    "arts": {
                        n: {
                            "type": d.artifact_type.to_json(),
                            "metadata": dict(d.metadata),
                            "path": art_paths[n],
                        }
                        for n, d in outputs.artifacts.items()
                    },
                },
            }
        )
        leaves.extend(slots.extra_leaves)
        if pod.patch or accelerator:
            config["patch"] = _patch_config(pod)
            if accelerator:
                config["patch"]["accelerator"] = accelerator
        driver_outputs = ["condition", "uid", "keydir", "ident", "cache-key", *slots.output_names()]
        driver_outputs.extend(slot.prefix_output for slot in slots.art_slots if slot.prefix_output)
        if slots.prefix_specs:
            config["prefix_slots"] = slots.prefix_specs
        if "patch" in config:
            driver_outputs.append("pod-spec-patch")
        drv_template = self.template_names.allocate(f"drv-{task.name}")
        self.templates.append(
            self._driver_template(drv_template, "driver", static_key, config, len(leaves), driver_outputs)
        )
        drv_task: dict[str, Any] = {"name": drv, "template": drv_template}
        if depends:
            drv_task["depends"] = depends
        if leaves:
            drv_task["arguments"] = {
                "parameters": [{"name": f"l{i}", "value": scope.local(leaf)} for i, leaf in enumerate(leaves)]
            }
        scope.tasks.append(drv_task)

        # The executor: the user's image and command.
        ex_template = self.template_names.allocate(f"ex-{task.name}")
        template, arguments = self._executor_template(
            ex_template,
            static_key,
            container,
            command,
            args,
            env,
            resources,
            pod,
            slots,
            bool(pod.patch or accelerator),
            param_outputs,
            art_outputs,
            art_paths,
            task,
            outputs_defs=(outputs.parameters, outputs.artifacts),
            caching=caching,
            drv=drv,
            scope=scope,
        )
        self.templates.append(template)
        main_task: dict[str, Any] = {
            "name": base,
            "template": ex_template,
            "depends": f"{drv}.Succeeded",
            "arguments": arguments,
        }
        if task.trigger.condition:
            main_task["when"] = f"{_t(f'tasks.{drv}.outputs.parameters.condition')} == true"
        scope.tasks.append(main_task)

        def out(name: str) -> Leaf:
            return Leaf(scope, _t(f"tasks.{base}.outputs.parameters.{name}"))

        ran = out("ran")
        exec_out = out("executor-output")
        ident = Leaf(scope, _t(f"tasks.{drv}.outputs.parameters.ident"))
        params: dict[str, Recipe] = {
            name: [
                "out",
                {"task": task.name, "key": name, "type": d.parameter_type},
                out(param_outputs[name]),
                exec_out,
                ran,
            ]
            for name, d in outputs.parameters.items()
        }
        arts: dict[str, Recipe] = {
            name: [
                "art",
                {
                    "task": task.name,
                    "key": name,
                    "type": d.artifact_type.to_json(),
                    "meta": dict(d.metadata),
                    "list": d.is_artifact_list,
                    "file": art_paths[name].rsplit("/", 1)[1],
                    "base": f"{self.run_prefix}/{_segment(task.name)}",
                    "ex": ex_template,
                },
                exec_out,
                ran,
                ident,
                ArtLeaf(scope, _t(f"tasks.{base}.outputs.artifacts.{OUTPUTS_ARTIFACT}")),
                Leaf(scope, _t(f"tasks.{drv}.outputs.parameters.keydir")),
            ]
            for name, d in outputs.artifacts.items()
        }
        return Produced(base, params, arts, Leaf(scope, _t(f"tasks.{base}.status")))

    def _render_elements(
        self,
        items: tuple[str, ...],
        inputs: TaskInputs,
        presence: dict[str, bool],
        slots: _Slots,
        path: tuple[str | int, ...],
    ) -> list[str]:
        out: list[str] = []
        for i, item in enumerate(items):
            structure = structured_placeholder(item)
            nodes = [item] if structure is None else self._expand(structure, inputs, presence, (*path, i))
            for node in nodes:
                if isinstance(node, str) and _TAG not in node:
                    out.append(node)
                else:
                    out.append(_t(f"inputs.parameters.{slots.render_slot(node)}"))
        return out

    def _expand(
        self, node: Any, inputs: TaskInputs, presence: dict[str, bool], path: tuple[str | int, ...]
    ) -> list[Any]:
        """Structured placeholders, with IfPresent decided now: one node per argument."""
        if node is None:
            return []
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            out: list[Any] = []
            for item in node:
                out.extend(self._expand(item, inputs, presence, path))
            return out
        if isinstance(node, dict) and "Concat" in node:
            return [node]
        if isinstance(node, dict) and "IfPresent" in node:
            body = node["IfPresent"]
            name = str(body.get("InputName"))
            known = self._statically_present(inputs, name)
            if known is None:
                raise CompileError(
                    f"IfPresent on input '{name}': whether it has a value is only known at run time "
                    "(a dsl.OneOf), and Argo cannot drop an argument then",
                    path,
                )
            presence[name] = known
            return self._expand(body.get("Then") if known else body.get("Else"), inputs, presence, path)
        raise CompileError(f"unknown structured placeholder {node!r}", path)

    def _resources(
        self, container: ContainerSpec, inputs: TaskInputs, slots: _Slots, path: tuple[str | int, ...]
    ) -> tuple[dict[str, Any], dict[str, str] | None]:
        """The container's resources; placeholders the compiler can resolve (a constant, a
        pipeline parameter) are resolved now, the others by the driver."""
        res = container.resources
        limits: dict[str, Any] = {}
        requests: dict[str, Any] = {}
        rpath = (*path, "resources")

        def value(text: str, what: str) -> str:
            if "{{$" in text:
                known = self._static_text(text, inputs)
                if known is None:
                    return _t(f"inputs.parameters.{slots.resource_slot(text)}")
                text = known
            return quantity(text, rpath, what)

        if res.cpu_limit:
            limits["cpu"] = value(res.cpu_limit, "cpu limit")
        if res.memory_limit:
            limits["memory"] = value(res.memory_limit, "memory limit")
        if res.cpu_request:
            requests["cpu"] = value(res.cpu_request, "cpu request")
        if res.memory_request:
            requests["memory"] = value(res.memory_request, "memory request")
        accelerator: dict[str, str] | None = None
        if res.accelerator_type or res.accelerator_count:
            kind = res.accelerator_type or "nvidia.com/gpu"
            if "{{$" in kind:
                kind = self._static_text(kind, inputs) or ""
            if kind and "{{$" not in kind:
                resource = (
                    kind
                    if "/" in kind
                    else ("cloud-tpus.google.com/v2" if "TPU" in kind.upper() else "nvidia.com/gpu")
                )
                limits[resource] = value(res.accelerator_count or "1", "accelerator count")
            else:
                # The resource's name is only known at run time: the driver patches the pod.
                accelerator = {"type": res.accelerator_type, "count": res.accelerator_count or "1"}
        out: dict[str, Any] = {}
        if limits:
            out["limits"] = limits
        if requests:
            out["requests"] = requests
        return out, accelerator

    def _static_text(self, text: str, inputs: TaskInputs) -> str | None:
        """``text`` with its input placeholders substituted, when every one is a known constant."""
        missing = False

        def replace(match: re.Match[str]) -> str:
            nonlocal missing
            name = match.group(1)
            recipe = inputs.params.get(name)
            definition = inputs.defs.get(name) or {}
            value: Any = None
            if recipe is not None and recipe[0] == "c" and name not in inputs.formats:
                value = recipe[1]
            elif recipe is not None and recipe[0] == "in":
                group, _ = self.groups[recipe[1]]
                inner = group.params.get(recipe[2])
                if inner is not None and inner[0] == "c" and recipe[2] not in group.formats:
                    value = inner[1]
            elif recipe is None and definition.get("has_default"):
                value = definition.get("default")
            if value is None:
                missing = True
                return match.group(0)
            return value_to_text(normalize_parameter_value(value, str(definition.get("type", "STRING"))))

        result = re.sub(r"\{\{\$\.inputs\.parameters\['([^']*)'\]\}\}", replace, text)
        if missing or "{{$" in result:
            return None
        return result

    def _executor_template(
        self,
        name: str,
        static_key: str,
        container: ContainerSpec,
        command: list[str],
        args: list[str],
        env: list[dict[str, Any]],
        resources: dict[str, Any],
        pod: PlatformPod,
        slots: _Slots,
        patch: bool,
        param_outputs: Mapping[str, str],
        art_outputs: Mapping[str, str],
        art_paths: Mapping[str, str],
        task: TaskSpec,
        *,
        outputs_defs: tuple[Mapping[str, Any], Mapping[str, Any]],
        caching: bool,
        drv: str,
        scope: Scope,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        main: dict[str, Any] = {"name": "main", "image": container.image}
        if command:
            main["command"] = command
        if args:
            main["args"] = args
        all_env = [*env, *pod.env]
        if all_env:
            main["env"] = all_env
        if resources:
            main["resources"] = resources
        mounts = [{"name": "canal-outputs", "mountPath": OUTPUT_DIR}, *pod.mounts]
        if self.workspace:
            mounts.append({"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_PATH})
        main["volumeMounts"] = mounts
        if pod.image_pull_policy:
            main["imagePullPolicy"] = pod.image_pull_policy
        if pod.security_context:
            main["securityContext"] = dict(pod.security_context)

        in_params: list[dict[str, Any]] = [{"name": "keydir"}]
        arg_params: list[dict[str, Any]] = [
            {"name": "keydir", "value": _t(f"tasks.{drv}.outputs.parameters.keydir")}
        ]
        for output in slots.output_names():
            in_params.append({"name": output})
            arg_params.append({"name": output, "value": _t(f"tasks.{drv}.outputs.parameters.{output}")})
        if patch:
            in_params.append({"name": "pod-spec-patch"})
            arg_params.append(
                {"name": "pod-spec-patch", "value": _t(f"tasks.{drv}.outputs.parameters.pod-spec-patch")}
            )
        if caching:
            in_params.append({"name": "cache-key"})
            arg_params.append({"name": "cache-key", "value": _t(f"tasks.{drv}.outputs.parameters.cache-key")})
        in_arts: list[dict[str, Any]] = [{"name": "canal-ran", "path": RAN_PATH, "raw": {"data": "ran"}}]
        arg_arts: list[dict[str, Any]] = []
        for slot in slots.art_slots:
            if slot.prefix_output:
                in_params.append({"name": slot.prefix_output})
                arg_params.append(
                    {
                        "name": slot.prefix_output,
                        "value": _t(f"tasks.{drv}.outputs.parameters.{slot.prefix_output}"),
                    }
                )
                in_arts.append(
                    {
                        "name": slot.name,
                        "path": slot.path,
                        "optional": True,
                        "s3": self.s3_location(self.bucket, _t(f"inputs.parameters.{slot.prefix_output}")),
                    }
                )
            elif slot.art is not None:
                in_arts.append({"name": slot.name, "path": slot.path, "optional": True})
                arg_arts.append({"name": slot.name, "from": scope.local_art(slot.art), "optional": True})
            else:
                assert slot.loc is not None
                in_arts.append(self._keyed_input(slot, in_params, arg_params, scope))

        key_base = f"{self.run_prefix}/{_segment(task.name)}/{_t('inputs.parameters.keydir')}"
        out_params = [
            {
                "name": param_outputs[n],
                "valueFrom": {"path": f"{OUTPUT_DIR}/p-{param_outputs[n][2:]}", "default": ABSENT},
            }
            for n in outputs_defs[0]
        ]
        out_params.append(
            {"name": "executor-output", "valueFrom": {"path": EXECUTOR_OUTPUT_PATH, "default": ABSENT}}
        )
        out_params.append({"name": "ran", "valueFrom": {"path": RAN_PATH, "default": ABSENT}})
        # One upload: the step's whole output directory, so that an artifact written
        # elsewhere in it (dsl.get_uri(suffix=...)) is stored too.
        out_arts = (
            [
                {
                    "name": OUTPUTS_ARTIFACT,
                    "path": OUTPUT_DIR,
                    "optional": True,
                    "archive": {"none": {}},
                    "s3": self.s3_location(self.bucket, key_base),
                }
            ]
            if outputs_defs[1]
            else []
        )
        annotations = {
            **pod.annotations,
            ANNOTATION_ROLE: "executor",
            ANNOTATION_TASK: static_key,
            ANNOTATION_OUTPUTS: argo_safe_json(
                {
                    "parameters": {
                        param_outputs[n]: {"name": n, "type": d.parameter_type}
                        for n, d in outputs_defs[0].items()
                    },
                    "artifacts": {
                        n: {
                            "file": art_paths[n].rsplit("/", 1)[1],
                            "type": d.artifact_type.to_json(),
                            "metadata": dict(d.metadata),
                            "list": d.is_artifact_list,
                        }
                        for n, d in outputs_defs[1].items()
                    },
                }
            ),
        }
        template: dict[str, Any] = {
            "name": name,
            "metadata": {"annotations": annotations, **({"labels": dict(pod.labels)} if pod.labels else {})},
            "inputs": {"parameters": in_params, "artifacts": in_arts},
            "outputs": {"parameters": out_params, **({"artifacts": out_arts} if out_arts else {})},
            "container": main,
            "volumes": [{"name": "canal-outputs", "emptyDir": {}}, *pod.volumes],
        }
        if pod.node_selector:
            template["nodeSelector"] = dict(pod.node_selector)
        if pod.tolerations:
            template["tolerations"] = list(pod.tolerations)
        affinity = _affinity(pod)
        if affinity:
            template["affinity"] = affinity
        if pod.init_containers:
            template["initContainers"] = list(pod.init_containers)
        deadline = pod.active_deadline_seconds or self.settings.step_timeout_seconds
        if deadline:
            template["activeDeadlineSeconds"] = deadline
        if patch:
            template["podSpecPatch"] = _t("inputs.parameters.pod-spec-patch")
        if task.retry is not None and task.retry.max_retry_count > 0:
            template["retryStrategy"] = _retry_strategy(task.retry)
        if caching:
            template["memoize"] = {
                "key": _t("inputs.parameters.cache-key"),
                "cache": {"configMap": {"name": self.settings.cache_config_map}},
                "maxAge": self.settings.cache_max_age,
            }
        arguments: dict[str, Any] = {"parameters": arg_params}
        if arg_arts:
            arguments["artifacts"] = arg_arts
        return template, arguments

    def _keyed_input(
        self, slot: _ArtSlot, in_params: list[dict[str, Any]], arg_params: list[dict[str, Any]], scope: Scope
    ) -> dict[str, Any]:
        loc = slot.loc
        assert loc is not None

        def param(leaf: Leaf, suffix: str) -> str:
            name = f"{slot.name}-{suffix}"
            in_params.append({"name": name})
            arg_params.append({"name": name, "value": scope.local(leaf)})
            return _t(f"inputs.parameters.{name}")

        artifact: dict[str, Any] = {"name": slot.name, "path": slot.path, "optional": True}
        if loc.kind == "s3":
            # An imported object may be in any bucket: its location is always complete.
            artifact["s3"] = self.s3_location(param(loc.bucket, "bucket"), param(loc.key, "key"), inline=True)
        elif loc.kind == "gcs":
            gcs: dict[str, Any] = {"bucket": param(loc.bucket, "bucket"), "key": param(loc.key, "key")}
            if self.settings.gcs_credentials_secret:
                gcs["serviceAccountKeySecret"] = {
                    "name": self.settings.gcs_credentials_secret,
                    "key": "key.json",
                }
            artifact["gcs"] = gcs
        else:
            artifact["http"] = {"url": param(loc.url, "url")}
        return artifact

    # -- importers --------------------------------------------------------------------------
    def compile_importer(
        self,
        scope: Scope,
        task: TaskSpec,
        component: ComponentSpec,
        executor: ExecutorSpec,
        inputs: TaskInputs,
        depends: str,
        path: tuple[str | int, ...],
    ) -> Produced:
        importer = executor.importer
        assert importer is not None
        base = scope.names.allocate(task.name, suffixes=("-drv",))
        if importer.artifact_uri_constant is not None:
            scheme = _scheme(importer.artifact_uri_constant)
        else:
            source = importer.artifact_uri_runtime_parameter or ""
            recipe = inputs.params.get(source)
            scheme = (
                _scheme(recipe[1])
                if recipe is not None and recipe[0] == "c" and isinstance(recipe[1], str)
                else None
            )
        kinds = {"s3": "s3", "minio": "s3", "gs": "gcs", "http": "http", "https": "http"}
        kind = "s3" if scheme is None else kinds.get(scheme, "")
        config, leaves = self.serialize(scope, inputs, None)
        config.update(
            {
                "mode": "importer",
                "task": task.display_name,
                "name": task.name,
                "run": self.run,
                "importer": {
                    "constant": importer.artifact_uri_constant,
                    "parameter": importer.artifact_uri_runtime_parameter,
                    "metadata": dict(importer.metadata),
                    "type": importer.type_schema.to_json(),
                    "scheme": ["s3", "minio"] if scheme is None else None,
                },
            }
        )
        template_name = self.template_names.allocate(f"imp-{task.name}")
        self.templates.append(
            self._driver_template(
                template_name,
                "importer",
                _static_key(inputs.key_parts),
                config,
                len(leaves),
                ["artifact", "bucket", "key", "url"],
            )
        )
        node: dict[str, Any] = {"name": base, "template": template_name}
        if depends:
            node["depends"] = depends
        if leaves:
            node["arguments"] = {
                "parameters": [{"name": f"l{i}", "value": scope.local(leaf)} for i, leaf in enumerate(leaves)]
            }
        scope.tasks.append(node)

        def out(name: str) -> Leaf:
            return Leaf(scope, _t(f"tasks.{base}.outputs.parameters.{name}"))

        output_name = next(iter(component.output_definitions.artifacts), "artifact")
        loc = ImpLoc(kind, out("bucket"), out("key"), out("url"))
        arts = {output_name: ["imp", {"task": task.name, "key": output_name}, out("artifact"), loc]}
        return Produced(base, {}, arts, Leaf(scope, _t(f"tasks.{base}.status")))

    # -- kfp-kubernetes CreatePVC / DeletePVC ---------------------------------------------------
    def compile_pvc(
        self,
        scope: Scope,
        task: TaskSpec,
        component: ComponentSpec,
        executor: ExecutorSpec,
        inputs: TaskInputs,
        depends: str,
        path: tuple[str | int, ...],
    ) -> Produced:
        assert executor.container is not None
        image = executor.container.image
        action = {"argostub/createpvc": "create", "argostub/deletepvc": "delete"}.get(image)
        if action is None:
            raise CompileError(
                f"'{image}' is a KFP stub image Canal does not know",
                ("deploymentSpec", "executors", executor.label),
            )
        base = scope.names.allocate(task.name, suffixes=("-drv",))
        drv = f"{base}-drv"
        config, leaves = self.serialize(scope, inputs, None)
        config.update(
            {
                "mode": "pvc",
                "action": action,
                "task": task.display_name,
                "run": self.run,
                "workflow_name": self.name,
            }
        )
        static_key = _static_key(inputs.key_parts)
        drv_template = self.template_names.allocate(f"drv-{task.name}")
        self.templates.append(
            self._driver_template(
                drv_template, "driver", static_key, config, len(leaves), ["manifest", "name"]
            )
        )
        drv_task: dict[str, Any] = {"name": drv, "template": drv_template}
        if depends:
            drv_task["depends"] = depends
        if leaves:
            drv_task["arguments"] = {
                "parameters": [{"name": f"l{i}", "value": scope.local(leaf)} for i, leaf in enumerate(leaves)]
            }
        scope.tasks.append(drv_task)
        name = self.template_names.allocate(f"pvc-{task.name}")
        template: dict[str, Any] = {
            "name": name,
            "metadata": {"annotations": {ANNOTATION_ROLE: "pvc", ANNOTATION_TASK: static_key}},
            "inputs": {"parameters": [{"name": "manifest"}]},
            "resource": {"action": action, "manifest": _t("inputs.parameters.manifest")},
        }
        outputs = component.output_definitions.parameters
        out_name = ""
        if action == "create" and outputs:
            out_name = "o-name"
            template["outputs"] = {
                "parameters": [
                    {"name": out_name, "valueFrom": {"jsonPath": "{.metadata.name}", "default": ABSENT}}
                ]
            }
        if action == "delete":
            template["resource"]["flags"] = ["--ignore-not-found"]
        self.templates.append(template)
        scope.tasks.append(
            {
                "name": base,
                "template": name,
                "depends": f"{drv}.Succeeded",
                "arguments": {
                    "parameters": [
                        {"name": "manifest", "value": _t(f"tasks.{drv}.outputs.parameters.manifest")}
                    ]
                },
            }
        )
        params: dict[str, Recipe] = {}
        if out_name:
            leaf = Leaf(scope, _t(f"tasks.{base}.outputs.parameters.{out_name}"))
            for key, d in outputs.items():
                params[key] = [
                    "out",
                    {"task": task.name, "key": key, "type": d.parameter_type},
                    leaf,
                    None,
                    None,
                ]
        return Produced(base, params, {}, Leaf(scope, _t(f"tasks.{base}.status")))

    # -- sub-DAGs -----------------------------------------------------------------------------
    def compile_subdag(
        self,
        scope: Scope,
        task: TaskSpec,
        component: ComponentSpec,
        inputs: TaskInputs,
        depends: str,
        path: tuple[str | int, ...],
    ) -> Produced:
        base = scope.names.allocate(task.name, suffixes=("-drv",))
        gid = self._group(inputs, scope)
        first_depends = depends
        when = ""
        if task.trigger.condition:
            drv = self._gate(scope, task, inputs, base, depends, path, mode="gate")
            first_depends = f"{drv}.Succeeded"
            when = f"{_t(f'tasks.{drv}.outputs.parameters.condition')} == true"
        child = Scope(self, self.template_names.allocate(f"dag-{task.name}"), scope, inputs.key_parts)
        params, arts = self.compile_dag(child, component, self._group_ctx(gid, inputs), _component_path(task))
        exported_params = {
            k: _map_leaves(
                r, lambda leaf: child.export(leaf, base, scope), lambda a: child.export_art(a, base, scope)
            )
            for k, r in params.items()
        }
        exported_arts = {
            k: _map_leaves(
                r, lambda leaf: child.export(leaf, base, scope), lambda a: child.export_art(a, base, scope)
            )
            for k, r in arts.items()
        }
        self.templates.append(self._dag_template(child, "dag", _static_key(inputs.key_parts)))
        node: dict[str, Any] = {"name": base, "template": child.name}
        if first_depends:
            node["depends"] = first_depends
        if when:
            node["when"] = when
        _arguments(node, child)
        scope.tasks.append(node)
        return Produced(base, exported_params, exported_arts, Leaf(scope, _t(f"tasks.{base}.status")))

    def _gate(
        self,
        scope: Scope,
        task: TaskSpec,
        inputs: TaskInputs,
        base: str,
        depends: str,
        path: tuple[str | int, ...],
        *,
        mode: str,
        extra: Mapping[str, Any] | None = None,
        outputs: tuple[str, ...] = ("condition",),
    ) -> str:
        drv = f"{base}-drv"
        config, leaves = self.serialize(scope, inputs, None)
        config.update(
            {
                "mode": mode,
                "task": task.display_name,
                "name": task.name,
                "run": self.run,
                "condition": self._condition(task, path),
                **(extra or {}),
            }
        )
        template_name = self.template_names.allocate(f"drv-{task.name}")
        self.templates.append(
            self._driver_template(
                template_name, "driver", _static_key(inputs.key_parts), config, len(leaves), list(outputs)
            )
        )
        node: dict[str, Any] = {"name": drv, "template": template_name}
        if depends:
            node["depends"] = depends
        if leaves:
            node["arguments"] = {
                "parameters": [{"name": f"l{i}", "value": scope.local(leaf)} for i, leaf in enumerate(leaves)]
            }
        scope.tasks.append(node)
        return drv

    # -- ParallelFor ----------------------------------------------------------------------------
    def compile_loop(
        self,
        scope: Scope,
        task: TaskSpec,
        component: ComponentSpec,
        inputs: TaskInputs,
        depends: str,
        path: tuple[str | int, ...],
    ) -> Produced:
        iterator = task.parameter_iterator
        over_artifacts = task.artifact_iterator
        base = scope.names.allocate(task.name, suffixes=("-drv",))
        gid = self._group(inputs, scope)
        static_items: list[Any] | None = None
        if over_artifacts is not None:
            # ParallelFor over artifacts: the driver counts them; an iteration's item is
            # "element i of the list", read wherever the list's bytes are.
            inputs.loop_artifact = over_artifacts.item_input
            iterator_config: dict[str, Any] = {"artifact": over_artifacts.input_artifact}
        else:
            assert iterator is not None
            iterator_config = {"raw": iterator.raw, "input": iterator.input_parameter}
        if iterator is not None and iterator.raw is not None and not task.trigger.condition:
            decoded = json.loads(iterator.raw)
            if len(decoded) > self.settings.max_loop_items:
                raise CompileError(
                    f"the loop has {len(decoded):,} items; "
                    f"at most {self.settings.max_loop_items:,} are allowed",
                    (*path, "parameterIterator", "items", "raw"),
                )
            static_items = [{"i": i, "v": argo_safe_json(v)} for i, v in enumerate(decoded)]
        first_depends = depends
        when = ""
        items_expr = ""
        if static_items is None:
            drv = self._gate(
                scope,
                task,
                inputs,
                base,
                depends,
                path,
                mode="iter",
                extra={"iterator": iterator_config, "max_items": self.settings.max_loop_items},
                outputs=("condition", "items", "count"),
            )
            first_depends = f"{drv}.Succeeded"
            items_expr = _t(f"tasks.{drv}.outputs.parameters.items")
            if task.trigger.condition:
                when = f"{_t(f'tasks.{drv}.outputs.parameters.condition')} == true"

        static_key = _static_key(inputs.key_parts)
        wrapper = Scope(self, self.template_names.allocate(f"loop-{task.name}"), scope, inputs.key_parts)
        iteration = Scope(self, self.template_names.allocate(f"iter-{task.name}"), wrapper, [])
        item = Leaf(iteration, _t("inputs.parameters.item"))
        iteration.key_parts = [*inputs.key_parts, "#", ["idx", item]]
        params, arts = self.compile_dag(
            iteration,
            component,
            self._group_ctx(
                gid, inputs, item, inputs.arts.get(over_artifacts.input_artifact) if over_artifacts else None
            ),
            _component_path(task),
        )

        def aggregate(recipe: Any) -> Any:
            return self._aggregate(
                recipe, lambda leaf: iteration.aggregate(leaf, "it", wrapper), inputs.key_parts, task
            )

        aggregated = {k: aggregate(r) for k, r in params.items()}
        aggregated_arts = {k: aggregate(r) for k, r in arts.items()}
        iteration.input_params.insert(0, {"name": "item"})
        iteration.arg_params.insert(0, {"name": "item", "value": _t("item")})
        it_task: dict[str, Any] = {"name": "it", "template": iteration.name}
        _arguments(it_task, iteration)
        if static_items is None:
            wrapper.input_params.insert(0, {"name": "items"})
            wrapper.arg_params.insert(0, {"name": "items", "value": items_expr})
            it_task["withParam"] = _t("inputs.parameters.items")
        else:
            it_task["withItems"] = static_items
        wrapper.tasks.append(it_task)
        self.templates.append(self._dag_template(iteration, "iteration", static_key))

        def collect(recipe: Any) -> Recipe:
            return [
                "collect",
                _map_leaves(recipe, lambda leaf: wrapper.export(leaf, base, scope), lambda a: a),
            ]

        collected = {k: collect(r) for k, r in aggregated.items()}
        collected_arts = {k: collect(r) for k, r in aggregated_arts.items()}
        self.templates.append(self._dag_template(wrapper, "loop", static_key, task.parallelism_limit))
        node: dict[str, Any] = {"name": base, "template": wrapper.name}
        if first_depends:
            node["depends"] = first_depends
        if when:
            node["when"] = when
        _arguments(node, wrapper)
        scope.tasks.append(node)
        return Produced(base, collected, collected_arts, Leaf(scope, _t(f"tasks.{base}.status")))

    def _aggregate(
        self, recipe: Any, leaf_fn: Callable[[Leaf], Leaf], loop: list[Any], task: TaskSpec
    ) -> Any:
        """A loop body's output recipe, read across iterations (Argo aggregates each leaf)."""
        if isinstance(recipe, Leaf):
            return leaf_fn(recipe)
        if isinstance(recipe, ImpLoc):
            raise CompileError(
                f"ParallelFor '{task.display_name}' collects imported artifacts, "
                "which Canal cannot gather on Argo",
                _component_path(task),
            )
        if not isinstance(recipe, list):
            return recipe
        if recipe and recipe[0] in ("c", "none"):
            return list(recipe)
        if recipe and recipe[0] == "art":
            info = dict(recipe[1], loop=loop)
            # The producer's outputs must be in this run's directory: no memoized copies.
            self.no_memoize.add(str(info.get("ex", "")))
            return [
                "art",
                info,
                *(self._aggregate(item, leaf_fn, loop, task) for item in recipe[2:5]),
                None,
                self._aggregate(recipe[6], leaf_fn, loop, task),
            ]
        return [self._aggregate(item, leaf_fn, loop, task) for item in recipe]


# ---------------------------------------------------------------------------------------
# Serialisation of recipes for one driver
# ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class _ArtSlot:
    name: str
    path: str
    art: ArtLeaf | None = None
    loc: ImpLoc | None = None
    prefix_output: str = ""  # a loop's directory of one output: the driver names the key


class _Slots:
    """The driver outputs and executor inputs one container task needs."""

    def __init__(self) -> None:
        self.render: dict[str, Any] = {}
        self.resources: dict[str, str] = {}
        self.platform: dict[str, dict[str, Any]] = {}
        self.art_slots: list[_ArtSlot] = []
        self._art_index: dict[int, _ArtSlot] = {}
        self._prefix_index: dict[tuple[str, int], _ArtSlot] = {}
        self.extra_leaves: list[Leaf] = []
        # The platform slots with their recipes serialised (set by _Serializer).
        self.platform_serialized: dict[str, Any] = {}
        self.prefix_specs: dict[str, Any] = {}

    def render_slot(self, node: Any) -> str:
        slot = f"a{len(self.render)}"
        self.render[slot] = node
        return slot

    def resource_slot(self, text: str) -> str:
        slot = f"r{len(self.resources)}"
        self.resources[slot] = text
        return slot

    def platform_slot(
        self, recipe: Recipe, what: str, *, pvc: bool = False, json_kind: str | None = None
    ) -> str:
        slot = f"p{len(self.platform)}"
        self.platform[slot] = {"recipe": recipe, "what": what, "pvc": pvc, "json": json_kind}
        return slot

    def output_names(self) -> list[str]:
        names = [*self.render, *self.resources]
        names.extend(slot for slot, spec in self.platform.items() if not spec["json"])
        return names

    def prefix_slot(self, base: str, loop: list[Any], serialized_loop: list[Any]) -> _ArtSlot:
        key = (base, id(loop))
        slot = self._prefix_index.get(key)
        if slot is None:
            name = f"s{len(self.art_slots)}"
            slot = _ArtSlot(name, f"{INPUT_DIR}/{name}", prefix_output=f"k{len(self.prefix_specs)}")
            self.prefix_specs[slot.prefix_output] = {"base": base, "loop": serialized_loop}
            self.art_slots.append(slot)
            self._prefix_index[key] = slot
        return slot

    def art_slot(self, art: ArtLeaf | None = None, loc: ImpLoc | None = None) -> _ArtSlot:
        key = id(art if art is not None else loc)
        slot = self._art_index.get(key)
        if slot is None:
            name = f"s{len(self.art_slots)}"
            slot = _ArtSlot(name, f"{INPUT_DIR}/{name}", art, loc)
            self.art_slots.append(slot)
            self._art_index[key] = slot
        return slot


class _Serializer:
    def __init__(self, compiler: _Compiler, scope: Scope, slots: _Slots | None) -> None:
        self.compiler = compiler
        self.scope = scope
        self.slots = slots
        self.leaves: list[Leaf] = []
        self._leaf_index: dict[int, int] = {}
        self.groups_done: dict[str, Any] = {}
        if slots is not None:
            slots.platform_serialized = {
                slot: {**spec, "recipe": self.recipe(spec["recipe"])} for slot, spec in slots.platform.items()
            }

    def leaf(self, leaf: Leaf) -> int:
        index = self._leaf_index.get(id(leaf))
        if index is None:
            index = len(self.leaves)
            self.leaves.append(leaf)
            self._leaf_index[id(leaf)] = index
        return index

    def recipe(self, node: Any) -> Any:
        if isinstance(node, Leaf):
            return self.leaf(node)
        if isinstance(node, list):
            if node and node[0] in ("c", "none"):
                return list(node)  # a constant's value is data, never a recipe
            if node and node[0] == "in" and len(node) == 3 and isinstance(node[1], str):
                self.group(node[1])
                return list(node)
            if node and node[0] == "art":
                info = dict(node[1])
                art_leaf, loop = node[5], info.pop("loop", None)
                base = info.pop("base", "")
                info.pop("ex", None)
                if art_leaf is None:
                    # Collected from a loop: one directory holds every iteration's copy.
                    serialized_loop = self.key(loop or [])
                    info["loop"] = serialized_loop
                    info["prefix"] = (
                        self.slots.prefix_slot(base, loop or [], serialized_loop).path
                        if self.slots is not None
                        else ""
                    )
                    info["path"] = ""
                else:
                    info["dir"] = self.slots.art_slot(art=art_leaf).path if self.slots is not None else ""
                info["root"] = OUTPUT_DIR
                return [
                    "art",
                    info,
                    self.recipe(node[2]),
                    self.recipe(node[3]),
                    self.recipe(node[4]),
                    self.recipe(node[6]),
                ]
            if node and node[0] == "imp":
                info = dict(node[1])
                loc: ImpLoc = node[3]
                if self.slots is not None and loc.kind:
                    info["path"] = self.slots.art_slot(loc=loc).path
                return ["imp", info, self.recipe(node[2])]
            return [self.recipe(item) for item in node]
        return node

    def group(self, gid: str) -> None:
        if gid in self.groups_done:
            return
        self.groups_done[gid] = {}  # placeholder against cycles (there are none)
        inputs, _scope = self.compiler.groups[gid]
        self.groups_done[gid] = self.inputs(inputs)

    def key(self, parts: list[Any]) -> list[Any]:
        out: list[Any] = []
        for part in parts:
            if isinstance(part, str):
                if out and isinstance(out[-1], str):
                    out[-1] += part
                else:
                    out.append(part)
            else:
                out.append(["idx", self.leaf(part[1])])
        return out

    def inputs(self, inputs: TaskInputs) -> dict[str, Any]:
        return {
            "task": inputs.task,
            "key": self.key(inputs.key_parts),
            "params": {name: self.recipe(r) for name, r in inputs.params.items()},
            "formats": dict(inputs.formats),
            "selectors": dict(inputs.selectors),
            "defs": dict(inputs.defs),
            "arts": {name: self.recipe(r) for name, r in inputs.arts.items()},
            "art_defs": dict(inputs.art_defs),
            "loop_item": inputs.loop_item,
            "loop_artifact": inputs.loop_artifact,
        }


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def _arguments(node: dict[str, Any], child: Scope) -> None:
    arguments: dict[str, Any] = {}
    if child.arg_params:
        arguments["parameters"] = child.arg_params
    if child.arg_arts:
        arguments["artifacts"] = child.arg_arts
    if arguments:
        node["arguments"] = arguments


def _artifact_paths(artifacts: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, str]:
    """Where a step writes each output artifact: ``/canal/outputs/<name>``, the task root
    the kfp SDK's ``dsl.get_uri(suffix=name)`` also points at (it is the directory of the
    ExecutorOutput file), so pythonic artifacts land where Argo uploads from."""
    taken = {f"p-{p[2:]}" for p in params.values()} | {"executor-output.json"}
    out: dict[str, str] = {}
    for name in artifacts:
        leaf = name if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}", name) else dns_label(name)
        if leaf in taken:
            leaf = f"a-{dns_label(name)}-{short_hash(name, 6)}"
        taken.add(leaf)
        out[name] = f"{OUTPUT_DIR}/{leaf}"
    return out


def _any_state(task: str) -> str:
    return "(" + " || ".join(f"{task}.{state}" for state in ALL_STATES) + ")"


def _static_key(parts: list[Any]) -> str:
    return "".join(p for p in parts if isinstance(p, str)).replace("#", "")


def _component_path(task: TaskSpec) -> tuple[str | int, ...]:
    return ("components", task.component_ref, "dag")


def _segment(name: str) -> str:
    try:
        return safe_segment(name)
    except UnsafePathError:
        return "x-" + short_hash(name)


def _scheme(uri: Any) -> str | None:
    if not isinstance(uri, str) or "://" not in uri:
        return ""
    return uri.split("://", 1)[0].lower()


def _label_value(value: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", value)[:63].strip("-._")
    return cleaned or "x"


def _int_field(value: Any, path: tuple[str | int, ...]) -> int:
    if value in (None, "", 0, "0"):
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CompileError("must be an integer", path) from None
    if number < 0:
        raise CompileError("cannot be negative", path)
    return number


def _defs_as_ir(definitions: InputDefinitions) -> dict[str, Any]:
    return {
        name: {
            "parameterType": d.parameter_type,
            **({"defaultValue": d.default} if d.has_default else {}),
            **({"isOptional": True} if d.is_optional else {}),
        }
        for name, d in definitions.parameters.items()
    }


def _seconds(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _retry_strategy(policy: Any) -> dict[str, Any]:
    strategy: dict[str, Any] = {"limit": policy.max_retry_count, "retryPolicy": "Always"}
    backoff: dict[str, Any] = {}
    if policy.backoff_duration:
        backoff["duration"] = _seconds(policy.backoff_duration)
        factor = policy.backoff_factor
        backoff["factor"] = int(factor) if float(factor).is_integer() else str(factor)
        # Canal's engine (and KFP's intent) caps each delay, which is Argo's ``cap``.
        backoff["cap"] = _seconds(policy.backoff_max_duration)
    if backoff:
        strategy["backoff"] = backoff
    return strategy


def _affinity(pod: PlatformPod) -> dict[str, Any]:
    affinity: dict[str, Any] = {}
    node: dict[str, Any] = {}
    if pod.node_affinity_required:
        node["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": pod.node_affinity_required
        }
    if pod.node_affinity_preferred:
        node["preferredDuringSchedulingIgnoredDuringExecution"] = pod.node_affinity_preferred
    if node:
        affinity["nodeAffinity"] = node
    for key, terms in pod.pod_affinity.items():
        kind, mode = key.split("/")
        field_name = (
            "requiredDuringSchedulingIgnoredDuringExecution"
            if mode == "required"
            else "preferredDuringSchedulingIgnoredDuringExecution"
        )
        affinity.setdefault(kind, {})[field_name] = terms
    return affinity


def _patch_config(pod: PlatformPod) -> dict[str, Any]:
    return {
        "nodeSelector": {"static": dict(pod.node_selector), "slots": pod.patch.get("nodeSelector", [])},
        "tolerations": {"static": list(pod.tolerations), "slots": pod.patch.get("tolerations", [])},
        "nodeAffinity": {
            "required": list(pod.node_affinity_required),
            "preferred": list(pod.node_affinity_preferred),
            "slots": pod.patch.get("nodeAffinity", []),
        },
        "imagePullSecrets": {
            "static": list(pod.image_pull_secrets),
            "slots": pod.patch.get("imagePullSecrets", []),
        },
    }
