#!/usr/bin/env bash
# Benchmark: `rollback-drill verify` and `pytest -m verify` from an earlier tree beside this one,
# interleaved against one running stack, so both see the same machine and the same database.
# Prints each run and the medians. Asserts nothing.
#
# The earlier tree is a worktree of this repository (git worktree add DIR COMMIT); its code is
# loaded through PYTHONPATH with this project's venv. Its bytecode and pytest's rewritten plugins
# are compiled first, as scripts/setup.sh does here (PYTHONDONTWRITEBYTECODE is set on these
# machines: without that the earlier tree would pay for compiling every module in each run).
#
# Run: benchmarks/bench_verify_ab.sh OLD_TREE UP_DIR [RUNS]
#   UP_DIR: the --dir of a `rollback-drill up` (its target.yaml is used from inside both
#   projects, as the README shows the command).
set -euo pipefail
old="$(cd "$1" && pwd)"
up="$(cd "$2" && pwd)"
runs="${3:-7}"
new="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$new/.venv/bin/python"
for tree in "$old" "$new"; do
  mkdir -p "$tree/.rollback-drill"
  ln -sfn "$up" "$tree/.rollback-drill/ab"
  (cd "$tree" && PYTHONPATH="$tree" "$py" -m compileall -q -j 0 rollback_drill verifications \
    conftest.py > /dev/null)
  (cd "$tree" && PYTHONPATH="$tree" PYTHONDONTWRITEBYTECODE= "$py" -m pytest -m verify \
    --target .rollback-drill/ab/target.yaml -q -p no:cacheprovider > /dev/null 2>&1) || true
done
trap 'rm -f "$old/.rollback-drill/ab" "$new/.rollback-drill/ab"' EXIT

timed() {  # TREE LABEL COMMAND...: one run, its seconds and exit status
  local tree="$1" label="$2"
  shift 2
  local start end code=0
  start=$(date +%s.%N)
  (cd "$tree" && PYTHONPATH="$tree" "$@" > /dev/null 2>&1) || code=$?
  end=$(date +%s.%N)
  echo "$label $(echo "$end - $start" | bc) $code"
}

results=$(mktemp)
for run in $(seq 1 "$runs"); do
  for side in old new; do
    tree=$old
    [ "$side" = new ] && tree=$new
    timed "$tree" "$side rollback-drill-verify" "$py" -m rollback_drill.cli verify \
      --target .rollback-drill/ab/target.yaml
    timed "$tree" "$side pytest-m-verify" "$py" -m pytest -m verify \
      --target .rollback-drill/ab/target.yaml -q -p no:cacheprovider
  done | tee -a "$results"
done
echo "medians of $runs runs ($(wc -l < /proc/net/tcp) TCP sockets on the machine now):"
"$py" - "$results" <<'EOF'
import collections, statistics, sys
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    side, command, seconds, _ = line.split()
    times[(command, side)].append(float(seconds))
for (command, side), values in sorted(times.items()):
    print(f"  {command:<24} {side}: {statistics.median(values):.2f} s")
EOF
rm -f "$results"
