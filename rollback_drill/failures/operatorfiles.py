"""The live configuration files an operator edits - nginx.conf, the certificate and key, each
service's `.env` - where a stack keeps them, and what an operator does around an edit: keep a
`.backup` first (owner-only: they hold passwords and keys) and restart the service as the
runbook does. Both the edits (operatoredits.py) and the configuration rollbacks that undo them
(procedures/configuration.py) name the files through here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rollback_drill.process.errors import StackError
from rollback_drill.process.secrets import write_private
from rollback_drill.stack.base import Stack
from rollback_drill.steps.procedure import DrillContext


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
