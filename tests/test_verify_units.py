"""The verify suite's pure parts: the sampling statistics, a flow's verdict, the chain's code
comparison, log error counting, per-document digests and the fingerprint comparison, and the
summary's verdicts. No stack: each piece is fed the data that must turn it red."""

from __future__ import annotations

import http.server
import json
import math
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
import pytest
from Crypto.Hash import keccak

from rollback_drill.chain import artifacts
from rollback_drill.chain.artifacts import PINNED_SELECTORS
from rollback_drill.checks import BY_NAME, logs, sampling
from rollback_drill.checks.flows import FlowVerdict, Operation, Sample
from rollback_drill.checks.result import Check, CheckResult, Outcome
from rollback_drill.plugin.verification import ExitCode, status, table, verdict
from rollback_drill.process.errors import FingerprintError
from rollback_drill.stores import bsonscan
from rollback_drill.stores.fingerprint import (
    CollectionPrint,
    Fingerprint,
    IndexPrint,
    compare,
    pack,
)
from tests.helpers import bare_target
from tests.paths import PROJECT_ROOT

ARTIFACT = (
    PROJECT_ROOT / "fixtures" / "safepsy" / "contracts" / "build" / "1.4.0" / "DIDRegistry.json"
)


# -- sampling -----------------------------------------------------------------------------------
def test_59_clean_samples_bound_the_error_rate_below_5_percent_at_95() -> None:
    assert sampling.samples_needed(0.05, 0.95) == 59
    assert sampling.upper_bound(0, 59, 0.95) < 0.05
    assert sampling.upper_bound(0, 58, 0.95) > 0.05
    assert sampling.upper_bound(0, 60, 0.95) == pytest.approx(3 / 60, rel=0.05)  # rule of three


def test_one_error_in_59_cannot_be_shown_below_5_percent() -> None:
    assert sampling.upper_bound(1, 59, 0.95) > 0.05
    assert sampling.upper_bound(0, 0, 0.95) == 1.0  # no samples: nothing shown


def test_percentile_counts_a_failed_request_as_slowest() -> None:
    assert sampling.percentile([0.01] * 57 + [math.inf] * 2, 95) == 0.01
    assert sampling.percentile([0.01] * 56 + [math.inf] * 3, 95) == math.inf
    assert sampling.percentile([], 95) == math.inf


def _op(route: str = "direct") -> Operation:
    return Operation(route, "GET", "http://127.0.0.1:1/x", lambda r: None)


def _verdict(samples: list[Sample]) -> FlowVerdict:
    return FlowVerdict("x", samples, 0.05, 0.95, 2.0)


def test_flow_verdict_fails_on_a_single_error_no_samples_and_slowness() -> None:
    ok = [Sample(_op(), True, 0.01)] * 59
    assert _verdict(ok).problems() == []
    assert "0 errors: rate <" in _verdict(ok).summary()
    one_bad = [*ok[:58], Sample(_op("nginx https"), False, math.inf, "502 (expected 200)")]
    problem = _verdict(one_bad).problems()[0]
    assert "1 error(s) in 59" in problem and "nginx https" in problem and "502" in problem
    assert _verdict([]).problems() == ["no samples taken"]
    slow = [Sample(_op(), True, 2.5)] * 59
    assert "over the 2 s warning threshold" in _verdict(slow).summary()


def test_flow_verdict_lists_the_writes_it_made() -> None:
    op = Operation("direct", "POST", "http://h/api/chat", lambda r: None, writes="chat_messages")
    samples = [Sample(op, True, 0.01)] * 5 + [Sample(op, False, math.inf, "503")]
    assert _verdict(samples).writes() == [{"collection": "chat_messages", "documents": 5}]


# -- chain --------------------------------------------------------------------------------------
def test_pinned_selectors_are_the_keccak_of_their_signatures() -> None:
    for signature, pinned in PINNED_SELECTORS.items():
        digest = keccak.new(data=signature.encode(), digest_bits=256).digest()
        assert pinned == digest[:4], signature


