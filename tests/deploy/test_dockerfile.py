"""The Dockerfile, read as text (no Docker where the tests run, so it is never built here):
what it copies exists and is all the code needs, it installs the project's own locked runtime
requirements, its commands are the ones ``make run`` starts, it runs as a non-root user
with nothing secret in it, and its paths are the ones deploy/kubernetes mounts."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands
from django.urls import resolve

from apps.core.management.commands.canal_supervise import program_commands
from tests.deploy.kube import KUSTOMIZATION, by_kind, load_yaml
from tests.paths import PROJECT

DOCKERFILE = PROJECT / "Dockerfile"
DOCKERIGNORE = PROJECT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    arguments: str
    stage: int  # index of the FROM it belongs to


def parse(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    stage = -1
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        logical += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if stripped.endswith("\\"):
            continue
        keyword, _, arguments = logical.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, arguments.strip(), stage))
        logical = ""
    assert not logical, "the Dockerfile ends inside a continued line"
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def env(instructions: list[Instruction]) -> dict[str, str]:
    """The final stage's ENV, as the running container sees it."""
    values: dict[str, str] = {}
    for i in final_stage(instructions):
        if i.keyword == "ENV":
            for item in shlex.split(i.arguments):
                key, _, value = item.partition("=")
                values[key] = value
    return values


