"""The runbook's rollback procedures, one module each, as ordered named steps."""

from rollback_drill.procedures.base import DrillContext, Procedure, Step

__all__ = ["DrillContext", "Procedure", "Step"]
