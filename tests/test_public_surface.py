"""The names a drill module imports come from one place, pinned here: a new export is a
deliberate change (httpx's tests/test_exported_members.py does the same)."""

from __future__ import annotations

import importlib

import rollback_drill


def test_all_is_sorted_and_every_name_resolves() -> None:
    # ruff's RUF022 order: classes (capitalised) first, then functions and modules
    assert rollback_drill.__all__ == sorted(
        rollback_drill.__all__, key=lambda n: (n[0].islower(), n)
    )
    for name in rollback_drill.__all__:
        assert getattr(rollback_drill, name) is not None, name


def test_the_drill_surface() -> None:
    assert set(rollback_drill.__all__) == {
        "BackupAndDeploy", "ChangeConfiguration", "DeployAfterBackup", "DeployContractRelease",
        "DeployRelease", "DeployThenRollBackApplication", "Drill", "DrillOutcome", "DrillRunner",
        "EditEnvironment", "EditNginxConfig", "LoadOptions", "LoadedStack", "Procedure",
        "ReplaceCertificate", "Scenario", "SpecError", "Stack", "Step", "Target", "automation",
        # the error hierarchy: the root and its branches (leaves stay in process/errors.py)
        "RollbackDrillError", "ChainError", "CheckError", "EvidenceError", "FileError",
        "MonitoringError", "ProcessError", "StackError", "StoreError", "VerdictError",
        "WiringError",
        "configuration", "contract", "database", "emergency", "load_stack", "load_target",
        "planned", "redis", "run_drill", "service", "staging", "target_from_file",
    }  # fmt: skip


def test_importing_the_package_loads_no_engine() -> None:
    """Lazy: the verify path imports `rollback_drill` and must not pay for the drill engine."""
    import subprocess
    import sys

    code = (
        "import sys, rollback_drill; "
        "print(sorted(m for m in sys.modules if m.startswith('rollback_drill')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['rollback_drill']"
    assert (
        importlib.import_module("rollback_drill.procedures.emergency") is rollback_drill.emergency
    )
