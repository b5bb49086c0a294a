"""One identity on every route: each service answers as the same instance - the same release,
registry, contract version and chain - whichever way users reach it (directly, or through
nginx over HTTP and HTTPS).

`rollback.releases` and `rollback.contract` ask on the direct URL only; a leftover of the
release being rolled back (an old process still bound beside the new one, an upstream nginx
still lists, an instance wired to another contract) serves its share of some route's
requests and stays invisible there. So every identity verify reads is read on every route:
the backend's from `GET /api/did/health` (its body: registry, contract version, chain id)
and, like the chatbot's, from the `X-SafePsy-Release` header every SafePsy response carries;
the frontend's from the page's safepsy-release meta over both nginx routes.

A leftover behind a round-robin route is seen only on some requests: each route is read
`READS_PER_ROUTE` times (by two workers at once), the direct route on a fresh connection
each time (a kernel that balances one port between processes picks one per connection), the
nginx routes over keep-alive (nginx picks an upstream per request). An instance serving a
share p of a route's requests is then seen with probability 1 - (1 - p)^k after k reads; the
evidence states the smallest share seen with the target's confidence.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Any

from rollback_drill.checks import concurrently
from rollback_drill.checks.flows import routes
from rollback_drill.checks.functional import RELEASE_META
from rollback_drill.checks.http import Client, Response, client, request
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process.errors import HttpFailure
from rollback_drill.stack.target import Target

NAME = "rollback.routes"
READS_PER_ROUTE = 6
RELEASE_HEADER = "x-safepsy-release"

Identity = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Source:
    """Where one service's identity is read, and how to read it from an answer."""

    service: str
    path: str
    routes: list[tuple[str, str]]  # (route label, base URL)

    def identity(self, resp: Response) -> Identity | str:
        """The identity the answer carries, or why it carries none."""
        if self.service == "frontend":
            found = RELEASE_META.search(resp.text)
            if resp.status != 200 or found is None:
                return f"GET {self.path} -> {resp.status} without a safepsy-release meta tag"
            return (("release", found.group(1)),)
        stamp = resp.headers.get(RELEASE_HEADER)
        if not stamp:
            return f"GET {self.path} -> {resp.status} without an X-SafePsy-Release header"
        fields = [("release", stamp)]
        body = resp.body if isinstance(resp.body, dict) else {}
        for key, label in (("registry", "registry"), ("contractVersion", "contract version"),
                           ("chainId", "chain id")):  # fmt: skip
            if key in body:
                fields.append((label, str(body[key]).lower()))
        return tuple(fields)


def sources(target: Target) -> list[Source]:
    return [
        # /api/did/health: the backend's whole identity, on a path nginx proxies
        Source("backend", "/api/did/health", routes(target, target.backend_url)),
        # GET /api/chat answers 405 (it takes POST) and writes nothing; the header names
        # the instance that answered it
        Source("ai-chatbot", "/api/chat", routes(target, target.chatbot_url)),
        Source("frontend", "/", target.frontend_routes()),
    ]


def reads_per_route(target: Target) -> int:
    return 1 if target.probe_once else READS_PER_ROUTE


def detectable_share(reads: int, confidence: float) -> float:
    """The smallest share of a route's requests an instance must serve to be seen at least
    once in `reads` reads with probability `confidence`: 1 - (1 - p)^k >= c."""
    return float(1 - (1 - confidence) ** (1 / reads))


def _read_route(
    target: Target, source: Source, route: str, base: str, reads: int
) -> tuple[Counter[Identity], list[str]]:
    seen: Counter[Identity] = Counter()
    problems: list[str] = []
    fresh = route == "direct"  # see the module docstring
    http: Client | None = None if fresh else client(target)
    try:
        for _ in range(reads):
            try:
                resp = request(target, "GET", base + source.path, http=http, max_text=100_000)
            except HttpFailure as exc:
                problems.append(f"{source.service} via {route}: GET {source.path}: {exc.detail}")
                break  # a route that does not answer costs one timeout, not k
            found = source.identity(resp)
            if isinstance(found, str):
                problems.append(f"{source.service} via {route}: {found}")
                break
            seen[found] += 1
    finally:
        if http is not None:
            http.close()
    return seen, problems


def _show(identity: Identity) -> str:
    return ", ".join(f"{k} {v}" for k, v in identity)


def _disagreements(service: str, by_route: dict[str, Counter[Identity]]) -> list[str]:
    """Each route that answered as anything but the reference identity (the direct route's
    most common, else the most common of all), named with what it answered."""
    every: Counter[Identity] = Counter()
    for seen in by_route.values():
        every.update(seen)
    if len(every) <= 1:
        return []
    anchor = by_route.get("direct") or every
    reference = anchor.most_common(1)[0][0]
    found = []
    for route, seen in by_route.items():
        others = {i: n for i, n in seen.items() if i != reference}
        total = sum(seen.values())
        for identity, count in others.items():
            found.append(
                f"{service} via {route} answered as {_show(identity)} in {count} of {total} "
                f"reads (reference: {_show(reference)})"
            )
    return found


def _routes_agree(target: Target) -> CheckResult:
    reads = reads_per_route(target)
    # each route's reads split over two workers: half the latency on verify's critical path
    jobs = [
        (s, route, base, part)
        for s in sources(target)
        for route, base in s.routes
        for part in (reads - reads // 2, reads // 2)
        if part
    ]
    answers = concurrently.each(
        [partial(_read_route, target, s, route, base, part) for s, route, base, part in jobs]
    )
    results: dict[tuple[str, str], tuple[Counter[Identity], list[str]]] = {}
    for (source, route, _, _), answer in zip(jobs, answers, strict=True):
        seen, failed = results.setdefault((source.service, route), (Counter(), []))
        if isinstance(answer, Exception):  # a read that could not be judged fails the check
            failed.append(f"{source.service} via {route}: {type(answer).__name__}: {answer}")
        else:
            seen.update(answer[0])
            failed.extend(answer[1][:1] if not failed else [])
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    for source in sources(target):
        by_route = {}
        for route, _ in source.routes:
            seen, failed = results.get((source.service, route), (Counter(), ["no result"]))
            problems += failed
            by_route[route] = seen
            rows.append(
                {
                    "service": source.service,
                    "route": route,
                    "path": source.path,
                    "reads": sum(seen.values()),
                    "identities": {_show(i): n for i, n in seen.items()},
                }
            )
        problems += _disagreements(source.service, by_route)
    share = detectable_share(reads, target.sampling_confidence)
    bound = (
        f"{reads} read(s) per route: an instance serving a share p of a route's requests is "
        f"seen with probability 1-(1-p)^{reads}; p >= {share:.0%} is seen with >= "
        f"{target.sampling_confidence:.0%}"
    )
    evidence = {
        "routes": rows,
        "reads_per_route": reads,
        "detection_bound": bound,
        "detectable_share": round(share, 4),
        "confidence": target.sampling_confidence,
    }
    if problems:
        return CheckResult(NAME, False, "; ".join(problems), evidence)
    services = sorted({r["service"] for r in rows})
    return CheckResult(
        NAME,
        True,
        f"one identity per service on all {len(rows)} service routes ({', '.join(services)}); "
        f"{bound}",
        evidence,
    )


CHECKS = [
    Check(
        NAME,
        "rollback",
        _routes_agree,
        doc="every identity (release, registry, contract version, chain id) the same on every "
        "route users take: direct, nginx HTTP, nginx HTTPS",
        runbook="curl -X GET http://localhost:3000/api/did/health",
    )
]
