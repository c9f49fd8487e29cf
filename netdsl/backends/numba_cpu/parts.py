"""A long step driver split into parts: functions of a few dozen statements that the driver
calls in order (separately, separate.py), each carving only the buffers it names.

LLVM's SROA pass, which turns Numba's one stack slot per variable into registers, takes time
superlinear in the size of a function: alone on deep_residual's driver (1,828 slots, 836
blocks) it took 4.9 s on a quiet machine and 33 s beside a test run, on the same net with 6
blocks 5.3 s and with 3 blocks 1.9 s (both beside the test run).  Parts of about
PART_STATEMENTS top-level statements keep each function small: deep_residual's step compiles
in 16.2-19.7 s (median 16.5) against 18.4-23.4 s (19.9) whole, three runs each, alternated,
with Numba's library kernels cached.  A part takes the driver's own arguments; the dims are
read again from the inputs' shapes and its buffers are views made again from the arena (a few
instructions each).

Parts are cut only between statements where no local assigned before the cut is read after it
(a group's loop nest and the scalars it reads stay together); where a local would cross
every cut, or the return reads one, the driver stays whole.
"""
from __future__ import annotations

import ast
import re

# Drivers with more top-level statements than SPLIT_ABOVE are split into parts of about
# PART_STATEMENTS (deep_residual: 10, 20 and 40 compiled alike, ~17 s; each part is a cache
# load of its own in a warm start, so the largest).
SPLIT_ABOVE = 120
PART_STATEMENTS = 40
_CONTINUES = re.compile(r"(else|elif|except|finally)\b")


def split_driver(prologue: list[str], body: list[str], returned: list[str],
                 carves: dict[str, str], arguments: list[str], known: set[str],
                 define) -> list[str] | None:
    """The driver lines calling parts for `body` (top-level statements and their indented
    lines), or None where it is short or cannot be split.  `returned` are the lines after
    it (the return), which must read no local of the body; `carves` maps each buffer or
    parameter-view name to the line making it; `define(name, lines)` adds a part (its
    definition lines) to the module and returns the name to call."""
    statements = _statements(body)
    if sum(map(_count, statements)) <= SPLIT_ABOVE:
        return None
    available = set(arguments) | set(carves) | known | _assigned(prologue)
    if _free(returned, available):
        return None
    # A cut before statement i is safe when no local assigned before it is read from it on.
    assigned = [_assigned(lines) for lines in statements]
    loaded = [_loaded(lines) - available for lines in statements]
    later: list[set[str]] = [set() for _ in range(len(statements) + 1)]
    for i in range(len(statements) - 1, -1, -1):
        later[i] = later[i + 1] | loaded[i]
    parts: list[list[str]] = [[]]
    before: set[str] = set()
    for i, lines in enumerate(statements):
        if _count(parts[-1]) >= PART_STATEMENTS and not (before & later[i]):
            parts.append([])
        parts[-1].extend(lines)
        before |= assigned[i]
    if len(parts) < 2 or any(_free(lines, available) for lines in parts):
        return None                       # a local crosses parts: keep the driver whole
    signature = ", ".join(arguments)
    calls = []
    for k, lines in enumerate(parts):
        definition = [f"def part_{k}({signature}):",
                      *("    " + line for line in prologue + carves_for(lines, carves) + lines),
                      "    return 0"]
        calls.append(f"{define(f'part_{k}', definition)}({signature})")
    return calls


def _statements(body: list[str]) -> list[list[str]]:
    """`body` cut before each unindented line (a statement, or a comment) that does not
    continue the statement before it (`else:`, `elif ...:`)."""
    statements: list[list[str]] = []
    for line in body:
        if statements and (line.startswith((" ", "\t")) or _CONTINUES.match(line)):
            statements[-1].append(line)
        else:
            statements.append([line])
    return statements


def _count(lines: list[str]) -> int:
    return sum(1 for line in lines if not line.startswith((" ", "\t", "#")))


def carves_for(lines: list[str], carves: dict[str, str]) -> list[str]:
    """The carve lines `lines` need, with the views those views are made from, in the order
    of `carves` (a view's source is carved before it)."""
    needed: set[str] = set()
    pending = set(re.findall(r"[A-Za-z_]\w*", "\n".join(lines))) & set(carves)
    while pending:
        name = pending.pop()
        needed.add(name)
        pending |= (set(re.findall(r"[A-Za-z_]\w*", carves[name])) & set(carves)) - needed
    return [line for name, line in carves.items() if name in needed]


def _assigned(lines: list[str]) -> set[str]:
    tree = ast.parse("\n".join(lines) or "pass")
    return {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}


def _loaded(lines: list[str]) -> set[str]:
    """Names `lines` read, the targets of augmented assignments (`o += n`) among them."""
    tree = ast.parse("\n".join(lines) or "pass")
    return {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)} | \
        {node.target.id for node in ast.walk(tree)
         if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name)}


def _free(lines: list[str], available: set[str]) -> set[str]:
    """Names `lines` read that neither they assign nor `available` holds."""
    return _loaded(lines) - _assigned(lines) - available


__all__ = ["PART_STATEMENTS", "SPLIT_ABOVE", "carves_for", "split_driver"]
