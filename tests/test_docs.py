"""The documentation a new engineer meets stays true to the tree: README.md is one screen that
opens with the two commands CI runs, every relative link in README.md and docs/*.md reaches an
existing file (and heading), every page under docs/ is reachable from README.md, and the module
map in docs/architecture.md names every module of the engine and none that is gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
ENGINE = PROJECT_ROOT / "rollback_drill"

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, inline code blanked out: links and headings there
    are text, not links."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "``", line))
    return lines


def _anchor(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    headings = (re.match(r"#+\s+(.*)", line) for line in _prose(page.read_text()))
    return {_anchor(m[1]) for m in headings if m}


def _links(page: Path) -> list[str]:
    return [m for line in _prose(page.read_text()) for m in LINK.findall(line)]


def _relative(target: str) -> bool:
    return not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in filter(_relative, _links(page)):
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file {resolved}")
        elif fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.name}")
    assert not broken, f"{page.relative_to(PROJECT_ROOT)}:\n" + "\n".join(broken)


def test_readme_is_one_screen_that_opens_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) < 150, f"README.md has {len(lines)} lines: move sections to docs/"
    opening = "\n".join(lines[:6])
    assert "./scripts/run-drills.sh     # main job:" in opening
    assert "./scripts/run-tests.sh      # tests:" in opening
    assert (PROJECT_ROOT / "scripts" / "run-drills.sh").exists()
    assert (PROJECT_ROOT / "scripts" / "run-tests.sh").exists()


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    seen, todo = {README.resolve()}, [README]
    while todo:
        page = todo.pop()
        for target in filter(_relative, _links(page)):
            path = (page.parent / target.partition("#")[0]).resolve()
            if path.suffix == ".md" and path.exists() and path not in seen:
                seen.add(path)
                todo.append(path)
    unreachable = [p.name for p in DOCS.glob("*.md") if p.resolve() not in seen]
    assert not unreachable, f"docs pages no link from README.md leads to: {unreachable}"


def _engine_modules() -> dict[str, set[str]]:
    """Each concept folder -> its modules, relative to the folder (its own __init__ aside)."""
    return {
        folder.name: {
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*.py")
            if "__pycache__" not in p.parts and p != folder / "__init__.py"
        }
        for folder in sorted(ENGINE.iterdir())
        if (folder / "__init__.py").exists()
    }


def _mapped_modules() -> dict[str, set[str]]:
    """docs/architecture.md's module map: each `### folder/` heading -> the modules its table
    names in its first column."""
    text = (DOCS / "architecture.md").read_text()
    mapped: dict[str, set[str]] = {}
    folder = None
    for line in text[text.index("## Module map") :].splitlines():
        if heading := re.match(r"### (\w+)/$", line):
            folder = heading[1]
            mapped[folder] = set()
        elif folder and (row := re.match(r"\| `([\w/]+\.py)` \|", line)):
            mapped[folder].add(row[1])
        elif line.startswith("## ") and not line.startswith("## Module map"):
            break
    return mapped


def test_module_map_names_every_module_and_none_that_is_gone() -> None:
    actual, mapped = _engine_modules(), _mapped_modules()
    missing = [f"{f}/{m}" for f, ms in actual.items() for m in sorted(ms - mapped.get(f, set()))]
    gone = [f"{f}/{m}" for f, ms in mapped.items() for m in sorted(ms - actual.get(f, set()))]
    assert not missing, f"add to docs/architecture.md's module map: {missing}"
    assert not gone, f"docs/architecture.md's module map names modules that are gone: {gone}"
