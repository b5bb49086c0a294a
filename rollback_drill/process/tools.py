"""Where the external programs are: an override variable, the project's node_modules, the
venv beside this interpreter, then PATH. One lookup so every caller agrees and errors say
how to fix a missing tool.
"""

from __future__ import annotations

import os
import shutil
import sys
from functools import cache
from pathlib import Path

from rollback_drill.process.errors import ToolMissing

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STACK = PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml"  # the reference stack

_HINTS = {
    "anvil": "run scripts/setup.sh (npm package @foundry-rs/anvil-linux-amd64)",
    "mongosh": "run scripts/setup.sh (npm package mongosh)",
    "allure": "run scripts/setup.sh (npm package allure)",
    "secantusd-py": "pip install secantusdb (scripts/setup.sh does it)",
    "redis-server": "apt-get install redis-server (scripts/setup.sh does it)",
    "redis-cli": "apt-get install redis-server (scripts/setup.sh does it)",
    "nginx": "apt-get install nginx (scripts/setup.sh does it)",
    "chromium": "apt-get install chromium (scripts/setup.sh does it)",
    "node": "install Node.js 20+",
    "locust": "pip install locust (scripts/setup.sh does it)",
    "patch": "apt-get install patch (scripts/setup.sh does it)",
}


@cache
def find_tool(name: str) -> str:
    env_name = "ROLLBACK_DRILL_" + name.upper().replace("-", "_")
    candidates = [
        os.environ.get(env_name),
        str(PROJECT_ROOT / "node_modules" / ".bin" / name),
        str(Path(sys.executable).parent / name),
        shutil.which(name),
        f"/usr/sbin/{name}",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and Path(candidate).is_file():
            return candidate
    hint = _HINTS.get(name, "install it or set " + env_name)
    raise ToolMissing(f"{name} not found (set {env_name} to its path, or {hint})")
