"""The runbook's Communication Plan and Emergency Contacts as drill steps: right after the
decision the drill notifies stakeholders, updates the status page and alerts support; at the
end it notifies the resolution. Each channel (a Slack-compatible webhook, PagerDuty Events API
v2, e-mail over SMTP, a status page's HTTP endpoint) is configured in the stack file's
`communication` section, with its secrets in environment variables.

Every message says in its first words that it is a DRILL and names the drill, its severity and
its time budget: a drill that reads like a real incident is an incident of its own. A channel
that does not deliver is recorded with the reason and shown in the report; it fails the drill
only when the stack file marks it `required`. Each step and each delivery is a span or event
on the drill's timeline; the first delivered message marks NOTIFIED, so "detection to first
notification" is a phase like the others.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any, Literal

from rollback_drill.engine.channels import channel_name, post_json, secret, send_mail, url_secret
from rollback_drill.files.drillspec import DecisionRow
from rollback_drill.files.programmespec import (
    Audience,
    Channel,
    CommunicationSpec,
    EmailChannel,
    PagerDutyChannel,
    StatusPageChannel,
    WebhookChannel,
)
from rollback_drill.process.errors import DeliveryFailed, NotDelivered
from rollback_drill.process.secrets import Secret, redact
from rollback_drill.steps.timeline import NOTIFIED, Timeline

MessageKind = Literal["announce", "resolve"]

# The runbook's Communication Plan, in its order ("Prepare user communications" is prose for
# people to write; it has no channel), then Post-Rollback Tasks > Communication.
ANNOUNCE: tuple[tuple[Audience, str], ...] = (
    ("stakeholders", "Notify stakeholders"),
    ("status_page", "Update status page"),
    ("support", "Alert support team"),
)
RESOLVE: tuple[tuple[Audience, str], ...] = (
    ("stakeholders", "Notify stakeholders of resolution"),
    ("status_page", "Update status page"),
    ("support", "Resolve the support alert"),
)
PAGERDUTY_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}


@dataclass(frozen=True)
class Brief:
    """What every message names: the drill, its matrix row and time budget, where it runs."""

    drill: str
    row: DecisionRow
    stack: str
    backend: str
    bad_release: str
    good_release: str

    @property
    def severity(self) -> str:
        return self.row.severity

    def budget(self) -> str:
        seconds = self.row.budget_s
        return f"{seconds:.0f} s ({seconds / 60:g} min)" if seconds >= 60 else f"{seconds:g} s"


@dataclass(frozen=True)
class Message:
    kind: MessageKind
    subject: str
    body: str

    @property
    def text(self) -> str:
        return f"{self.subject}\n\n{self.body}"


def compose(brief: Brief, kind: MessageKind, lines: list[str], *, resolved: bool = True) -> Message:
    """The message every channel carries: DRILL first, then the drill, severity and budget."""
    if kind == "announce":
        what = "rollback drill started"
    else:
        what = "rollback drill resolved" if resolved else "rollback drill ended WITHOUT recovery"
    subject = (
        f"[DRILL] {brief.drill}: {what} - severity {brief.severity}, time budget {brief.budget()}"
    )
    body = "\n".join(
        [
            "THIS IS A DRILL: a rehearsal of the rollback runbook on a stack of its own, "
            "not a real incident.",
            f"Drill: {brief.drill}",
            f"Severity: {brief.severity} ({brief.row.impact}) - {brief.row.rollback_type} "
            f"rollback, time budget {brief.budget()}",
            f"Stack: {brief.stack} ({brief.backend} backend), release {brief.bad_release} -> "
            f"{brief.good_release}",
            *lines,
        ]
    )
    return Message(kind, redact(subject), redact(body))


@dataclass(frozen=True)
class Delivery:
    """One message to one channel: when it was sent, how long it took, what came back."""

    channel: str
    type: str
    audience: str
    kind: MessageKind
    step: str
    at_s: float  # on the drill's timeline clock
    at_wall: float  # epoch seconds, for people reading the report
    seconds: float
    ok: bool
    required: bool
    subject: str
    answer: str  # what the receiver said ("HTTP 202", "250 for a@b")
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at_s"] = round(self.at_s, 4)
        data["seconds"] = round(self.seconds, 4)
        return data


@dataclass
class Communication:
    """What the drill told whom: every delivery, in order, with the PagerDuty dedup key."""

    enabled: bool
    dedup_key: str
    channels: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    def failed_required(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.required and not d.ok]

    def failure(self) -> str | None:
        """Why the drill fails for its communication: a required channel did not deliver."""
        failed = self.failed_required()
        if not failed:
            return None
        return "DrillFailed: required communication channel(s) did not deliver: " + "; ".join(
            f"{d.channel} ({d.step}): {d.error}" for d in failed
        )

    def first_delivered(self) -> Delivery | None:
        return next((d for d in self.deliveries if d.ok), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "dedup_key": self.dedup_key,
            "channels": self.channels,
            "messages": [d.to_json() for d in self.deliveries],
            "failed": [d.channel for d in self.deliveries if not d.ok],
            "failed_required": [d.channel for d in self.failed_required()],
        }


def dedup_key(drill: str) -> str:
    """One per drill run, naming it a drill: PagerDuty groups trigger and resolve by it."""
    slug = re.sub(r"[^a-z0-9]+", "-", drill.lower()).strip("-")
    return f"DRILL-{slug}-{uuid.uuid4().hex[:10]}"


class Communicator:
    """Sends the drill's messages on the channels the stack file enables for its severity."""

    def __init__(
        self, spec: CommunicationSpec, brief: Brief, timeline: Timeline, root: Path
    ) -> None:
        self.brief = brief
        self.timeline = timeline
        self.root = root  # relative paths (an SMTP CA file) resolve against the stack file
        self.channels: list[Channel] = (
            [c for c in spec.channels if brief.severity in c.severities] if spec.enabled else []
        )
        self.record = Communication(
            spec.enabled, dedup_key(brief.drill), [channel_name(c) for c in self.channels]
        )
        self._threads: dict[str, str] = {}  # email channel -> its announcement's Message-ID

    @property
    def announced(self) -> bool:
        return bool(self.record.deliveries)

    def announce(self, detected_by: list[str], decision: str) -> None:
        """Right after the decision: stakeholders, status page, support, in the runbook's order."""
        if not self.channels:
            return
        message = compose(
            self.brief,
            "announce",
            [
                f"Detected by: {'; '.join(detected_by) or 'monitoring'}",
                f"Decision: {decision}",
                "The rollback starts now; a resolution message follows when it is verified.",
            ],
        )
        with self.timeline.phase("Communicate: notify stakeholders, status page, support (DRILL)"):
            for audience, step in ANNOUNCE:
                self._step(step, audience, message)

    def resolve(self, failure: str | None, verdict: str | None) -> None:
        """At the end, on every channel that was told the drill started; also when the drill
        failed (a drill never leaves a page open), saying so."""
        if not self.announced:
            return
        recovered = failure is None and verdict is not None
        why = (verdict if recovered else failure) or "no verdict"
        lines = [
            ("Verified green: " if recovered else "Not recovered: ") + why.splitlines()[0],
            "This closes the drill.",
        ]
        message = compose(self.brief, "resolve", lines, resolved=recovered)
        with self.timeline.phase("Communicate: notify resolution (DRILL)"):
            for audience, step in RESOLVE:
                self._step(step, audience, message)

    # -- one step, one delivery -------------------------------------------------------------------
    def _step(self, title: str, audience: Audience, message: Message) -> None:
        channels = [c for c in self.channels if c.audience == audience]
        if not channels:
            return
        try:
            with self.timeline.step(title, channels=[channel_name(c) for c in channels]) as span:
                sent = [self._deliver(c, title, message) for c in channels]
                span.update({"messages": [d.to_json() for d in sent]})
                failed = [d for d in sent if not d.ok]
                if failed:
                    raise NotDelivered("; ".join(f"{d.channel}: {d.error}" for d in failed))
        except NotDelivered:
            pass  # on the timeline as a failed step; the rollback goes on

    def _deliver(self, channel: Channel, step: str, message: Message) -> Delivery:
        at_s, at_wall, started = self.timeline.now(), time.time(), time.monotonic()
        try:
            answer, error = self._send(channel, message), None
        except Exception as exc:
            answer = "not delivered"
            why = str(exc) if isinstance(exc, DeliveryFailed) else f"{type(exc).__name__}: {exc}"
            error = redact(why)
        delivery = Delivery(
            channel_name(channel),
            channel.type,
            channel.audience,
            message.kind,
            step,
            at_s,
            at_wall,
            time.monotonic() - started,
            error is None,
            channel.required,
            message.subject,
            answer,
            error,
        )
        self.record.deliveries.append(delivery)
        if delivery.ok and not self.timeline.has(NOTIFIED):
            self.timeline.mark(NOTIFIED, channel=delivery.channel, step=step)
        return delivery

    def _send(self, channel: Channel, message: Message) -> str:
        if isinstance(channel, WebhookChannel):
            url = url_secret(channel, "url_env", channel.url_env)
            return post_json(url, {"text": message.text}, channel.timeout_s)
        if isinstance(channel, PagerDutyChannel):
            return self._pagerduty(channel, message)
        if isinstance(channel, EmailChannel):
            return self._email(channel, message)
        return self._status_page(channel, message)

    def _pagerduty(self, channel: PagerDutyChannel, message: Message) -> str:
        key = secret(channel, "routing_key_env", channel.routing_key_env)
        event: dict[str, Any] = {
            "routing_key": key.reveal(),
            "dedup_key": self.record.dedup_key,
            "event_action": "trigger" if message.kind == "announce" else "resolve",
        }
        if message.kind == "announce":
            event["payload"] = {
                "summary": message.subject[:1024],
                "source": channel.source,
                "severity": PAGERDUTY_SEVERITY.get(self.brief.severity, "warning"),
                "component": self.brief.stack,
                "group": "rollback-drill",
                "class": "DRILL",
                "custom_details": {
                    "drill": True,
                    "name": self.brief.drill,
                    "severity": self.brief.severity,
                    "time_budget_s": self.brief.row.budget_s,
                    "message": message.body,
                },
            }
        return post_json(channel.url, event, channel.timeout_s)

    def _status_page(self, channel: StatusPageChannel, message: Message) -> str:
        url: Secret | str = str(channel.url)
        if channel.url_env:
            url = url_secret(channel, "url_env", channel.url_env)
        headers = {}
        if channel.token_env:
            token = secret(channel, "token_env", channel.token_env)
            headers["Authorization"] = f"Bearer {token.reveal()}"
        update = {
            "drill": True,
            "status": "investigating" if message.kind == "announce" else "resolved",
            "title": message.subject,
            "message": message.body,
            "name": self.brief.drill,
            "severity": self.brief.severity,
            "time_budget_s": self.brief.row.budget_s,
            "incident_key": self.record.dedup_key,
        }
        return post_json(url, update, channel.timeout_s, **headers)

    def _email(self, channel: EmailChannel, message: Message) -> str:
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = channel.sender
        mail["To"] = ", ".join(channel.to)
        mail["X-Rollback-Drill"] = f"DRILL; {self.brief.drill}; {self.record.dedup_key}"
        mail["Message-ID"] = make_msgid("drill", domain="rollback-drill.invalid")
        thread = self._threads.get(channel_name(channel))
        if thread:  # the resolution threads under the announcement
            mail["In-Reply-To"] = mail["References"] = thread
        mail.set_content(message.body)
        answer = send_mail(channel, mail, self.root)
        self._threads.setdefault(channel_name(channel), str(mail["Message-ID"]))
        return answer


__all__ = [
    "Brief",
    "Communication",
    "Communicator",
    "Delivery",
    "Message",
    "compose",
    "dedup_key",
]
