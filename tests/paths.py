"""Where the shared test material lives: ``CANAL_SHARED_DIR`` when it is set, otherwise
``../shared`` beside the project (as on every developer machine and in CI).

Every test and bench script finds the corpus through this module. Without the corpus,
corpus tests skip naming the path they looked at; in CI (``CI`` set to anything but
"", "0" or "false") the run fails at its start instead (``check_corpus`` in
tests/conftest.py), so a moved corpus can never turn the corpus tests into skips there.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``CANAL_SHARED_DIR`` (absolute), or ``../shared`` beside the project."""
    configured = os.environ.get("CANAL_SHARED_DIR", "").strip()
    if configured:
        return Path(configured).expanduser().absolute()
    return PROJECT.parent / "shared"


SHARED = shared_dir()
CORPUS = SHARED / "corpus"
KFP_VALID = CORPUS / "kfp" / "sdk_compiled_pipelines" / "valid"
KFP_INVALID = CORPUS / "kfp" / "sdk_compiled_pipelines" / "invalid"
KFP_GOLDEN = CORPUS / "kfp" / "compiled-workflows"
ARGO_EXAMPLES = CORPUS / "argo" / "examples"
ARGO_SCHEMA = CORPUS / "argo" / "schema" / "schema.json"
# What the tests need of the corpus: a missing one fails a CI run at its start.
REQUIRED = (KFP_VALID, KFP_INVALID, KFP_GOLDEN, ARGO_EXAMPLES, ARGO_SCHEMA)


def in_ci() -> bool:
    """Whether this is a CI run: ``CI`` is set to anything but "", "0" or "false"."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def missing(path: Path) -> str:
    """Why a corpus test cannot run: the path it looked at, and how to point it elsewhere."""
    return f"the shared corpus is not at {path} (CANAL_SHARED_DIR sets where it is; default ../shared)"


def corpus_problem() -> str:
    """ "" when every corpus path the tests need exists, else which ones are missing."""
    absent = [str(path) for path in REQUIRED if not path.exists()]
    if not absent:
        return ""
    return f"the shared corpus is incomplete: missing {', '.join(absent)} (CANAL_SHARED_DIR={SHARED})"
