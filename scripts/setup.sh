#!/usr/bin/env bash
# Installs everything rollback-drill needs on a fresh Debian bookworm machine, idempotently:
# Debian packages (redis-server, nginx, openssl, chromium, patch), the Node tools in package.json
# (anvil, solcjs, mongosh, Allure 3) and the Python venv .venv with the project installed from
# a wheelhouse of its dependencies (.venv/wheelhouse, also used by tests/test_wheel.py).
# The `embedded` extra is the reference stack's MongoDB server (SecantusDB, GPL-2.0, run as a program).
# Each part is skipped when its stamp says it is already current, so a second call takes ~1 s.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stamp_dir="$root/.venv/.stamps"

log() { printf '[setup] %s\n' "$*" >&2; }

need_apt=()
for pkg in redis-server nginx openssl chromium patch ${ROLLBACK_DRILL_EXTRA_APT:-}; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

npm_hash="$(sha256sum package.json package-lock.json | sha256sum | cut -c1-16)"
if [ ! -x node_modules/.bin/anvil ] || [ "$(cat node_modules/.stamp 2>/dev/null)" != "$npm_hash" ]; then
  log "npm ci (anvil, solc, mongosh, allure)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  echo "$npm_hash" > node_modules/.stamp
fi

py_hash="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -x .venv/bin/python ]; then
  log "python venv .venv"
  python3 -m venv .venv
fi
# The wheelhouse: every distribution .[dev,embedded] needs, plus the build backend
# (setuptools, wheel), downloaded once per machine. The .venv below and tests/test_wheel.py's
# fresh venv install from it with --no-index, so neither pays the download (~7 min from the
# package indexes) again. Its stamp lies inside it: a missing wheelhouse is rebuilt even when
# the venv's stamp is current. The project's own wheel is removed: the test builds its own.
wheelhouse="$root/.venv/wheelhouse"
pip_quiet() { # pip with its output kept in .venv/pip.log, shown only when it fails
  if ! .venv/bin/pip "$@" -q --disable-pip-version-check > .venv/pip.log 2>&1; then
    tail -n 40 .venv/pip.log >&2
    log "pip $1 failed; full log in .venv/pip.log"
    exit 1
  fi
}
if [ "$(cat "$wheelhouse/.stamp" 2>/dev/null)" != "$py_hash" ]; then
  log "pip wheel .[dev,embedded] setuptools wheel -> .venv/wheelhouse"
  rm -rf "$wheelhouse"
  pip_quiet wheel -w "$wheelhouse" '.[dev,embedded]' 'setuptools>=68' wheel
  rm -f "$wheelhouse"/rollback_drill-*.whl
  echo "$py_hash" > "$wheelhouse/.stamp"
fi
if [ "$(cat "$stamp_dir/pip" 2>/dev/null)" != "$py_hash" ]; then
  log "pip install -e .[dev,embedded] from .venv/wheelhouse"
  pip_quiet install --no-index --find-links "$wheelhouse" -e '.[dev,embedded]'
  mkdir -p "$stamp_dir" && echo "$py_hash" > "$stamp_dir/pip"
fi
# An editable install compiles none of the project's modules, and with PYTHONDONTWRITEBYTECODE
# (set on these machines) every command would compile them again: a tenth of `verify`'s
# budget. Write the bytecode an ordinary install would (only what changed; a stale file is
# ignored by Python, never used).
.venv/bin/python -m compileall -q -j 0 rollback_drill verifications conftest.py > /dev/null
# pytest compiles its plugins (xdist, allure, pytest-docker) for assertion rewriting and keeps
# the result beside them, except under PYTHONDONTWRITEBYTECODE: one collection without it
# writes what a pytest start would otherwise compile again each time.
PYTHONDONTWRITEBYTECODE= .venv/bin/python -m pytest --collect-only -q -p no:cacheprovider \
  tests/test_secrets.py > /dev/null
log "ready"
