"""Rewrites of generated lines, each to spare Numba a slow compile: a buffer's `.reshape(...)`
as a view, a slice assignment as `assign(...)` (FunctionWriter.op applies both to every line a
CPU lowering returns); in a driver, a 0-d buffer's element read in its arena and integers
passed bare to separately compiled functions (FunctionWriter.driver, `compact_driver`)."""
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


# A 0-d buffer carved from an arena (`v_7 = _view(arena_f32, offsets[7], ())`) and the reads
# and writes of its one element (`v_7[()]`).
_SCALAR_CARVE = re.compile(r"(\w+) = _(?:unowned_)?view\((arena_\w+), (.+), \(\)\)")
_SCALAR_ELEMENT = re.compile(r"\b(\w+)\[\(\)\]")


def scalar_places(carves: dict[str, str]) -> dict[str, str]:
    """Each 0-d buffer carved from an arena -> its element in the arena (`arena_f32[offsets[7]]`).

    Kernel groups read and write such a buffer's element there, not through a 0-d view: a
    view is a variable of the driver, typed and lowered by Numba with its intrinsic call and
    its slot read, and its array structure goes through LLVM too.  An Adam step's gradient
    norms read two partial sums per parameter and write one norm each: deep_residual's third
    part carved 118 such views.  Its cold epoch, alternated runs: -0.5 s (paired median of
    3; 11.2 against 11.7 s)."""
    places = {}
    for name, line in carves.items():
        match = _SCALAR_CARVE.fullmatch(line)
        if match and match.group(1) == name:
            places[name] = f"{match.group(2)}[{match.group(3)}]"
    return places


def scalars_in_place(lines: list[str], places: dict[str, str]) -> list[str]:
    """`lines` reading and writing the buffers of `places` as arena elements (above); a line
    that names such a buffer otherwise (passing it to a library kernel) keeps its carve."""
    def element(match: re.Match) -> str:
        return places.get(match.group(1), match.group(0))
    return [_SCALAR_ELEMENT.sub(element, line) for line in lines]


_CALL_LINE = re.compile(r"(\s*)(\w+)\((.*)\)")
_INT64_ARGUMENT = re.compile(r"np\.int64\(\(?(\d+|d_\d+)\)?\)")


def plain_integers(lines: list[str], separate: set[str]) -> list[str]:
    """`lines` with the integer arguments of calls to separately compiled functions (names in
    `separate`) passed bare: `kernel_0(np.int64(256), np.int64((d_0)), v_0)` ->
    `kernel_0(256, d_0, v_0)`; arguments of calls nested in them are left as they are.

    Code generation wraps integers in `np.int64()` so that a jitted callee is compiled once
    for int64, not once per literal value; separate.py's call types its callee with the
    arguments' literal types dropped, so there a bare literal compiles the same function and
    converts to int64 as a constant.  Each `np.int64(256)` is four statements of Numba's IR
    (the global, its attribute, the constant, the call) and a call to type and lower:
    deep_residual's driver parts passed 1,292 of them (a repeated block's call takes twenty
    slot numbers).  Its cold epoch, alternated runs: -1.0 s more (paired median of 3, with
    `scalar_places` -1.5 s: 8.9 against 12.0 s); the MLP's and LeNet-5's cold compiles
    unchanged (-0.03 and +0.04 s)."""
    out = []
    for line in lines:
        match = _CALL_LINE.fullmatch(line)
        if match is None or match.group(2) not in separate or "np.int64(" not in line:
            out.append(line)
            continue
        if _closing(line, match.start(3) - 1) != len(line) - 1:
            out.append(line)                  # `f(a)(b)`: not one call, left as it is
            continue
        bare = [m.group(1) if (m := _INT64_ARGUMENT.fullmatch(a.strip())) else a.strip()
                for a in _top_level_split(match.group(3))]
        out.append(f"{match.group(1)}{match.group(2)}({', '.join(bare)})")
    return out


# An owned view, in a step driver, of one of the driver's own arrays: an input (`in_`), a
# parameter's view (`p_`), a constant (`c_`), a buffer carved from an arena (`v_`, `snap_`) or
# a view of one (`v_view_`), each an argument or made from one.  Not the arrays a driver
# allocates itself (a split reduction's partial sums, render.py), whose views must own them.
_DRIVER_VIEW = re.compile(r"\b_view\(((?:in|p|c|v|snap|v_view)_\d+)\b")


def unowned_views(lines: list[str], keep: set[str], view_call: str) -> list[str]:
    """`lines` (a step driver's) with their views of the driver's own arrays made by
    `view_call` (support.unowned_view), but on lines assigning a name in `keep`."""
    out = []
    for line in lines:
        target = line.strip().split(" = ", 1)[0]
        out.append(line if target in keep else
                   _DRIVER_VIEW.sub(lambda match: f"{view_call}({match.group(1)}", line))
    return out


__all__ = ["plain_integers", "reshapes_as_views", "scalar_places", "scalars_in_place",
           "slice_assignments", "unowned_views"]
