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
from ..source import Span, display_name
from . import ast
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
    from .parser import parse_file
    path = Path(path)
    if not path.exists():
        raise Error(f"cannot open '{path}': no such file")
    if path.suffix != ".net":
        raise Error(f"'{path}' is not a .net file", hint="netdsl reads model files ending in .net")
    diagnostics = Diagnostics()
    program = Program(main=display_name(path), base_dir=path.resolve().parent)
    _load(path.resolve(), program, diagnostics, stack=[], seen=set(), parse=parse_file)
    diagnostics.raise_if_any()
    return program


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


def _import(item: ast.Import, importer: Path, program: Program, diagnostics: Diagnostics,
            stack: list[Path], seen: set[Path], parse) -> None:
    target = (importer.parent / item.path).resolve()
    if target in stack:
        chain = " -> ".join(display_name(p) for p in stack[stack.index(target):] + [target])
        diagnostics.add(f"import cycle: {chain}", item.span,
                        "move the shared blocks into a file that both can import")
        return
    if target in seen:
        return
    if not target.exists():
        diagnostics.add(f"cannot find imported file '{item.path}' (looked for "
                        f"{display_name(target)})",
                        item.span, "import paths are relative to the importing file")
        return
    try:
        _load(target, program, diagnostics, stack, seen, parse)
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
            table[name] = eval_const(item.value, program.consts)
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


_CONST_OPERATORS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "//": lambda a, b: a // b, "%": lambda a, b: a % b,
    "**": lambda a, b: a ** b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def eval_const(expr: ast.Expr, consts: dict[str, Any]) -> Any:
    """Evaluate a compile-time expression: literals, other constants and arithmetic on them."""
    if isinstance(expr, (ast.Number, ast.String, ast.Bool)):
        return expr.value
    if isinstance(expr, ast.NoneLit):
        return None
    if isinstance(expr, ast.Name):
        if expr.id in consts:
            return consts[expr.id]
        from ..errors import did_you_mean
        raise Error(f"unknown constant '{expr.id}'", expr.span, did_you_mean(expr.id, consts))
    if isinstance(expr, ast.UnaryOp):
        value = eval_const(expr.operand, consts)
        return -value if expr.op == "-" else value
    if isinstance(expr, (ast.List, ast.Tuple)):
        items = [eval_const(i, consts) for i in expr.items]
        return items if isinstance(expr, ast.List) else tuple(items)
    if isinstance(expr, ast.BinOp) and expr.op in _CONST_OPERATORS:
        left, right = eval_const(expr.left, consts), eval_const(expr.right, consts)
        try:
            return _CONST_OPERATORS[expr.op](left, right)
        except (TypeError, ZeroDivisionError) as problem:
            raise Error(f"cannot evaluate this constant: {problem}", expr.span) from None
    raise Error("a const must be a literal or arithmetic on other consts", expr.span)
