"""Where the external programs are: an override variable, the node_modules of the working
folder (a team's own `npm install`) or of this checkout, the venv beside this interpreter, then
PATH. One lookup so every caller agrees and errors say how to fix a missing tool.

Where the package's own data is, and where the user works, is `places`.
"""

from __future__ import annotations

import os
import shutil
import sys
from functools import cache
from pathlib import Path

from rollback_drill.process.errors import ToolMissing

# This repository's root when installed editable (its node_modules holds anvil, solcjs,
# mongosh, Allure); in an installed wheel it is site-packages' parent, where no node_modules is.
_CHECKOUT = Path(__file__).resolve().parents[2]

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


def node_modules_root() -> Path:
    """The folder whose node_modules/ holds the Node tools: the working folder's, else this
    checkout's; the working folder when neither has one (an error then names the tool)."""
    for root in (Path.cwd(), _CHECKOUT):
        if (root / "node_modules").is_dir():
            return root
    return Path.cwd()


@cache
def find_tool(name: str) -> str:
    env_name = "ROLLBACK_DRILL_" + name.upper().replace("-", "_")
    candidates = [
        os.environ.get(env_name),
        str(Path.cwd() / "node_modules" / ".bin" / name),
        str(_CHECKOUT / "node_modules" / ".bin" / name),
        str(Path(sys.executable).parent / name),
        shutil.which(name),
        f"/usr/sbin/{name}",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and Path(candidate).is_file():
            return candidate
    hint = _HINTS.get(name, "install it or set " + env_name)
    raise ToolMissing(f"{name} not found (set {env_name} to its path, or {hint})")
