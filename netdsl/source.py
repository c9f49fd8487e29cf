"""Source files and spans: where every AST node, graph node and error points back to.

Reading a source file is careful, because a path may name anything: only a regular file is
opened (a FIFO or a device such as /dev/zero would block or never end), non-blocking, and at
most MAX_SOURCE_BYTES are read; the text must be UTF-8.  A file that fails these checks raises
`SourceError`, whose message quotes nothing of the file.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

# Text of every source file read so far, by the name used in spans.  Errors print the
# offending line from here, so a span is enough to show the user their code.
_SOURCES: dict[str, str] = {}
_LINES: dict[str, list[str]] = {}          # the same texts split into lines, made on demand

MAX_SOURCE_BYTES = 256 * 1024


class SourceError(Exception):
    """A source file that cannot be read as a .net program: why, without any of its text.

    `line` and `column` locate an encoding error inside the file (else None)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


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
    _LINES.pop(name, None)


def read_source(path: str | Path) -> tuple[str, str]:
    """Read a .net file; returns (display name, text) and registers the text.  Raises
    SourceError for anything but a regular UTF-8 file of at most MAX_SOURCE_BYTES."""
    path = Path(path)
    name = display_name(path)
    # Forget what was read under this name before: should this read fail, an error pointing
    # into the file must not quote an older version of it.
    _SOURCES.pop(name, None)
    _LINES.pop(name, None)
    text = decode_source(read_source_bytes(path))
    register_source(name, text)
    return name, text


def read_source_bytes(path: str | Path, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (a .net file's MAX_SOURCE_BYTES;
    the parse cache reads its entries so too), or SourceError."""
    path = os.fspath(path)
    if "\0" in path:
        raise SourceError("the path contains a NUL character")
    try:
        info = os.stat(path)
    except OSError as problem:
        raise SourceError(_os_reason(problem)) from None
    _check_regular(info, limit)
    try:
        # O_NONBLOCK: should the path have been swapped for a FIFO since the stat, opening it
        # returns at once instead of waiting for a writer.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                             | getattr(os, "O_NOCTTY", 0))
    except OSError as problem:
        raise SourceError(_os_reason(problem)) from None
    with os.fdopen(descriptor, "rb") as handle:
        _check_regular(os.fstat(handle.fileno()), limit)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise SourceError(_too_large(limit))
    return data


def _check_regular(info: os.stat_result, limit: int) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise SourceError("it is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise SourceError("it is not a regular file (a device, FIFO or socket)")
    if info.st_size > limit:
        raise SourceError(_too_large(limit))


def _too_large(limit: int) -> str:
    return f"it is larger than {limit // 1024} KiB, the limit for a .net file"


def _os_reason(problem: OSError) -> str:
    if problem.errno == errno.ENOENT:
        return "no such file"
    if problem.errno == errno.ELOOP:
        return "too many levels of symbolic links (a symlink loop?)"
    if problem.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if problem.errno == errno.ENAMETOOLONG:
        return "the path is too long"
    return problem.strerror or type(problem).__name__


def decode_source(data: bytes) -> str:
    """UTF-8 text (a leading byte-order mark dropped), or SourceError locating the bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as problem:
        offset = problem.start
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        raise SourceError(f"it is not UTF-8 text (byte 0x{data[offset]:02x} at line {line}, "
                          f"column {column})", line, column) from None


def display_name(path: str | Path) -> str:
    """The name a file is shown under: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):      # RuntimeError: a symlink loop (3.11)
        return str(path)


def source_line(file: str, line: int) -> str | None:
    """The text of one line of a registered file, without its newline."""
    lines = _LINES.get(file)
    if lines is None:
        text = _SOURCES.get(file)
        if text is None:
            return None
        # Lines as the lexer counts them: only "\n" ends a line (not "\f" or "\u2028").
        lines = _LINES[file] = [line.removesuffix("\r") for line in text.split("\n")]
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return None
