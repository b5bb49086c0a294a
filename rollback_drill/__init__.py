"""rollback-drill: a rollback runbook as executable, timed, verified drills.

The public surface: load a stack or target file, bring a stack up on a backend, run a
procedure as a drill, and ask checks about any target. Names load on first use (PEP 562):
importing any module of the package must not pay for the drill engine - the verify path's
budget is a fraction of a second.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rollback_drill.drill import DrillOutcome, run_drill
    from rollback_drill.spec import LoadedStack, SpecError, load_stack, load_target
    from rollback_drill.target import Target, target_from_file

_HOMES = {
    "DrillOutcome": "rollback_drill.drill",
    "run_drill": "rollback_drill.drill",
    "LoadedStack": "rollback_drill.spec",
    "SpecError": "rollback_drill.spec",
    "load_stack": "rollback_drill.spec",
    "load_target": "rollback_drill.spec",
    "Target": "rollback_drill.target",
    "target_from_file": "rollback_drill.target",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'rollback_drill' has no attribute {name!r}")


__all__ = [
    "DrillOutcome",
    "LoadedStack",
    "SpecError",
    "Target",
    "load_stack",
    "load_target",
    "run_drill",
    "target_from_file",
]
__version__ = "0.1.0"
