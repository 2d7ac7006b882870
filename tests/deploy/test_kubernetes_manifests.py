"""deploy/kubernetes: it renders with ``kubectl kustomize``, every object fits its Kubernetes
model exactly (a misspelled field fails), and it agrees with the code it deploys: the
commands are the ones ``make run`` starts, the settings are ones Canal reads, the RBAC
grants what the Argo backend uses and nothing more, and the artifact repository Argo is
given is the one the compiler's Workflows refer to.

No cluster is involved (there is none where the tests run): this checks the manifests as
text and as models, not their behaviour on a cluster."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes.client import ApiClient

from apps.backends.argo.compiler import ArgoSettings
from apps.core.management.commands.canal_supervise import program_commands
from apps.importers.argo import ARGO_SCHEMA, strict_schema, validate_argo
from apps.importers.schema_check import load_schema, make_validator
from tests.backends.argo.helpers import compile_corpus
from tests.deploy.kube import (
    KUSTOMIZATION,
    SECRETS_EXAMPLE,
    JsonResponse,
    Obj,
    by_kind,
    load_yaml,
    lost_fields,
    render,
    strict_model,
)
from tests.paths import PROJECT

NAMESPACE = "canal"
WORKLOADS = ("canal-web", "canal-worker", "canal-scheduler")

# What the Argo backend does with the Kubernetes API, and so all the Role may grant Canal's
# pods: submit and follow the runs' Workflows (create, get, list, watch), stop, retry and
# remove them (patch, update, delete), find their pods (get, list), read a step's log,
# delete a pod stuck in a step. The emulated cluster (apps/backends/argo/emulator) serves
# exactly these routes. When the backend grows a need, it is added here and in rbac.yaml.
BACKEND_PERMISSIONS = {
    ("argoproj.io", "workflows"): {"create", "get", "list", "watch", "patch", "update", "delete"},
    ("", "pods"): {"get", "list", "delete"},
    ("", "pods/log"): {"get"},
}
# Argo's executor in the runs' pods (>= 3.4) reports each step's outputs as a
# WorkflowTaskResult, and needs nothing else (Argo's docs, "Workflow RBAC").
EXECUTOR_PERMISSIONS = {("argoproj.io", "workflowtaskresults"): {"create", "patch"}}
# Read by boto3's credential chain (apps/storage/s3.py lets boto3 find them), not by Canal's code.
THIRD_PARTY_VARIABLES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


@pytest.fixture(scope="module")
def rendered() -> list[Obj]:
    return render()


@pytest.fixture(scope="module")
def example_secrets() -> dict[str, Obj]:
    return by_kind(load_yaml(SECRETS_EXAMPLE), "Secret")


@pytest.fixture(scope="module")
def config() -> dict[str, str]:
    """canal-config's data, read from its file: the settings tests need no kubectl
    (the render test checks that kustomize leaves it as it is)."""
    data: dict[str, str] = by_kind(load_yaml(KUSTOMIZATION / "config.yaml"), "ConfigMap")["canal-config"][
        "data"
    ]
    return data


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def containers(rendered: list[Obj]) -> dict[str, Obj]:
    """Every container of the Deployments and the Job, by workload name."""
    workloads = {**by_kind(rendered, "Deployment"), **by_kind(rendered, "Job")}
    return {name: c for name, w in workloads.items() for c in pod_spec(w)["containers"]}


def rules(role: Obj) -> dict[tuple[str, str], set[str]]:
    """A Role's grants as {(apiGroup, resource): verbs}; resourceNames are returned apart."""
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                granted.setdefault((group, resource), set()).update(rule.get("verbs", []))
    return granted


# --- rendering and strict models ---------------------------------------------------------


def test_the_kustomization_renders_the_whole_deployment(rendered: list[Obj], config: dict[str, str]) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in rendered)
    assert kinds == sorted(
        [
            ("ConfigMap", "artifact-repositories"),
            ("ConfigMap", "canal-config"),
            ("ConfigMap", "canal-step-cache"),
            ("Deployment", "canal-scheduler"),
            ("Deployment", "canal-web"),
            ("Deployment", "canal-worker"),
            ("Job", "canal-migrate"),
            ("Role", "canal-argo"),
            ("Role", "canal-argo-step-cache"),
            ("Role", "canal-workflow-executor"),
            ("RoleBinding", "canal-argo"),
            ("RoleBinding", "canal-argo-step-cache"),
            ("RoleBinding", "canal-workflow-executor"),
            ("Service", "canal-mysql"),
            ("Service", "canal-redis"),
            ("Service", "canal-web"),
            ("ServiceAccount", "canal"),
            ("ServiceAccount", "canal-workflow"),
        ]
    )
    assert {o["metadata"].get("namespace") for o in rendered} == {NAMESPACE}
    assert by_kind(rendered, "ConfigMap")["canal-config"]["data"] == config
    # Never a Secret: `kubectl apply -k` would overwrite the real ones with placeholders.
    assert not by_kind(rendered, "Secret")


