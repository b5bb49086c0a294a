"""The runbook's "Performance Verification" (`time curl`): each service's response time,
sampled a few times, against the "Response time > 2s: Warning" threshold."""

from __future__ import annotations

from rollback_drill.checks.http import request
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.target import Target

SAMPLES = 5


def _response_times(target: Target) -> CheckResult:
    limit = target.thresholds.response_time_warning_s
    endpoints = {
        "backend /health": target.backend_url + "/health",
        "ai-chatbot /health": target.chatbot_url + "/health",
        "frontend /": target.frontend_url + "/",
    }
    rows: list[dict[str, object]] = []
    slow: list[str] = []
    worst_all = 0.0
    for label, url in endpoints.items():
        times = []
        for _ in range(SAMPLES):
            try:
                times.append(request(target, "GET", url).seconds)
            except Exception:
                times.append(target.thresholds.request_timeout_s)
        worst = max(times)
        rows.append(
            {
                "endpoint": label,
                "max_s": round(worst, 4),
                "median_s": round(sorted(times)[len(times) // 2], 4),
            }
        )
        worst_all = max(worst_all, worst)
        if worst > limit:
            slow.append(f"{label} took {worst:.2f} s")
    summary = (
        "; ".join(slow) + f" (limit {limit} s)"
        if slow
        else f"all responses under {limit} s (worst {worst_all:.3f} s)"
    )
    return CheckResult(
        "performance.response_time", not slow, summary, {"limit_s": limit, "endpoints": rows}
    )


CHECKS = [
    Check("performance.response_time", "performance", _response_times, doc="time curl -f ...")
]
