"""This checkout's root, for the tests that read its files or run commands in it. The engine
itself never uses it: it finds what it ships through `rollback_drill.process.places`."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
