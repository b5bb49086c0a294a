"""rollback-drill: a rollback runbook as executable, timed, verified drills.

The public surface, in one place for every drill module and script: declare a drill (a
scenario, a runbook procedure, the matrix row it must reach), run it on a stack, read its
outcome; load stack and target files; ask the checks about any target. Names load lazily,
so `import rollback_drill` stays cheap for the verify path.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rollback_drill.contract_release import DeployContractRelease
    from rollback_drill.datascenarios import DeployAfterBackup, DeployThenRollBackApplication
    from rollback_drill.drill import LoadOptions, run_drill
    from rollback_drill.operatoredits import EditEnvironment, EditNginxConfig, ReplaceCertificate
    from rollback_drill.outcome import Drill, DrillOutcome, DrillRunner
    from rollback_drill.procedures import (
        automation,
        configuration,
        contract,
        database,
        emergency,
        planned,
        redis,
        service,
        staging,
    )
    from rollback_drill.procedures.base import Procedure, Step
    from rollback_drill.scenarios import (
        BackupAndDeploy,
        ChangeConfiguration,
        DeployRelease,
        Scenario,
    )
    from rollback_drill.spec import LoadedStack, SpecError, load_stack
    from rollback_drill.stack.base import Stack
    from rollback_drill.target import Target, target_from_file
    from rollback_drill.targetspec import load_target

_WHERE = {
    "BackupAndDeploy": "rollback_drill.scenarios",
    "ChangeConfiguration": "rollback_drill.scenarios",
    "DeployContractRelease": "rollback_drill.contract_release",
    "DeployAfterBackup": "rollback_drill.datascenarios",
    "DeployRelease": "rollback_drill.scenarios",
    "DeployThenRollBackApplication": "rollback_drill.datascenarios",
    "Drill": "rollback_drill.outcome",
    "DrillOutcome": "rollback_drill.outcome",
    "DrillRunner": "rollback_drill.outcome",
    "EditEnvironment": "rollback_drill.operatoredits",
    "EditNginxConfig": "rollback_drill.operatoredits",
    "LoadOptions": "rollback_drill.drill",
    "LoadedStack": "rollback_drill.spec",
    "Procedure": "rollback_drill.procedures.base",
    "ReplaceCertificate": "rollback_drill.operatoredits",
    "Scenario": "rollback_drill.scenarios",
    "SpecError": "rollback_drill.spec",
    "Stack": "rollback_drill.stack.base",
    "Step": "rollback_drill.procedures.base",
    "Target": "rollback_drill.target",
    "automation": "rollback_drill.procedures",
    "configuration": "rollback_drill.procedures",
    "contract": "rollback_drill.procedures",
    "database": "rollback_drill.procedures",
    "emergency": "rollback_drill.procedures",
    "load_stack": "rollback_drill.spec",
    "load_target": "rollback_drill.targetspec",
    "planned": "rollback_drill.procedures",
    "redis": "rollback_drill.procedures",
    "run_drill": "rollback_drill.drill",
    "service": "rollback_drill.procedures",
    "staging": "rollback_drill.procedures",
    "target_from_file": "rollback_drill.target",
}

__all__ = [
    "BackupAndDeploy",
    "ChangeConfiguration",
    "DeployAfterBackup",
    "DeployContractRelease",
    "DeployRelease",
    "DeployThenRollBackApplication",
    "Drill",
    "DrillOutcome",
    "DrillRunner",
    "EditEnvironment",
    "EditNginxConfig",
    "LoadOptions",
    "LoadedStack",
    "Procedure",
    "ReplaceCertificate",
    "Scenario",
    "SpecError",
    "Stack",
    "Step",
    "Target",
    "automation",
    "configuration",
    "contract",
    "database",
    "emergency",
    "load_stack",
    "load_target",
    "planned",
    "redis",
    "run_drill",
    "service",
    "staging",
    "target_from_file",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'rollback_drill' has no attribute {name!r}")
    if module == "rollback_drill.procedures":
        return importlib.import_module(f"{module}.{name}")
    return getattr(importlib.import_module(module), name)
