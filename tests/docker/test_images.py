"""The reference stack's Docker images, built locally: real Docker, no mocks.

The build runs once per module (cold: about two minutes; with the bundle in .cache/images:
seconds; with the images already present: about a second). Every container and network made
here carries the labels ``rollback-drill.test=1`` and ``rollback-drill.test.run=<id>`` and is
removed at the end of the module, whatever happened; ports are published on 127.0.0.1 only.
"""

from __future__ import annotations

import io
import json
import string
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pymongo
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rollback_drill.files.spec import load_stack
from rollback_drill.stack import releases
from rollback_drill.stack.images.baseimage import BASE_TAG
from rollback_drill.stack.images.build import BuildReport, build_all
from rollback_drill.stack.images.derivedimage import RELEASE_ENV_MARKER, render_dockerfile
from rollback_drill.stack.images.dockercli import LABEL_INPUTS, current_inputs, docker_available
from rollback_drill.stack.images.layout import Layout
from rollback_drill.stack.images.specs import ImageSpec, image_specs

pytestmark = pytest.mark.slow  # image builds: not in the fast tier

if not docker_available():
    pytest.skip(
        "no Docker daemon answers `docker info` (start one with scripts/start-docker.sh)",
        allow_module_level=True,
    )

RUN_ID = uuid.uuid4().hex[:12]
LABELS = {"rollback-drill.test": "1", "rollback-drill.test.run": RUN_ID}
LAYOUT = Layout.default()
STACK = load_stack(LAYOUT.stack_file)
VERSIONS = list(STACK.releases)  # every release the stack file lists


