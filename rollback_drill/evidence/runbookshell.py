"""The runbook's shell commands as coverage counts them: every command in its shell code blocks
(fences marked bash, sh, shell, console, zsh or nothing) under its heading path, a command
going on over a trailing backslash and while a quote is open; a step's quoted commands split
on `;` and new lines outside quotes; shell plumbing (`cd DIR` alone, `echo`, `set`, `if`/`fi`,
`exit`, variable assignments) told apart.

Separate from `evidence.coverage` (matching the commands to drill steps and checks) because
this reads only the runbook's Markdown and shell text: what a "command" is, not who performs
it. Coverage compares what both sides give through `pieces`, so a step's command and the
runbook's are split the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHELL_FENCES = {"", "bash", "sh", "shell", "console", "zsh"}
PLUMBING = {
    "cd", "echo", "set", "if", "then", "else", "elif", "fi", "exit", "for", "do", "done",
    "while", "case", "esac", "shift", "true", ":",
}  # fmt: skip
_HEADING = re.compile(r"^(#{2,6})\s+(.+?)\s*#*\s*$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def normalize(command: str) -> str:
    return " ".join(command.split())


def _split(text: str, separators: tuple[str, ...]) -> list[str]:
    """Split on separators outside quotes (a `mongosh --eval "a; b"` stays one command)."""
    parts: list[str] = []
    current: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and quote != "'" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        else:
            sep = next((s for s in separators if text.startswith(s, i)), None)
            if sep is not None:
                parts.append("".join(current))
                current = []
                i += len(sep)
                continue
        current.append(char)
        i += 1
    parts.append("".join(current))
    return [p for p in (normalize(x) for x in parts) if p]


def pieces(command: str) -> list[str]:
    """The commands one string names: `;` or a new line separates them."""
    return _split(command, (";", "\n"))


def _quotes_open(text: str) -> bool:
    quote: str | None = None
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
    return quote is not None


def is_plumbing(command: str) -> bool:
    parts = _split(command, (";", "&&", "||", "|"))
    return bool(parts) and all(
        p.split()[0] in PLUMBING or _ASSIGNMENT.match(p) is not None for p in parts
    )


@dataclass(frozen=True)
class RunbookCommand:
    section: tuple[str, ...]  # heading path below the title
    text: str  # as written, continuation lines joined
    line: int  # where it starts in the file (1-based)

    @property
    def where(self) -> str:
        return " > ".join(self.section)

    @property
    def plumbing(self) -> bool:
        return is_plumbing(self.text)


def parse_runbook(text: str) -> list[RunbookCommand]:
    """Every command in the runbook's shell code blocks, under its heading path. A command
    goes on over a trailing backslash and while a quote is open."""
    commands: list[RunbookCommand] = []
    path: list[str] = []
    fenced = False
    shell = False
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            fenced = not fenced
            shell = fenced and stripped[3:].strip().lower() in SHELL_FENCES
            buffer = []
            continue
        if not fenced:
            heading = _HEADING.match(stripped)
            if heading:
                level = len(heading.group(1)) - 2
                path = [*path[:level], heading.group(2).strip()]
            continue
        if not shell or (not buffer and (not stripped or stripped.startswith("#"))):
            continue
        if not buffer:
            start = number
        continued = stripped.endswith("\\") and not stripped.endswith("\\\\")
        buffer.append(stripped[:-1].rstrip() if continued else stripped)
        joined = " ".join(buffer)
        if continued or _quotes_open(joined):
            continue
        commands.append(RunbookCommand(tuple(path), normalize(joined), start))
        buffer = []
    return commands


__all__ = ["PLUMBING", "RunbookCommand", "is_plumbing", "normalize", "parse_runbook", "pieces"]
