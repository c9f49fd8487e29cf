"""Rewrites of a lowering's lines before they go into generated code, each to spare Numba a
slow compile: a buffer's `.reshape(...)` as a view, a slice assignment as `assign(...)`.
(FunctionWriter.op applies both to every line a CPU lowering returns.)"""
from __future__ import annotations

import re

_SLICE_ASSIGN = re.compile(r"^(\s*)([A-Za-z_][A-Za-z_0-9]*)\[(.+?)\] = (.+)$")
# A buffer, input or parameter of generated code: a C-contiguous array (bind makes inputs so).
_RESHAPED = re.compile(r"\b((?:v|v_view|in|p)_\d+)\.reshape\(")


def reshapes_as_views(line: str) -> str:
    """`v_3.reshape(a, b)` / `.reshape((a, b))` / `.reshape(x.shape)` of a buffer, input or
    parameter as `_view(v_3, 0, (a, b))`: Numba's reshape compiles a shape-checking helper
    (`normalize_reshape_value`, ~0.2 s of the MLP step's cold compile) and as much IR per
    call as a small kernel; a view of a C-contiguous array of the same size is the same
    array (`view` refuses any other layout, at compile time).  Left as it is: a reshape
    with an inferred (-1) dimension."""
    match = _RESHAPED.search(line)
    if match is None:
        return line
    close = _closing(line, match.end() - 1) + 1
    if close == 0:                      # unbalanced: not generated code's, left as it is
        return line
    inner = line[match.end():close - 1]
    arguments = _top_level_split(inner)
    rest = reshapes_as_views(line[close:])
    if any(argument.strip() == "-1" for argument in arguments):
        return line[:close] + rest
    if len(arguments) == 1:
        only = arguments[0].strip()
        if only.startswith("(") and _closing(only, 0) == len(only) - 1 or \
                only.endswith(".shape"):
            shape = only
        else:
            shape = f"({only},)"
    else:
        shape = f"({inner})"
    return f"{line[:match.start()]}_view({match.group(1)}, 0, {shape}){rest}"


def _closing(text: str, start: int) -> int:
    """The index of the parenthesis closing the one at `start`."""
    depth = 0
    for index in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return index
    return -1


def _top_level_split(text: str) -> list[str]:
    """`text` split at its commas outside brackets."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current] if current.strip() or not parts else parts


def slice_assignments(lines, ctx) -> list[str]:
    """Slice assignments `x[...] = value`, `x[a:b, 2] = value` as `assign(x[...], value)`
    (numba_support.assign): Numba's slice assignment compiles string-formatting code for
    its error message, seconds per process.  Element stores (`x[i, j] = v`) stay."""
    from .support import assign      # imports Numba: only when generating code

    result = []
    for line in lines:
        match = _SLICE_ASSIGN.match(line)
        if match and (":" in match.group(3) or "..." in match.group(3)):
            indent, target, key, value = match.groups()
            view = target if key == "..." else f"{target}[{key}]"
            line = f"{indent}{ctx.use(assign)}({view}, {value})"
        result.append(line)
    return result


__all__ = ["reshapes_as_views", "slice_assignments"]
