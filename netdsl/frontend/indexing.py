"""Indexing and slicing of tensors: `x[:, -1]`, `x[:, 0:8, ::2]`, `x[..., 0]`.

Python's rules: negative indices count from the end, missing bounds take the whole axis, an
integer index removes its axis.  Bounds are compile-time ints, kept as written (negative ones
relative to the end), so a slice of a symbolic axis needs no dimension arithmetic.  A slice
bound may also be a symbolic dim (`x[:, 0:T]`, `pe[0:T]`, `x[0:B - 1]`): the slice then has that
symbolic length, and each target reads the dim's value at run time.  Such a bound must not run
past the axis (a symbolic bound is never clamped at compile time), and must not be negative.
Lowered to one `slice` primitive whose `squeeze` drops the integer-indexed axes.  One integer
*tensor* index with `:` everywhere else (`table[t]`, `x[:, ids]`) gathers instead (`take`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import Error
from ..ir.graph import Value
from ..ir.types import Sym
from ..ops.indexing import slice_attrs
from . import ast
from .context import CallContext
from .expressions import evaluate, expect_tensor
from .limits import whole
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
    x = expect_tensor(base, expr.value.span, "an indexed value")
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
    gathered = _gather(lowerer, scope, expr, x, items)
    if gathered is not None:
        return gathered
    key: list[Any] = []
    for axis, item in enumerate(items):
        if isinstance(item, ast.Slice):
            bounds = [_bound(lowerer, scope, part, symbolic=part is not item.step)
                      for part in (item.start, item.stop, item.step)]
            if bounds[2] == 0:
                raise Error("a slice step cannot be zero", item.span)
            key.append(slice(*bounds))
        else:
            position = _bound(lowerer, scope, item)
            if position is None:
                raise Error("an index must be an int", item.span)
            dim = x.shape[axis]
            if isinstance(dim, int) and not -dim <= position < dim:
                raise Error(f"index {position} is out of range for axis {axis} of {x.type}",
                            item.span)
            key.append(position)
    if all(isinstance(k, slice) and k == slice(None) for k in key):
        return x
    result = CallContext(lowerer, expr.span).op("slice", x, **slice_attrs(tuple(key)))
    lowerer.record(lowerer.unique_record_name("slice"), "[]", "function", [x], [result],
                   expr.span)
    return result


def _gather(lowerer, scope, expr: ast.Index, x: Value, items: list) -> Any:
    """`table[t]`, `x[:, ids]`: one integer tensor index, every other item `:`, gathers along
    that axis (the `take` op, with its bounds check); its shape replaces the axis.  None when
    no item is a tensor, so the static path handles the index."""
    positions = [i for i, item in enumerate(items) if not isinstance(item, ast.Slice)]
    if len(positions) != 1:
        return None
    item = items[positions[0]]
    value = evaluate(lowerer, scope, item)
    if isinstance(value, Invalid):
        return INVALID
    if not isinstance(value, Value):
        return None
    others = [it for i, it in enumerate(items) if i != positions[0]]
    if not value.dtype.is_int or any(it.start or it.stop or it.step for it in others):
        raise Error(f"a tensor index must be an integer tensor and the only index besides "
                    f"`:`, got {value.type}", item.span,
                    hint="e.g. `table[t]` with t: i64[B], or `x[:, ids]`; slice first, then "
                         "gather")
    result = CallContext(lowerer, expr.span).op("take", x, value, axis=positions[0])
    lowerer.record(lowerer.unique_record_name("gather"), "[]", "function", [x, value],
                   [result], expr.span)
    return result


def _bound(lowerer, scope, expr, symbolic: bool = False) -> Any:
    """A compile-time int; with `symbolic`, a slice's start or stop, also a symbolic dim."""
    if expr is None:
        return None
    value = whole(evaluate(lowerer, scope, expr), expr.span, "an index")
    if isinstance(value, Value):
        raise Error("indices must be compile-time ints, or one integer tensor with `:` for "
                    "every other axis", expr.span, hint="gather with `table[t]` or `x[:, ids]`")
    if isinstance(value, Sym):
        if symbolic:
            return value
        raise Error(f"an index must be an int, got the symbolic dimension {value}", expr.span,
                    hint=f"slice by it instead, e.g. `x[{value} - 1:{value}]`, or index from "
                         f"the end with a negative int (`x[-1]`)")
    if not isinstance(value, int) or isinstance(value, bool):
        raise Error(f"an index must be an int, got {value!r}", expr.span)
    return value
