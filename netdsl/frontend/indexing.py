"""Indexing and slicing of tensors: `x[:, -1]`, `x[:, 0:8, ::2]`, `x[..., 0]`.

Python's rules: negative indices count from the end, missing bounds take the whole axis, an
integer index removes its axis.  Bounds are compile-time ints; on a symbolic axis a negative
bound becomes dimension arithmetic (`T - 1`).  Lowered to one `slice` primitive (static
start/stop/step per axis) followed by a `reshape` that drops the integer-indexed axes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import Error
from ..ir.graph import Value
from ..ir.types import Sym, dim_add
from . import ast
from .context import CallContext
from .expressions import evaluate, expect_tensor
from .values import INVALID, Invalid

if TYPE_CHECKING:
    from .lower import Lowerer, Scope


def index(lowerer: "Lowerer", scope: "Scope", expr: ast.Index) -> Any:
    """The value of `x[items]`."""
    base = evaluate(lowerer, scope, expr.value)
    if isinstance(base, (list, tuple)) and len(expr.items) == 1:
        position = evaluate(lowerer, scope, expr.items[0])
        if isinstance(position, int) and -len(base) <= position < len(base):
            return base[position]                  # picking from a tuple result
        raise Error(f"index {position!r} is out of range for a tuple of {len(base)}", expr.span)
    x = expect_tensor(base, expr.value, "an indexed value")
    if isinstance(x, Invalid):
        return INVALID
    items = list(expr.items)
    ellipses = [i for i, item in enumerate(items) if isinstance(item, ast.EllipsisLit)]
    if len(ellipses) > 1:
        raise Error("an index may contain `...` only once", expr.span)
    explicit = len(items) - len(ellipses)
    if explicit > x.rank:
        raise Error(f"too many indices ({explicit}) for {x.type} (rank {x.rank})", expr.span)
    if ellipses:
        at = ellipses[0]
        items = items[:at] + [ast.Slice(span=expr.span)] * (x.rank - explicit) + items[at + 1:]
    items += [ast.Slice(span=expr.span)] * (x.rank - len(items))
    starts, stops, steps, keep = [], [], [], []
    for axis, item in enumerate(items):
        dim = x.shape[axis]
        if isinstance(item, ast.Slice):
            start, stop, step = (_bound(lowerer, scope, part) for part in
                                 (item.start, item.stop, item.step))
            step = 1 if step is None else step
            if step == 0:
                raise Error("a slice step cannot be zero", item.span)
            start, stop = _normalize_slice(start, stop, step, dim, item)
            starts.append(start), stops.append(stop), steps.append(step), keep.append(True)
        else:
            position = _bound(lowerer, scope, item)
            if position is None:
                raise Error("an index must be an int", item.span)
            start = _normalize_index(position, dim, item)
            starts.append(start), stops.append(dim_add(start, 1)), steps.append(1)
            keep.append(False)
    ctx = CallContext(lowerer, expr.span)
    result = x
    if any(s != 0 for s in starts) or any(e != d for e, d in zip(stops, x.shape)) or \
            any(s != 1 for s in steps):
        result = ctx.op("slice", x, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))
    if not all(keep):
        shape = tuple(d for d, k in zip(result.shape, keep) if k)
        result = ctx.op("reshape", result, shape=shape)
    lowerer.record(lowerer.unique_record_name("slice"), "[]", "function", [x], [result],
                   expr.span)
    return result


def _bound(lowerer, scope, expr) -> Any:
    if expr is None:
        return None
    value = evaluate(lowerer, scope, expr)
    if isinstance(value, Value):
        raise Error("indices must be compile-time ints; use gather for tensor indices",
                    expr.span)
    if not isinstance(value, (int, Sym)) or isinstance(value, bool):
        raise Error(f"an index must be an int, got {value!r}", expr.span)
    return value


def _normalize_index(position, dim, item):
    if isinstance(position, int) and position < 0:
        if isinstance(dim, int) and position < -dim:
            raise Error(f"index {position} is out of range for an axis of size {dim}", item.span)
        return dim_add(dim, position)
    if isinstance(dim, int) and isinstance(position, int) and position >= dim:
        raise Error(f"index {position} is out of range for an axis of size {dim}", item.span)
    return position


def _normalize_slice(start, stop, step, dim, item):
    """Python slice bounds made explicit and non-negative (clamped on known axes)."""
    if isinstance(dim, int):
        if not all(isinstance(b, (int, type(None))) for b in (start, stop)):
            raise Error("slice bounds on a known axis must be ints", item.span)
        start, stop, _ = slice(start, stop, step).indices(dim)
        if step < 0 and stop < 0:
            stop = -1                       # slice(None, None, -1) on a known axis
        return start, stop
    if step < 0:
        raise Error(f"negative steps need a known axis size, but this axis is {dim}", item.span)
    start = 0 if start is None else (dim_add(dim, start) if isinstance(start, int) and start < 0
                                     else start)
    stop = dim if stop is None else (dim_add(dim, stop) if isinstance(stop, int) and stop < 0
                                     else stop)
    return start, stop
