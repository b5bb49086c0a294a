"""Configuration Rollback: put the `.backup` an operator kept back over the live file, let the
service read it, and check it took.

- Environment Variables: restore each service's `.env.backup`, restart the backend and the
  ai-chatbot (`docker-compose restart backend ai-chatbot`), check each answers healthy as the
  release its restored configuration names. A `.env` edit that takes a service down (a store
  it cannot reach, a variable it requires) is critical: restoring the file is then the whole
  revert, so the procedure also answers the matrix's emergency row.
- Nginx Configuration: restore `nginx.conf.backup`; `nginx -t` is a gate (a configuration that
  fails it is never loaded); then reload - in place (SIGHUP: new workers, the listening sockets
  kept, so users lose no request) when nginx runs, started when it does not; then check the
  page and the routes through it.
- SSL Certificates: restore the certificate and key, checking before anything loads them that
  the pair can serve (chain, name, expiry, key matching the certificate); restart nginx; verify
  the handshake as a client does.

Every restore copies in place (the docker backend mounts nginx.conf itself) and checks the
copy against the backup byte for byte: a copy cut short is found by the step that made it.
Each step is safe to repeat, so a rollback that stopped part-way converges when run again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

from rollback_drill.checks import BY_NAME, tls
from rollback_drill.checks.result import run_checks
from rollback_drill.failures.operatoredits import CERT_BACKUPS, NGINX_BACKUP
from rollback_drill.failures.operatorfiles import front, nginx_conf, ssl_files
from rollback_drill.failures.scenarios import ENV_BACKUPS
from rollback_drill.procedures.verify_steps import answers_as_good_release
from rollback_drill.process.errors import ConfigurationRejected
from rollback_drill.process.secrets import write_private
from rollback_drill.process.wait import Wait
from rollback_drill.steps.failure import RERUN
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepResult

ENV_SERVICES = ("backend", "ai-chatbot")
# What nginx serves: the page, and every route it proxies (the API to the backend, the chat
# to the chatbot), over HTTP and HTTPS; the flows probe each route once.
FRONT_CHECKS = (
    "health.frontend",
    "health.frontend-tls",
    "flow.landing",
    "flow.did",
    "functional.frontend_chat_box",
)
VERIFY_TIMEOUT_S = 20.0
# Green must hold this long: nginx's old workers finish the requests (and keep-alive
# connections) they had at the reload meanwhile, and users' traffic shows the switch-over.
STAYS_GREEN_S = 2.0


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def restore_file(backup: Path, live: Path, private: bool = False) -> dict[str, object]:
    """`cp BACKUP LIVE`, in place, proven by digest: a copy cut short fails here."""
    if private:
        write_private(live, backup.read_bytes())
    else:
        shutil.copyfile(backup, live)  # opens LIVE for writing: same inode
    want, got = _digest(backup), _digest(live)
    if want != got:
        raise OSError(
            f"{live.name} differs from {backup.name} after the copy ({live.stat().st_size} of "
            f"{backup.stat().st_size} bytes): the restore did not complete"
        )
    return {"file": live.name, "from": backup.name, "sha256": got[:16]}


# -- Environment Variables ----------------------------------------------------------------------
def restore_env(ctx: DrillContext) -> StepResult:
    restored = []
    for _service, backup in sorted(ctx.facts[ENV_BACKUPS].items()):
        live = backup.with_name(backup.name.removesuffix(".backup"))
        restore_file(backup, live, private=True)
        restored.append(live.name)
    return StepResult({"restored": restored})


def restart_services(ctx: DrillContext) -> StepResult:
    for service in ENV_SERVICES:
        ctx.stack.restart(service)
    return StepResult({"restarted": list(ENV_SERVICES)})


def verify_services(ctx: DrillContext) -> StepResult:
    detail = {}
    for service in ENV_SERVICES:
        detail[service] = answers_as_good_release(ctx, service).detail
    return StepResult(detail)


ENVIRONMENT = Procedure(
    name="configuration: environment variables",
    runbook_section="Configuration Rollback > Environment Variables",
    rollback_type="configuration",
    also_serves=("emergency",),
    steps=(
        Step(
            "Restore previous environment",
            "cp backend/.env.backup backend/.env; cp ai-chatbot/.env.backup ai-chatbot/.env",
            restore_env,
            needs=(ENV_BACKUPS,),
            timeout_s=10,
            recovery=f"copy each .env.backup over its .env again, {RERUN}",
        ),
        Step(
            "Restart services",
            "docker-compose restart backend ai-chatbot",
            restart_services,
            timeout_s=75,
            recovery="a service did not come back with its restored .env: read its log tail "
            f"in the cause; fix what keeps it from starting (a port, a store), {RERUN}",
        ),
        Step(
            "Verify",
            "curl -f http://localhost:3000/health; curl -f http://localhost:3001/health",
            verify_services,
            timeout_s=75,
            recovery="a service runs its restored .env but does not answer healthy: its "
            "/health (in the services' states) names what it cannot reach; bring that back "
            f"(it is not the configuration), {RERUN}",
        ),
    ),
)


# -- Nginx Configuration ------------------------------------------------------------------------
def restore_nginx_conf(ctx: DrillContext) -> StepResult:
    backup = ctx.facts[NGINX_BACKUP]
    return StepResult(restore_file(backup, nginx_conf(ctx.stack)))


def gate_nginx_conf(ctx: DrillContext) -> StepResult:
    """The gate: nginx parses the restored file (and loads its certificates) or nothing loads it."""
    code, out = ctx.stack.exec(front(ctx.stack), ["nginx", "-t"])
    if code != 0:
        raise ConfigurationRejected(
            f"nginx -t rejects the restored nginx.conf (exit {code}), so it was not loaded: "
            + " | ".join(line for line in out.splitlines() if line.strip())[-600:]
        )
    return StepResult({"nginx -t": next((ln for ln in out.splitlines() if "ok" in ln), "ok")})


def reload_nginx(ctx: DrillContext) -> StepResult:
    """The runbook's "Reload nginx": in place when nginx runs (users keep being served),
    started when the edit left it down (there is nothing to reload)."""
    service = front(ctx.stack)
    if ctx.stack.is_running(service):
        code, out = ctx.stack.exec(service, ["nginx", "-s", "reload"])
        if code != 0:
            raise ConfigurationRejected(f"nginx -s reload failed (exit {code}): {out.strip()}")
        return StepResult({"how": "reloaded in place (SIGHUP): new workers, sockets kept"})
    ctx.stack.start(service)
    return StepResult({"how": "started: nginx was down, there was nothing to reload"})


def _front_green(ctx: DrillContext, names: tuple[str, ...]) -> StepResult:
    """Wait until every named check passes against the stack, then watch them keep passing
    for `STAYS_GREEN_S`; on timeout, say what still failed."""
    last: list[str] = []

    def green() -> bool:
        target = dataclasses.replace(ctx.stack.target(), probe_once=True)
        outcomes = run_checks([BY_NAME[n] for n in names], target)
        last[:] = [o.result.explain() for o in outcomes if o.failed and o.result]
        last.extend(f"{o.check.name}: not verified ({o.skipped})" for o in outcomes if o.skipped)
        return not last

    try:
        took = Wait(f"{', '.join(names)} passing", VERIFY_TIMEOUT_S, 0.2).until(green)
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}; still failing: {'; '.join(last)}") from None
    if not Wait(f"{', '.join(names)} staying green", STAYS_GREEN_S, 0.25).holds(green):
        raise RuntimeError(f"green, then failing again: {'; '.join(last)}")
    return StepResult({"passed": list(names), "green_after_s": round(took, 3),
                       "stayed_green_s": STAYS_GREEN_S})  # fmt: skip


def verify_nginx(ctx: DrillContext) -> StepResult:
    return _front_green(ctx, FRONT_CHECKS)


NGINX = Procedure(
    name="configuration: nginx",
    runbook_section="Configuration Rollback > Nginx Configuration",
    rollback_type="configuration",
    also_serves=("emergency",),
    steps=(
        Step(
            "Restore previous nginx config",
            "cp nginx/nginx.conf.backup nginx/nginx.conf",
            restore_nginx_conf,
            needs=(NGINX_BACKUP,),
            timeout_s=10,
            recovery="nginx.conf may be half-written: copy nginx.conf.backup over it again. "
            "nginx still runs what it had loaded (or stays down): do not reload or restart "
            f"it until `nginx -t` passes; {RERUN}",
        ),
        Step(
            "Test configuration",
            "docker exec safepsy-nginx nginx -t",
            gate_nginx_conf,
            timeout_s=30,
            recovery="nginx.conf fails `nginx -t` and was not loaded: nginx still serves what "
            "it had (or stays down). Fix nginx.conf, or the backup it was restored from, "
            f"until `nginx -t` passes; {RERUN}",
        ),
        Step(
            "Reload nginx",
            "docker-compose restart nginx",
            reload_nginx,
            timeout_s=40,
            recovery="nginx did not take the tested configuration: read its error log in the "
            f"cause, {RERUN}",
        ),
        Step(
            "Verify",
            "curl -f http://localhost:80",
            verify_nginx,
            timeout_s=30,
            recovery="nginx runs the restored configuration but a route still fails: compare "
            f"nginx.conf with the last known good one (the backup may be wrong too), {RERUN}",
        ),
    ),
)


# -- SSL Certificates ---------------------------------------------------------------------------
def restore_certificates(ctx: DrillContext) -> StepResult:
    """Both files back, then proven able to serve before nginx is restarted with them."""
    cert_backup, key_backup = ctx.facts[CERT_BACKUPS]
    cert, key = ssl_files(ctx.stack)
    restored = [restore_file(cert_backup, cert), restore_file(key_backup, key, private=True)]
    target = ctx.stack.target()
    report = tls.inspect_files(cert, key, target.ca_file, target.server_name or "localhost")
    if not report.can_serve:
        raise ConfigurationRejected(
            "the restored certificate and key cannot serve, so nginx was not restarted with "
            "them: " + "; ".join(report.problems())
        )
    return StepResult({"restored": restored, "certificate": report.to_json()})


def restart_nginx(ctx: DrillContext) -> StepResult:
    service = front(ctx.stack)
    ctx.stack.restart(service)
    return StepResult({"restarted": service})


def verify_ssl(ctx: DrillContext) -> StepResult:
    return _front_green(ctx, ("tls.certificate", "health.frontend-tls"))


SSL = Procedure(
    name="configuration: SSL certificates",
    runbook_section="Configuration Rollback > SSL Certificates",
    rollback_type="configuration",
    also_serves=("emergency",),
    steps=(
        Step(
            "Restore previous certificates",
            "cp nginx/ssl/certificate.crt.backup nginx/ssl/certificate.crt; "
            "cp nginx/ssl/private.key.backup nginx/ssl/private.key",
            restore_certificates,
            needs=(CERT_BACKUPS,),
            timeout_s=10,
            recovery="the certificate files may be half-restored and nginx was not restarted: "
            "copy both .backup files over them again; if the backup itself cannot serve "
            f"(named in the cause), install a valid certificate instead; {RERUN}",
        ),
        Step(
            "Restart nginx",
            "docker-compose restart nginx",
            restart_nginx,
            timeout_s=40,
            recovery="nginx did not come back with the restored certificate: its log tail in "
            f"the cause names why (`nginx -t` does too), {RERUN}",
        ),
        Step(
            "Verify SSL",
            "openssl s_client -connect localhost:443 -servername safepsy.com",
            verify_ssl,
            timeout_s=30,
            recovery="nginx serves the restored certificate but clients do not accept it: the "
            f"cause says which property fails; {RERUN}",
        ),
    ),
)

__all__ = ["ENVIRONMENT", "NGINX", "SSL"]
