"""The application uses the stores verify checks: what the run writes through the application
is found in the database the target names.

Integrity and connectivity look at the target's database; the application may be reading
and writing another one (a restore into another database name, a service repointed by its
.env) and every other check stays green. So the check logs in once on every route to the
backend (each login is a session: `sessions._id` is the sha256 of the token) and posts one
marked chat probe on every route to the chatbot, then looks each up in the target's database;
a write that is not there names its route. The services' /health also say which database
they use (and the backend the users schema version it read there): that must be the target's.

A read_only target forbids the writes; it is then judged from what the application reads:
the database each service says it uses and the schema version the backend read must be the
target's database and what that database holds. (A copy of the database under the same name
elsewhere reads the same: only a write tells those apart.)
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from typing import Any

from rollback_drill.checks import concurrently
from rollback_drill.checks.flows import routes
from rollback_drill.checks.functional import PROBE_MARK
from rollback_drill.checks.http import request
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process import lazy
from rollback_drill.process.errors import CheckSkipped, HttpFailure
from rollback_drill.stack.target import Target

NAME = "stores.app_database"


Write = dict[str, Any]  # route, collection, the query that finds it; `found` once looked up


def _health(target: Target, service: str, base: str) -> dict[str, Any]:
    """What a service's /health says about its database."""
    resp = request(target, "GET", base + "/health")
    body = resp.body if isinstance(resp.body, dict) else {}
    return {k: body[k] for k in ("database", "schemaVersion") if k in body}


def _login(target: Target, route: str, base: str) -> Write | str:
    """One login (a session, found by the sha256 of its token), or why there is none."""
    credentials = {"email": target.test_email, "password": target.test_password.reveal()}
    resp = request(target, "POST", base + "/api/auth/login", json=credentials)
    token = resp.body.get("token") if isinstance(resp.body, dict) else None
    if resp.status != 200 or not isinstance(token, str):
        return f"login via {route} -> {resp.status}: nothing to look for"
    key = hashlib.sha256(token.encode()).hexdigest()
    return {"route": route, "collection": "sessions", "query": {"_id": key}}


def _chat(target: Target, route: str, base: str, nonce: str) -> Write | str:
    """One marked chat probe (found by its message), or why there is none."""
    message = f"{PROBE_MARK} store check {nonce} via {route}"
    body = {"message": message, "conversationId": f"rollback-drill-probe-{nonce}"}
    resp = request(target, "POST", base + "/api/chat", json=body)
    if resp.status != 200:
        return f"chat probe via {route} -> {resp.status}: nothing to look for"
    return {"route": route, "collection": "chat_messages", "query": {"message": message}}


def _connect(target: Target, opened: ExitStack) -> Any:
    """The target's database, pymongo loaded and connected while the requests are out; the
    client is closed with `opened`."""
    with lazy.imports():
        from rollback_drill.stores.mongoconn import client

    conn = opened.enter_context(
        client(target.mongodb_uri.reveal(), target.thresholds.request_timeout_s)
    )
    conn.admin.command("ping")
    return conn[target.mongodb_database]


def _look(db: Any, made: list[Write]) -> Any:
    """Sets each write's `found` from the target's database; meta.schema's version."""
    for write in made:
        found = db[write["collection"]].find_one(write["query"], {"_id": 1})
        write["found"] = found is not None
    meta = db["meta"].find_one({"_id": "schema"})
    return meta.get("version") if meta is not None else None


def _app_database(target: Target) -> CheckResult:
    with ExitStack() as opened:
        return _judge(target, opened)


def _judge(target: Target, opened: ExitStack) -> CheckResult:
    nonce = secrets.token_hex(6)
    services = [("backend", target.backend_url), ("ai-chatbot", target.chatbot_url)]
    backend, chatbot = routes(target, target.backend_url), routes(target, target.chatbot_url)
    calls: list[Callable[[], Any]] = [partial(_connect, target, opened)]
    calls += [partial(_health, target, service, base) for service, base in services]
    if not target.read_only:
        calls += [partial(_login, target, r, b) for r, b in backend]
        calls += [partial(_chat, target, r, b, nonce) for r, b in chatbot]
    db, *answers = concurrently.each(calls)
    if isinstance(db, Exception):
        raise db
    said: dict[str, dict[str, Any]] = {}
    made: list[Write] = []
    problems: list[str] = []
    for i, answer in enumerate(answers):
        if i < len(services):
            if isinstance(answer, HttpFailure):
                problems.append(f"{services[i][0]} GET /health: {answer.detail}")
            elif isinstance(answer, Exception):
                raise answer
            else:
                said[services[i][0]] = answer
        elif isinstance(answer, HttpFailure):
            problems.append(f"a write through the app: {answer.detail}")
        elif isinstance(answer, Exception):
            raise answer
        elif isinstance(answer, str):
            problems.append(answer)
        else:
            made.append(answer)
    schema = _look(db, made)
    if target.read_only and not problems and not any("database" in f for f in said.values()):
        raise CheckSkipped(
            "read_only forbids the writes to look for, and no service says which database it uses"
        )
    want = target.mongodb_database
    for service, facts in said.items():
        if "database" in facts and facts["database"] != want:
            problems.append(f"{service} says it uses database {facts['database']}, not {want}")
        if "schemaVersion" in facts and facts["schemaVersion"] != schema:
            problems.append(
                f"{service} read users schema v{facts['schemaVersion']}, {want} holds v{schema}"
            )
    for write in made:
        if not write["found"]:
            what = "session" if write["collection"] == "sessions" else "chat probe"
            problems.append(
                f"the {what} written via {write['route']} is not in {want}.{write['collection']}"
            )
    evidence: dict[str, Any] = {
        "database": want,
        "services": said,
        "schema_version_in_database": schema,
        "looked_up": [{k: w[k] for k in ("route", "collection", "found")} for w in made],
    }
    counts: dict[str, int] = {}
    for write in made:
        counts[write["collection"]] = counts.get(write["collection"], 0) + 1
    evidence["writes"] = [{"collection": c, "documents": n} for c, n in sorted(counts.items())]
    if "chat_messages" in counts:
        evidence["probe"] = {
            "conversationId": f"rollback-drill-probe-{nonce}",
            "message": f"{PROBE_MARK} store check {nonce} via <route>",
        }
    if problems:
        return CheckResult(NAME, False, "; ".join(problems), evidence)
    how = (
        f"{len(made)} writes through the app ({', '.join(f'{c} {n}' for c, n in counts.items())}) "
        f"all found in {want}"
        if made
        else f"read_only: the services say they use {want}, the backend read its schema v{schema}"
    )
    return CheckResult(NAME, True, how, evidence)


CHECKS = [
    Check(
        NAME,
        "stores",
        _app_database,
        doc="the run's own writes through the app (a login per route, a chat probe per route) "
        "are found in the target's database; read_only: the app says it uses that database",
    )
]
