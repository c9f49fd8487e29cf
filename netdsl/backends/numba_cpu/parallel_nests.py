"""A parallel loop nest's prange as a part function run on Numba's threads (parallel_calls.py).

A loop nest the codegen runs in parallel (`kernel_nests.emit_nest`) is rendered as a function
whose outermost loop is a `prange` (render.py; a split reduction's prange runs over its chunks,
each with partial results of its own).  Numba's parfor passes and the gufunc they build cost
each such function ~0.3-1 s of a cold compile; a transformer's step has twenty of them.  Here
the function is cut at its prange into

* `<name>_part(part_number, part_total, part_extent, <what the loop reads>)`: the loop's
  body for its indices `part_number * part_extent // part_total` up to
  `(part_number + 1) * part_extent // part_total`, serially, and
* the function itself, which runs the lines before the loop (views, a split reduction's partial
  arrays), then `<name>_part` for every part on Numba's threads (`_in_parallel`: one part per
  thread, at most one per index), then the lines after it (the partial results combined).

Each index runs the same code as under the prange, and each part's indices in order, so the
numbers are the prange's (a split reduction's chunks are fixed, SPLIT_CHUNKS, whatever the
thread count).  A function whose prange is not a statement of its own body, or whose loop
assigns a name the lines after it read, is left as it is.
"""
from __future__ import annotations

import ast
import re

from .parts import _loaded  # names read, `o += n`'s target too

_PRANGE = re.compile(r"^    for (\w+) in prange\((.+)\):$")
_VIEW = re.compile(r"^    (\w+) = _(?:unowned_)?view\((\w+), ")


def split_parallel(lines: list[str], name: str) -> tuple[list[str], list[str], bool] | None:
    """(the function's new lines, the part function's lines, whether two of the part's
    arguments may be views of one array) for the njit function `lines` (its `def` line first,
    no decorator) named `name`, or None where it cannot be cut."""
    found = [k for k, line in enumerate(lines) if _PRANGE.match(line)]
    if len(found) != 1 or any("prange(" in line for k, line in enumerate(lines)
                              if k != found[0]):
        return None
    at = found[0]
    index, extent = _PRANGE.match(lines[at]).groups()
    end = at + 1
    while end < len(lines) and (lines[end].startswith("        ") or not lines[end].strip()):
        end += 1
    prologue, body, epilogue = lines[1:at], lines[at + 1:end], lines[end:]
    definition = ast.parse(lines[0] + "\n    pass").body[0]
    parameters = [argument.arg for argument in definition.args.args]
    before = parameters + [n for n in _stored(prologue) if n not in parameters]
    body_stored = set(_stored([line[4:] for line in body]))
    read = _loaded(_dedent([line[4:] for line in body]))
    if body_stored & _loaded(_dedent(epilogue)):
        return None                   # a name the loop makes is read after it: not a part's
    arguments = [n for n in dict.fromkeys(before) if n in read and n not in body_stored]
    names = ", ".join(arguments)
    # Names of their own (render.py's locals are i0, a0, n0, acc, parts, c, j, ...), and none
    # with the function's: a shared nest's module text is its cache key (codegen.py).
    part = [f"def {name}_part(part_number, part_total, part_extent, {names}):",
            f"    for {index} in range(part_number * part_extent // part_total,",
            "                         (part_number + 1) * part_extent // part_total):",
            *body,
            "    return 0"]
    # As Numba's parfor passes judged the prange's arrays: views the function makes of one
    # array may overlap; distinct arrays it takes do not (the codegen passes one array once).
    root: dict[str, str] = {}
    for line in prologue:
        view = _VIEW.match(line)
        if view is not None:
            root[view.group(1)] = root.get(view.group(2), view.group(2))
    roots = [root.get(argument, argument) for argument in arguments]
    aliased = len(set(roots)) < len(roots)
    new = [lines[0], *prologue,
           f"    parallel_n = np.int64({extent})",
           "    parallel_k = _min2(_threads(), parallel_n)",
           f"    {name}_parts(parallel_k, parallel_k, parallel_n, {names})",
           *epilogue]
    return new, part, aliased


def _stored(lines: list[str]) -> list[str]:
    """Names the lines assign, in order of first assignment."""
    tree = ast.parse("\n".join(_dedent(lines)) or "pass")
    return list(dict.fromkeys(node.id for node in ast.walk(tree)
                              if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)))


def _dedent(lines: list[str]) -> list[str]:
    """The lines one level (4 spaces) less indented."""
    return [line[4:] if line.startswith("    ") else line for line in lines]


__all__ = ["split_parallel"]
