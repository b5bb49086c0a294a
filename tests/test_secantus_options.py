"""Every way the project starts SecantusDB gives it the same options (`stores.secantus`):
both stack backends build their command line from `secantus.options()`; the reference
docker-compose file writes them out, so it is held to them here."""

from __future__ import annotations

from typing import Any

import yaml

from rollback_drill.stores import secantus
from tests.paths import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "fixtures" / "safepsy" / "docker-compose.yml"


def test_the_compose_files_mongodb_runs_with_the_stacks_options() -> None:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    command = [str(a) for a in compose["services"]["mongodb"]["command"]]
    assert command[:3] == ["secantusd-py", "--host", "0.0.0.0"]
    assert command[command.index("--storage-path") + 2 :] == secantus.options()
