"""Loaded with ``-p`` before Django's settings are read.

Each test session gets its own data directory (tests never write into a
developer's ./.canal) and its own Celery queue (a shared Redis never hands this
session's steps to another session's worker, or stale messages to this one).

Steps run sandboxed and see nothing of the host but their own directories. Tests
that coordinate with a running step through files (a flag to release it, a
counter across retries) use a directory declared shared with every step
(CANAL_STEP_SHARED_PATHS, as an operator would declare a shared volume); see the
``step_shared`` fixture. The hardening tests check that nothing else is visible.
"""

import os
import tempfile
import uuid

# Under pytest-xdist each worker process is a session of its own: the directories and
# the queue the controller made (and the workers inherited) are replaced by the worker's.
_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and os.environ.get("CANAL_TEST_SESSION_OWNS_DIRS") == "1":
    os.environ["CANAL_DATA_DIR"] = tempfile.mkdtemp(prefix=f"canal-test-{_worker}-")
    os.environ["CANAL_QUEUE"] = f"canal-test-{uuid.uuid4().hex[:8]}-{_worker}"
if "CANAL_DATA_DIR" not in os.environ:
    os.environ["CANAL_DATA_DIR"] = tempfile.mkdtemp(prefix="canal-test-")
    os.environ["CANAL_TEST_SESSION_OWNS_DIRS"] = "1"
os.environ.setdefault("CANAL_QUEUE", f"canal-test-{uuid.uuid4().hex[:8]}")
if "CANAL_STEP_SHARED_PATHS" not in os.environ:
    _shared = tempfile.mkdtemp(prefix="canal-step-shared-")
    os.chmod(_shared, 0o1777)  # noqa: S103 (steps run as another uid; sticky, like /tmp)
    os.environ["CANAL_STEP_SHARED_PATHS"] = _shared
# Re-queue a step whose message was lost (a killed worker) after 5 s, not a minute.
# Leases keep their production length here; tests that kill workers shorten them.
os.environ.setdefault("CANAL_REDISPATCH_SECONDS", "5")