def test_every_rendered_object_fits_its_kubernetes_model_exactly(rendered: list[Obj]) -> None:
    failures = []
    for obj in rendered:
        try:
            strict_model(obj)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


def test_the_secret_template_fits_its_model_and_is_all_placeholders(example_secrets: dict[str, Obj]) -> None:
    assert set(example_secrets) == {"canal-secrets", "canal-s3-credentials"}
    for secret in example_secrets.values():
        strict_model(secret)
        assert secret["stringData"] and "data" not in secret
        for key, value in secret["stringData"].items():
            assert "REPLACE_ME" in value, f"{secret['metadata']['name']}.{key} is not marked to be replaced"


def test_a_misspelled_required_field_is_rejected(rendered: list[Obj]) -> None:
    web = copy.deepcopy(by_kind(rendered, "Deployment")["canal-web"])
    spec = pod_spec(web)
    spec["contianers"] = spec.pop("containers")
    with pytest.raises(AssertionError, match="V1Deployment refuses it: Invalid value for `containers`"):
        strict_model(web)
    # Beside the right field, the misspelling is caught by the round trip alone.
    web = copy.deepcopy(by_kind(rendered, "Deployment")["canal-web"])
    pod_spec(web)["contianers"] = pod_spec(web)["containers"]
    with pytest.raises(AssertionError, match=r"spec\.template\.spec\.contianers: unknown field"):
        strict_model(web)


def test_a_misspelled_optional_field_passes_the_client_but_not_the_check(rendered: list[Obj]) -> None:
    """What the round trip is for: the client's deserializer alone accepts the typo and
    silently drops the probe."""
    web = copy.deepcopy(by_kind(rendered, "Deployment")["canal-web"])
    container = pod_spec(web)["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")

    with ApiClient() as api:
        model = api.deserialize(JsonResponse(json.dumps(web)), "V1Deployment")
        assert model.spec.template.spec.containers[0].readiness_probe is None  # gone, no error
        kept = api.sanitize_for_serialization(model)
    assert lost_fields(web, kept) == [
        "spec.template.spec.containers[0].readinesProbe: unknown field, dropped by the model"
    ]
    with pytest.raises(AssertionError, match=r"containers\[0\]\.readinesProbe: unknown field"):
        strict_model(web)


def test_a_value_of_the_wrong_type_is_rejected(rendered: list[Obj]) -> None:
    """An unquoted number in a ConfigMap (the API server wants strings), a port as a string."""
    config_map = copy.deepcopy(by_kind(rendered, "ConfigMap")["canal-config"])
    config_map["data"]["CANAL_WEB_WORKERS"] = 2
    with pytest.raises(AssertionError, match=r"data\.CANAL_WEB_WORKERS: 2 read as '2'"):
        strict_model(config_map)
    web = copy.deepcopy(by_kind(rendered, "Deployment")["canal-web"])
    pod_spec(web)["containers"][0]["ports"][0]["containerPort"] = "8000"
    with pytest.raises(AssertionError, match=r"containerPort: '8000' read as 8000"):
        strict_model(web)


def test_the_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((KUSTOMIZATION / "kustomization.yaml").read_text())
    files = {p.name for p in KUSTOMIZATION.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files - {SECRETS_EXAMPLE.name}


# --- the workloads run what `make run` runs ------------------------------------------------


def expand(argv: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion of a container's command."""
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env[m.group(1)], arg) for arg in argv]


def test_the_deployments_run_the_commands_make_run_starts(
    rendered: list[Obj], config: dict[str, str]
) -> None:
    expected = program_commands(
        python="python",
        host="0.0.0.0",  # inside the pod, behind its Service
        port=8000,
        web_workers=int(config["CANAL_WEB_WORKERS"]),
        concurrency=int(config["CANAL_WORKER_CONCURRENCY"]),
    )
    deployments = by_kind(rendered, "Deployment")
    assert set(deployments) == {f"canal-{name}" for name in expected}
    for name, argv in expected.items():
        (container,) = pod_spec(deployments[f"canal-{name}"])["containers"]
        assert container["name"] == name
        assert "args" not in container
        assert expand(container["command"], config) == argv
    (migrate,) = pod_spec(by_kind(rendered, "Job")["canal-migrate"])["containers"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]


