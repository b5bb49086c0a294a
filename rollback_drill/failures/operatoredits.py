"""An operator's edits of the live configuration, as scenarios: a service's `.env`, nginx.conf,
the certificate. An edit is not a release: it keeps the `.backup` the runbook restores from,
restarts the service as the runbook does, and changes no release (the drill's stack starts at
its release; the rollback restores the edited file).
"""

from __future__ import annotations

import datetime as dt
import difflib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rollback_drill.failures.operatorfiles import (
    backup_of,
    env_file,
    keep_backup,
    nginx_conf,
    restart_as_operator,
    restart_front,
    ssl_files,
)
from rollback_drill.failures.scenarios import ENV_BACKUPS
from rollback_drill.process import proc
from rollback_drill.process.secrets import write_private
from rollback_drill.stack import tls
from rollback_drill.steps.facts import Fact
from rollback_drill.steps.procedure import DrillContext, StepResult
from rollback_drill.steps.timeline import Artifact

NGINX_BACKUP = Fact[Path](
    "nginx.conf backup", "nginx/nginx.conf.backup an operator made before editing nginx.conf"
)
CERT_BACKUPS = Fact[tuple[Path, Path]](
    "certificate backups",
    "nginx/ssl/certificate.crt.backup and private.key.backup an operator made before the change",
)


@dataclass(frozen=True)
class EnvEdit:
    """A change to one service's `.env`: `variable` set to what `value` makes of its current
    value, or its line deleted (`value` None)."""

    name: str
    description: str
    service: str
    variable: str
    value: Callable[[str], str] | None = None


def _host_port(url: str) -> str | None:
    """`host:port` of a single-host URL (no credentials), None when it names no such thing."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port}" if parts.hostname and parts.port else None
    except ValueError:
        return None


def on_a_dead_port(url: str) -> str:
    """`url` with its port moved to one nothing listens on - free on this machine now
    (`proc.free_port` binds it to be sure) and not the store's own, so neither here nor on
    the store's host (a container serving only its store) does anything answer there."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if _host_port(url) is None or "," in hosts:
        raise ValueError("the URI names no single host:port to move")  # never echo it: secrets
    port = proc.free_port()
    while port == parts.port:
        port = proc.free_port()
    netloc = f"{userinfo}{at}{hosts.rsplit(':', 1)[0]}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


WRONG_URI = EnvEdit(
    "wrong_uri",
    "point the backend's MONGODB_URI at a port nothing listens on",
    "backend",
    "MONGODB_URI",
    on_a_dead_port,
)
MISSING_VARIABLE = EnvEdit(
    "missing_variable",
    "delete MONGODB_URI from the ai-chatbot's .env",
    "ai-chatbot",
    "MONGODB_URI",
)


@dataclass(frozen=True)
class EditEnvironment:
    """An operator copies a service's `.env` to `.env.backup`, edits `.env` and restarts the
    service (the runbook's `docker-compose restart`): the running release then meets the edit
    through its own configuration handling - a store it cannot reach, a variable it requires."""

    edit: EnvEdit
    name: str = "edit_environment"
    provides: tuple[Fact[Any], ...] = (ENV_BACKUPS,)
    changes_release: bool = False

    @property
    def description(self) -> str:
        return f"an operator edits a .env ({self.edit.description}) and restarts the service"

    def inject(self, ctx: DrillContext) -> StepResult:
        edit = self.edit
        live = env_file(ctx.stack, edit.service)
        lines = live.read_text().splitlines(keepends=True)
        found = [i for i, ln in enumerate(lines) if ln.split("=", 1)[0].strip() == edit.variable]
        if not found:
            raise ValueError(f"{live}: has no {edit.variable} for the edit {edit.name}")
        backup = keep_backup(live)
        ctx.facts[ENV_BACKUPS] = {edit.service: backup}
        was = lines[found[0]].split("=", 1)[1].strip()
        if edit.value is None:
            del lines[found[0]]
            change = "deleted"
        else:
            now = edit.value(was)
            lines[found[0]] = f"{edit.variable}={now}\n"
            # Values hold passwords: only where a URL points is shown.
            change = f"{_host_port(was) or 'value'} -> {_host_port(now) or 'another value'}"
        write_private(live, "".join(lines).encode())  # in place, and owner-only as the backup
        restarted = restart_as_operator(ctx.stack, edit.service, healthy=False)
        return StepResult(
            {"edit": edit.name, "service": edit.service, "variable": edit.variable,
             "change": change, "backup": backup.name, **restarted},
            (Artifact(f"{edit.service}.env.backup", path=backup, sensitive=True),),
        )  # fmt: skip


