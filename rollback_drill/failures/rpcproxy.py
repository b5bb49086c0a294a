"""A JSON-RPC proxy in front of a real node that fails on purpose, the way public RPC endpoints
fail during an incident: it drops a request, answers nothing for a transaction the node did
take, or holds an answer past the client's timeout. A test (or a drill) puts it between the
harness and anvil to show that a contract migration survives it without losing a DID or
registering one twice.

The faults are data (`RpcFaults`): which calls of which methods fail, counted from 1. The
proxy is threads in this process on 127.0.0.1, all gone when its `with` block ends.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx

Action = Literal["forwarded", "dropped request", "dropped answer", "stalled"]


@dataclass(frozen=True)
class RpcFaults:
    """Which calls fail, numbered per method from 1 (the 3rd eth_sendRawTransaction...)."""

    drop_request: tuple[int, ...] = ()  # closed, nothing forwarded: the node never saw it
    drop_answer: tuple[int, ...] = ()  # forwarded, then closed without an answer: taken, unknown
    stall: tuple[int, ...] = ()  # forwarded, answer held `stall_s` (past the client's timeout)
    stall_s: float = 3.0
    methods: tuple[str, ...] = ("eth_sendRawTransaction",)
    # a batch of more calls than this is refused whole, with one error object (as public
    # endpoints answer a batch over their cap); None: any batch is forwarded
    max_batch: int | None = None

    def action(self, number: int) -> Action:
        if number in self.drop_request:
            return "dropped request"
        if number in self.drop_answer:
            return "dropped answer"
        if number in self.stall:
            return "stalled"
        return "forwarded"

    def describe(self) -> str:
        parts = [
            f"{what} of call {', '.join(map(str, numbers))}"
            for what, numbers in (
                ("request dropped", self.drop_request),
                ("answer dropped", self.drop_answer),
                (f"answer held {self.stall_s:g} s", self.stall),
            )
            if numbers
        ]
        return f"{'/'.join(self.methods)}: " + ("; ".join(parts) or "no faults")


@dataclass
class ProxyLog:
    calls: dict[str, int] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"calls": dict(self.calls), "faults": list(self.faults)}


class FlakyRpc:
    """`with FlakyRpc(upstream, faults) as proxy:` then talk to `proxy.url`."""

    def __init__(self, upstream: str, faults: RpcFaults, timeout_s: float = 10.0) -> None:
        self.upstream = upstream
        self.faults = faults
        self.log = ProxyLog()
        self.down = False  # while True: every connection is closed at once (the RPC is gone)
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)
        # one request per connection (HTTP/1.0), and server_close() joins every handler: no
        # thread of the proxy outlives its `with` block, not even one holding a stalled answer
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = False  # ThreadingHTTPServer makes them daemons, unjoined
        self._server.block_on_close = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="flaky-rpc", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FlakyRpc:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _decide(self, method: str) -> Action:
        with self._lock:
            number = self.log.calls.get(method, 0) + 1
            self.log.calls[method] = number
            action = self.faults.action(number) if method in self.faults.methods else "forwarded"
            if action != "forwarded":
                self.log.faults.append({"method": method, "call": number, "fault": action})
        return action

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # quiet: the test reads proxy.log
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.down:
                    self.close_connection = True
                    return
                try:
                    sent = json.loads(body)
                except ValueError:
                    sent = None
                cap = proxy.faults.max_batch
                if isinstance(sent, list) and cap is not None and len(sent) > cap:
                    self._refuse_batch(len(sent), cap)
                    return
                method = str(sent.get("method", "")) if isinstance(sent, dict) else ""
                action = proxy._decide(method)
                if action == "dropped request":
                    self.close_connection = True
                    return
                try:
                    answer = proxy._client.post(
                        proxy.upstream, content=body, headers={"Content-Type": "application/json"}
                    )
                except httpx.HTTPError:
                    self.close_connection = True
                    return
                if action == "dropped answer":
                    self.close_connection = True
                    return
                if action == "stalled":
                    time.sleep(proxy.faults.stall_s)
                    self.close_connection = True
                    return
                self._send(answer.status_code, answer.content)

            def _refuse_batch(self, size: int, cap: int) -> None:
                with proxy._lock:
                    proxy.log.faults.append({"batch": size, "fault": f"refused over {cap}"})
                message = f"batch of {size} requests exceeds the limit of {cap}"
                refusal = {"jsonrpc": "2.0", "id": None,
                           "error": {"code": -32600, "message": message}}  # fmt: skip
                self._send(200, json.dumps(refusal).encode())

            def _send(self, status: int, content: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        return Handler
