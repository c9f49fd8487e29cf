"""Loading a program: a `.net` file and everything it imports, with one namespace of top-level names.

Imports are resolved relative to the importing file, each file is parsed once, a cycle is an
error at the `import` that closes it, and a top-level name defined twice (across files too) is
an error that points at both definitions.  Constants are evaluated here, in source order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Diagnostic, Diagnostics, Error
from ..source import SourceError, Span, display_name
from . import ast
from .limits import MAX_FILES, MAX_IMPORT_DEPTH, OPERATORS, fold, negate
from .values import BlockDef


@dataclass
class Program:
    """Every top-level definition visible from the main file."""

    main: str
    modules: list[ast.Module] = field(default_factory=list)
    consts: dict[str, Any] = field(default_factory=dict)
    blocks: dict[str, BlockDef] = field(default_factory=dict)
    models: dict[str, ast.Model] = field(default_factory=dict)
    trains: dict[str, ast.Train] = field(default_factory=dict)
    spans: dict[str, Span | None] = field(default_factory=dict)   # where each name is defined
    base_dir: Path = field(default_factory=Path.cwd)


def load_program(path: str | Path) -> Program:
    """Parse `path` and its imports; raises Error with every problem found."""
    from .parse_cache import parse_file
    path = Path(path)
    if path.suffix != ".net":
        if not _exists(path):
            raise Error(f"cannot open '{path}': no such file")
        raise Error(f"'{path}' is not a .net file", hint="netdsl reads model files ending in .net")
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):             # RuntimeError: a symlink loop (Python 3.11)
        raise Error(f"cannot open '{path}': too many levels of symbolic links") from None
    diagnostics = Diagnostics()
    program = Program(main=display_name(path), base_dir=resolved.parent)
    try:
        _load(resolved, program, diagnostics, stack=[], seen=set(), parse=parse_file)
    except SourceError as problem:
        span = None
        if problem.line is not None:
            span = Span(display_name(path), problem.line, problem.column, problem.line,
                        problem.column + 1)
        raise Error(f"cannot open '{path}': {problem.message}", span) from None
    diagnostics.raise_if_any()
    return program


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _load(path: Path, program: Program, diagnostics: Diagnostics, stack: list[Path],
          seen: set[Path], parse) -> None:
    seen.add(path)
    module = parse(path)
    stack.append(path)
    # Imports first, so that a file's own definitions may use what it imports.
    for item in module.items:
        if isinstance(item, ast.Import):
            _import(item, path, program, diagnostics, stack, seen, parse)
    for item in module.items:
        if not isinstance(item, ast.Import):
            _define(item, module.path, program, diagnostics)
    program.modules.append(module)
    stack.pop()


def _import(item: ast.Item, importer: Path, program: Program, diagnostics: Diagnostics,
            stack: list[Path], seen: set[Path], parse) -> None:
    """Load the file an `import` names, if it is a .net file that may be read.

    A path that resolves to anything but a regular .net file (`/etc/passwd`, `/dev/zero`, a
    FIFO, a directory, a symlink to any of them) is an error at the `import` that quotes nothing
    of the file it names: a .net program must not be a way to print other files."""
    written = item.path
    if not written.strip():
        diagnostics.add("an import needs a path", item.span, 'e.g. import "blocks/resnet.net"')
        return
    if "\0" in written:
        diagnostics.add("an import path cannot contain a NUL character", item.span)
        return
    try:
        target = (importer.parent / written).resolve()
    except (OSError, RuntimeError, ValueError):     # a symlink loop, a path too long
        diagnostics.add(f"cannot import '{written}': too many levels of symbolic links, or a "
                        f"path that cannot be resolved", item.span)
        return
    if target in stack:
        chain = " -> ".join(display_name(p) for p in stack[stack.index(target):] + [target])
        diagnostics.add(f"import cycle: {chain}", item.span,
                        "move the shared blocks into a file that both can import")
        return
    if target in seen:
        return
    if _is_dir(target):
        diagnostics.add(f"cannot import '{written}': it is a directory", item.span,
                        'an import names a .net file, such as "blocks/resnet.net"')
        return
    if target.suffix != ".net":
        where = f" ('{written}' resolves to {display_name(target)})" \
            if Path(written).suffix == ".net" else ""
        diagnostics.add(f"cannot import '{written}': only .net files can be imported{where}",
                        item.span, "an import names another netdsl source file, such as "
                                   '"blocks.net"')
        return
    if not _exists(target):
        diagnostics.add(f"cannot find imported file '{written}' (looked for "
                        f"{display_name(target)})",
                        item.span, "import paths are relative to the importing file")
        return
    if len(stack) >= MAX_IMPORT_DEPTH:
        diagnostics.add(f"imports nest more than {MAX_IMPORT_DEPTH} files deep", item.span)
        return
    if len(seen) >= MAX_FILES:
        diagnostics.add(f"a program may import at most {MAX_FILES:,} files", item.span)
        return
    try:
        _load(target, program, diagnostics, stack, seen, parse)
    except SourceError as problem:          # raised before the file's text is registered
        diagnostics.add(f"cannot import '{written}': {problem.message}", item.span)
    except Error as error:
        diagnostics.extend(error)


def _define(item: ast.Item, file: str, program: Program, diagnostics: Diagnostics) -> None:
    name = item.name
    span = getattr(item, "name_span", None) or item.span
    table = _table(item, program)
    if isinstance(item, ast.Train):
        if name in program.trains:
            _duplicate(f"train section for '{name}'", span, program.spans.get("train " + name),
                       diagnostics)
            return
        program.trains[name] = item
        program.spans["train " + name] = span
        return
    if name in program.spans:
        _duplicate(f"'{name}'", span, program.spans[name], diagnostics)
        return
    program.spans[name] = span
    if isinstance(item, ast.Const):
        try:
            table[name] = eval_const(item.value, program.consts, hints=not diagnostics.full)
        except Error as error:
            diagnostics.extend(error)
    elif isinstance(item, ast.Block):
        table[name] = BlockDef(item, file)
    else:
        table[name] = item


def _table(item: ast.Item, program: Program) -> dict:
    if isinstance(item, ast.Const):
        return program.consts
    if isinstance(item, ast.Block):
        return program.blocks
    if isinstance(item, ast.Model):
        return program.models
    return program.trains


def _duplicate(what: str, span: Span | None, first: Span | None,
               diagnostics: Diagnostics) -> None:
    diagnostics.add(Diagnostic(f"{what} is defined twice", span,
                               notes=[(first, "first defined here")] if first else []))


def eval_const(expr: ast.Expr, consts: dict[str, Any], hints: bool = True) -> Any:
    """Evaluate a compile-time expression: literals, other constants and arithmetic on them,
    within the limits of limits.py (a result too large is an error, not a hang).  `hints`:
    whether an unknown name gets a did-you-mean (a search over every const)."""
    if isinstance(expr, (ast.Number, ast.String, ast.Bool)):
        return expr.value
    if isinstance(expr, ast.NoneLit):
        return None
    if isinstance(expr, ast.Name):
        if expr.id in consts:
            return consts[expr.id]
        from ..errors import did_you_mean
        raise Error(f"unknown constant '{expr.id}'", expr.span,
                    did_you_mean(expr.id, consts) if hints else None)
    if isinstance(expr, ast.UnaryOp):
        value = eval_const(expr.operand, consts, hints)
        if not isinstance(value, (int, float)):
            raise Error(f"cannot apply unary `{expr.op}` to {value!r}", expr.span)
        return negate(value, expr.span) if expr.op == "-" else value
    if isinstance(expr, (ast.List, ast.Tuple)):
        items = [eval_const(i, consts, hints) for i in expr.items]
        return items if isinstance(expr, ast.List) else tuple(items)
    if isinstance(expr, ast.BinOp) and expr.op in OPERATORS:
        left, right = eval_const(expr.left, consts, hints), eval_const(expr.right, consts, hints)
        return fold(expr.op, left, right, expr.span)
    raise Error("a const must be a literal or arithmetic on other consts", expr.span)