def _wait(probe: Callable[[], Any], timeout: float = 20.0, what: str = "service") -> Any:
    """Call ``probe`` until it returns without raising; its value, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            return probe()
        except Exception as exc:  # the service is not up yet
            last = exc
            time.sleep(0.1)
    pytest.fail(f"{what} did not answer within {timeout:.0f} s: {last!r}")


@pytest.fixture(scope="module")
def build_lines() -> list[str]:
    return []


@pytest.fixture(scope="module")
def first_build(build_lines: list[str]) -> BuildReport:
    return build_all(LAYOUT, emit=build_lines.append)


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    c = docker.from_env()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def network(client: docker.DockerClient, first_build: BuildReport) -> Iterator[Any]:
    """A bridge network private to this module; removes its containers and itself at the end."""
    net = client.networks.create(f"rd-test-{RUN_ID}", driver="bridge", labels=LABELS)
    try:
        yield net
    finally:
        for container in client.containers.list(
            all=True, filters={"label": f"rollback-drill.test.run={RUN_ID}"}
        ):
            container.remove(force=True, v=True)
        net.remove()


Started = tuple[Any, dict[int, int]]


@pytest.fixture(scope="module")
def start(client: docker.DockerClient, network: Any) -> Callable[..., Started]:
    """Start a container of ``image`` on the private network, reachable there as ``name``;
    returns (container, {container port: host port on 127.0.0.1})."""
    api = client.api

    def run(image: str, name: str, ports: list[int], env: dict[str, str] | None = None) -> Started:
        created = api.create_container(
            image,
            name=f"rd-test-{RUN_ID}-{name}",
            labels=LABELS,
            environment=env or {},
            ports=ports,
            host_config=api.create_host_config(
                port_bindings={p: ("127.0.0.1", None) for p in ports}
            ),
            networking_config=api.create_networking_config(
                {network.name: api.create_endpoint_config(aliases=[name])}
            ),
        )
        container = client.containers.get(created["Id"])
        container.start()
        container.reload()
        published: dict[int, int] = {}
        for port in ports:
            bindings = container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"]
            assert bindings, f"{image}: port {port} not published"
            assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}, bindings
            published[port] = int(bindings[0]["HostPort"])
        return container, published

    return run


def _exec(container: Any, cmd: list[str]) -> tuple[int, str]:
    result = container.exec_run(cmd)
    return int(result.exit_code), result.output.decode(errors="replace")


# ------------------------------------------------------------------------------- the build


def test_every_image_exists_with_its_labels(
    first_build: BuildReport, client: docker.DockerClient, build_lines: list[str]
) -> None:
    expected_tags = [BASE_TAG, *(s.tag for s in image_specs(LAYOUT))]
    for version in VERSIONS:
        for service in ("backend", "ai-chatbot", "frontend"):
            assert f"rollback-drill/safepsy-{service}:{version}" in expected_tags
    for tag in (
        "rollback-drill/mongodb:secantus-0.7",
        "rollback-drill/redis:7.0",
        "rollback-drill/anvil:1.7.1",
    ):
        assert tag in expected_tags
    assert [o.tag for o in first_build.outcomes] == expected_tags
    assert len(build_lines) >= len(expected_tags) + 1, build_lines
    assert build_lines[-1].startswith("total"), build_lines
    for tag in expected_tags:
        image = client.images.get(tag)
        labels = image.labels or {}
        assert labels.get("org.opencontainers.image.title"), tag
        assert len(labels.get(LABEL_INPUTS, "")) == 64, tag
        line = next(line for line in build_lines if f" {tag} " in line)
        assert line.split()[0] in ("built", "cached", "loaded"), line


def test_app_images_carry_their_release_env(client: docker.DockerClient) -> None:
    for version, manifest in STACK.releases.items():
        for service, module, port in (
            ("backend", "safepsy_app.backend", "3000"),
            ("ai-chatbot", "safepsy_app.chatbot", "3001"),
        ):
            config = client.images.get(f"rollback-drill/safepsy-{service}:{version}").attrs[
                "Config"
            ]
            env = dict(item.split("=", 1) for item in config["Env"])
            assert env["RELEASE"] == version
            assert env["HOST"] == "0.0.0.0"
            assert env["PORT"] == port
            for key, value in manifest.services[service].env.items():
                assert env[key] == value, (service, version, key)
            assert config["Cmd"] == ["python", "-m", module]
            assert f"{port}/tcp" in config["ExposedPorts"]
        frontend = client.images.get(f"rollback-drill/safepsy-frontend:{version}")
        assert dict(e.split("=", 1) for e in frontend.attrs["Config"]["Env"])["RELEASE"] == version


def _image_file(client: docker.DockerClient, tag: str, path: str) -> bytes | None:
    """One file of an image, read without running it; None when the image has no such file."""
    container = client.containers.create(tag, labels=LABELS)
    try:
        try:
            chunks, _ = container.get_archive(path)
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            assert member is not None, (tag, path)
            return member.read()
    finally:
        container.remove(force=True)


def _patched_files(service: str, release: str) -> list[str]:
    """The files a release's patches change (relative to the service's build)."""
    names = []
    for patch in releases.patches(STACK, service, release):
        for line in patch.read_text().splitlines():
            if line.startswith("+++ "):
                names.append(line.split()[1].split("/", 1)[1])
    return names


def test_images_hold_their_releases_patched_code(
    first_build: BuildReport, client: docker.DockerClient, tmp_path: Path
) -> None:
    """Each release's app and frontend image has that release's code: every file its patches
    change is in the image as the release's build has it, and differs from the base release's
    image - the defect a drill deploys is in what it deploys."""
    in_image = {"backend": "/app/", "ai-chatbot": "/app/", "frontend": "/usr/share/nginx/html/"}
    checked = []
    for service, root in in_image.items():
        svc = STACK.spec.services[service]
        source_dir = svc.pythonpath or svc.static_root
        assert source_dir is not None
        for release in VERSIONS:
            for rel in _patched_files(service, release):
                built = releases.build(STACK, service, release, tmp_path / service / release)
                want = (built / rel).read_text()
                if service == "frontend":
                    want = string.Template(want).safe_substitute(release=release)
                inside = root + rel.removeprefix(source_dir + "/")
                tag = f"rollback-drill/safepsy-{service}:{release}"
                got = _image_file(client, tag, inside)
                assert got is not None and got.decode() == want, (tag, inside)
                base = f"rollback-drill/safepsy-{service}:{VERSIONS[0]}"
                before = _image_file(client, base, inside)  # None: a file the patch adds
                assert before is None or before.decode() != want, (base, inside)
                checked.append(f"{service} {release} {rel}")
    assert len(checked) >= 7, checked  # every patch of the reference stack's releases


def test_second_build_is_all_cached(first_build: BuildReport) -> None:
    """Nothing is rebuilt or reloaded when no input changed (its speed is a benchmark's job)."""
    lines: list[str] = []
    report = build_all(LAYOUT, emit=lines.append)
    assert {o.action for o in report.outcomes} == {"cached"}, lines
    assert [o.image_id for o in report.outcomes] == [o.image_id for o in first_build.outcomes]
    assert all(line.startswith(("cached", "total")) for line in lines), lines


def test_bundle_holds_the_current_images(first_build: BuildReport) -> None:
    report = build_all(LAYOUT, emit=lambda _: None)
    assert report.bundle is not None and report.bundle.is_file()
    index = report.bundle.with_name(report.bundle.name.removesuffix(".tar.zst") + ".json")
    held = json.loads(index.read_text())["images"]
    assert held == {o.tag: current_inputs(o.tag) for o in report.outcomes}


def test_release_env_is_rendered_into_the_dockerfile() -> None:
    spec = next(s for s in image_specs(LAYOUT) if s.tag.endswith("backend:1.5.0"))
    text = render_dockerfile(spec)
    assert RELEASE_ENV_MARKER not in [line.strip() for line in text.splitlines()]
    assert 'ENV USER_SCHEMA_VERSION="2"' in text
    odd = ImageSpec(
        tag="t:1",
        title="t",
        dockerfile=spec.dockerfile,
        entries=(),
        env=(("A", 'x "y" $HOME \\z'),),
    )
    assert 'ENV A="x \\"y\\" \\$HOME \\\\z"' in render_dockerfile(odd)


# ------------------------------------------------------------------------------- the services


def test_redis_answers_ping(start: Callable[..., Started]) -> None:
    container, ports = start("rollback-drill/redis:7.0", "redis", [6379])
    # No retries: redis-py's default policy takes seconds to report a refused connection.
    client = redis.Redis(
        host="127.0.0.1", port=ports[6379], socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    assert _wait(client.ping, what="redis") is True
    code, out = _exec(container, ["redis-cli", "ping"])
    assert (code, out.strip()) == (0, "PONG")
    client.close()


@pytest.fixture(scope="module")
def mongodb(start: Callable[..., Started]) -> Started:
    """One MongoDB (SecantusDB) container, `mongodb` on the private network."""
    return start("rollback-drill/mongodb:secantus-0.7", "mongodb", [27017])


def test_mongodb_answers_ping_and_mongosh_works(mongodb: Started) -> None:
    container, ports = mongodb
    # SecantusDB advertises a one-node replica set whose member is 0.0.0.0:27017: from
    # outside the container a client must connect directly.
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        "127.0.0.1", ports[27017], directConnection=True, serverSelectionTimeoutMS=500
    )
    try:
        assert _wait(lambda: client.admin.command("ping"), what="mongodb")["ok"] == 1.0
        client.safepsy.probe.insert_one({"_id": "image-test"})
        assert client.safepsy.probe.find_one({"_id": "image-test"}) == {"_id": "image-test"}
    finally:
        client.close()
    code, out = _exec(
        container,
        ["mongosh", "--quiet", "--norc", "--eval", "db.adminCommand('ping').ok"],
    )
    assert (code, out.strip()) == (0, "1"), out
    code, out = _exec(container, ["sh", "-c", "ls /data/db | head -1"])
    assert code == 0 and out.strip(), "no data files under /data/db"


def test_anvil_answers_chain_id_80002(start: Callable[..., Started]) -> None:
    _, ports = start("rollback-drill/anvil:1.7.1", "chain", [8545])
    url = f"http://127.0.0.1:{ports[8545]}"
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}

    def chain_id() -> int:
        return int(httpx.post(url, json=payload, timeout=1.0).json()["result"], 16)

    assert _wait(chain_id, what="anvil") == 80002