def test_every_command_names_a_real_management_command_or_module(rendered: list[Obj]) -> None:
    from django.core.management import get_commands

    commands = get_commands()
    for name, container in containers(rendered).items():
        argv = container["command"]
        assert argv[0] == "python", name
        if argv[1] == "manage.py":
            assert argv[2] in commands, f"{name}: no management command {argv[2]!r}"
        else:
            assert argv[1] == "-m", name
            assert_importable(argv[2])
            if argv[2] == "gunicorn":
                assert_importable(argv[3])  # the WSGI module
            if argv[2] == "celery":
                assert_importable(argv[argv.index("-A") + 1] + ".celery")


def assert_importable(module: str) -> None:
    import importlib.util

    assert importlib.util.find_spec(module) is not None, f"no module {module!r}"


def test_the_web_probes_ask_healthz_with_an_allowed_host(rendered: list[Obj], config: dict[str, str]) -> None:
    from django.urls import resolve

    (web,) = pod_spec(by_kind(rendered, "Deployment")["canal-web"])["containers"]
    allowed = config["CANAL_ALLOWED_HOSTS"].split(",")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = web[probe]["httpGet"]
        assert get["path"] == "/healthz" and get["port"] == "http", probe
        assert resolve(get["path"]).url_name == "healthz"
        hosts = [h["value"] for h in get.get("httpHeaders", []) if h["name"].lower() == "host"]
        # The kubelet would send the pod's IP, which Django refuses (400) unless allowed.
        assert hosts and hosts[0] in allowed, probe
    assert web["ports"] == [{"name": "http", "containerPort": 8000}]
    service = by_kind(rendered, "Service")["canal-web"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert (
        service["spec"]["selector"]
        == by_kind(rendered, "Deployment")["canal-web"]["spec"]["selector"]["matchLabels"]
    )


def test_the_workloads_share_settings_hardening_and_scratch_space(rendered: list[Obj]) -> None:
    """The four pods (web, worker, scheduler, migration) must see the same settings: one
    drifting (a missing secretRef, a different DATABASE_URL) is a bug waiting for a cluster."""
    all_containers = containers(rendered)
    assert set(all_containers) == {*WORKLOADS, "canal-migrate"}
    first = all_containers["canal-web"]
    for name, container in all_containers.items():
        assert container["image"] == "registry.example.com/canal:latest", name
        for field in ("envFrom", "env", "securityContext", "volumeMounts"):
            assert container[field] == first[field], (name, field)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
    workloads = {**by_kind(rendered, "Deployment"), **by_kind(rendered, "Job")}
    for name, workload in workloads.items():
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        assert all("emptyDir" in v for v in spec["volumes"]), name
        if name in WORKLOADS:
            assert spec["serviceAccountName"] == "canal", name
        else:  # the migration needs no Kubernetes API
            assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
    # The paths the image's settings use (Dockerfile ENV) are the writable ones.
    mounts = {m["mountPath"] for m in first["volumeMounts"]}
    assert mounts == {"/var/lib/canal", "/var/cache/canal", "/tmp"}


# --- settings: names Canal reads, references that resolve --------------------------------


def variables_canal_reads() -> set[str]:
    """Every quoted UPPER_CASE name in Canal's own code (settings, apps), and the compiler's
    CANAL_ARGO_<FIELD> variables. A name the manifests set that is not here is a typo."""
    names: set[str] = set()
    for path in [*(PROJECT / "pipelines_site").rglob("*.py"), *(PROJECT / "apps").rglob("*.py")]:
        names.update(re.findall(r"""["']([A-Z][A-Z0-9_]{2,})["']""", path.read_text(encoding="utf-8")))
    names.update(f"CANAL_ARGO_{f.name.upper()}" for f in dataclasses.fields(ArgoSettings))
    return names


def test_every_variable_the_manifests_set_is_one_canal_reads(
    rendered: list[Obj], example_secrets: dict[str, Obj], config: dict[str, str]
) -> None:
    known = variables_canal_reads() | THIRD_PARTY_VARIABLES
    web = containers(rendered)["canal-web"]
    set_here = set(config) | set(example_secrets["canal-secrets"]["stringData"])
    set_here |= {e["name"] for e in web["env"]}
    unknown = sorted(set_here - known)
    assert not unknown, f"not read by Canal (misspelled?): {unknown}"
    # The compiler's variables parse (booleans, integers) into its settings.
    ArgoSettings.from_env(config)


def test_every_reference_resolves(rendered: list[Obj], example_secrets: dict[str, Obj]) -> None:
    config_maps = by_kind(rendered, "ConfigMap")
    accounts = by_kind(rendered, "ServiceAccount")
    for name, container in containers(rendered).items():
        for source in container["envFrom"]:
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps, name
            else:
                assert source["secretRef"]["name"] in example_secrets, name
        for variable in container["env"]:
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in example_secrets[ref["name"]]["stringData"], (name, variable["name"])
    for binding in by_kind(rendered, "RoleBinding").values():
        assert binding["roleRef"]["name"] in by_kind(rendered, "Role")
        for subject in binding["subjects"]:
            if subject["namespace"] == NAMESPACE:
                assert subject["name"] in accounts
    # What DATABASE_URL and CELERY_BROKER_URL point at are the external Services.
    services = by_kind(rendered, "Service")
    database = urlsplit(example_secrets["canal-secrets"]["stringData"]["DATABASE_URL"])
    broker = urlsplit(config_maps["canal-config"]["data"]["CELERY_BROKER_URL"])
    assert database.scheme == "mysql" and database.hostname == "canal-mysql"
    assert broker.scheme == "redis" and broker.hostname == "canal-redis"
    for url, service in ((database, "canal-mysql"), (broker, "canal-redis")):
        spec = services[service]["spec"]
        assert spec["type"] == "ExternalName" and spec["externalName"]
        assert url.port == spec["ports"][0]["port"]


# --- RBAC: exactly what is used ------------------------------------------------------------


def bound_role(rendered: list[Obj], account: str, namespace: str = NAMESPACE) -> Obj:
    (binding,) = [
        b
        for b in by_kind(rendered, "RoleBinding").values()
        if {"kind": "ServiceAccount", "name": account, "namespace": namespace} in b["subjects"]
    ]
    assert binding["roleRef"]["kind"] == "Role"  # namespaced, never a ClusterRole
    return by_kind(rendered, "Role")[binding["roleRef"]["name"]]


def test_canal_may_do_exactly_what_the_argo_backend_does(rendered: list[Obj]) -> None:
    role = bound_role(rendered, "canal")
    assert rules(role) == BACKEND_PERMISSIONS
    assert not any("resourceNames" in rule for rule in role["rules"])
    assert "*" not in str(role["rules"])


def test_the_runs_pods_may_only_report_their_outputs(rendered: list[Obj], config: dict[str, str]) -> None:
    account = config["CANAL_ARGO_SERVICE_ACCOUNT"]
    assert account in by_kind(rendered, "ServiceAccount") and account != "canal"
    assert rules(bound_role(rendered, account)) == EXECUTOR_PERMISSIONS


def test_argo_may_update_the_step_cache_and_nothing_else(rendered: list[Obj], config: dict[str, str]) -> None:
    role = bound_role(rendered, "argo", namespace="argo")  # a stock install's controller
    (rule,) = role["rules"]
    assert rule == {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": [config["CANAL_ARGO_CACHE_CONFIG_MAP"]],
        "verbs": ["get", "update"],
    }
    cache = by_kind(rendered, "ConfigMap")[config["CANAL_ARGO_CACHE_CONFIG_MAP"]]
    # Argo refuses a cache ConfigMap without this label.
    assert cache["metadata"]["labels"]["workflows.argoproj.io/configmap-type"] == "Cache"
    assert "data" not in cache  # so `kubectl apply` never overwrites the entries


# --- Argo's artifact repository agrees with Canal's settings and compiled Workflows -------


def artifact_repository(rendered: list[Obj], config: dict[str, str]) -> Obj:
    config_map = by_kind(rendered, "ConfigMap")[config["CANAL_ARGO_ARTIFACT_REPOSITORY_REF"]]
    key = config["CANAL_ARGO_ARTIFACT_REPOSITORY_KEY"]
    assert config_map["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"] == key
    repository: Obj = yaml.safe_load(config_map["data"][key])
    return repository


def test_the_artifact_repository_is_valid_for_argo(rendered: list[Obj], config: dict[str, str]) -> None:
    schema = strict_schema(load_schema(ARGO_SCHEMA))  # every object closed: typos fail
    validator = make_validator(
        {
            "$schema": schema["$schema"],
            "definitions": schema["definitions"],
            "$ref": "#/definitions/io.argoproj.workflow.v1alpha1.ArtifactRepository",
        }
    )
    repository = artifact_repository(rendered, config)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(repository)]
    assert not errors, errors
    broken = {**repository, "s3": {**repository["s3"], "bukcet": "x"}}
    assert any("bukcet" in e.message for e in validator.iter_errors(broken))


