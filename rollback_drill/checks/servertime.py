"""The server's own time for each sampled request, from nginx's access log, where the target
grants log access to its frontend.

The client's time of a request is the verifier's share (its threads, waiting for a CPU on a
busy machine), the network's, and the service's. nginx logs the service's share as
`$upstream_response_time`; every sampled request carries its own tag in its User-Agent, so
the log line of that very request is found and the two times sit side by side. When the
client's time rose and the service's did not, the verifier (or the road to the service) is
slow, not the release.

Read from the log format's `urt=` and `ua="..."` fields (the reference stack's `timed`
format; a team's own nginx needs the same two fields, see docs). A line with several
upstream times (a retried connect) counts their sum; a line without one ("-": nginx answered
itself) is left out.
"""

from __future__ import annotations

import re
import secrets

from rollback_drill.process.errors import AccessError
from rollback_drill.stack.access import LogSource

LINE = re.compile(r'urt=(?P<urt>[-\d., :]+?) (?:\S+=\S* )*?ua="(?P<ua>[^"]*)"')
TAG_PREFIX = "rollback-drill sample "


def new_run_tag() -> str:
    return secrets.token_hex(4)


def user_agent(run_tag: str, index: int) -> str:
    return f"{TAG_PREFIX}{run_tag}-{index}"


class ServerTimes:
    """Marks the frontend's log before sampling and reads the tagged lines after."""

    def __init__(self, logs: LogSource | None, service: str = "frontend") -> None:
        self._logs = logs if logs is not None and service in logs.services() else None
        self._service = service
        self._mark: object | None = None
        self.problem: str | None = None if self._logs else "the target grants no frontend logs"

    def __enter__(self) -> ServerTimes:
        if self._logs is not None:
            try:
                self._mark = self._logs.mark()
            except AccessError as exc:
                self.problem = str(exc)
                self._logs = None
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self) -> dict[str, float]:
        """Seconds of the service's own time by User-Agent tag."""
        if self._logs is None or self._mark is None:
            return {}
        try:
            text = self._logs.since(self._mark).get(self._service, "")
        except AccessError as exc:
            self.problem = str(exc)
            return {}
        found: dict[str, float] = {}
        for match in LINE.finditer(text):
            agent = match["ua"]
            if not agent.startswith(TAG_PREFIX):
                continue
            parts = [p for p in re.split(r"[,: ]+", match["urt"]) if p and p != "-"]
            try:
                found[agent] = sum(float(p) for p in parts) if parts else float("nan")
            except ValueError:
                continue
        found = {k: v for k, v in found.items() if v == v}  # drop nginx's own answers
        if not found and text:
            self.problem = "the frontend's log has no upstream times of this run's requests"
        return found
