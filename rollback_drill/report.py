"""Allure, behind three verbs (step, attach, label) so procedures never import allure and a
run without --alluredir still works (allure's API is a no-op without a listener). Every text
attachment passes through `redact`: no secret reaches a report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import allure

from rollback_drill.secrets import redact


@contextmanager
def step(title: str) -> Iterator[None]:
    with allure.step(redact(title)):
        yield


def attach_text(name: str, text: str, kind: str = "text") -> None:
    types = {"text": allure.attachment_type.TEXT, "json": allure.attachment_type.JSON}
    allure.attach(redact(text), name=name, attachment_type=types[kind])


def attach_json(name: str, data: Any) -> None:
    attach_text(name, json.dumps(data, indent=2, default=str), kind="json")


def attach_file(name: str, path: Path) -> None:
    if path.suffix == ".png":
        allure.attach.file(str(path), name=name, attachment_type=allure.attachment_type.PNG)
    else:
        attach_text(name, path.read_text(errors="replace"))


def label_drill(
    *, section: str, severity: str, budget_s: float, procedure: str, backend: str
) -> None:
    """Labels a person filters by: runbook section, decision-matrix severity, backend."""
    allure.dynamic.label("runbook_section", section)
    allure.dynamic.label("procedure", procedure)
    allure.dynamic.label("stack_backend", backend)
    allure.dynamic.tag(f"severity:{severity}")
    allure.dynamic.severity(
        {
            "critical": allure.severity_level.BLOCKER,
            "high": allure.severity_level.CRITICAL,
            "medium": allure.severity_level.NORMAL,
            "low": allure.severity_level.MINOR,
        }[severity]
    )
    allure.dynamic.parameter("budget_s", budget_s)
    allure.dynamic.description(
        f"Runbook section: **{section}**\n\nSeverity **{severity}**, time budget {budget_s:.0f} s "
        f"(decision matrix). Stack backend: {backend}."
    )


def label_verification(category: str, runbook_command: str) -> None:
    allure.dynamic.label("verification", category)
    if runbook_command:
        allure.dynamic.description(f"Runbook: `{runbook_command}`")