@pytest.mark.parametrize("size", [0, 1, 55, 135, 136, 137, 271, 272, 1000])
def test_plain_python_keccak_is_ethereums(size: int) -> None:
    from rollback_drill.checks.keccak import keccak256

    data = bytes((i * 37 + size) % 256 for i in range(size))
    assert keccak256(data) == keccak.new(data=data, digest_bits=256).digest()


def test_pinned_not_registered_error_is_its_selector() -> None:
    from rollback_drill.checks.did_stores import NOT_REGISTERED

    digest = keccak.new(data=b"NotRegistered(bytes32)", digest_bits=256).hexdigest()
    assert "0x" + digest[:8] == NOT_REGISTERED


def test_route_reads_state_the_share_they_detect() -> None:
    from rollback_drill.checks.identity import detectable_share

    share = detectable_share(6, 0.95)
    assert 1 - (1 - share) ** 6 == pytest.approx(0.95)
    assert 1 - (1 - 0.5) ** 6 > 0.95 > 1 - (1 - 0.3) ** 6  # half is seen, 30 % not surely
    assert detectable_share(1, 0.95) == pytest.approx(0.95)


def test_runtime_code_compares_equal_with_owner_filled_and_other_metadata() -> None:
    runtime = artifacts.runtime_of(ARTIFACT)
    slots = artifacts.immutable_slots(artifacts.RuntimeCode.split(runtime).body)
    assert slots, "DIDRegistry has an immutable owner"
    owner = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
    deployed = bytearray(runtime)
    for slot in slots:
        deployed[slot : slot + 32] = owner.rjust(32, b"\0")
    same, evidence = artifacts.compare_code(runtime, bytes(deployed), owner)
    assert same and evidence["immutable_slots_with_owner"] == slots
    body = artifacts.RuntimeCode.split(bytes(deployed))
    other_meta = body.body + bytes([0xA2] + [0] * (len(body.metadata) - 3)) + body.metadata[-2:]
    assert artifacts.compare_code(runtime, other_meta, owner)[0]
    tampered = bytearray(deployed)
    tampered[10] ^= 0xFF
    assert not artifacts.compare_code(runtime, bytes(tampered), owner)[0]
    assert not artifacts.compare_code(runtime, bytes(deployed), b"\x01" * 20)[0]  # another owner


# -- logs ---------------------------------------------------------------------------------------
def test_log_error_count_is_the_word_error_or_a_5xx() -> None:
    text = "\n".join(
        [
            "2026-01-01 backend INFO GET /health 200 1.0ms",
            "2026-01-01 backend WARNING connection from x failed: ConnectionResetError(104)",
            "2026-01-01 backend ERROR unhandled error in GET /x",
            '127.0.0.1 [01/Jan/2026] "GET /api/did/health HTTP/1.1" 502 40 rt=0.001',
            '127.0.0.1 [01/Jan/2026] "GET / HTTP/1.1" 200 4000 rt=0.001',
        ]
    )
    lines, requests, errors, examples = logs.count(text)
    assert (lines, requests, errors) == (5, 3, 2)
    assert "unhandled error" in examples[0] and "502" in examples[1]


# -- per-document digests -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "doc_id",
    [bson.ObjectId(), "u000001", 42, 2**40, 1.5, {"a": 1}, [1, 2], b"raw", None, True],
    ids=lambda v: type(v).__name__,
)
def test_id_digest_reads_every_id_type_from_raw_bson(doc_id: object) -> None:
    raw = bson.encode({"_id": doc_id, "x": 1})
    fallback = bson.encode({"x": 1, "_id": doc_id})  # _id not first: decoded instead
    (record,) = bsonscan.records(raw)
    assert record[:8] == bsonscan.id_digest(memoryview(raw))
    assert bsonscan.id_digest(memoryview(fallback)) != b""
    other = bson.encode({"_id": doc_id, "x": 2})
    assert next(bsonscan.records(other))[:8] == record[:8]  # same id, other content
    assert next(bsonscan.records(other))[8:] != record[8:]


