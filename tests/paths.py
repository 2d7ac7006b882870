"""Where the shared test material lives: ../shared beside the project (as on every
developer machine and in CI), or CANAL_SHARED_DIR."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CANAL_SHARED_DIR", PROJECT.parent / "shared"))
CORPUS = SHARED / "corpus"
KFP_VALID = CORPUS / "kfp" / "sdk_compiled_pipelines" / "valid"
KFP_INVALID = CORPUS / "kfp" / "sdk_compiled_pipelines" / "invalid"
ARGO_EXAMPLES = CORPUS / "argo" / "examples"