@dataclass(frozen=True)
class NginxEdit:
    """A change to nginx.conf's text: every `find` becomes `replace`."""

    name: str
    description: str
    find: str
    replace: str


SYNTAX_ERROR = NginxEdit(
    "syntax_error",
    "raise client_max_body_size to 1m, forgetting the semicolon",
    "client_max_body_size 64k;",
    "client_max_body_size 1m",
)
WRONG_UPSTREAM = NginxEdit(
    "wrong_upstream",
    "route the API (/api/: login, DIDs) to the chatbot's upstream instead of the backend's",
    "proxy_pass http://$backend_target;",
    "proxy_pass http://$chatbot_target;",
)


@dataclass(frozen=True)
class EditNginxConfig:
    """An operator copies nginx.conf to nginx.conf.backup, edits nginx.conf and restarts nginx
    (the runbook's `docker-compose restart nginx`)."""

    edit: NginxEdit
    name: str = "edit_nginx_config"
    provides: tuple[Fact[Any], ...] = (NGINX_BACKUP,)
    changes_release: bool = False

    @property
    def description(self) -> str:
        return f"an operator edits nginx.conf ({self.edit.description}) and restarts nginx"

    def inject(self, ctx: DrillContext) -> StepResult:
        conf = nginx_conf(ctx.stack)
        before = conf.read_text()
        if self.edit.find not in before:
            raise ValueError(f"{conf}: has no {self.edit.find!r} for the edit {self.edit.name}")
        backup = keep_backup(conf)  # cp nginx.conf nginx.conf.backup
        ctx.facts[NGINX_BACKUP] = backup
        after = before.replace(self.edit.find, self.edit.replace)
        conf.write_text(after)  # in place: the docker backend mounts this very file
        diff = "".join(
            difflib.unified_diff(
                before.splitlines(True), after.splitlines(True), "nginx.conf.backup", "nginx.conf"
            )
        )
        return StepResult(
            {"edit": self.edit.name, "backup": backup.name, **restart_front(ctx)},
            (Artifact("the operator's nginx.conf edit", data=diff),),
        )


@dataclass(frozen=True)
class CertificateChange:
    """What an operator installs: (certificate with its chain, private key) as PEM, made from
    the stack's current certificate set."""

    name: str
    description: str
    make: Callable[[tls.CertSet], tuple[bytes, bytes]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


EXPIRED = CertificateChange(
    "expired",
    "a certificate from the right CA for the right names, expired yesterday",
    lambda certs: tls.issue_from(
        certs,
        [certs.server_name, "localhost"],
        _now() - dt.timedelta(days=90),
        _now() - dt.timedelta(days=1),
    ),
)
WRONG_NAME = CertificateChange(
    "wrong_name",
    "a valid certificate from the right CA, issued for another name",
    lambda certs: tls.issue_from(
        certs,
        ["www.safepsy-staging.example"],
        _now() - dt.timedelta(minutes=5),
        _now() + dt.timedelta(days=90),
    ),
)
KEY_MISMATCH = CertificateChange(
    "key_mismatch",
    "the current certificate with a private key that does not belong to it",
    lambda certs: (certs.cert_file.read_bytes(), tls.new_key_pem()),
)


@dataclass(frozen=True)
class ReplaceCertificate:
    """An operator keeps certificate.crt.backup and private.key.backup, installs another
    certificate and key, and restarts nginx."""

    change: CertificateChange
    name: str = "replace_certificate"
    provides: tuple[Fact[Any], ...] = (CERT_BACKUPS,)
    changes_release: bool = False

    @property
    def description(self) -> str:
        return f"an operator installs {self.change.description}, and restarts nginx"

    def inject(self, ctx: DrillContext) -> StepResult:
        certs = ctx.stack.certs
        if certs is None:
            raise ValueError("the stack has issued no certificates to change")
        cert, key = ssl_files(ctx.stack)
        cert_backup = backup_of(cert)
        shutil.copy2(cert, cert_backup)
        key_backup = write_private(backup_of(key), key.read_bytes())
        ctx.facts[CERT_BACKUPS] = (cert_backup, key_backup)
        new_cert, new_key = self.change.make(certs)
        cert.write_bytes(new_cert)
        write_private(key, new_key)
        return StepResult(
            {"change": self.change.name, "backups": [cert_backup.name, key_backup.name],
             **restart_front(ctx)},
            (Artifact("private.key.backup", path=key_backup, sensitive=True),),
        )  # fmt: skip
