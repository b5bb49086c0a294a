"""pytest-docker, for teams whose stack already runs from a docker-compose.yml.

`pytest -m verify --compose-file docker-compose.yml --target target.yaml` brings the compose
project up for the session (`up -d`), runs the verify suite against the target file, and takes
the project down at the end. The compose command is detected - `docker compose` (v2, the
docker CLI's plugin, what teams run) first, then `docker-compose` (v1, end of life, the only one
installable on the machines this project is built on) - or chosen with `--compose-command` /
ROLLBACK_DRILL_COMPOSE. The pytest-docker defaults are overridden for both (no `--build`,
`down -v -t 2`); projects are named `rollback-drill-<pid>` so a killed run's project is swept
later.

For the reference stack, `prepare_reference` and `bootstrap_reference` do what a real
deployment pipeline would after `up`: certificates and the nginx config before, the DID
registry and the seed data after.
"""

from __future__ import annotations

import os
import shutil
import string
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_docker.plugin import Services, get_docker_services

from rollback_drill.chain import deploy as chain
from rollback_drill.chain import keys
from rollback_drill.files.spec import LoadedStack
from rollback_drill.process import proc
from rollback_drill.process.errors import StackError
from rollback_drill.process.secrets import Secret
from rollback_drill.stack import tls
from rollback_drill.stack.configuration import OPERATOR_FUNDS_WEI
from rollback_drill.stack.docker_infra import container_nginx_values, container_peers
from rollback_drill.stack.seeding import SeedTarget, finish_seed, lookup_test_did, start_seed
from rollback_drill.stack.target import Target
from rollback_drill.stack.targetparts import Deployed, Reach, stack_settings

COMPOSE_ENV = "ROLLBACK_DRILL_COMPOSE"
V2, V1 = "docker compose", "docker-compose"
COMPOSE_CHOICES = ("auto", V2, V1)
SETUP = ["up -d"]
CLEANUP = ["down -v -t 2"]
PROJECT_PREFIX = "rollback-drill-"
READY_TIMEOUT_S = 60.0


class ComposeMissing(StackError):
    """No compose command answers (or not the one asked for); the message says how to fix it."""


@dataclass(frozen=True)
class Compose:
    """The compose command this machine runs. v1 and v2 take the same `-f FILE -p PROJECT
    up/down` command lines; they name containers differently (v1 `P_S_1`, v2 `P-S-1`)."""

    command: str  # V2 or V1

    @property
    def v2(self) -> bool:
        return self.command == V2

    def container(self, project: str, service: str) -> str:
        sep = "-" if self.v2 else "_"
        return f"{project}{sep}{service}{sep}1"


def _v2_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def detect_compose(chosen: str | None = None) -> Compose:
    """`chosen` (an option's value), else ROLLBACK_DRILL_COMPOSE, else auto: `docker compose`
    when the docker CLI has the plugin, then `docker-compose`."""
    chosen = chosen or os.environ.get(COMPOSE_ENV) or "auto"
    if chosen not in COMPOSE_CHOICES:
        raise ComposeMissing(
            f"compose command {chosen!r}: expected one of {', '.join(COMPOSE_CHOICES)}"
        )
    if chosen in ("auto", V2) and _v2_answers():
        return Compose(V2)
    if chosen in ("auto", V1) and shutil.which(V1):
        return Compose(V1)
    wanted = "`docker compose` (v2) or `docker-compose` (v1)" if chosen == "auto" else chosen
    raise ComposeMissing(
        f"{wanted} not found: install the docker CLI's compose plugin (v2) or docker-compose, "
        f"or choose the other with --compose-command / {COMPOSE_ENV}"
    )


def project_name() -> str:
    return f"{PROJECT_PREFIX}{os.getpid()}"


@contextmanager
def compose_up(
    file: Path, project: str, env: dict[str, str] | None = None, compose: Compose | None = None
) -> Iterator[Services]:
    """`up -d` for the block, `down -v` after it, whatever happens (the detected compose
    command unless `compose` says which)."""
    command = (compose or detect_compose()).command
    saved = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})  # compose substitutes ${VARS} from its environment
    try:
        with get_docker_services(command, str(file), project, SETUP, CLEANUP) as services:
            yield services
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class ReferenceCompose:
    """Free host ports, certificates and the rendered nginx config for one compose run."""

    env: dict[str, str]
    certs: tls.CertSet
    directory: Path

    def port(self, name: str) -> int:
        return int(self.env[f"SAFEPSY_{name}_PORT"])


