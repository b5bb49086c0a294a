"""The health prober follows a service that moves: given the stack's `target` (a callable), it
re-reads the endpoints every round, as the docker backend's zero-downtime replacement
publishes the new container on a port of its own. Real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rollback_drill.monitoring.monitor import Monitor, Sample
from rollback_drill.process.wait import Wait
from rollback_drill.stack.target import Target
from rollback_drill.steps.timeline import Timeline
from tests.helpers import bare_target


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


class _Server:
    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _backend_after_a_move(follow: bool) -> list[Sample]:
    """The backend moves from one server to another, and the first one stops; the backend
    probes made once the move has settled."""
    first, second = _Server(), _Server()
    where = {"target": bare_target("moving", first.url)}
    timeline = Timeline([])
    source: Target | Callable[[], Target] = (lambda: where["target"]) if follow else where["target"]
    try:
        with Monitor(source, timeline, interval_s=0.02, timeout_s=0.5) as monitor:
            Wait("a first probe", 5.0).until(lambda: bool(monitor.samples))
            where["target"] = dataclasses.replace(where["target"], backend_url=second.url)
            first.stop()
            settled = timeline.now() + 0.1  # a round in flight may still use the old address
            time.sleep(0.5)
    finally:
        second.stop()
    return [s for s in monitor.samples if s.endpoint == "backend" and s.at_s > settled]


def test_the_prober_follows_a_service_to_its_new_address() -> None:
    after = _backend_after_a_move(follow=True)
    assert after and all(s.ok for s in after), after


def test_a_target_captured_once_keeps_probing_the_old_address() -> None:
    """What the test above guards against: with one Target the prober sees a moved service
    as down."""
    after = _backend_after_a_move(follow=False)
    assert after and not any(s.ok for s in after), after
