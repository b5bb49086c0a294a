"""The runbook's "Check error rates": `./docker-manage.sh logs production | grep -i error | wc
-l`, where the target grants log access - counted over the lines written while this check
runs (it sends each service a request so the window is never empty; concurrent checks'
traffic lands in it too) and judged as a share of the requests those lines record.

An error line says "error" as a word (not "ConnectionResetError" in a client's warning) or
records a 5xx answer. A service whose log shows no line at all in the window is a failure:
a log we cannot see is not a clean log.
"""

from __future__ import annotations

import contextlib
import re
import time

from rollback_drill.checks.http import client, request
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process.errors import CheckSkipped, HttpFailure
from rollback_drill.stack.target import Target

ERROR_WORD = re.compile(r"\berror\b", re.IGNORECASE)
REQUEST = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\b[^\n]*?[\s\"](\d{3})\b")
FLUSH_WAIT_S = 0.05


def count(text: str) -> tuple[int, int, int, list[str]]:
    """(lines, request lines, error lines, the first error lines) of a log excerpt."""
    lines = [line for line in text.splitlines() if line.strip()]
    requests = errors = 0
    examples: list[str] = []
    for line in lines:
        match = REQUEST.search(line)
        requests += match is not None
        if ERROR_WORD.search(line) or (match is not None and match.group(2).startswith("5")):
            errors += 1
            if len(examples) < 3:
                examples.append(line[:200])
    return len(lines), requests, errors, examples


def _touch(target: Target) -> None:
    """One request to every service, so each log gains a line in the window."""
    urls = [target.backend_url + "/health", target.chatbot_url + "/health", target.frontend_url]
    with client(target) as http:
        for url in urls:
            # a failure is the health checks' news; here only the log lines matter
            with contextlib.suppress(HttpFailure):
                request(target, "GET", url, http)


def _errors(target: Target) -> CheckResult:
    if target.logs is None:
        raise CheckSkipped("the target grants no log access (access.logs)")
    mark = target.logs.mark()
    started = time.monotonic()
    _touch(target)
    time.sleep(FLUSH_WAIT_S)
    excerpts = target.logs.since(mark)
    window = time.monotonic() - started
    limit = target.thresholds.error_rate_critical
    rows: list[dict[str, object]] = []
    problems = []
    total_lines = total_errors = 0
    for service, text in excerpts.items():
        lines, requests, errors, examples = count(text)
        total_lines += lines
        total_errors += errors
        rate = errors / max(requests, 1)
        rows.append(
            {"service": service, "lines": lines, "requests": requests, "errors": errors,
             "error_lines": examples}
        )  # fmt: skip
        if lines == 0:
            problems.append(f"{service}: no log line in the window (cannot see its log)")
        elif rate > limit:
            problems.append(
                f"{service}: {errors} error line(s) for {requests} request(s) "
                f"({rate:.0%} > {limit:.0%}): {examples[0] if examples else ''}"
            )
    summary = "; ".join(problems) or (
        f"{total_errors} error line(s) in {total_lines} lines of {len(rows)} service logs over "
        f"{window:.2f} s (limit {limit:.0%} of requests)"
    )
    return CheckResult(
        "errors.logs", not problems, summary, {"window_s": round(window, 3), "services": rows}
    )


CHECKS = [
    Check(
        "errors.logs",
        "errors",
        _errors,
        doc="./docker-manage.sh logs production | grep -i error | wc -l",
        runbook="./docker-manage.sh logs production | grep -i error | wc -l",
    )
]
