"""The configuration procedures' gates and failures on a real stack: a restored nginx.conf that
fails `nginx -t` is never loaded, a restored certificate pair that cannot serve is never
loaded, a procedure missing its restore turns red at its verification, a procedure out of
budget stops before its first step - each failure naming the step, the services' states and
what to do next - and running the whole procedure again converges. The environment rollback
made wrong (restored but not restarted, or only one service restarted) turns its drill red
under load, and an operator's `.env` edit keeps its backup and its secrets to its owner."""

from __future__ import annotations

import dataclasses
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from rollback_drill import Drill, run_drill
from rollback_drill.failures.operatoredits import (
    EXPIRED,
    MISSING_VARIABLE,
    SYNTAX_ERROR,
    WRONG_UPSTREAM,
    WRONG_URI,
    EditEnvironment,
    EditNginxConfig,
    EnvEdit,
    ReplaceCertificate,
    on_a_dead_port,
)
from rollback_drill.failures.operatorfiles import backup_of, env_file, nginx_conf, ssl_files
from rollback_drill.failures.scenarios import ENV_BACKUPS
from rollback_drill.files.spec import load_stack
from rollback_drill.procedures import configuration
from rollback_drill.process.proc import port_open
from rollback_drill.stack.local import LocalStack
from rollback_drill.steps.failure import ProcedureFailed, ProcedureFailure
from rollback_drill.steps.procedure import DrillContext, Procedure, StepResult
from rollback_drill.steps.timeline import Timeline
from tests.helpers import copy_stack_file

pytestmark = pytest.mark.slow  # configuration drills made wrong, under load: not fast


APP_START_S = 10.0
"""The apps' `start_timeout_s` here: two tests wait for a service their procedure left broken
to answer as its release, and the reference apps answer within 1-2 s of a start - the
default 30 s only made each of those tests 20 s longer."""


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The reference stack at 1.4.0, its apps given APP_START_S to answer after a start."""

    def edit(spec: dict[str, Any]) -> None:
        for name in ("backend", "ai-chatbot"):
            spec["services"][name]["start_timeout_s"] = APP_START_S

    stack_file = copy_stack_file(tmp_path_factory.mktemp("stack"), "stack.yaml", edit)
    with LocalStack(load_stack(stack_file), seed_users=50).running("1.4.0") as stack:
        yield stack


@pytest.fixture
def ctx(local_stack: LocalStack, tmp_path: Path) -> Iterator[DrillContext]:
    """A context on the module's stack; whatever a test broke, the full procedure puts back."""
    context = DrillContext(local_stack, Timeline(), tmp_path, "1.4.0", "1.4.0")
    yield context


def _fails(procedure: Procedure, ctx: DrillContext, **kwargs: object) -> ProcedureFailure:
    with pytest.raises(ProcedureFailed) as caught:
        procedure.run(ctx, **kwargs)  # type: ignore[arg-type]
    failure = caught.value.failure
    assert list(failure.services) == ctx.stack.all_services()
    assert failure.next_action and str(caught.value).count("\n") >= 3
    return failure


def _login_via_nginx(stack: LocalStack) -> int:
    return httpx.post(stack.url("frontend") + "/api/auth/login", json={}, timeout=5).status_code


def _without(procedure: Procedure, name: str) -> Procedure:
    return dataclasses.replace(procedure, steps=tuple(s for s in procedure.steps if s.name != name))


def test_a_restored_nginx_conf_that_fails_nginx_t_is_never_loaded(
    ctx: DrillContext, local_stack: LocalStack
) -> None:
    EditNginxConfig(WRONG_UPSTREAM).inject(ctx)
    assert _login_via_nginx(local_stack) == 404  # the API goes to the chatbot
    backup = nginx_conf(local_stack).with_name("nginx.conf.backup")
    good = backup.read_text()
    backup.write_text(good.replace(SYNTAX_ERROR.find, SYNTAX_ERROR.replace))  # a bad backup
    serving = local_stack.instance("frontend")

    failure = _fails(configuration.NGINX, ctx)
    assert (failure.number, failure.step) == (2, "Test configuration")
    assert "nginx -t rejects" in failure.cause and "was not loaded" in failure.cause
    assert "nginx -t" in failure.next_action
    assert local_stack.instance("frontend") == serving  # not reloaded, not restarted
    assert _login_via_nginx(local_stack) == 404  # still the running configuration

    backup.write_text(good)  # the operator fixes the backup; the rerun converges
    configuration.NGINX.run(ctx)
    assert _login_via_nginx(local_stack) == 400  # the backend's answer to an empty login
    assert local_stack.instance("frontend") == serving  # reloaded in place, never restarted


def test_nginx_without_its_restore_turns_red_at_its_verification(
    ctx: DrillContext, local_stack: LocalStack
) -> None:
    EditNginxConfig(WRONG_UPSTREAM).inject(ctx)
    failure = _fails(_without(configuration.NGINX, "Restore previous nginx config"), ctx)
    assert failure.step == "Verify"
    assert "functional.frontend_chat_box" in failure.cause or "404" in failure.cause
    configuration.NGINX.run(ctx)
    assert _login_via_nginx(local_stack) == 400


def test_a_certificate_backup_that_cannot_serve_is_never_loaded(
    ctx: DrillContext, local_stack: LocalStack
) -> None:
    cert, key = ssl_files(local_stack)
    good_cert, good_key = cert.read_bytes(), key.read_bytes()
    ReplaceCertificate(EXPIRED).inject(ctx)
    key_backup = key.with_name("private.key.backup")
    key_backup.write_bytes(key.read_bytes())  # the backup pairs the good cert with a wrong key
    serving = local_stack.instance("frontend")

    failure = _fails(configuration.SSL, ctx)
    assert (failure.number, failure.step) == (1, "Restore previous certificates")
    assert "the private key does not match the certificate" in failure.cause
    assert local_stack.instance("frontend") == serving  # nginx was not restarted with it

    key_backup.write_bytes(good_key)
    configuration.SSL.run(ctx)
    assert cert.read_bytes() == good_cert and key.read_bytes() == good_key