def copies(instructions: list[Instruction]) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context (not --from a stage)."""
    result = []
    for i in instructions:
        if i.keyword == "COPY" and "--from=" not in i.arguments:
            *sources, destination = [w for w in shlex.split(i.arguments) if not w.startswith("--")]
            result.append((sources, destination))
    return result


def dockerignored() -> set[str]:
    return {
        line.strip().strip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }


def test_it_is_multi_stage_on_a_slim_python_the_project_supports(instructions: list[Instruction]) -> None:
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2 and " AS " in froms[0].arguments.upper()
    (arg,) = [
        i.arguments for i in instructions if i.keyword == "ARG" and i.arguments.startswith("PYTHON_IMAGE=")
    ]
    image = arg.partition("=")[2]
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(-\w+)?", image)
    assert match, image
    required = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(n) for n in required.removeprefix(">=").split("."))
    assert (int(match[1]), int(match[2])) >= minimum
    assert froms[-1].arguments == "${PYTHON_IMAGE}"


def test_every_copied_file_exists_and_is_not_ignored(instructions: list[Instruction]) -> None:
    ignored = dockerignored()
    for sources, _ in copies(instructions):
        for source in sources:
            assert (PROJECT / source).exists(), f"COPY {source}: no such file in the repository"
            assert Path(source).parts[0] not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_it_copies_everything_the_code_reads_at_run_time(instructions: list[Instruction]) -> None:
    copied = {Path(s).parts[0] for sources, _ in copies(instructions) for s in sources}
    base = Path(settings.BASE_DIR)
    needed = {"manage.py", settings.ROOT_URLCONF.split(".")[0], settings.WSGI_APPLICATION.split(".")[0]}
    needed |= {app.split(".")[0] for app in settings.INSTALLED_APPS if (base / app.split(".")[0]).is_dir()}
    needed |= {Path(d).relative_to(base).parts[0] for d in settings.STATICFILES_DIRS}
    needed |= {Path(d).relative_to(base).parts[0] for t in settings.TEMPLATES for d in t["DIRS"]}
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"
    # The requirements go to the build stage only; the code to the runtime stage.
    runtime = final_stage(instructions)
    assert all(i.keyword != "COPY" or "requirements" not in i.arguments for i in runtime)


def test_it_installs_the_projects_locked_runtime_requirements(instructions: list[Instruction]) -> None:
    text = " ".join(i.arguments for i in instructions)
    referenced = set(re.findall(r"requirements[\w-]*\.(?:txt|lock)\b", text))
    # The hash-locked files `make run` installs, never the dev lock nor the unlocked inputs.
    assert referenced == {"requirements.lock", "requirements-mysql.lock"}
    for name in referenced:
        assert (PROJECT / name).is_file(), name
    (install,) = [i.arguments for i in instructions if i.keyword == "RUN" and "pip install" in i.arguments]
    assert "--require-hashes" in install.split()
    for name in referenced:
        assert re.search(rf"-r \S*/{re.escape(name)}(?:\s|$)", install), f"pip install does not read {name}"


def test_graphviz_is_installed_and_the_local_sandbox_is_not(instructions: list[Instruction]) -> None:
    apt = " ".join(i.arguments for i in final_stage(instructions) if "apt-get install" in i.arguments)
    assert "graphviz" in apt.split()
    for sandbox in ("bubblewrap", "slirp4netns"):
        assert sandbox not in apt
    assert env(instructions)["CANAL_EXECUTION_BACKEND"] == "argo"


def test_the_default_command_is_the_web_server_make_run_starts(instructions: list[Instruction]) -> None:
    (cmd,) = [i.arguments for i in instructions if i.keyword == "CMD"]
    web = program_commands(python="python", host="0.0.0.0", port=8000, web_workers=2, concurrency=8)["web"]
    assert json.loads(cmd) == web
    assert [i.arguments for i in instructions if i.keyword == "EXPOSE"] == ["8000"]
    assert not [i for i in instructions if i.keyword == "ENTRYPOINT"]  # the command alone chooses


def test_the_documented_commands_are_real(instructions: list[Instruction]) -> None:
    """The header lists how to start each process; each must be the command make run
    starts, or a management command that exists."""
    documented = dict(re.findall(r"^#\s+([\w ()]+?):\s+(python .+)$", DOCKERFILE.read_text(), re.MULTILINE))
    expected = program_commands(python="python", host="0.0.0.0", port=8000, web_workers=2, concurrency=8)
    assert shlex.split(documented.pop("web (default)")) == expected["web"]
    assert shlex.split(documented.pop("worker")) == expected["worker"]
    assert shlex.split(documented.pop("scheduler")) == expected["scheduler"]
    assert documented, "the migration and admin commands are documented too"
    commands = get_commands()
    for role, line in documented.items():
        argv = shlex.split(line)
        assert argv[:2] == ["python", "manage.py"] and argv[2] in commands, (role, line)


def test_the_healthcheck_asks_healthz_on_the_web_port(instructions: list[Instruction]) -> None:
    (check,) = [i.arguments for i in instructions if i.keyword == "HEALTHCHECK"]
    url = re.search(r"http://([\w.]+):(\d+)(/\w+)", check)
    assert url, check
    host, port, path = url.groups()
    assert resolve(path).url_name == "healthz"
    assert port == "8000" and host == "localhost"  # in the default CANAL_ALLOWED_HOSTS and the ConfigMap's
    config = by_kind(load_yaml(KUSTOMIZATION / "config.yaml"), "ConfigMap")["canal-config"]["data"]
    assert host in config["CANAL_ALLOWED_HOSTS"].split(",")


def test_it_runs_as_a_non_root_user_the_manifests_agree_with(instructions: list[Instruction]) -> None:
    stage = final_stage(instructions)
    users = [i for i in stage if i.keyword == "USER"]
    assert len(users) == 1
    uid, _, gid = users[0].arguments.partition(":")
    assert (
        uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    )  # numeric: runAsNonRoot can check
    assert stage.index(users[0]) > max(stage.index(i) for i in stage if i.keyword == "RUN")
    web = by_kind(load_yaml(KUSTOMIZATION / "web.yaml"), "Deployment")["canal-web"]
    pod = web["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))


def test_nothing_secret_is_baked_in(instructions: list[Instruction]) -> None:
    secret = re.compile(r"SECRET|PASSWORD|TOKEN|DATABASE_URL|AWS_|CREDENTIAL", re.IGNORECASE)
    for i in instructions:
        if i.keyword in ("ENV", "ARG", "LABEL"):
            assert not secret.search(i.arguments), f"{i.keyword} {i.arguments}"
    # collectstatic imports the settings: a throwaway key and data directory, removed in the
    # same layer, so no secret_key file is left in the image.
    (collect,) = [i.arguments for i in instructions if "collectstatic" in i.arguments]
    data_dir = re.search(r"CANAL_DATA_DIR=(\S+)", collect)
    assert data_dir and f"rm -rf {data_dir[1]}" in collect
    assert "CANAL_SECRET_KEY=" in collect


def test_its_paths_are_the_ones_the_pods_mount(instructions: list[Instruction]) -> None:
    """The data and cache directories are writable volumes in the pods (the image is
    read-only there); the collected static files must not be under one, or they are hidden."""
    values = env(instructions)
    web = by_kind(load_yaml(KUSTOMIZATION / "web.yaml"), "Deployment")["canal-web"]
    (container,) = web["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {values["CANAL_DATA_DIR"], values["CANAL_CACHE_DIR"]} <= mounts
    static = Path(values["CANAL_STATIC_ROOT"])
    assert not any(static.is_relative_to(m) for m in mounts)
    workdir = [i.arguments for i in final_stage(instructions) if i.keyword == "WORKDIR"]
    assert workdir and static.is_relative_to(workdir[-1])


def test_the_dockerignore_keeps_local_and_secret_files_out() -> None:
    ignored = dockerignored()
    assert {".git", ".venv", ".canal", ".env"} <= ignored
