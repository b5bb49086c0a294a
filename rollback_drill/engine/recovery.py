"""Whether users are served well again, and were while the rollback ran: the verify phase's
"monitoring green" watch (no alert, users' error rate and medians as in the steady state),
each step's share of requests that went unanswered, and the steps that must cost users no
request at all. A failed judgement raises DrillFailed with the measured value and its limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rollback_drill.checks.machine import MAX_FACTOR
from rollback_drill.checks.result import Check, CheckResult, Outcome
from rollback_drill.checks.sampling import lower_bound
from rollback_drill.engine.outcome import DrillOutcome
from rollback_drill.files.drillspec import DrillSettings
from rollback_drill.files.specmodel import Thresholds
from rollback_drill.monitoring.alertrules import CONFIDENCE
from rollback_drill.monitoring.alerts import AlertEngine, rose
from rollback_drill.monitoring.load import LoadRun, LoadSample, LoadStats
from rollback_drill.monitoring.resample import stack_wide_rise
from rollback_drill.process.errors import CheckSkipped, DrillFailed, VerdictError, WaitTimeout
from rollback_drill.process.wait import Wait
from rollback_drill.stack.target import Target
from rollback_drill.steps.timeline import Timeline

MIN_SETTLE_REQUESTS = 20
DECIDE_EVERY_S = 1.0  # how often a wait that is not green yet asks the deciding checks


class _Decided(VerdictError):
    """Monitoring cannot turn green: a deciding check failed on an answer no wait changes."""


def monitoring_green(
    timeline: Timeline,
    alerts: AlertEngine,
    load: LoadRun | None,
    steady: LoadStats | None,
    settings: DrillSettings,
    since_s: float,
    decided: Callable[[], list[str]] | None = None,
) -> Outcome:
    """Watch until monitoring is green: over the last `settle_s` seconds, no alert fires and
    users are served as in the steady state (error rate under the threshold, median within
    the allowed increase). Services come back cold; this is the runbook's "Monitor logs for
    errors" after the health checks, ending when it holds or at `verify_timeout_s`.

    Or sooner, red, when `decided` (asked at most every DECIDE_EVERY_S while not green) names
    failures no wait can change - a service healthy as the wrong release: waiting out the
    timeout for it would only delay the verdict. A recovery that is merely slow (cold
    caches, few samples, a 5xx while starting) decides nothing and gets its whole time.

    A journey once served at the steady pace since the rollback is not held to it again
    (`_users_problems`): on a busy machine journeys slow down in turns, never all at once;
    nor is one as slow as journeys already back at that pace (`_beside_the_paced`)."""
    thresholds = alerts.thresholds
    started = time.monotonic()
    paced: dict[str, float] = {}  # journey -> when it was first served at the steady pace
    beside: dict[str, str] = {}  # paced journey -> the paced journeys' rise that explained it
    last: list[str] = ["not looked yet"]
    stats = LoadStats(0, 0, None, None, None)
    asked = [0.0]  # monotonic time decided() was last asked
    final: list[str] = []

    def green() -> bool:
        nonlocal stats
        now = timeline.now()
        window_start = max(since_s, now - settings.settle_s)
        if now - since_s < settings.settle_s:
            last[:] = [f"settling: {now - since_s:.1f} of {settings.settle_s:.1f} s"]
            return False
        alerts.not_before_s = window_start
        alerts.evaluate()
        users: list[str] = []
        if load is not None:
            window = load.samples(window_start, now)
            stats = LoadStats.of(window)
            since = load.samples(since_s, now)
            users = _users_problems(window, since, alerts, thresholds, paced, since_s, beside)
        problems = [
            a.message for a in alerts.troubles() if not _paced_rise(a.rule, a.subject, paced)
        ] + users
        last[:] = problems
        if problems and decided is not None and time.monotonic() - asked[0] >= DECIDE_EVERY_S:
            asked[0] = time.monotonic()
            final[:] = decided()
            if final:
                raise _Decided()
        return not problems

    wait = Wait(
        "monitoring green after the rollback", settings.verify_timeout_s, 0.1, fatal=(_Decided,)
    )
    try:
        wait.until(green)
        ok = True
    except (WaitTimeout, _Decided):
        ok = False
    rate = stats.error_rate
    waited = time.monotonic() - started
    not_green = (
        f"cannot turn green (stopped waiting after {waited:.1f} of "
        f"{settings.verify_timeout_s:.0f} s): " + "; ".join(final) + "; monitoring: "
        if final
        else f"not green within {settings.verify_timeout_s:.0f} s: "
    )
    summary = (
        f"monitoring green over the last {settings.settle_s:.1f} s: no alert"
        + (
            f"; {stats.requests} user requests, error rate {100 * (rate or 0):.1f} % "
            f"(limit {100 * thresholds.error_rate_critical:.0f} %), median "
            f"{1000 * (stats.p50_s or 0):.1f} ms (steady state "
            f"{1000 * ((steady.p50_s if steady else None) or 0):.1f} ms)"
            + _paced_summary(paced, beside)
            if load is not None
            else ""
        )
        if ok
        else not_green + "; ".join(last)
    )
    evidence = {
        **stats.to_json(),
        "paced_at_s": {j: round(t, 3) for j, t in sorted(paced.items())},
        "paced_beside": dict(sorted(beside.items())),
        **({"decided_by": list(final)} if final else {}),
    }
    result = CheckResult(RECOVERED.name, ok, summary, evidence, waited, decided=bool(final))
    return Outcome(RECOVERED, result)


_RISE_RULES = ("response_time_increase",)


def _paced_rise(rule: str, journey: str, paced: dict[str, float]) -> bool:
    """A rise over the steady state on a journey already served at the steady pace since the
    rollback: the machine's noise, not the release (see `_users_problems`)."""
    return rule in _RISE_RULES and journey in paced


