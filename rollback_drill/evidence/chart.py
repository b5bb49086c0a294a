"""The drill's timeline as a picture: what users saw (availability, response time) against
what the team did (fault, detection, rollback, verified green).

A PNG because it has to travel: Allure attachments, a certificate, a ticket. matplotlib is
imported lazily and used through its object API (no pyplot, no global backend state), so
importing this module costs nothing and rendering is safe off the main thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback_drill.engine.outcome import DrillOutcome
from rollback_drill.monitoring.load import LoadSample, LoadStats
from rollback_drill.monitoring.monitor import Sample
from rollback_drill.steps.timeline import (
    CHANGE_STARTED,
    DETECTED,
    FAULT_INJECTED,
    ROLLBACK_FINISHED,
    ROLLBACK_STARTED,
    VERIFIED,
    Event,
)

BUCKET_S = 0.5
# marker -> (label, colour, line style): the five moments a reader looks for.
MARKS: dict[str, tuple[str, str, str]] = {
    CHANGE_STARTED: ("change started", "#7f7f7f", ":"),
    FAULT_INJECTED: ("fault live", "#d62728", "-"),
    DETECTED: ("detected", "#ff7f0e", "--"),
    ROLLBACK_STARTED: ("rollback start", "#9467bd", "-."),
    ROLLBACK_FINISHED: ("rollback end", "#8c564b", ":"),
    VERIFIED: ("verified green", "#2ca02c", "-"),
}
ENDPOINT_COLOURS = ("#1f77b4", "#17becf", "#7f7f7f", "#bcbd22", "#e377c2")


@dataclass(frozen=True)
class Bucket:
    start_s: float
    share_ok: float | None  # None: no probe landed in this bucket


def availability_buckets(samples: Sequence[Sample], bucket_s: float = BUCKET_S) -> list[Bucket]:
    """Share of OK probes (all endpoints together) in consecutive `bucket_s` windows."""
    if not samples:
        return []
    end = max(s.at_s for s in samples)
    count = math.floor(end / bucket_s) + 1
    ok = [0] * count
    total = [0] * count
    for s in samples:
        index = min(math.floor(s.at_s / bucket_s), count - 1)
        total[index] += 1
        ok[index] += s.ok
    return [Bucket(i * bucket_s, ok[i] / total[i] if total[i] else None) for i in range(count)]


def _markers(events: Iterable[Event]) -> list[tuple[str, float]]:
    return [(e.name, e.at_s) for e in events if e.kind == "marker" and e.name in MARKS]


@dataclass(frozen=True)
class LoadBucket:
    start_s: float
    requests: int
    error_rate: float | None
    p50_s: float | None
    p95_s: float | None


def load_buckets(load: Sequence[LoadSample], bucket_s: float = BUCKET_S) -> list[LoadBucket]:
    """User requests in consecutive `bucket_s` windows: error rate and latency percentiles."""
    if not load:
        return []
    count = math.floor(max(s.at_s for s in load) / bucket_s) + 1
    grouped: list[list[LoadSample]] = [[] for _ in range(count)]
    for sample in load:
        grouped[min(max(math.floor(sample.at_s / bucket_s), 0), count - 1)].append(sample)
    buckets = []
    for index, rows in enumerate(grouped):
        stats = LoadStats.of(rows)
        buckets.append(
            LoadBucket(index * bucket_s, stats.requests, stats.error_rate, stats.p50_s, stats.p95_s)
        )
    return buckets


def render(
    samples: Sequence[Sample],
    events: Sequence[Event],
    path: Path,
    *,
    title: str,
    bucket_s: float = BUCKET_S,
    load: Sequence[LoadSample] = (),
) -> Path:
    """Write the chart to `path` as PNG: health-probe availability, then (with user load) the
    users' error rate, then response times - probes as dots, users' p50/p95 as lines."""
    from matplotlib.figure import Figure

    panels = 3 if load else 2
    fig = Figure(figsize=(11, 7.4 if load else 5.6), dpi=100, layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True, height_ratios=(1, 0.8, 1.3)[-panels:])
    avail_ax, latency_ax = axes[0], axes[-1]
    fig.suptitle(title, fontsize=11)
    if load:
        _error_panel(axes[1], load_buckets(load, bucket_s), bucket_s)

    buckets = availability_buckets(samples, bucket_s)
    xs = [b.start_s for b in buckets]
    ys = [100.0 * b.share_ok if b.share_ok is not None else math.nan for b in buckets]
    if buckets:
        xs.append(buckets[-1].start_s + bucket_s)
        ys.append(ys[-1])
    avail_ax.step(xs, ys, where="post", color="#1f77b4", linewidth=1.6)
    avail_ax.fill_between(xs, ys, step="post", alpha=0.25, color="#1f77b4")
    avail_ax.set_ylim(-5, 105)
    avail_ax.set_ylabel(f"availability %\n({bucket_s:g} s buckets)")
    avail_ax.grid(True, alpha=0.3)

    endpoints = sorted({s.endpoint for s in samples})
    for colour, endpoint in zip(ENDPOINT_COLOURS * 4, endpoints, strict=False):
        good = [s for s in samples if s.endpoint == endpoint and s.ok]
        latency_ax.plot(
            [s.at_s for s in good],
            [max(s.latency_s, 1e-4) * 1000 for s in good],
            ".",
            markersize=3,
            color=colour,
            label=f"{endpoint} (OK)",
        )
    failed = [s for s in samples if not s.ok]
    if failed:
        latency_ax.plot(
            [s.at_s for s in failed],
            [max(s.latency_s, 1e-4) * 1000 for s in failed],
            "x",
            markersize=4,
            color="#d62728",
            label="failed probe",
        )
    users = load_buckets(load, bucket_s)
    for attr, style, label in (("p50_s", "-", "users p50"), ("p95_s", "--", "users p95")):
        points = [(b.start_s + bucket_s / 2, getattr(b, attr)) for b in users]
        shown = [(x, y * 1000) for x, y in points if y is not None]
        if shown:
            latency_ax.plot(
                [x for x, _ in shown],
                [y for _, y in shown],
                style,
                color="#2f2f2f",
                linewidth=1.3,
                label=label,
            )
    latency_ax.set_yscale("log")
    latency_ax.set_ylabel("response time (ms)")
    latency_ax.set_xlabel("seconds since the drill started")
    latency_ax.grid(True, which="both", alpha=0.3)

    marks = dict(_markers(events))
    injecting = [e for e in events if e.kind == "phase" and e.name.startswith("Fault")]
    for ax in axes:
        for step in injecting:
            ax.axvspan(
                step.at_s,
                step.at_s + step.duration_s,
                color="#7f7f7f",
                alpha=0.15,
                label="the change going out" if ax is avail_ax else None,
            )
        if FAULT_INJECTED in marks and VERIFIED in marks:
            ax.axvspan(marks[FAULT_INJECTED], marks[VERIFIED], color="#d62728", alpha=0.06)
        for name, at in marks.items():
            label, colour, style = MARKS[name]
            ax.axvline(
                at,
                color=colour,
                linestyle=style,
                linewidth=1.4,
                label=f"{label} ({at:.2f} s)" if ax is avail_ax else None,
            )
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _error_panel(ax: Any, buckets: Sequence[LoadBucket], bucket_s: float) -> None:
    xs = [b.start_s for b in buckets if b.error_rate is not None]
    ys = [100.0 * (b.error_rate or 0.0) for b in buckets if b.error_rate is not None]
    ax.bar(xs, ys, width=bucket_s, align="edge", color="#d62728", alpha=0.6)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"users' error rate %\n({bucket_s:g} s buckets)")
    ax.grid(True, alpha=0.3)


def render_outcome(outcome: DrillOutcome, path: Path) -> Path:
    """The chart of one drill, titled with its verdict."""
    if outcome.verdict is not None:
        state = "PASS" if outcome.passed else "OVER BUDGET"
        verdict = (
            f"time-to-recover {outcome.verdict.time_to_recover_s:.2f} s, "
            f"budget {outcome.budget.budget_s:.0f} s: {state}"
        )
    else:
        verdict = "did not recover: FAIL"
    title = (
        f"{outcome.procedure.name} drill, {outcome.bad_release} -> {outcome.good_release} "
        f"[{outcome.backend}]: {verdict}"
    )
    return render(outcome.samples, outcome.timeline.events, path, title=title, load=outcome.load)


__all__ = [
    "Bucket",
    "LoadBucket",
    "availability_buckets",
    "load_buckets",
    "render",
    "render_outcome",
]
