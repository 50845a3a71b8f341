"""Errors users see: every problem with its file, line, field path and what was expected."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, at a path of keys/indices (or names for list items)."""

    path: tuple[str | int, ...]
    message: str
    line: int | None = None

    def dotted(self) -> str:
        """``pools.serving.pricing`` style path; ``(root)`` for the whole file."""
        if not self.path:
            return "(root)"
        return ".".join(_printable(str(part)) for part in self.path)


def _printable(text: str) -> str:
    """A path part as one printable line: control characters (a name of '\\r') escaped."""
    return text if text.isprintable() else repr(text)[1:-1]


class ScenarioError(Exception):
    """Invalid input: one or more problems in one file."""

    def __init__(self, problems: list[Problem], source: str = "<scenario>") -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.format())

    def format(self) -> str:
        """One ``FILE:LINE: path: message`` line per problem."""
        out = []
        for p in self.problems:
            where = f"{self.source}:{p.line}" if p.line else self.source
            message = " ".join(p.message.splitlines())  # one line per problem, whatever the input held
            out.append(f"{where}: {p.dotted()}: {message}")
        return "\n".join(out)
