#!/usr/bin/env bash
# The main job: set up (idempotent), run every drill on the embedded reference stack (local
# processes; ROLLBACK_DRILL_BACKEND=docker|all for containers), two at a time, each on its own
# stack (ROLLBACK_DRILL_PARALLEL=1 for one at a time), and write the Allure results, the drill
# record and the HTML report under reports/. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/rollback-drill run --backend "${ROLLBACK_DRILL_BACKEND:-local}" \
  --parallel "${ROLLBACK_DRILL_PARALLEL:-2}" -- "$@"
