"""The one error type of netdsl and the one formatter every stage uses.

A user mistake becomes a `Diagnostic` (message, span, hint); one or more diagnostics are raised
together as `netdsl.Error`.  `str(error)` is exactly what the CLI prints:

    lenet.net:9:12: error: Conv2D expects input f32[B, C, H, W] (rank 4), got f32[B, 120]
        |> Conv2D(16, kernel=5)
           ^^^^^^^^^^^^^^^^^^^^
    hint: the input was flattened at lenet.net:7:8
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from .source import Span, source_line

# At most this many diagnostics are printed; the rest are counted ("... and 3,980 more errors").
MAX_REPORTED = 20
# A quoted source line longer than this is cut to a window around the caret.
MAX_QUOTE = 160


@dataclass
class Diagnostic:
    """One problem in the user's program."""

    message: str
    span: Span | None = None
    hint: str | None = None
    notes: list[tuple[Span | None, str]] = field(default_factory=list)
    severity: str = "error"

    def format(self) -> str:
        """Render as `file:line:col: error: ...`, the quoted line, a caret, then hint and notes."""
        parts = [_headline(self.span, self.severity, self.message)]
        parts.extend(_quote(self.span))
        for note_span, note in self.notes:
            parts.append(_headline(note_span, "note", note))
            parts.extend(_quote(note_span))
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


def _headline(span: Span | None, severity: str, message: str) -> str:
    if span is None:
        return f"{severity}: {message}"
    return f"{span.file}:{span.line}:{span.column}: {severity}: {message}"


def _quote(span: Span | None) -> list[str]:
    """The source line (dedented, indented by four) and a caret run under the span."""
    if span is None:
        return []
    line = source_line(span.file, span.line)
    if line is None:
        return []
    line = line.rstrip().expandtabs(4)
    stripped = line.lstrip(" ")         # not str.lstrip(): U+2028 and the like count as columns
    dedent = len(line) - len(stripped)
    start = min(max(span.column - 1 - dedent, 0), len(stripped))
    if span.end_line == span.line and span.end_column > span.column:
        width = span.end_column - span.column
    else:
        width = max(len(stripped) - start, 1)
    width = max(1, min(width, max(len(stripped) - start, 1)))
    if len(stripped) > MAX_QUOTE:
        # A window of the line around the caret, so a huge line does not flood the terminal.
        first = max(0, min(start - MAX_QUOTE // 4, len(stripped) - MAX_QUOTE))
        last = first + MAX_QUOTE
        width = max(1, min(width, last - start))
        prefix = "..." if first > 0 else ""
        suffix = "..." if last < len(stripped) else ""
        stripped = prefix + stripped[first:last] + suffix
        start = start - first + len(prefix)
    return ["    " + stripped, "    " + " " * start + "^" * width]


class Error(Exception):
    """A user-facing error: one or more diagnostics, printed exactly as the CLI prints them."""

    def __init__(self, diagnostics: "Diagnostic | Sequence[Diagnostic] | str",
                 span: Span | None = None, hint: str | None = None):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics, span, hint)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__(self.format())

    @property
    def message(self) -> str:
        """The first diagnostic's bare message (no location)."""
        return self.diagnostics[0].message if self.diagnostics else ""

    @property
    def span(self) -> Span | None:
        return self.diagnostics[0].span if self.diagnostics else None

    def format(self) -> str:
        """The first MAX_REPORTED diagnostics, separated by blank lines, then how many more
        there are and a count when there are several."""
        shown = self.diagnostics[:MAX_REPORTED]
        text = "\n\n".join(d.format() for d in shown)
        errors = sum(1 for d in self.diagnostics if d.severity == "error")
        hidden = errors - sum(1 for d in shown if d.severity == "error")
        if hidden:
            text += f"\n\n... and {hidden:,} more error{'s' if hidden != 1 else ''}"
        if errors > 1:
            text += f"\n\n{errors:,} errors"
        return text

    def __str__(self) -> str:
        return self.format()


class Diagnostics:
    """Collects independent errors so one run reports all of them."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def add(self, message: str | Diagnostic, span: Span | None = None,
            hint: str | None = None) -> None:
        self.items.append(message if isinstance(message, Diagnostic)
                          else Diagnostic(message, span, hint))

    def extend(self, error: Error) -> None:
        self.items.extend(error.diagnostics)

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def full(self) -> bool:
        """Whether more errors than are printed have been found: later ones need no hints."""
        return len(self.items) >= MAX_REPORTED

    def raise_if_any(self) -> None:
        if self.items:
            raise Error(self.items)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """`did you mean 'x'?` for the closest candidate, or None."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in candidates}
        if name.lower() in lowered:
            matches = [lowered[name.lower()]]
    return f"did you mean '{matches[0]}'?" if matches else None
