"""The fuzz tests' one allowance in the 5xx range."""

from __future__ import annotations

import json
from typing import Any


def is_documented_unimplemented(operation: Any, status: int, content: bytes) -> bool:
    """A 501 ``{"code": 12, ...}`` from an operation whose OpenAPI document says it
    answers 501 (KFP's ReportService and VisualizationService, which have no meaning in
    Canal): the designed answer, not a crash. Any other 5xx is still a failure."""
    if status != 501 or "501" not in (operation.definition.raw.get("responses") or {}):
        return False
    try:
        return json.loads(content).get("code") == 12
    except ValueError:
        return False
