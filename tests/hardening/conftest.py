"""Fixtures of the hardening suite: the browser tests reuse tests/browser's Chromium page."""

from tests.browser.conftest import browser_page  # noqa: F401 (fixture)
