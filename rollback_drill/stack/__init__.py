"""Backends that bring a stack up and act on it, behind one protocol."""

from rollback_drill.stack.base import Stack, StackError

__all__ = ["Stack", "StackError"]
