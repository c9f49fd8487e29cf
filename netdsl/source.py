"""Source files and spans: where every AST node, graph node and error points back to."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Text of every source file read so far, by the name used in spans.  Errors print the
# offending line from here, so a span is enough to show the user their code.
_SOURCES: dict[str, str] = {}


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns are 1-based, end_column is exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    @property
    def location(self) -> str:
        """`file:line`, used in diagram tooltips."""
        return f"{self.file}:{self.line}"

    def to(self, other: "Span | None") -> "Span":
        """The span from the start of self to the end of other."""
        if other is None or other.file != self.file:
            return self
        return Span(self.file, self.line, self.column, other.end_line, other.end_column)


def register_source(name: str, text: str) -> None:
    """Remember a file's text so errors can quote it."""
    _SOURCES[name] = text


def read_source(path: str | Path) -> tuple[str, str]:
    """Read a .net file; returns (display name, text) and registers the text."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    name = display_name(path)
    register_source(name, text)
    return name, text


def display_name(path: str | Path) -> str:
    """The name a file is shown under: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def source_line(file: str, line: int) -> str | None:
    """The text of one line of a registered file, without its newline."""
    text = _SOURCES.get(file)
    if text is None:
        return None
    lines = text.splitlines()
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return None
