"""What goes wrong in a drill: a release goes out, or a configuration changes, as a deploy
pipeline or an operator does it. The defect is then real behaviour of what was deployed.

A scenario declares the facts it leaves behind (the configuration archive a deploy takes, the
`.env.backup` an operator makes), so a procedure that needs them is wired before any stack
starts. An operator's edit of a service's live `.env`, nginx.conf or certificate is not a
release: it keeps the `.backup` the runbook restores from (owner-only: they hold passwords and
keys), restarts the service as the runbook does, and changes no release (the drill's stack
starts at its release; the rollback restores the edited file).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from rollback_drill import backupfile, configbackup, proc, tls
from rollback_drill.facts import Fact
from rollback_drill.procedures.base import DrillContext, StepResult
from rollback_drill.secrets import write_private
from rollback_drill.stack.base import Stack, StackError
from rollback_drill.timeline import Artifact

CONFIG_BACKUP = Fact[Path](
    "configuration backup", "config-backup-*.tar.gz the deploy took of .env, nginx.conf, certs"
)
ENV_BACKUPS = Fact[dict[str, Path]](
    ".env backups", "service -> the .env.backup an operator made before editing .env"
)
STORES_BACKUP = Fact[Path](
    "stores backup", "safepsy_backup_*.tar.gz: MongoDB and Redis as they were before the deploy"
)
NGINX_BACKUP = Fact[Path](
    "nginx.conf backup", "nginx/nginx.conf.backup an operator made before editing nginx.conf"
)
CERT_BACKUPS = Fact[tuple[Path, Path]](
    "certificate backups",
    "nginx/ssl/certificate.crt.backup and private.key.backup an operator made before the change",
)


class Scenario(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def provides(self) -> tuple[Fact[Any], ...]: ...

    @property
    def changes_release(self) -> bool:
        """True when it puts the drill's release out over the previous one; False when it
        is an operator's edit of the running release's configuration (the stack starts at
        the drill's release, and the rollback restores what the edit changed)."""

    def inject(self, ctx: DrillContext) -> StepResult: ...


@dataclass(frozen=True)
class DeployRelease:
    """A release rollout: save the configuration, then roll release N+1 onto every app service
    (apps first, the nginx front last), as the pipeline does."""

    name: str = "deploy_release"
    description: str = "deploy release N+1 over N (its defect then shows in production)"
    provides: tuple[Fact[Any], ...] = (CONFIG_BACKUP,)
    changes_release: bool = True

    def inject(self, ctx: DrillContext) -> StepResult:
        # Beside the stack, not in the report's folder: it holds the TLS key and the .env.
        archive = configbackup.backup(ctx.stack.config_dir, ctx.stack.workdir / "config-backups")
        ctx.facts[CONFIG_BACKUP] = archive
        for service in ctx.stack.app_services():
            ctx.stack.deploy(service, ctx.bad_release)
        migrated = run_migration(ctx.stack, ctx.bad_release)
        return StepResult(
            {"release": ctx.bad_release, "config_backup": archive.name, **migrated},
            (Artifact("configuration backup", path=archive, sensitive=True),),
        )


def run_migration(stack: Stack, release: str, timeout_s: float = 600.0) -> dict[str, Any]:
    """The release's data migration, as its deploy runs it: once, in its service's
    environment, after the code is out. {} for a release without one."""
    migration = stack.loaded.release(release).migration
    if migration is None:
        return {}
    stack.start(migration.service, wait_healthy=False)  # `docker exec` needs it running
    code, output = stack.exec(migration.service, list(migration.command), timeout_s=timeout_s)
    command = " ".join(migration.command)
    if code != 0:
        raise RuntimeError(
            f"release {release}'s migration `{command}` in {migration.service} exited "
            f"{code}: {output.strip()[-1500:]}"
        )
    return {"migration": command, "migration_output": output.strip()[-400:]}


@dataclass(frozen=True)
class BackupAndDeploy:
    """A pipeline that backs the stores up first (`./docker-manage.sh backup production`, the
    file `auto-rollback.sh` restores from), then rolls release N+1 out as `DeployRelease`."""

    name: str = "backup_and_deploy"
    description: str = "back the stores up, then deploy release N+1 over N"
    provides: tuple[Fact[Any], ...] = (STORES_BACKUP, CONFIG_BACKUP)
    changes_release: bool = True

    def inject(self, ctx: DrillContext) -> StepResult:
        backup = backupfile.take(ctx.stack, ctx.stack.workdir / "backups")
        ctx.facts[STORES_BACKUP] = backup
        deployed = DeployRelease().inject(ctx)
        return StepResult(
            {**deployed.detail, "stores_backup": backup.name},
            (*deployed.artifacts, Artifact("stores backup", path=backup, sensitive=True)),
        )


@dataclass(frozen=True)
class ChangeConfiguration:
    """A configuration change: an operator copies each `.env` to `.env.backup`, edits it to
    the new release's settings and restarts the service (`docker-compose restart`)."""

    name: str = "change_configuration"
    description: str = "change the services' .env (a configuration release) and restart them"
    provides: tuple[Fact[Any], ...] = field(default=(ENV_BACKUPS,))
    changes_release: bool = True

    def inject(self, ctx: DrillContext) -> StepResult:
        changed = changed_configuration(ctx)
        backups: dict[str, Path] = {}
        for service in changed:
            backups[service] = keep_backup(env_file(ctx.stack, service))
        ctx.facts[ENV_BACKUPS] = backups
        for service in changed:
            ctx.stack.deploy(service, ctx.bad_release)  # renders the new .env, restarts
        return StepResult(
            {
                "release": ctx.bad_release,
                "changed": changed,
                "env_backups": sorted(p.name for p in backups.values()),
            }
        )


def changed_configuration(ctx: DrillContext) -> list[str]:
    """App services whose settings differ between the good and the bad release."""
    loaded = ctx.stack.loaded
    bad, good = loaded.release(ctx.bad_release), loaded.release(ctx.good_release)
    changed = []
    for service in ctx.stack.app_services():
        if loaded.spec.services[service].kind != "app":
            continue
        before = good.services.get(service)
        after = bad.services.get(service)
        if (before.env if before else {}) != (after.env if after else {}):
            changed.append(service)
    if not changed:
        raise ValueError(
            f"release {ctx.bad_release} changes no service's settings against "
            f"{ctx.good_release}: not a configuration change"
        )
    return changed


# -- an operator's edits of the live configuration ------------------------------------------------
def front(stack: Stack) -> str:
    """The stack's nginx front (its name in the stack file)."""
    spec = stack.loaded.spec
    return next(n for n in stack.app_services() if spec.services[n].kind == "nginx")


def nginx_conf(stack: Stack) -> Path:
    return stack.config_dir / "nginx" / "nginx.conf"


def ssl_files(stack: Stack) -> tuple[Path, Path]:
    """nginx/ssl/certificate.crt and nginx/ssl/private.key, as the runbook names them."""
    ssl = stack.config_dir / "nginx" / "ssl"
    return ssl / "certificate.crt", ssl / "private.key"


def env_file(stack: Stack, service: str) -> Path:
    """A service's live `.env` (the runbook's `backend/.env`, `ai-chatbot/.env`)."""
    return stack.config_dir / f"{service}.env"


def backup_of(path: Path) -> Path:
    return path.with_name(path.name + ".backup")


def keep_backup(live: Path) -> Path:
    """`cp FILE FILE.backup`, owner-only from the first byte: `.env` files hold passwords and
    private keys are keys (a certificate is public, but one rule for all is one rule kept)."""
    return write_private(backup_of(live), live.read_bytes())


# How a service that refuses its configuration says why: nginx's `[emerg]`, the app's own
# "configuration error: VARIABLE: expected ..., unset" (safepsy_app/config.py).
_REFUSED = re.compile(r"emerg|configuration error")


def restart_as_operator(stack: Stack, service: str, healthy: bool = True) -> dict[str, Any]:
    """`docker-compose restart SERVICE`, as an operator runs it after an edit. A service that
    refuses its new configuration stays down, and that is what the scenario left; with
    `healthy` False, an app that answers at all has come back (its /health, 503 or not, is
    what monitoring then sees)."""
    try:
        stack.stop(service)
        stack.start(service, wait_healthy=healthy)
    except StackError as exc:
        lines = str(exc).splitlines()
        first = next((ln for ln in lines if _REFUSED.search(ln)), str(exc)[:300])
        return {"restarted": service, "came_back": False, "why": first.strip()}
    return {"restarted": service, "came_back": True}


def restart_front(ctx: DrillContext) -> dict[str, Any]:
    """`docker-compose restart nginx` after an edit of nginx.conf or the certificates."""
    return restart_as_operator(ctx.stack, front(ctx.stack))


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