def test_the_artifact_repository_and_canals_settings_name_the_same_store(
    rendered: list[Obj], config: dict[str, str], example_secrets: dict[str, Obj]
) -> None:
    s3 = artifact_repository(rendered, config)["s3"]
    settings = ArgoSettings.from_env(config)
    assert settings.artifact_repository == "repository"
    bucket = s3["bucket"]
    assert settings.s3_bucket == bucket
    for root in (config["CANAL_PIPELINE_ROOT"], config["CANAL_ARGO_PIPELINE_ROOT"]):
        assert urlsplit(root).scheme in ("s3", "minio") and urlsplit(root).netloc == bucket, root
    endpoint = urlsplit(config["CANAL_S3_ENDPOINT_URL"])
    assert s3["endpoint"] == settings.s3_endpoint == endpoint.netloc
    assert s3["insecure"] is settings.s3_insecure is (endpoint.scheme == "http")
    secret = settings.s3_credentials_secret
    assert s3["accessKeySecret"] == {"name": secret, "key": settings.s3_access_key_key}
    assert s3["secretKeySecret"] == {"name": secret, "key": settings.s3_secret_key_key}
    assert {settings.s3_access_key_key, settings.s3_secret_key_key} <= set(
        example_secrets[secret]["stringData"]
    )


