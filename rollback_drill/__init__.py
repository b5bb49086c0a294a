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
    from rollback_drill.engine.drill import LoadOptions, run_drill
    from rollback_drill.engine.outcome import Drill, DrillOutcome, DrillRunner
    from rollback_drill.failures.contract_release import DeployContractRelease
    from rollback_drill.failures.datascenarios import (
        DeployAfterBackup,
        DeployThenRollBackApplication,
    )
    from rollback_drill.failures.operatoredits import (
        EditEnvironment,
        EditNginxConfig,
        ReplaceCertificate,
    )
    from rollback_drill.failures.scenarios import (
        BackupAndDeploy,
        ChangeConfiguration,
        DeployRelease,
        Scenario,
    )
    from rollback_drill.files.spec import LoadedStack, load_stack
    from rollback_drill.files.targetspec import load_target
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
    from rollback_drill.process.errors import (
        ChainError,
        CheckError,
        EvidenceError,
        FileError,
        MonitoringError,
        ProcessError,
        RollbackDrillError,
        SpecError,
        StackError,
        StoreError,
        VerdictError,
        WiringError,
    )
    from rollback_drill.stack.base import Stack
    from rollback_drill.stack.target import Target, target_from_file
    from rollback_drill.steps.procedure import Procedure, Step

_WHERE = {
    "BackupAndDeploy": "rollback_drill.failures.scenarios",
    "ChangeConfiguration": "rollback_drill.failures.scenarios",
    "DeployContractRelease": "rollback_drill.failures.contract_release",
    "DeployAfterBackup": "rollback_drill.failures.datascenarios",
    "DeployRelease": "rollback_drill.failures.scenarios",
    "DeployThenRollBackApplication": "rollback_drill.failures.datascenarios",
    "Drill": "rollback_drill.engine.outcome",
    "DrillOutcome": "rollback_drill.engine.outcome",
    "DrillRunner": "rollback_drill.engine.outcome",
    "EditEnvironment": "rollback_drill.failures.operatoredits",
    "EditNginxConfig": "rollback_drill.failures.operatoredits",
    "LoadOptions": "rollback_drill.engine.drill",
    "LoadedStack": "rollback_drill.files.spec",
    "Procedure": "rollback_drill.steps.procedure",
    "ReplaceCertificate": "rollback_drill.failures.operatoredits",
    "Scenario": "rollback_drill.failures.scenarios",
    "ChainError": "rollback_drill.process.errors",
    "CheckError": "rollback_drill.process.errors",
    "EvidenceError": "rollback_drill.process.errors",
    "FileError": "rollback_drill.process.errors",
    "MonitoringError": "rollback_drill.process.errors",
    "ProcessError": "rollback_drill.process.errors",
    "RollbackDrillError": "rollback_drill.process.errors",
    "SpecError": "rollback_drill.process.errors",
    "StackError": "rollback_drill.process.errors",
    "StoreError": "rollback_drill.process.errors",
    "VerdictError": "rollback_drill.process.errors",
    "WiringError": "rollback_drill.process.errors",
    "Stack": "rollback_drill.stack.base",
    "Step": "rollback_drill.steps.procedure",
    "Target": "rollback_drill.stack.target",
    "automation": "rollback_drill.procedures",
    "configuration": "rollback_drill.procedures",
    "contract": "rollback_drill.procedures",
    "database": "rollback_drill.procedures",
    "emergency": "rollback_drill.procedures",
    "load_stack": "rollback_drill.files.spec",
    "load_target": "rollback_drill.files.targetspec",
    "planned": "rollback_drill.procedures",
    "redis": "rollback_drill.procedures",
    "run_drill": "rollback_drill.engine.drill",
    "service": "rollback_drill.procedures",
    "staging": "rollback_drill.procedures",
    "target_from_file": "rollback_drill.stack.target",
}

__all__ = [
    "BackupAndDeploy",
    "ChainError",
    "ChangeConfiguration",
    "CheckError",
    "DeployAfterBackup",
    "DeployContractRelease",
    "DeployRelease",
    "DeployThenRollBackApplication",
    "Drill",
    "DrillOutcome",
    "DrillRunner",
    "EditEnvironment",
    "EditNginxConfig",
    "EvidenceError",
    "FileError",
    "LoadOptions",
    "LoadedStack",
    "MonitoringError",
    "Procedure",
    "ProcessError",
    "ReplaceCertificate",
    "RollbackDrillError",
    "Scenario",
    "SpecError",
    "Stack",
    "StackError",
    "Step",
    "StoreError",
    "Target",
    "VerdictError",
    "WiringError",
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
