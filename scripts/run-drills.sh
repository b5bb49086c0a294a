#!/usr/bin/env bash
# The main job: set up (idempotent), run every drill on the embedded reference stack (local
# processes; ROLLBACK_DRILL_BACKEND=docker|all for containers), and write
# the Allure results and drill records under reports/. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/rollback-drill run --backend "${ROLLBACK_DRILL_BACKEND:-local}" -- "$@"
