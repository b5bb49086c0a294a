"""One exception hierarchy: every exception class defined under rollback_drill derives from
`RollbackDrillError`, so a caller can catch the root or one branch (httpx's
`HTTPError` does the same). Found by walking every module, so a new class straight from a
builtin fails here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import rollback_drill
from rollback_drill.process import errors

# Unwinding signals, not errors: they derive from BaseException so that `except Exception`
# cannot swallow them, and so cannot sit under RollbackDrillError (an Exception).
SIGNALS = {"rollback_drill.process.cutoff.CutOff", "rollback_drill.stack.upstack.supervisor._Stop"}


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(rollback_drill.__path__, "rollback_drill."):
        if info.name.endswith("__main__"):
            continue  # runs the command line when imported
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == info.name:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_exception_class_derives_from_the_root() -> None:
    classes = _exception_classes()
    assert len(classes) >= 40, sorted(classes)  # the walk found them, not nothing
    strays = sorted(
        name
        for name, cls in classes.items()
        if name not in SIGNALS and not issubclass(cls, errors.RollbackDrillError)
    )
    assert strays == []
    assert {n for n in SIGNALS if n in classes} == SIGNALS


@pytest.mark.parametrize(
    ("leaf", "branch", "builtin"),
    [
        (errors.SpecError, errors.FileError, ValueError),
        (errors.DrillFailed, errors.VerdictError, AssertionError),
        (errors.WaitTimeout, errors.ProcessError, TimeoutError),
        (errors.StackError, errors.RollbackDrillError, RuntimeError),
        (errors.RpcError, errors.ChainError, RuntimeError),
        (errors.MissingFact, errors.WiringError, LookupError),
        (errors.RestoreInterrupted, errors.FileError, OSError),
    ],
)
def test_leaves_keep_the_builtin_their_callers_catch(
    leaf: type[Exception], branch: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(leaf, branch)
    assert issubclass(leaf, builtin)


def test_the_root_and_branches_are_public() -> None:
    branches = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and obj.__bases__ == (errors.RollbackDrillError,)
    }
    branches |= {"RollbackDrillError", "StackError"}
    assert branches <= set(rollback_drill.__all__)