def prepare_reference(loaded: LoadedStack, directory: Path, release: str) -> ReferenceCompose:
    front_name = next(n for n, s in loaded.spec.services.items() if s.kind == "nginx")
    front = loaded.spec.services[front_name]
    certs = tls.issue(directory / "ssl", front.server_name)
    assert front.config_template
    template = loaded.resolve(front.config_template).read_text()
    values = container_nginx_values(front, container_peers(loaded.spec))
    conf = directory / "nginx.conf"
    conf.write_text(string.Template(template).substitute(values))
    ports = ["MONGODB", "REDIS", "CHAIN", "BACKEND", "CHATBOT", "HTTP", "HTTPS"]
    env = {f"SAFEPSY_{name}_PORT": str(proc.free_port()) for name in ports}
    env.update(
        SAFEPSY_RELEASE=release,
        SAFEPSY_NGINX_CONF=str(conf),
        SAFEPSY_CERTS_DIR=str(certs.cert_file.parent),
    )
    # The operator's key (keys.py), and where its first transaction will put the registry:
    # the compose file's backend must name both before the chain even starts.
    signer = keys.configured()
    if signer is None:
        signer = keys.Signer.generate()
        env[keys.KEY_FILE_ENV] = str(signer.write(directory / keys.STACK_KEY_FILE))
    env.update(
        SAFEPSY_OPERATOR_ADDRESS=signer.address,
        SAFEPSY_REGISTRY_ADDRESS=chain.contract_address(signer.address, 0),
    )
    return ReferenceCompose(env, certs, directory)


def reference_target(
    loaded: LoadedStack,
    prep: ReferenceCompose,
    password: Secret,
    deployed: Deployed | None = None,
    project: str | None = None,
    compose: Compose | None = None,
) -> Target:
    """How checks reach the compose stack; what is deployed there once `bootstrap_reference`
    says, and (given the compose `project`) log and stats access to its containers (named as
    `compose`, the detected command, names them)."""
    reach = Reach.on_host(
        backend=prep.port("BACKEND"),
        chatbot=prep.port("CHATBOT"),
        frontend=prep.port("HTTP"),
        frontend_tls=prep.port("HTTPS"),
        mongodb=prep.port("MONGODB"),
        redis=prep.port("REDIS"),
        chain=prep.port("CHAIN"),
        ca_file=prep.certs.ca_file,
    )
    contract = deployed.contract_version if deployed else None
    settings = stack_settings(loaded, contract)
    name = f"{loaded.spec.name} (docker-compose)"
    if not project:
        return Target.build(name, reach, password, settings, deployed)
    from rollback_drill.stack.access import DockerLogs, DockerStats

    apps = [n for n, s in loaded.spec.services.items() if s.kind == "app"]
    naming = compose or detect_compose()
    containers = {n: naming.container(project, n) for n in loaded.spec.services}
    # nginx logs to files inside its container: `docker logs` shows the apps' logs only
    logs = DockerLogs({n: containers[n] for n in apps})
    return Target.build(
        name, reach, password, settings, deployed, logs=logs, stats=DockerStats(containers)
    )


def bootstrap_reference(
    loaded: LoadedStack,
    prep: ReferenceCompose,
    password: Secret,
    services: Services,
    release: str,
    log: Path,
    project: str | None = None,
    compose: Compose | None = None,
) -> Target:
    """After `up`: deploy the registry at the address the compose file expects, seed. The
    target then says what the stack must run (`reference_target`, given the same `project`
    and `compose`)."""
    import httpx

    from rollback_drill.stores import mongo

    before = reference_target(loaded, prep, password)
    assert before.rpc_url is not None
    rpc_url = before.rpc_url
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    services.wait_until_responsive(
        lambda: _answers(lambda: httpx.post(rpc_url, json=body, timeout=1).status_code == 200),
        timeout=READY_TIMEOUT_S, pause=0.1,
    )  # fmt: skip
    uri = before.mongodb_uri.reveal()
    services.wait_until_responsive(
        lambda: _answers(lambda: mongo.ping(uri, 0.5) >= 0), timeout=READY_TIMEOUT_S, pause=0.1
    )
    version = loaded.release(release).contract_version
    signer = keys.operator_signer()  # prepare_reference named its file in compose_up's env
    chain.fund_dev_operator(rpc_url, signer.address, OPERATOR_FUNDS_WEI)
    deployment = chain.deploy_registry(rpc_url, loaded.contract_artifact(version), version, signer)
    seeding = start_seed(
        loaded, SeedTarget(uri, rpc_url, deployment.address, deployment.operator), password, log
    )
    finish_seed(seeding, log)
    health = before.backend_url + "/health"
    services.wait_until_responsive(
        lambda: _answers(lambda: httpx.get(health, timeout=1).status_code == 200),
        timeout=READY_TIMEOUT_S, pause=0.1,
    )  # fmt: skip
    deployed = Deployed(
        registry_address=deployment.address,
        test_did=lookup_test_did(loaded, uri),
        releases={name: release for name in loaded.spec.services},
        contract_version=version,
        owner=deployment.operator,
    )
    return reference_target(loaded, prep, password, deployed, project, compose)


def _answers(probe: Callable[[], bool]) -> bool:
    try:
        return probe()
    except Exception:
        return False
