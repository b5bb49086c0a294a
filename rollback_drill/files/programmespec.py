"""The drill programme in the stack file: the runbook's Regular Rollback Drills (cadences) and
its Communication Plan (channels, each off until configured, secrets from the environment).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from rollback_drill.files.fields import Port
from rollback_drill.files.specmodel import FileModel, Severity

# -- the drill programme: the runbook's Regular Rollback Drills and Communication Plan ----------

EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Audience = Literal["stakeholders", "status_page", "support"]
CadenceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]


class CadenceSpec(FileModel):
    """One line of the runbook's Regular Rollback Drills: which drills (a pytest marker
    expression over the drills' markers) and how often a passing run is due."""

    select: str = Field(min_length=1, description="pytest -m expression choosing the drills")
    period_days: int = Field(gt=0, description="a passing run older than this is overdue")
    description: str = ""


def default_cadences() -> dict[str, CadenceSpec]:
    return {
        "monthly": CadenceSpec(
            select="emergency or planned or service or configuration",
            period_days=31,
            description="Monthly rollback exercises: the application rollbacks",
        ),
        "quarterly": CadenceSpec(
            select="emergency or database or redis_rollback or contract or staging or automation",
            period_days=92,
            description="Quarterly disaster recovery tests: data, contract, staging, automation",
        ),
        "annual": CadenceSpec(
            select="drill",
            period_days=366,
            description="Annual business continuity drills: every drill",
        ),
    }


class _Channel(FileModel):
    """What every channel has: a name for reports, whether the drill fails when it does not
    deliver, which drills it hears about, and how long one delivery may take."""

    name: str | None = None
    required: bool = False
    severities: list[Severity] = Field(
        default_factory=lambda: list(get_args(Severity)),
        description="drills of these matrix rows use the channel (the runbook pages on critical)",
    )
    timeout_s: float = Field(default=5.0, gt=0)


class WebhookChannel(_Channel):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): JSON {"text"}."""

    type: Literal["slack"]
    url_env: EnvName = Field(description="environment variable holding the webhook URL")
    audience: Audience = "stakeholders"


class PagerDutyChannel(_Channel):
    """PagerDuty Events API v2: trigger after the decision, resolve at the end (one dedup key
    per drill)."""

    type: Literal["pagerduty"]
    routing_key_env: EnvName = Field(description="environment variable holding the routing key")
    url: str = "https://events.pagerduty.com/v2/enqueue"
    source: str = "rollback-drill"
    audience: Audience = "support"


class EmailChannel(_Channel):
    """E-mail over SMTP; the password (when the server wants a login) from the environment."""

    type: Literal["email"]
    host: str
    port: Port = 587
    sender: str
    to: list[str] = Field(min_length=1)
    username: str | None = None
    password_env: EnvName | None = None
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    ca_file: str | None = Field(
        default=None, description="CA bundle for a server certificate of a private CA"
    )
    audience: Audience = "stakeholders"

    @model_validator(mode="after")
    def _login_needs_password(self) -> EmailChannel:
        if self.username and not self.password_env:
            raise ValueError("`username` needs `password_env` (the variable holding the password)")
        return self


class StatusPageChannel(_Channel):
    """A status page's HTTP endpoint: JSON {status, title, message, drill: true} by POST."""

    type: Literal["statuspage"]
    url: str | None = None
    url_env: EnvName | None = None
    token_env: EnvName | None = Field(
        default=None, description="environment variable holding a bearer token"
    )
    audience: Audience = "status_page"

    @model_validator(mode="after")
    def _one_url(self) -> StatusPageChannel:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("give exactly one of `url` and `url_env`")
        return self


Channel = Annotated[
    WebhookChannel | PagerDutyChannel | EmailChannel | StatusPageChannel,
    Field(discriminator="type"),
]


class CommunicationSpec(FileModel):
    """The runbook's Communication Plan and Emergency Contacts as channels. Off unless
    `enabled`: a plain run has no receivers, and a drill must never page anyone by surprise."""

    enabled: bool = False
    channels: list[Channel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> CommunicationSpec:
        names = [c.name or c.type for c in self.channels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"channel names must be unique (give `name`): {twice} repeat")
        return self