def test_truncated_batch_is_refused() -> None:
    raw = bson.encode({"_id": 1})
    with pytest.raises(ValueError, match="truncated"):
        list(bsonscan.records(raw + raw[:7]))


def _print(
    docs: Sequence[Mapping[str, Any]], indexes: tuple[IndexPrint, ...] = ()
) -> CollectionPrint:
    records = [r for d in docs for r in bsonscan.records(bson.encode(d))]
    packed, digest = pack(records)
    return CollectionPrint(len(records), digest, indexes=indexes, documents=packed)


def test_comparison_tells_lost_altered_and_added_apart_by_mode() -> None:
    docs: list[dict[str, Any]] = [{"_id": i, "v": i} for i in range(10)]
    before = Fingerprint("db", {"c": _print(docs)})
    changed = [*docs[1:9], {"_id": 9, "v": "x"}, {"_id": 10, "v": 10}, {"_id": 11, "v": 11}]
    after = Fingerprint("db", {"c": _print(changed)})
    (exact,) = compare(before, after, ["c"], append=set())
    assert (exact.lost, exact.altered, exact.added) == (1, 1, 2)
    assert exact.problems == ["c: 1 of 10 documents lost; 1 altered; 2 added"]
    grown = Fingerprint("db", {"c": _print([*docs, {"_id": 10}])})
    (append,) = compare(before, grown, ["c"], append={"c"})
    assert append.equal and append.added == 1 and append.row()["equal"]
    (exact_grown,) = compare(before, grown, ["c"], append=set())
    assert not exact_grown.equal


def test_comparison_sees_indexes_options_missing_and_empty() -> None:
    unique = (IndexPrint("email_unique", (("email", 1),), True),)
    before = Fingerprint("db", {"c": _print([{"_id": 1}], unique), "e": _print([])})
    after = Fingerprint("db", {"c": _print([{"_id": 1}])})
    diffs = {d.name: d for d in compare(before, after, ["c", "e", "n"], append=set())}
    assert diffs["c"].problems == ["c: index email_unique dropped"]
    assert diffs["e"].problems == ["e: the baseline is empty"]
    assert diffs["n"].problems == ["n: not in the baseline (take a new one naming it)"]
    with_options = Fingerprint("db", {"c": CollectionPrint(
        1, before.collections["c"].sha256, indexes=unique, options='{"capped":true}',
        documents=before.collections["c"].documents)})  # fmt: skip
    (opts,) = compare(before, with_options, ["c"], append=set())
    assert "options" in opts.problems[0]
    assert before.empty_collections() == ["e (empty)"]


def test_baseline_file_round_trip_and_old_format_refused(tmp_path: Path) -> None:
    cut = {"c": ("createdAt", datetime(2026, 1, 1, tzinfo=UTC))}
    taken = Fingerprint("db", {"c": _print([{"_id": 1}, {"_id": 2}])}, cut)
    path = tmp_path / "baseline.json"
    taken.save(path)
    assert Fingerprint.load(path) == taken
    assert "documents" not in json.dumps(taken.to_json())  # reports get the summary only
    path.write_text(json.dumps({"database": "db", "collections": {"c": {"count": 1}}}))
    with pytest.raises(FingerprintError, match="older rollback-drill"):
        Fingerprint.load(path)
    with pytest.raises(FingerprintError, match="baseline not found"):
        Fingerprint.load(tmp_path / "nope.json")


# -- the summary --------------------------------------------------------------------------------
def _outcome(name: str, ok: bool | None, summary: str = "why") -> Outcome:
    check = Check(name, "x", lambda t: CheckResult(name, True, ""))
    if ok is None:
        return Outcome(check, None, summary)
    return Outcome(check, CheckResult(name, ok, summary, duration_s=0.25))


def test_not_verified_is_its_own_exit_status_and_never_a_pass() -> None:
    passed, failed, unverified = _outcome("a", True), _outcome("b", False), _outcome("c", None)
    assert status([passed]) is ExitCode.VERIFIED
    assert status([passed, unverified]) is ExitCode.NOT_VERIFIED
    assert status([passed, unverified, failed]) is ExitCode.NOT_RECOVERED
    assert status([]) is ExitCode.NOT_VERIFIED
    rows = table([passed, failed, unverified])
    assert rows[2].split()[:2] == ["b", "FAIL"] and "NOT VERIFIED" in rows[3]
    assert verdict([passed, unverified], "t.yaml").startswith("NOT VERIFIED: 1 check(s)")
    assert "(exit 1)" in verdict([failed, unverified], "t.yaml")