def test_nginx_config_test_and_static_page(
    start: Callable[..., Started],
) -> None:
    version = VERSIONS[-1]
    container, ports = start(f"rollback-drill/safepsy-frontend:{version}", "frontend", [80, 443])
    code, out = _exec(container, ["nginx", "-t"])
    assert code == 0, out
    page = _wait(lambda: httpx.get(f"http://127.0.0.1:{ports[80]}/", timeout=1.0), what="nginx")
    assert page.status_code == 200
    assert f"release {version}" in page.text and "${release}" not in page.text


def test_nginx_accepts_the_stack_template(start: Callable[..., Started], tmp_path: Path) -> None:
    """The stack's nginx template, rendered with in-container paths, passes ``nginx -t``.

    This is the recipe for the docker backend: config at /etc/nginx/nginx.conf, certificate
    and key in /etc/nginx/certs/, static root /usr/share/nginx/html, the API proxied to
    service names through Docker's DNS (resolved per request: `nginx -t` needs none up).
    """
    from rollback_drill.stack import tls
    from rollback_drill.stack.docker_infra import container_nginx_values, container_peers

    container, _ = start(f"rollback-drill/safepsy-frontend:{VERSIONS[0]}", "edge", [80, 443])
    certs = tls.issue(tmp_path / "certs", "safepsy.local")
    template = (LAYOUT.fixtures / "nginx" / "nginx.conf.template").read_text()
    values = container_nginx_values(STACK.spec.services["frontend"], container_peers(STACK.spec))
    # The upstream groups name fixed addresses, resolved when nginx loads its config (in the
    # stack the services are up by then); the API goes to service names through the resolver.
    values.update(backend_upstream="127.0.0.1:3000", chatbot_upstream="127.0.0.1:3001")
    conf = string.Template(template).substitute({**values, "prefix": "/var/lib/nginx"})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (
            ("nginx.conf", conf.encode()),
            ("certs/certificate.crt", certs.cert_file.read_bytes()),
            ("certs/private.key", certs.key_file.read_bytes()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600 if name.endswith(".key") else 0o644
            tar.addfile(info, io.BytesIO(data))
    assert container.put_archive("/etc/nginx", buf.getvalue())
    code, out = _exec(container, ["nginx", "-t"])
    assert code == 0, out


def test_chatbot_reaches_mongodb_over_the_private_network(
    start: Callable[..., Started], mongodb: Started
) -> None:
    version = VERSIONS[0]
    _, ports = start(
        f"rollback-drill/safepsy-ai-chatbot:{version}",
        "ai-chatbot",
        [3001],
        env={"MONGODB_URI": "mongodb://mongodb:27017/?directConnection=true"},
    )

    def health() -> dict[str, Any]:
        response = httpx.get(f"http://127.0.0.1:{ports[3001]}/health", timeout=2.0)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    body = _wait(health, what="ai-chatbot")
    assert body["status"] == "ok" and body["release"] == version


def test_backend_image_imports_and_fails_fast_without_its_services(
    client: docker.DockerClient, network: Any
) -> None:
    """Without MONGODB_URI etc. the backend exits 2 naming the variable (its release env and
    PORT come from the image)."""
    tag = f"rollback-drill/safepsy-backend:{VERSIONS[-1]}"
    container = client.containers.run(tag, detach=True, labels=LABELS, network=network.name)
    try:
        status = container.wait(timeout=30)
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 2, logs
    assert "configuration error" in logs and "MONGODB_URI" in logs, logs
