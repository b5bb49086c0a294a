#!/usr/bin/env bash
# The tests: set up (idempotent), then lint, type-check, check the import layers (lint-imports:
# the contracts in pyproject.toml), and run the whole suite: the engine's
# tests, the drills, and the verify suite. The verify suite's own tests are deselected without
# --target; tests/test_verify_suite.py runs it against a stack it starts. When a Docker daemon
# answers, every drill also runs on the docker backend (--stack-backend all) and the docker
# tests run; without one they skip. Two pytest-xdist workers run the files side by side (each
# drill on its own stack; ROLLBACK_DRILL_TEST_WORKERS=1 for one at a time): 25 min instead of
# 46 on a busy 2-core machine. pytest's exit 5 (no tests ran) is a failure.
#
# --fast: the tier for day-to-day work - the same lint, then only the tests marked neither
# `drill` (drills/: a whole drill each) nor `slow` (whole drills or drill runs inside a test:
# procedures made wrong, the reports and programme end to end, shards, parallel runs; large
# restores; every release's defect; containers and images; the wheel built, installed and
# run; a timeout waited out), local backend only, four workers: these tests mostly wait on
# servers starting and answering (measured: 1.6 of 2 cores busy at four workers), so four
# finish in 221 s where two took 253 s. Run the whole suite before a merge.
set -euo pipefail
selection=(--stack-backend all)
workers="${ROLLBACK_DRILL_TEST_WORKERS:-2}"
if [ "${1:-}" = "--fast" ]; then
  shift
  selection=(--stack-backend local -m "not drill and not slow")
  workers="${ROLLBACK_DRILL_TEST_WORKERS:-4}"
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
set +e
.venv/bin/pytest "${selection[@]}" -n "$workers" --dist loadfile \
  --alluredir reports/allure-results "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "run-tests: pytest collected no tests: failing" >&2
  exit 1
fi
exit "$code"
