"""Benchmark: the runbook's verification block run literally (curl, mongosh, redis-cli,
openssl) against the reference stack, beside the whole verify process - `pytest -m verify
--target FILE` and `rollback-drill verify --target FILE` - against the same stack, runs
interleaved so both see the same machine load. Prints each time, the medians and the ratios
(target: verify <= 0.5 x the literal block), and the time to fingerprint the users collection
(per-document digests; `--seed-users 100000` for the size a later issue needs). Asserts nothing.

"rollback-drill verify + web3" is the same verify with web3 imported first: the least a web3
read path would cost verify (its per-call overhead comes on top), which is why checks/chain.py
keeps the light JSON-RPC client while the engine's chain work goes through web3 (chain/evm.py).
`--only "rollback-drill verify" --only "rollback-drill verify + web3"` times just those two.

The target file is written where `rollback-drill up` writes its own (.rollback-drill/ in the
project), so both verify commands run as the README shows them.
The literal block is the runbook's "Rollback Verification" section (health checks, database
connectivity, functional testing, performance verification with the log error count) plus
its "Verify SSL" and "Verify data integrity" commands; `./docker-manage.sh health` and
`docker stats` have no local equivalent and are left out.
Run: .venv/bin/python benchmarks/bench_verify.py [--runs N] [--seed-users N] [--only NAME]...
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from rollback_drill.files.spec import load_stack
from rollback_drill.process.tools import find_tool
from rollback_drill.stack.local import LocalStack
from rollback_drill.stack.targetfile import write_target_file
from rollback_drill.stores import mongo

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # this checkout

LITERAL = r"""
set -u
# Health Checks
curl -sf "$BACKEND/health" >/dev/null || echo "Backend failed"
curl -sf "$CHATBOT/health" >/dev/null || echo "AI Chatbot failed"
curl -sf "$FRONTEND" >/dev/null || echo "Frontend failed"
"$MONGOSH" "$MONGODB_URI" --quiet --norc --eval "db.adminCommand('ping')" >/dev/null
redis-cli -u "$REDIS_URL" ping >/dev/null
# Functional Testing
curl -s -X POST "$BACKEND/api/auth/login" -H "Content-Type: application/json" \
  -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" >/dev/null
curl -s -X GET "$BACKEND/api/did/health" >/dev/null
curl -s -X POST "$CHATBOT/api/chat" -H "Content-Type: application/json" \
  -d '{"message":"Hello"}' >/dev/null
# Performance Verification
time curl -sf "$BACKEND/health" >/dev/null
time curl -sf "$FRONTEND" >/dev/null
cat $LOGS | grep -i error | wc -l >/dev/null
# Verify SSL
openssl s_client -connect "$TLS" -servername "$SERVER_NAME" -CAfile "$CA" </dev/null >/dev/null 2>&1
# Verify data integrity
"$MONGOSH" "$MONGODB_URI" --quiet --norc --eval "db = db.getSiblingDB('safepsy');
  db.users.countDocuments(); db.sessions.countDocuments();" >/dev/null
"""


UP_DIR = PROJECT_ROOT / ".rollback-drill"
WITH_WEB3 = (
    "import runpy, sys, web3; sys.argv[0] = 'rollback-drill'; "
    "runpy.run_module('rollback_drill.cli', run_name='__main__')"
)


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, env=env, cwd=PROJECT_ROOT, check=False)
    return time.monotonic() - start, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed-users", type=int, default=200)
    parser.add_argument("--only", action="append", default=[], help="time only these commands")
    args = parser.parse_args()
    loaded = load_stack(PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml")
    UP_DIR.mkdir(exist_ok=True)
    with (
        LocalStack(loaded, seed_users=args.seed_users).running("1.4.0") as stack,
        tempfile.TemporaryDirectory(prefix="bench-", dir=UP_DIR) as tmp,
    ):
        target = stack.target()
        target_file = write_target_file(target, Path(tmp), stack.password_file)
        tls = urlsplit(target.frontend_tls_url or "")
        env = {
            **os.environ,
            "BACKEND": target.backend_url,
            "CHATBOT": target.chatbot_url,
            "FRONTEND": target.frontend_url,
            "MONGODB_URI": target.mongodb_uri.reveal(),
            "REDIS_URL": target.redis_url.reveal(),
            "EMAIL": target.test_email,
            "PASSWORD": target.test_password.reveal(),
            "LOGS": " ".join(str(p) for s in stack.app_services() for p in stack.log_files(s)),
            "TLS": f"{tls.hostname}:{tls.port}",
            "SERVER_NAME": target.server_name or "localhost",
            "CA": str(target.ca_file),
            "MONGOSH": find_tool("mongosh"),
        }
        commands = {
            "literal block": (["bash", "-c", LITERAL], env),
            "pytest -m verify": (
                [sys.executable, "-m", "pytest", "-m", "verify", "--target", str(target_file),
                 "-q", "-p", "no:cacheprovider"], None,
            ),
            "rollback-drill verify": (
                [sys.executable, "-m", "rollback_drill.cli", "verify", "--target",
                 str(target_file)], None,
            ),
            "rollback-drill verify + web3": (
                [sys.executable, "-c", WITH_WEB3, "verify", "--target", str(target_file)], None,
            ),
        }  # fmt: skip
        if args.only:
            commands = {name: commands[name] for name in args.only}
        fingerprints = []
        for _ in range(3):
            start = time.monotonic()
            users = mongo.fingerprint(target.mongodb_uri.reveal(), "safepsy", ["users"], 30.0)
            fingerprints.append(time.monotonic() - start)
        count = users.collections["users"].count
        print(f"fingerprint of users ({count} documents): {statistics.median(fingerprints):.2f} s")
        times: dict[str, list[float]] = {name: [] for name in commands}
        for run in range(1, args.runs + 1):
            for name, (argv, run_env) in commands.items():
                seconds, code = timed(argv, run_env)
                times[name].append(seconds)
                print(f"run {run}: {name:<28} {seconds:.2f} s (exit {code})")
    literal = statistics.median(times["literal block"]) if "literal block" in times else None
    print(f"\nmedian of {args.runs} runs, {args.seed_users} seeded users:")
    for name, values in times.items():
        median = statistics.median(values)
        ratio = (
            f"  ratio {median / literal:.2f} (target <= 0.5)"
            if literal and name != "literal block"
            else ""
        )
        print(f"  {name:<28} {median:.2f} s{ratio}")


if __name__ == "__main__":
    main()