def _paced_summary(paced: dict[str, float], beside: dict[str, str]) -> str:
    if not paced:
        return ""
    seen = ", ".join(
        f"{j} at +{t:.1f} s" + (f" ({beside[j]})" if j in beside else "")
        for j, t in sorted(paced.items(), key=lambda x: x[1])
    )
    return f"; each journey back at the steady pace since the rollback: {seen}"


def _users_problems(
    window: list[LoadSample],
    since: list[LoadSample],
    alerts: AlertEngine,
    thresholds: Thresholds,
    paced: dict[str, float],
    since_s: float,
    beside: dict[str, str],
) -> list[str]:
    """What keeps users from counting as served well, besides the alerts: too many errors in
    the window, or a journey the steady state measured that is slower now or cannot be judged
    yet. Each such journey is judged on its last `min_latency_samples` answers since the
    rollback (a count, not a time window: a service too slow to answer enough requests can
    never look recovered, and its cold start drops out as answers accumulate).

    A journey is judged until it has once been served at the steady pace since the rollback
    (its median within the allowed rise): then it is `paced` (journey -> seconds after the
    rollback) and its later rises over the steady state no longer count, nor do the alert
    engine's. Measured on a 2-core machine shared with another drill, healthy releases' medians
    rose 2-6 times in turns, one journey after another, so that all of them were never inside
    the limit at once within the 30 s wait (CI: "not green" on a healthy 1.4.0). A release that
    is slower stays over the limit on its journey and never gets paced; a slowdown that only
    comes later is the Verify flows' to find (judged against the baseline, re-sampled), and
    errors, the absolute response-time limit and every other alert count until the end.

    A journey over the limit is paced too when it is only as slow as the journeys already
    paced, over the same answers (`_beside_the_paced`, said in `beside`)."""
    stats = LoadStats.of(window)
    if stats.requests < MIN_SETTLE_REQUESTS:
        return [f"only {stats.requests} user requests to judge (need {MIN_SETTLE_REQUESTS})"]
    problems = []
    rate = stats.error_rate or 0.0
    if rate > thresholds.error_rate_critical:
        problems.append(f"user error rate {rate:.1%} > {thresholds.error_rate_critical:.0%}")
    need = alerts.rules.min_latency_samples
    for journey, before in (alerts.steady or {}).items():
        if before.requests - before.errors < need or before.p50_s is None:
            continue  # too rare in the steady state to have a reference
        if journey in paced:
            continue
        last = [s for s in since if s.journey == journey and s.ok][-need:]
        if len(last) < need:
            problems.append(
                f"{journey}: {len(last)} answers since the rollback, {need} needed to judge"
            )
            continue
        now = sorted(s.latency_s for s in last)[len(last) // 2]
        # a machine busier than in the steady state is not a slower release (contention.py)
        factor, contention = alerts.contention(last[0].at_s, last[-1].at_s + 1.0)
        if rose(before.p50_s * factor, now, thresholds):
            explained = _beside_the_paced(alerts, journey, last, paced, thresholds)
            if explained is None:
                problems.append(
                    f"{journey}: median of its last {need} answers {now * 1000:.1f} ms vs "
                    f"{before.p50_s * 1000:.1f} ms in the steady state{contention}"
                )
                continue
            beside[journey] = explained
        paced[journey] = last[-1].at_s - since_s
    return problems


def _beside_the_paced(
    alerts: AlertEngine,
    journey: str,
    last: list[LoadSample],
    paced: dict[str, float],
    thresholds: Thresholds,
) -> str | None:
    """Why a journey over the limit is the machine's, not the release's: over the span of its
    last answers, its rise over the steady state is within the runbook's +50 % of the median
    rise of two or more journeys already paced (shown served at the steady pace by this
    release since the rollback), that median taken as at most `MAX_FACTOR`, as much as a busy
    machine is ever taken to explain. None when it is not.

    A sparse journey needs this: answering about once a second, its last 12 answers span 12 s,
    and on a machine busy in turns every such span holds slow seconds. Seen in the main job on a
    machine running two drills: login with the e-mail as typed was "not green within 30 s" at a
    median of 61.1 ms against 18.0 ms (x3.4) while plain login, the same code path answering
    ten times as often, had been paced. A release slower on one journey stays over the limit:
    the paced journeys are not slower with it; one slower on every journey never gets any
    journey paced."""
    if len(paced) < 2:
        return None
    wide, own = stack_wide_rise(alerts, last[0].at_s, last[-1].at_s, {journey}, among=paced)
    rise = own.get(journey)
    allowed = 1 + thresholds.response_time_increase_critical
    if wide is None or rise is None or rise > min(wide, MAX_FACTOR) * allowed:
        return None
    return (
        f"as slow as the journeys back at it: x{rise:.2f} over its last {len(last)} answers "
        f"beside their median x{wide:.2f}, within x{allowed:.2f}"
    )


def _not_a_target_check(_: Target) -> CheckResult:
    raise CheckSkipped("monitoring.green is judged from the drill's own monitoring")


RECOVERED = Check(
    "monitoring.green",
    "monitoring",
    _not_a_target_check,
    doc="the runbook's 'Monitor logs for errors' and 'Monitor error rates' after a rollback",
    runbook="./docker-manage.sh logs production --follow",
    runbook_section="Emergency Rollback (Critical Issues) > Step 3: Verification",
)


def judge_steps(outcome: DrillOutcome, limit: float) -> None:
    """Each rollback step must not make the service unavailable to users: its share of
    requests that got no answer or a 5xx, judged like the error-rate alert (above the limit
    at 95 % one-sided confidence, so one failure in two requests of a 60 ms step is not a
    50 % rate). Errors the defect itself still causes (its 4xx answers) belong to the fault:
    they are reported per step, not charged to it."""
    over = []
    for s in outcome.step_load():
        unavailable, requests = s.unavailable, s.stats.requests
        bound = lower_bound(unavailable, requests, CONFIDENCE)
        if bound > limit:
            over.append(
                f"{s.step}: {unavailable}/{requests} user requests got no answer or a 5xx "
                f"({unavailable / requests:.1%}, 95 % lower bound {bound:.1%} > {limit:.0%})"
            )
    if over:
        raise DrillFailed(
            "error rate crossed the critical threshold during:\n  " + "\n  ".join(over)
        )


def judge_gapless(outcome: DrillOutcome, load: LoadRun | None) -> None:
    """The drill's gapless steps (an nginx reload) must cost users no request: none may go
    unanswered or get a 5xx while they run, and users must have been there to see it."""
    if load is None:
        raise DrillFailed("this drill judges its gapless steps by what users saw: it needs load")
    outcome.load = load.samples()
    seen = outcome.load_of_steps(outcome.drill.gapless_steps)
    if seen is None or seen.stats.requests == 0:
        raise DrillFailed(
            f"{' .. '.join(outcome.drill.gapless_steps)}: no user request ran meanwhile; what "
            "they cost users is not measured"
        )
    answered_4xx = seen.stats.errors - seen.unavailable
    summary = (
        f"{seen.step}: {seen.unavailable} of {seen.stats.requests} user requests got no answer "
        f"or a 5xx (limit 0); {answered_4xx} answered 4xx, the change's own errors until it "
        "was undone"
    )
    outcome.timeline.check(
        "users.gapless", seen.unavailable == 0, seen.end_s - seen.start_s, summary=summary,
        evidence={"requests": seen.stats.requests, "unavailable": seen.unavailable,
                  "answered_4xx": answered_4xx, "seconds": round(seen.end_s - seen.start_s, 3)},
    )  # fmt: skip
    if seen.unavailable:
        named = "; ".join(_lost_request(s, seen.start_s) for s in seen.lost)
        raise DrillFailed(f"{summary}: the steps must cost users no request ({named})")


def _lost_request(sample: LoadSample, since_s: float) -> str:
    """One lost request as an operator reads it: which journey, when, what it met."""
    if sample.status is None:
        met = f"no answer ({sample.error})" if sample.error else "no answer"
    else:
        met = sample.error or f"HTTP {sample.status}"
    when = f"+{sample.at_s - since_s:.2f} s, {sample.latency_s * 1000:.0f} ms"
    return f"{sample.journey} at {when}: {met}"
