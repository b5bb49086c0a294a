"""One drill, start to verdict, as the runbook lives it:

    baseline (healthy, data fingerprinted) -> steady state under user load -> the scenario
    (release N+1 or a configuration change goes out) -> detection (the first alert) ->
    Pre-Rollback Assessment and the decision matrix -> the runbook's procedure, step by step
    -> verification (every check, and users served well again) -> the verdict against budget

Every phase, step, check and alert goes to the drill's timeline, once; this module imports no
reader of it (Allure, record, chart): the caller wires those as timeline listeners and reads
the outcome. A failed drill never raises here: the outcome carries the failure, so every
reader still gets the whole story.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from rollback_drill.checks import ALL_CHECKS, health
from rollback_drill.checks.result import run_checks, run_checks_concurrently
from rollback_drill.engine import notify
from rollback_drill.engine.outcome import BASELINE, DataVolume, Drill, DrillOutcome, Integrity
from rollback_drill.engine.recovery import judge_gapless, judge_steps, monitoring_green
from rollback_drill.files.drillspec import DrillSettings
from rollback_drill.monitoring import assess
from rollback_drill.monitoring.alerts import AlertEngine, AlertRules
from rollback_drill.monitoring.contention import MachineLoad
from rollback_drill.monitoring.datawatch import DataWatch
from rollback_drill.monitoring.decision import decide
from rollback_drill.monitoring.load import LoadRun, LoadStats, by_journey
from rollback_drill.monitoring.monitor import Monitor
from rollback_drill.monitoring.synthetic import SyntheticMonitor, monitored
from rollback_drill.process.errors import AlertEngineBroken, DrillFailed, NothingToDecide
from rollback_drill.process.secrets import redact
from rollback_drill.process.wait import Wait
from rollback_drill.stack import servicelogs
from rollback_drill.stack.base import Stack
from rollback_drill.stack.target import Target
from rollback_drill.steps.failure import ProcedureFailed
from rollback_drill.steps.procedure import DrillContext
from rollback_drill.steps.timeline import (
    CHANGE_STARTED,
    DECIDED,
    DETECTED,
    FAULT_INJECTED,
    ROLLBACK_FINISHED,
    ROLLBACK_STARTED,
    STEADY_STATE,
    VERIFIED,
    Artifact,
    Timeline,
    TimelineListener,
)
from rollback_drill.stores import mongo

MIN_STEADY_REQUESTS = 20


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    users: int | None = None  # None: the stack file's drills.load_users
    workers: int = 0


def run_drill(
    stack: Stack,
    drill: Drill,
    *,
    artifacts: Path,
    good_release: str | None = None,
    listeners: Sequence[TimelineListener] = (),
    load: LoadOptions = LoadOptions(),
) -> DrillOutcome:
    """Run one drill on a stack that is up at the drill's good release."""
    loaded = stack.loaded
    good = drill.check(loaded, good_release)
    artifacts.mkdir(parents=True, exist_ok=True)
    timeline = Timeline(list(listeners))
    outcome = DrillOutcome(
        drill, stack.backend_name, drill.release, good, loaded.budget(drill.severity),
        timeline, artifacts,
    )  # fmt: skip
    ctx = DrillContext(stack, timeline, artifacts, drill.release, good)
    outcome.facts = ctx.facts
    outcome.evidence = ctx.evidence
    outcome.environment = loaded.environment
    settings = loaded.spec.drills
    users = settings.load_users if load.users is None else load.users
    engine = AlertEngine(
        timeline,
        loaded.spec.thresholds,
        loaded.spec.classification,
        stats=stack.stats,
        memory_limits={
            name: svc.memory_limit_mb * 2**20
            for name, svc in loaded.spec.services.items()
            if svc.memory_limit_mb
        },
        rules=AlertRules(window_s=settings.alert_window_s),
        machine=MachineLoad(outside=stack.outside_cpu_seconds),
    )
    brief = notify.Brief(drill.name, outcome.budget, loaded.spec.name, stack.backend_name,
                         drill.release, good)  # fmt: skip
    comms = notify.Communicator(loaded.spec.communication, brief, timeline, loaded.root)
    outcome.communication = comms.record
    load_run: LoadRun | None = None
    monitor: Monitor | None = None
    try:
        with ExitStack() as running:
            running.enter_context(ctx.cleanup)  # closed last: what scenarios and steps started
            monitor = running.enter_context(Monitor(stack.target, timeline))
            engine.monitor = monitor
            if users > 0:
                load_run = LoadRun(
                    stack.target(), timeline, artifacts / "load", users=users, workers=load.workers
                )
                running.enter_context(load_run)
                engine.load = load_run
            running.callback(engine.stop)
            engine.start()
            checks = monitored(drill.verify)

            def judged() -> Target:  # against the drill's baseline, once there is one
                return dataclasses.replace(stack.target(), baseline=ctx.facts.get(BASELINE))

            running.enter_context(SyntheticMonitor(judged, timeline, engine, checks))
            target = stack.target()
            exact = [
                c for c in target.integrity_collections if c not in target.append_collections()
            ]
            running.enter_context(DataWatch(stack.target, exact, engine.report_check, timeline))
            _run_phases(ctx, drill, outcome, engine, load_run, settings, comms)
    except Exception as exc:
        outcome.failure = redact(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, ProcedureFailed):
            outcome.procedure_failure = exc.failure
    finally:
        outcome.samples = list(monitor.samples) if monitor else []
        outcome.load = load_run.samples() if load_run else []
        outcome.alerts = list(engine.fired)
        outcome.facts = ctx.facts
        for fault in drill.faults:
            fault.release()
    comms.resolve(outcome.failure, outcome.verdict.summary() if outcome.verdict else None)
    outcome.failure = outcome.failure or comms.record.failure()
    servicelogs.write(stack, artifacts / servicelogs.END_OF_DRILL)
    _write_record(outcome)
    return outcome