def test_cli_keeps_pytest_options_in_their_order() -> None:
    from rollback_drill.cli.verify import split_args

    own, passed = split_args(
        ["-k", "health and not tls", "--target", "t.yaml", "-rA", "--dry-run", "--", "--target"]
    )
    assert own == ["--target", "t.yaml", "--dry-run"]
    assert passed == ["-k", "health and not tls", "-rA", "--target"]
    assert split_args(["--target=t.yaml", "-q"]) == (["--target=t.yaml"], ["-q"])


def test_verify_reads_the_chain_without_web3() -> None:
    """Verify's chain reads go through the light client (chain/jsonrpc.py): importing web3,
    the engine's chain client (chain/evm.py), would cost verify about 1.8 s
    (benchmarks/bench_verify.py --only "rollback-drill verify + web3")."""
    import subprocess
    import sys

    code = (
        "import importlib, pkgutil, sys, rollback_drill.checks as checks, "
        "rollback_drill.cli.verify, rollback_drill.stack.target; "
        "[importlib.import_module(f'rollback_drill.checks.{m.name}') "
        "for m in pkgutil.iter_modules(checks.__path__)]; "
        "print('web3' in sys.modules, 'rollback_drill.checks.chain' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]


@pytest.mark.parametrize(("documents", "second"), [(200, False), (100_000, True)])
def test_whole_collection_reads_go_second_only_on_a_large_database(
    documents: int, second: bool
) -> None:
    """On a large database the fingerprint and the DID listing wait for the checks that
    exercise the application (SecantusDB holds every query while it builds a whole-collection
    read: at 100 000 users the flows failed on the 503s verify caused); on a small one all
    start at once."""
    import dataclasses
    import threading
    import time

    from rollback_drill.checks.result import run_checks_concurrently
    from tests.helpers import bare_target

    times: dict[str, tuple[float, float]] = {}
    lock = threading.Lock()

    def timed(name: str) -> Check:
        def run(_: object) -> CheckResult:
            start = time.monotonic()
            time.sleep(0.2)
            with lock:
                times[name] = (start, time.monotonic())
            return CheckResult(name, True, "ok")

        return Check(name, "test", run, reads_whole_collections=name.startswith("reads"))

    users = CollectionPrint(documents, "0" * 64)
    target = dataclasses.replace(
        bare_target("t", "http://127.0.0.1:1"),
        baseline=Fingerprint("db", {"users": users}),
    )
    checks = [timed("flow"), timed("reads.fingerprint"), timed("health"), timed("reads.dids")]
    outcomes = run_checks_concurrently(checks, target, deadline_s=5)
    assert [o.check.name for o in outcomes] == [c.name for c in checks]
    assert all(o.result is not None and o.result.ok for o in outcomes)
    last_app_end = max(times["flow"][1], times["health"][1])
    first_read_start = min(times["reads.fingerprint"][0], times["reads.dids"][0])
    assert (first_read_start >= last_app_end) is second, times


@pytest.mark.parametrize(
    ("location", "hinted"),
    [("https://safepsy.example/", True), ("http://elsewhere.example/", False)],
    ids=["to_https", "elsewhere"],
)
def test_a_frontend_url_that_redirects_fails_and_says_why(location: str, hinted: bool) -> None:
    """A redirect is not the page (curl -f without -L prints no page either); one to HTTPS
    says what to do about it: name the https URL as the frontend."""

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            result = BY_NAME["health.frontend"].run(bare_target("redirecting", url))
        finally:
            server.shutdown()
    assert not result.ok and result.summary.startswith("GET / -> 301"), result.summary
    assert ("name the https URL as the target's frontend" in result.summary) is hinted
