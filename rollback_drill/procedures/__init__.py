"""The runbook's rollback procedures, one module each, as ordered named steps."""

from rollback_drill.steps.procedure import DrillContext, Procedure, Step

__all__ = ["DrillContext", "Procedure", "Step"]