def _run_phases(
    ctx: DrillContext,
    drill: Drill,
    outcome: DrillOutcome,
    alerts: AlertEngine,
    load: LoadRun | None,
    settings: DrillSettings,
    comms: notify.Communicator,
) -> None:
    stack, timeline = ctx.stack, ctx.timeline
    loaded = stack.loaded
    with timeline.phase("Baseline: the stack is healthy and its data fingerprinted") as span:
        target = stack.target()
        unhealthy = [
            o.result.explain() for o in run_checks(health.CHECKS, target) if o.failed and o.result
        ]
        if unhealthy:
            raise DrillFailed("stack unhealthy before the fault: " + "; ".join(unhealthy))
        now = datetime.now(UTC)
        cutoffs = {
            name: (time_field, now)
            for name, time_field in loaded.spec.stores.mongodb.user_written.items()
            if name in target.integrity_collections
        }
        baseline = mongo.fingerprint(
            target.mongodb_uri.reveal(),
            target.mongodb_database,
            list(target.integrity_collections),
            cutoffs=cutoffs,
        )
        ctx.facts[BASELINE] = baseline
        outcome.data_volume = DataVolume.of(stack.seed_users, baseline)
        span.attach(Artifact("baseline fingerprint", "json", data=baseline.to_json()))
        if load is not None:
            span.update({"load_started_s": round(load.wait_for_traffic(), 3)})

    with timeline.phase("Steady state: normal traffic, monitored") as span:
        timeline.mark(STEADY_STATE)
        start = timeline.now()
        alerts.not_before_s = start
        time.sleep(settings.steady_state_s)
        if load is not None:
            window = load.samples(start, timeline.now())
            outcome.steady = LoadStats.of(window)
            alerts.steady = by_journey(window)
            if alerts.machine is not None:
                alerts.steady_share = alerts.machine.share(start, timeline.now())
                span.update({"other_work_share": alerts.steady_share})
            span.update({"users": outcome.steady.to_json()})
            if outcome.steady.requests < MIN_STEADY_REQUESTS:
                raise DrillFailed(
                    f"steady state: only {outcome.steady.requests} user requests in "
                    f"{settings.steady_state_s:.0f} s (need {MIN_STEADY_REQUESTS}): the load "
                    f"did not run; locust log:\n{load.log_tail()}"
                )
        alerts.evaluate()
        if alerts.active:
            raise DrillFailed(
                "not steady before the fault: "
                + "; ".join(a.message for a in alerts.active.values())
            )

    timeline.mark(CHANGE_STARTED, scenario=drill.scenario.name, release=drill.release)
    with timeline.phase(f"Fault: {drill.scenario.description}") as span:
        produced = drill.scenario.inject(ctx)
        span.update(produced.detail)
        for artifact in produced.artifacts:
            span.attach(artifact)
    timeline.mark(FAULT_INJECTED, scenario=drill.scenario.name, release=drill.release)
    alerts.not_before_s = timeline.at(FAULT_INJECTED)

    with timeline.phase("Detect: monitoring until the first alert"):
        fault_at = timeline.at(FAULT_INJECTED)
        Wait(
            f"an alert after release {drill.release} went out",
            settings.detect_timeout_s,
            interval_s=0.05,
            fatal=(AlertEngineBroken,),
        ).until(lambda: bool(alerts.fired_since(fault_at)))
    first = alerts.fired_since(fault_at)
    outcome.detected_by = [a.message for a in first]
    timeline.mark(DETECTED, alerts=[a.key for a in first])

    with timeline.phase("Assess: Pre-Rollback Assessment and the decision matrix") as span:
        time.sleep(settings.assess_window_s)
        still_pending = alerts.settle()
        alerts.evaluate()
        assessed = assess.during_drill(
            stack, ctx.facts[BASELINE], alerts, drill.verify, outcome.steady, load, fault_at
        )
        try:
            decision = decide(loaded, assessed.findings)
        except NothingToDecide:
            raise DrillFailed(
                f"assessment found nothing wrong after {', '.join(outcome.detected_by)}: "
                "the alert resolved on its own"
            ) from None
        outcome.decision = decision
        outcome.assessment = assessed.to_json(decision)
        span.update({"decision": decision.explain()})
        if still_pending:
            span.update({"alerts still pending (not assessed)": still_pending})
        span.attach(Artifact("pre-rollback assessment", "json", data=outcome.assessment))
    timeline.mark(
        DECIDED,
        severity=decision.severity,
        rollback_type=decision.row.rollback_type,
        budget_s=decision.row.budget_s,
    )
    comms.announce(outcome.detected_by, decision.explain())
    if decision.severity != drill.severity:
        raise DrillFailed(
            f"the assessment classifies this as {decision.explain()}; but this drill "
            f"exercises the {drill.severity} row ({drill.procedure.name} procedure)"
        )

    before = {s: stack.instance(s) for s in stack.all_services()}
    timeline.mark(ROLLBACK_STARTED, procedure=drill.procedure.name)
    try:
        with timeline.phase(f"Rollback: {drill.procedure.runbook_section}"):
            # Never past the budget: the time-to-recover it bounds is counted from detection.
            deadline = timeline.at(DETECTED) + decision.row.budget_s
            drill.procedure.run(ctx, faults=drill.faults, deadline_s=deadline)
    finally:  # also when it failed: which services it restarted is part of what it left
        outcome.restarted = {s: stack.instance(s) != before[s] for s in before}
    timeline.mark(ROLLBACK_FINISHED)
    if drill.only_services is not None:
        strays = [
            s for s, moved in outcome.restarted.items() if moved and s not in drill.only_services
        ]
        if strays:
            raise DrillFailed(
                f"the {drill.procedure.name} rollback restarted {strays}, which it must leave "
                f"alone (only {list(drill.only_services)} may change)"
            )

    with timeline.phase("Verify: users served well again, then every check"):
        finished = timeline.at(ROLLBACK_FINISHED)
        alerts.not_before_s = finished
        # Watch first (the runbook's "Monitor logs for errors"), then verify: a check of the
        # logs or the flows right after a restart reads the restart, not the release.
        now_target = stack.target()
        verify_target = dataclasses.replace(
            now_target,
            baseline=ctx.facts[BASELINE],
            read_only=False,
            expected_releases=_after_rollback(drill, ctx.good_release, now_target),
        )
        deciding = [c for c in [*ALL_CHECKS, *drill.verify] if c.decides and not c.writes]

        def decided() -> list[str]:
            outcomes = run_checks(deciding, verify_target)
            return [o.result.explain() for o in outcomes if o.result and o.result.decided]

        watched = monitoring_green(
            timeline, alerts, load, outcome.steady, settings, finished, decided
        )
        # all at once, as `rollback-drill verify` asks them: the phase costs the slowest
        # check, not the sum of them
        checked = run_checks_concurrently([*ALL_CHECKS, *drill.verify], verify_target)
        outcome.verification = [watched, *checked]
        for o in outcome.verification:
            if o.result is not None:
                timeline.check(
                    o.check.name,
                    o.result.ok,
                    o.result.duration_s,
                    summary=o.result.summary,
                    evidence=o.result.evidence,
                )
        integrity = next(
            (o.result for o in outcome.verification if o.check.category == "integrity"), None
        )
        if integrity is not None:
            outcome.integrity = Integrity.from_evidence(integrity.evidence)
            outcome.integrity_evidence = integrity.evidence
        failed = [o.result.explain() for o in outcome.verification if o.failed and o.result]
        if failed:
            raise DrillFailed("verification failed after rollback:\n  " + "\n  ".join(failed))
    timeline.mark(VERIFIED)
    outcome.verdict = timeline.judge(loaded.budget(drill.severity))
    if drill.judge_steps:
        if load is None:
            raise DrillFailed("this drill judges each step's user error rate: it needs load")
        outcome.load = load.samples()
        judge_steps(outcome, loaded.spec.thresholds.error_rate_critical)
    if drill.gapless_steps:
        judge_gapless(outcome, load)
    if not outcome.verdict.within_budget:
        raise DrillFailed(outcome.verdict.summary())


def _after_rollback(drill: Drill, good: str, target: Target) -> dict[str, str]:
    """What the rollback was meant to leave running: the good release on every service it
    may change (all of them, or the drill's `only_services`), the rest as they are; for a
    data rollback (`Procedure.reverts_release` False), every service as it is.

    The stack's own target expects what is configured now, which is whatever the procedure
    left - right or wrong; against it a procedure that skipped a service's rollback still
    reads "deployed as expected". Held against the rollback's goal instead, a service left
    on the bad release fails `rollback.releases` as a decided failure, and the Verify phase
    stops waiting for green at once rather than when its timeout runs out."""
    if not drill.procedure.reverts_release:
        return dict(target.expected_releases)
    return {
        service: good if drill.only_services is None or service in drill.only_services else now
        for service, now in target.expected_releases.items()
    }


def _write_record(outcome: DrillOutcome) -> None:
    data = outcome.to_json()
    (outcome.artifacts / "drill.json").write_text(redact(json.dumps(data, indent=2, default=str)))
    samples = outcome.artifacts / "samples.json"
    samples.write_text(json.dumps([dataclasses.asdict(s) for s in outcome.samples]))


__all__ = ["DrillFailed", "DrillOutcome", "LoadOptions", "run_drill"]
