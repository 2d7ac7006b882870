"""Shared by the hardening suite: the browser fixture, and figures the README quotes, printed in pytest's
terminal summary (visible without -s)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import browser_page  # noqa: F401 (fixture: the browser tests reuse it)

# Filled by the hardening tests ("role matrix cells": "1,234"), printed at the end of the run.
HARDENING_FIGURES: dict[str, str] = {}


@pytest.fixture
def hardening_figures() -> dict[str, str]:
    """The shared dict the hardening tests record their figures in."""
    return HARDENING_FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the hardening figures (cells tested, ...)."""
    if not HARDENING_FIGURES:
        return
    terminalreporter.write_sep("-", "hardening figures")
    for key in sorted(HARDENING_FIGURES):
        terminalreporter.write_line(f"{key}: {HARDENING_FIGURES[key]}")
