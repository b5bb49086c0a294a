"""A load source for alert and recovery tests: answers of each journey at a fixed pace on a
timeline, each served only once its time has come, as a live locust run serves them - what
the re-sample's fresh windows and the wait for green need, which a recorded list cannot give."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from rollback_drill.monitoring.load import LoadSample
from rollback_drill.steps.timeline import Timeline


class AlongTheClock:
    """One answer of each of `journeys` every `every_s` of the timeline (or each at its own pace:
    journey -> seconds), for `until_s`, with the latency `latency(journey, at_s)`."""

    def __init__(
        self,
        timeline: Timeline,
        latency: Callable[[str, float], float],
        journeys: Sequence[str] = ("login",),
        every_s: float | Mapping[str, float] = 0.01,
        until_s: float = 30.0,
    ) -> None:
        self.timeline, self.latency = timeline, latency
        pace = every_s if isinstance(every_s, Mapping) else dict.fromkeys(journeys, every_s)
        self.answers = sorted(
            (i * pace[j], j) for j in journeys for i in range(int(until_s / pace[j]))
        )

    def samples(self, start_s: float = -math.inf, end_s: float = math.inf) -> list[LoadSample]:
        """The answers in [start_s, end_s) whose time has come, their latency asked now (a
        test may change what is slow while the engine runs)."""
        now = self.timeline.now()
        return [
            LoadSample(at, j, self.latency(j, at), True, 200, None)
            for at, j in self.answers
            if start_s <= at < end_s and at <= now
        ]
