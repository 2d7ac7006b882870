"""Corpus locations, archive builders, and a terminal summary of the corpus counts."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections import Counter

import pytest

from tests.paths import ARGO_EXAMPLES, KFP_INVALID, KFP_VALID  # noqa: F401 (re-exported: ../shared or CANAL_SHARED_DIR)

# Filled by the corpus tests, printed at the end of the run (visible without -s).
CORPUS_COUNTS: Counter[str] = Counter()


@pytest.fixture
def corpus_counts() -> Counter[str]:
    """The shared counter the corpus tests add to."""
    return CORPUS_COUNTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the importer corpus tests imported and refused."""
    if not CORPUS_COUNTS:
        return
    terminalreporter.write_sep("-", "importers corpus")
    for key in sorted(CORPUS_COUNTS):
        terminalreporter.write_line(f"{key}: {CORPUS_COUNTS[key]}")


def make_zip(members: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    """A zip built in memory; ``symlinks`` maps member names to link targets (Unix mode bits)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (0o120777 << 16) & 0xFFFF0000
            archive.writestr(info, target)
    return buffer.getvalue()


def make_tar(
    members: dict[str, bytes],
    *,
    links: dict[str, tuple[bytes, str]] | None = None,
    gz: bool = True,
) -> bytes:
    """A tar(.gz) built in memory; ``links`` maps names to (tarfile type, target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


MINIMAL_IR = """\
# PIPELINE DEFINITION
# Name: echo
components:
  comp-echo:
    executorLabel: exec-echo
deploymentSpec:
  executors:
    exec-echo:
      container:
        args:
        - hello world
        command:
        - echo
        image: python:3.12
pipelineInfo:
  name: echo
root:
  dag:
    tasks:
      echo:
        cachingOptions:
          enableCache: true
        componentRef:
          name: comp-echo
        taskInfo:
          name: echo
schemaVersion: 2.1.0
sdkVersion: kfp-2.13.0
"""

MINIMAL_WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: hello-
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: a
        template: echo
      - name: b
        template: echo
        dependencies: [a]
  - name: echo
    container:
      image: busybox
      command: [echo]
      args: [hi]
"""
