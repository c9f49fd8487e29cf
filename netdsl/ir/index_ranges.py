"""Which graph inputs are used as indices, and the check that their values are in range.

`index_ranges(graph)` finds the integer inputs whose values are used as indices, and the range
[0, n) each must lie in:

* ids of an `Embedding` (the indices of `take`): n is the number of rows of the table;
* labels given to `one_hot`: n is the depth;
* class labels of `cross_entropy` (`softmax_cross_entropy`): n is the number of classes.

An input counts when it reaches the index operand directly or through ops that move values
without changing them (reshape, slice, transpose, concat, a cast, ...).  An index computed
from the inputs (`ids + 1`) is not checked here; the compiled kernels still refuse it.

`check_index_ranges(arrays, ranges)` costs one min and one max per checked input (argwhere only
on failure).  It lives in ir/ because both the runtime (checking data before training) and the
targets (naming the input when a kernel refuses an index) use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import Diagnostic, Error
from ..source import Span
from .graph import Graph, Value

# Ops whose output holds the values of their data operands (positions of the operands listed),
# so an index that went through them is still the input's value.
_PASSTHROUGH = {"reshape": (0,), "expand_dims": (0,), "squeeze": (0,), "transpose": (0,),
                "slice": (0,), "broadcast_to": (0,), "identity": (0,), "stop_gradient": (0,),
                "cast": (0,), "concat": None, "where": (1, 2)}

@dataclass(frozen=True)
class IndexRange:
    """An input whose values index something: they must lie in [0, high)."""

    input: str
    high: int
    use: str                     # what the values are: "ids of emb.weight (20 rows)"
    span: Span | None            # the op that uses them
    hint: str = ""
    note: str = "used as indices here"


def index_ranges(graph: Graph) -> list[IndexRange]:
    """The inputs of `graph` used as indices, with their ranges (see the module docstring)."""
    found: dict[tuple, IndexRange] = {}
    for node in graph.nodes:
        use = _index_use(node)
        if use is None:
            continue
        operand, high, what, hint, note = use
        if not isinstance(high, (int, np.integer)):
            continue                      # a symbolic bound: the kernels' guard still holds
        for value in _sources(node.inputs[operand]):
            if value.kind == "input" and value.name and not value.name.startswith("__"):
                key = (value.name, int(high))
                found.setdefault(key, IndexRange(value.name, int(high), what, node.span, hint,
                                                 note))
    return list(found.values())


def _index_use(node) -> tuple[int, object, str, str, str] | None:
    """(operand, n, what the values are, hint, note) when `node` uses an operand as indices."""
    name = node.op.name
    if name == "take":
        table, axis = node.inputs[0], node.attrs.get("axis", 0)
        n = table.shape[axis % max(table.rank, 1)]
        owner = table.name if table.kind in ("param", "state") and table.name else "a table"
        return (1, n, f"ids of {owner} ({n} rows)",
                "ids count from 0 and must be below the Embedding's vocabulary size: raise "
                "the vocabulary (the first argument of Embedding) or remap the ids",
                "used as ids here")
    if name in ("softmax_cross_entropy", "softmax_cross_entropy_grad"):
        n = node.inputs[0].shape[-1]
        return (1, n, f"class labels of cross_entropy ({n} classes)",
                f"class labels count from 0: for labels 1..{n}, subtract 1 from them or give "
                f"the model {n + 1} outputs" if isinstance(n, int) else "",
                "used as class labels here")
    if name == "one_hot":
        n = node.attrs.get("depth")
        return (0, n, f"labels of one_hot (depth {n})",
                "one_hot(labels, depth) takes labels in [0, depth)", "used as labels here")
    return None


def _sources(value: Value) -> list[Value]:
    """The values that flow unchanged into `value` through passthrough ops (itself if none)."""
    result, stack, seen = [], [value], set()
    while stack:
        current = stack.pop()
        if current.id in seen:
            continue
        seen.add(current.id)
        producer = current.producer
        operands = _PASSTHROUGH.get(producer.op.name, ()) if producer is not None else ()
        if producer is None or operands == ():
            result.append(current)
            continue
        positions = range(len(producer.inputs)) if operands is None else operands
        stack.extend(producer.inputs[p] for p in positions if p < len(producer.inputs))
    return result


def check_index_ranges(arrays: Mapping[str, np.ndarray], ranges: list[IndexRange],
                       spans: Mapping[str, Span | None] | None = None,
                       what: str = "input") -> None:
    """Raise an Error naming the input, the first value outside its range and its position."""
    for check in ranges:
        array = arrays.get(check.input)
        if array is None:
            continue
        array = np.asarray(array)
        if array.size == 0 or array.dtype.kind not in "biuf":
            continue
        values = np.trunc(array) if array.dtype.kind == "f" else array   # as a cast truncates
        low, high = values.min(), values.max()
        if low >= 0 and high < check.high:          # NaN fails both comparisons
            continue
        bad = ~((values >= 0) & (values < check.high))
        where = [int(i) for i in np.argwhere(bad)[0]]
        value = array[tuple(where)]
        shown = int(value) if array.dtype.kind in "biu" else float(value)
        span = (spans or {}).get(check.input)
        notes = [(check.span, check.note)] if check.span is not None else []
        raise Error(Diagnostic(
            f"{what} '{check.input}' holds {shown} at index {where}, outside [0, {check.high}): "
            f"its values are the {check.use}", span, check.hint or None, notes))
