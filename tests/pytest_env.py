"""Loaded with ``-p`` before Django's settings are read: give each test session
its own data directory, so tests never write into a developer's ./.canal."""

import os
import tempfile

if "CANAL_DATA_DIR" not in os.environ:
    os.environ["CANAL_DATA_DIR"] = tempfile.mkdtemp(prefix="canal-test-")
