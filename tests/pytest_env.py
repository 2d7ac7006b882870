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
# Live tests kill workers on purpose: notice lost steps and lost messages quickly.
os.environ.setdefault("CANAL_HEARTBEAT_SECONDS", "0.5")
os.environ.setdefault("CANAL_TASK_LEASE_SECONDS", "4")
os.environ.setdefault("CANAL_REDISPATCH_SECONDS", "5")
