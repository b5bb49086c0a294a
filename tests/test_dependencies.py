"""The package's declared dependencies match its code, and its package list matches its folders.

Runtime dependencies are read from pyproject.toml and compared with every `import` / `from`
in what the wheel carries (rollback_drill/ and the drills, verify suite and locustfile it
ships), mapped to distributions with `importlib.metadata.packages_distributions()`: a
dependency nothing imports is dead weight for every user, an import nothing declares breaks a
clean install. The code is read as it is, so a change that drops or adds an import must change
pyproject.toml with it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

from packaging.requirements import Requirement

from tests.paths import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
# What the wheel carries as code: the engine, and what package-dir maps into it.
SHIPPED_CODE = ["rollback_drill", "drills", "verifications", "load"]
# Declared but used without an import statement, each with the reason.
USED_NOT_IMPORTED = {
    "pytest-xdist": "a pytest plugin: `rollback-drill run --parallel N` passes `-n N` to pytest",
    "allure-pytest": "a pytest plugin: `--alluredir` (run, certify, verify) writes Allure results",
}


def _name(requirement: str) -> str:
    """The distribution name of a requirement string, normalised (PEP 503)."""
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert found, requirement
    return re.sub(r"[-_.]+", "-", found.group(0)).lower()


def _top_level_imports(folders: list[str]) -> dict[str, set[str]]:
    """Top-level module name -> the files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    found.setdefault(top, set()).add(str(path.relative_to(PROJECT_ROOT)))
    return found


def _imported_distributions() -> dict[str, set[str]]:
    """Distribution -> the files that import it, for every third-party import."""
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    owners = importlib.metadata.packages_distributions()
    result: dict[str, set[str]] = {}
    for top, files in _top_level_imports(SHIPPED_CODE).items():
        if top in sys.stdlib_module_names or top == "rollback_drill" or top == "__future__":
            continue
        candidates = {_name(d) for d in owners.get(top, [])}
        assert candidates, f"{top} (imported by {sorted(files)}) belongs to no installed package"
        chosen = candidates & declared or candidates  # a name several distributions provide
        for dist in chosen:
            result.setdefault(dist, set()).update(files)
    return result


def test_runtime_dependencies_are_exactly_what_the_shipped_code_imports() -> None:
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    imported = _imported_distributions()
    undeclared = {d: sorted(f)[:3] for d, f in imported.items() if d not in declared}
    assert not undeclared, f"imported but not in [project.dependencies]: {undeclared}"
    unused = declared - set(imported) - set(USED_NOT_IMPORTED)
    assert not unused, f"declared but imported by nothing the wheel carries: {sorted(unused)}"
    for dist in USED_NOT_IMPORTED:
        assert dist in declared, f"{dist} is listed as used without an import but not declared"


def test_the_mongodb_server_is_an_extra_that_no_runtime_dependency_pulls_in() -> None:
    """`pip install rollback-drill` without extras installs no MongoDB server: secantusdb is
    only in `embedded`, and no runtime dependency requires it (walked through the installed
    distributions' own metadata, extras left out as pip leaves them out)."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert [_name(r) for r in extras["embedded"]] == ["secantusdb"]
    seen: set[str] = set()
    todo = [_name(r) for r in PYPROJECT["project"]["dependencies"]]
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        for line in importlib.metadata.requires(dist) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(requirement.name))
    assert "secantusdb" not in seen
    assert "pymongo-inmemory" not in seen


def test_the_package_list_names_every_engine_folder_and_the_shipped_parts() -> None:
    """pyproject lists packages by hand (package-dir mapping rules out `find`): a new folder
    left out of it would be missing from the wheel."""
    tools = PYPROJECT["tool"]["setuptools"]
    folders = {
        ".".join(p.parent.relative_to(PROJECT_ROOT).parts)
        for p in (PROJECT_ROOT / "rollback_drill").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    mapped = {k for k in tools["package-dir"] if k != "rollback_drill"}
    assert set(tools["packages"]) == folders | mapped
    for package, folder in tools["package-dir"].items():
        assert (PROJECT_ROOT / folder / "__init__.py").is_file(), package
