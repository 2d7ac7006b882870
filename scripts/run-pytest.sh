#!/usr/bin/env bash
# Run the test suite. pytest's exit code 5 ("no tests were collected") is reported
# plainly instead of being mistaken for a crash or a pass of something that ran.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests (exit code 5) for: ${*:-the whole suite}" >&2
  if [ -n "${CANAL_ALLOW_NO_TESTS:-}" ]; then exit 0; fi
fi
exit "$rc"