def test_ssl_without_its_restore_turns_red_at_verify_ssl(
    ctx: DrillContext, local_stack: LocalStack
) -> None:
    ReplaceCertificate(EXPIRED).inject(ctx)
    failure = _fails(_without(configuration.SSL, "Restore previous certificates"), ctx)
    assert failure.step == "Verify SSL" and "expired on" in failure.cause
    assert "HTTPS FAILS" in failure.services["frontend"]
    configuration.SSL.run(ctx)


def test_a_procedure_out_of_budget_stops_before_its_first_step(ctx: DrillContext) -> None:
    EditNginxConfig(WRONG_UPSTREAM).inject(ctx)
    failure = _fails(configuration.NGINX, ctx, deadline_s=ctx.timeline.now() - 1)
    assert failure.number == 1 and failure.cut_off and failure.budget_spent
    assert failure.limit_s <= 0 and "time budget was spent" in failure.message()
    configuration.NGINX.run(ctx)


# -- Environment Variables ------------------------------------------------------------------
def _env_drill_fails_at_verify(
    edit: EnvEdit, procedure: Procedure, ctx: DrillContext, tmp_path: Path
) -> ProcedureFailure:
    """The drill under load on the module's stack, red at the procedure's Verify; then the
    whole procedure, from the backups the operator's edit left, puts the stack back."""
    drill = Drill(f"env {edit.name}", "1.4.0", EditEnvironment(edit), procedure, "critical")
    try:
        outcome = run_drill(ctx.stack, drill, artifacts=tmp_path / "drill")
    finally:
        backups = {s: backup_of(env_file(ctx.stack, s)) for s in configuration.ENV_SERVICES}
        ctx.facts[ENV_BACKUPS] = {s: b for s, b in backups.items() if b.exists()}
        configuration.ENVIRONMENT.run(ctx)
    assert not outcome.passed
    failure = outcome.procedure_failure
    assert failure is not None and failure.step == "Verify", outcome.failure
    return failure


def test_environment_restored_but_not_restarted_turns_the_drill_red(
    ctx: DrillContext, local_stack: LocalStack, tmp_path: Path
) -> None:
    """The backend still runs with the MONGODB_URI it read at its last start."""
    no_restart = _without(configuration.ENVIRONMENT, "Restart services")
    failure = _env_drill_fails_at_verify(WRONG_URI, no_restart, ctx, tmp_path)
    assert "backend answering as release 1.4.0" in failure.cause, failure.cause
    assert "mongodb unavailable" in failure.services["backend"], failure.services


def test_environment_restarting_only_the_backend_turns_the_drill_red(
    ctx: DrillContext, tmp_path: Path
) -> None:
    """The ai-chatbot refused to start without MONGODB_URI; restarting only the backend
    leaves it down though its .env is back."""

    def restart_backend_only(step_ctx: DrillContext) -> StepResult:
        step_ctx.stack.restart("backend")
        return StepResult({"restarted": ["backend"]})

    steps = tuple(
        dataclasses.replace(s, action=restart_backend_only) if s.name == "Restart services" else s
        for s in configuration.ENVIRONMENT.steps
    )
    one = dataclasses.replace(configuration.ENVIRONMENT, steps=steps)
    failure = _env_drill_fails_at_verify(MISSING_VARIABLE, one, ctx, tmp_path)
    assert "ai-chatbot answering as release 1.4.0" in failure.cause, failure.cause
    assert failure.services["ai-chatbot"] == "stopped", failure.services


def test_an_env_edit_keeps_an_owner_only_backup_and_reports_no_value(
    ctx: DrillContext, local_stack: LocalStack
) -> None:
    live = env_file(local_stack, "backend")
    assert stat.S_IMODE(live.stat().st_mode) == 0o600  # as the stack wrote it: it holds URIs
    before = live.read_bytes()
    uri = local_stack.service_env("backend")["MONGODB_URI"]
    produced = EditEnvironment(WRONG_URI).inject(ctx)
    backup = ctx.facts[ENV_BACKUPS]["backend"]
    assert backup.read_bytes() == before
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600 == stat.S_IMODE(live.stat().st_mode)
    assert produced.detail["came_back"] is True  # it runs: /health tells what it cannot reach
    assert httpx.get(local_stack.url("backend") + "/health", timeout=5).status_code == 503
    assert uri not in str(produced.detail) and uri not in live.read_text()
    assert [a.sensitive for a in produced.artifacts] == [True]  # named, never attached
    configuration.ENVIRONMENT.run(ctx)
    assert live.read_bytes() == before


def test_a_dead_port_keeps_the_rest_of_the_uri_and_never_echoes_it() -> None:
    credentials = "app:not-a-real-password"
    moved = urlsplit(on_a_dead_port(f"mongodb://{credentials}@db.example:27017/safepsy?w=1"))
    assert f"{moved.username}:{moved.password}" == credentials
    assert (moved.hostname, moved.path, moved.query) == ("db.example", "/safepsy", "w=1")
    assert moved.port not in (None, 27017) and not port_open(moved.port)
    with pytest.raises(ValueError) as caught:
        on_a_dead_port(f"mongodb://{credentials}@h1:27017,h2:27017/")
    assert "not-a-real" not in str(caught.value)
