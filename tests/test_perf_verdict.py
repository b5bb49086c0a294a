"""The performance judgement's arithmetic (`checks.shift`, `checks.perfjudge`,
`checks.machine`): the ratio and its interval hold what they claim on samples of known
distribution, a busy machine is taken out only where the verifier shares it with the services,
and a borderline result fails once no round is left. (On a real stack: test_checks_fail.py.)"""

from __future__ import annotations

import math
import random

import pytest

from rollback_drill.checks import machine
from rollback_drill.checks.perfjudge import Machine, judge
from rollback_drill.checks.shift import compare
from rollback_drill.files.perfbaseline import FlowSamples


def _lognormal(rng: random.Random, median_s: float, n: int, spread: float = 0.3) -> list[float]:
    return [median_s * math.exp(rng.gauss(0, spread)) for _ in range(n)]


def test_ratio_interval_covers_the_true_ratio_as_often_as_its_confidence_says() -> None:
    rng = random.Random(19)
    covered = 0
    trials = 300
    for _ in range(trials):
        before = {"a": _lognormal(rng, 0.02, 20), "b": _lognormal(rng, 0.005, 20)}
        now = {"a": _lognormal(rng, 0.02 * 1.6, 20), "b": _lognormal(rng, 0.005 * 1.6, 20)}
        shift = compare(before, now, 0.95)
        assert shift is not None
        covered += shift.low <= 1.6 <= shift.high
    assert 0.90 <= covered / trials <= 0.99, covered


def test_strata_are_compared_within_themselves() -> None:
    rng = random.Random(7)
    # a slow operation and a fast one: pooled, a 1.0 ratio would look like anything
    before = {"slow": _lognormal(rng, 0.2, 30), "fast": _lognormal(rng, 0.002, 30)}
    same = {"slow": _lognormal(rng, 0.2, 30), "fast": _lognormal(rng, 0.002, 30)}
    shift = compare(before, same, 0.95)
    assert shift is not None and shift.low < 1 < shift.high and shift.strata == 2
    assert compare(before, {"elsewhere": [0.1]}, 0.95) is None


def test_failed_requests_and_zero_times_are_left_to_the_error_rate() -> None:
    shift = compare({"a": [0.01] * 10}, {"a": [0.01] * 10 + [math.inf, 0.0]}, 0.95)
    assert shift is not None and shift.current_samples == 10


def _judged(
    ratio: float, server_ratio: float | None = None, shared_shares: tuple[float, float] = (0, 0)
) -> str:
    rng = random.Random(3)
    before = {"POST /login (direct)": _lognormal(rng, 0.03, 60, 0.1)}
    now = {k: [v * ratio for v in _lognormal(rng, 0.03, 60, 0.1)] for k in before}
    server_before = server_now = {}
    if server_ratio is not None:
        server_before = {"POST /login (nginx http)": _lognormal(rng, 0.025, 60, 0.1)}
        server_now = {
            k: [v * server_ratio for v in _lognormal(rng, 0.025, 60, 0.1)] for k in server_before
        }
    baseline = FlowSamples(client_s=before, server_s=server_before, foreign_share=shared_shares[0])
    result = judge(
        baseline,
        now,
        server_now,
        Machine(shared_shares[0], shared_shares[1], shared=True),
        0.95,
        0.5,
        0.01,
        rounds=1,
    )
    assert result is not None
    return result.state


def test_states_within_regressed_borderline() -> None:
    assert _judged(1.0) == "within"
    assert _judged(2.0) == "regressed"
    assert _judged(1.6) == "regressed"
    assert _judged(1.5) == "borderline"


def test_a_rise_the_service_did_not_see_is_the_verifiers() -> None:
    assert _judged(2.0, server_ratio=1.0) == "verifier"
    assert _judged(2.0, server_ratio=2.0) == "regressed"


def test_the_machines_foreign_load_is_taken_out_only_where_it_is_shared() -> None:
    # other work took 60 % of the machine now, 10 % then: x1.5 taken out (damped x2.25)
    assert _judged(1.9, shared_shares=(0.1, 0.6)) == "within"
    assert _judged(3.2, shared_shares=(0.1, 0.6)) == "regressed"  # twice as slow, busy
    assert _judged(1.9, shared_shares=(0.0, 0.0)) == "regressed"
    remote = Machine(0.0, 0.5, shared=False)
    assert remote.factor == 1.0 and "not applied" in remote.shown()


def test_a_correction_larger_than_the_regression_looked_for_is_not_taken_out() -> None:
    """The CI run that turned a twice-as-slow login green: x1.60 measured beside a machine 97 %
    busy (baseline 86 %), x2.27 taken out. A correction past the limit ratio cannot tell a
    busy machine from a slow release: undecided, never within."""
    assert _judged(1.6, shared_shares=(0.86, 0.97)) == "borderline"
    assert _judged(2.5, shared_shares=(0.0, 0.75)) == "borderline"
    assert _judged(1.1, shared_shares=(0.0, 0.75)) == "within"  # within without any help
    assert _judged(6.0, shared_shares=(0.0, 0.75)) == "regressed"  # more than any busy machine
    busy = Machine(0.86, 0.97, shared=True, trusted_up_to=1.5)
    assert busy.factor == 1.0 and not busy.trusted and "too busy to judge" in busy.shown()


def test_a_borderline_judgement_is_undecided_not_failed() -> None:
    rng = random.Random(5)
    before = {"x": _lognormal(rng, 0.03, 20, 0.3)}
    now = {"x": [v * 1.5 for v in _lognormal(rng, 0.03, 20, 0.3)]}
    result = judge(
        FlowSamples(client_s=before), now, {}, Machine(None, None, False), 0.95, 0.5, 0.01, 1
    )
    assert result is not None and result.state == "borderline"
    assert result.problem() is None
    undecided = result.undecided()
    assert undecided is not None and "neither within nor over +50%" in undecided
    assert "interval" in undecided


@pytest.mark.parametrize(
    ("urls", "shared"),
    [
        (["http://127.0.0.1:8080", "mongodb://localhost:27017"], True),
        (["http://127.0.0.1:8080", "https://api.example.org"], False),
        ([], False),
    ],
)
def test_shares_machine_only_when_every_url_is_loopback(urls: list[str], shared: bool) -> None:
    assert machine.shares_machine(urls) is shared


def test_foreign_share_needs_a_window_long_enough_to_measure() -> None:
    processes = machine.serving_processes([])
    start = machine.read(processes)
    assert machine.foreign_share(start, start) is None


def test_an_inconclusive_result_is_not_verified_never_passed_nor_failed() -> None:
    from rollback_drill.checks import BY_NAME
    from rollback_drill.checks.result import CheckResult, Outcome
    from rollback_drill.plugin.verification import ExitCode, status

    result = CheckResult("flow.login", False, "performance not verified: ...", inconclusive=True)
    outcome = Outcome(BY_NAME["flow.login"], result)
    assert outcome.state == "not verified" and not outcome.failed
    assert "NOT VERIFIED" in result.explain()
    assert status([outcome]) is ExitCode.NOT_VERIFIED
