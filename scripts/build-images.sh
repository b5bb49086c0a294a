#!/usr/bin/env bash
# Builds the reference stack's Docker images locally (no registry), or keeps them when their
# inputs are unchanged, or loads them from the zstd bundle in .cache/images/. Prints one line
# per image (built / cached / loaded, seconds, size) and the total. The logic is in the package
# rollback_drill/stack/images/ (the run: build.py); options: --force, --no-bundle, --list,
# --fixtures DIR, --stack-file FILE, --cache-dir DIR. App and frontend images are made for every
# release the stack file lists, from that release's build (the base sources with its patches
# applied).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/start-docker.sh"
python="$root/.venv/bin/python"
[ -x "$python" ] || python=python3
cd "$root"
exec "$python" -m rollback_drill.stack.images --root "$root" "$@"
