"""Loaded with ``-p`` before Django's settings are read.

Each test session gets its own data directory (tests never write into a
developer's ./.canal) and its own Celery queue (a shared Redis never hands this
session's steps to another session's worker, or stale messages to this one).
"""

import os
import tempfile
import uuid

if "CANAL_DATA_DIR" not in os.environ:
    os.environ["CANAL_DATA_DIR"] = tempfile.mkdtemp(prefix="canal-test-")
os.environ.setdefault("CANAL_QUEUE", f"canal-test-{uuid.uuid4().hex[:8]}")
# Re-queue a step whose message was lost (a killed worker) after 5 s, not a minute.
# Leases keep their production length here; tests that kill workers shorten them.
os.environ.setdefault("CANAL_REDISPATCH_SECONDS", "5")
