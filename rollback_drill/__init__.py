"""rollback-drill: a rollback runbook as executable, timed, verified drills.

The public surface: load a stack or target file, bring a stack up on a backend, run a
procedure as a drill, and ask checks about any target.
"""

from rollback_drill.drill import DrillOutcome, run_drill
from rollback_drill.spec import LoadedStack, SpecError, load_stack, load_target
from rollback_drill.target import Target, target_from_file

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