def test_a_compiled_workflow_refers_to_what_the_manifests_create(
    rendered: list[Obj], config: dict[str, str]
) -> None:
    """A KFP pipeline with artifacts, compiled with the deployment's settings, is valid for
    Argo and names the artifact repository, the service account and the cache that exist."""
    settings = ArgoSettings.from_env(config)
    workflow = compile_corpus(
        "artifacts_simple.yaml",
        settings=settings,
        namespace=NAMESPACE,
        pipeline_root=config["CANAL_PIPELINE_ROOT"],
    )
    validate_argo(copy.deepcopy(workflow), filename=None, locate=None)
    spec = workflow["spec"]
    assert spec["artifactRepositoryRef"] == {
        "configMap": config["CANAL_ARGO_ARTIFACT_REPOSITORY_REF"],
        "key": config["CANAL_ARGO_ARTIFACT_REPOSITORY_KEY"],
    }
    assert spec["artifactRepositoryRef"]["configMap"] in by_kind(rendered, "ConfigMap")
    assert spec["serviceAccountName"] in by_kind(rendered, "ServiceAccount")
    caches = {t["memoize"]["cache"]["configMap"]["name"] for t in spec["templates"] if "memoize" in t}
    assert caches == {"canal-step-cache"}
    assert caches <= set(by_kind(rendered, "ConfigMap"))
    s3_locations = [
        a["s3"]
        for t in spec["templates"]
        for side in ("inputs", "outputs")
        for a in (t.get(side) or {}).get("artifacts", [])
        if "s3" in a
    ]
    assert s3_locations and all(set(loc) == {"key"} for loc in s3_locations)  # key-only: the repository's


# --- the settings, as a Canal process reads them -------------------------------------------


def _canal_process(
    config: dict[str, str], tmp_path: Path, argv: list[str]
) -> subprocess.CompletedProcess[str]:
    """A fresh Canal process with the ConfigMap's environment (and a real secret key)."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        **config,
        "CANAL_ARGO_NAMESPACE": NAMESPACE,
        "CANAL_SECRET_KEY": secrets.token_urlsafe(50),
        "CANAL_DATA_DIR": str(tmp_path / "data"),
        "CANAL_CACHE_DIR": str(tmp_path / "cache"),
    }
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_check_deploy_is_clean_with_the_configmap(config: dict[str, str], tmp_path: Path) -> None:
    result = _canal_process(config, tmp_path, ["check", "--deploy", "--fail-level", "WARNING"])
    assert result.returncode == 0, result.stdout + result.stderr


PROBE = """
from django.test import Client
for host in ("localhost", "10.1.2.3:8000"):
    response = Client(HTTP_HOST=host).get("/healthz")
    print(host, response.status_code, b'"web"' in response.content)
"""


@pytest.mark.slow
def test_the_kubelets_probe_reaches_healthz(config: dict[str, str], tmp_path: Path) -> None:
    """Plain HTTP with Host: localhost reaches the view (no redirect to HTTPS, no 400 for
    the host); without the header, as the kubelet would send it, it would be refused.
    (The database is an empty SQLite file here, so the view answers 503 "unavailable".)"""
    result = _canal_process(config, tmp_path, ["shell", "-c", PROBE])
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.count(" ") == 2)
    assert lines["localhost"] in ("200 True", "503 True")
    assert lines["10.1.2.3:8000"] == "400 False"
