"""The engine's layout shows its architecture (issue 21): `rollback_drill/` holds only its
`__init__.py` beside concept folders, and a module past 400 lines says in its docstring why it
is still one concept ("Over 400 lines: ...")."""

from __future__ import annotations

import ast

from tests.paths import PROJECT_ROOT

ENGINE = PROJECT_ROOT / "rollback_drill"
LIMIT = 400


def test_the_package_root_holds_only_its_init_beside_concept_folders() -> None:
    flat = sorted(p.name for p in ENGINE.glob("*.py") if p.name not in ("__init__.py",))
    assert flat == []
    folders = [p for p in ENGINE.iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert all((p / "__init__.py").is_file() or p.name == "schemas" for p in folders)


def test_a_module_past_400_lines_says_why() -> None:
    unexplained = []
    for path in sorted(ENGINE.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") <= LIMIT:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if f"Over {LIMIT} lines:" not in doc:
            unexplained.append(f"{path.relative_to(PROJECT_ROOT)} ({text.count(chr(10))} lines)")
    assert unexplained == [], "split them, or say in the docstring why each is one concept"
