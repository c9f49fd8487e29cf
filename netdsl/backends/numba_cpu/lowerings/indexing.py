"""CPU lowerings of slice, take and one_hot, with their gradients (netdsl/ops/indexing.py)."""
from __future__ import annotations

from ....errors import Error
from ....ir.types import TensorType, dim_sub, normalize_axis
from ....ops.indexing import INDEX_ERROR, bounds_text, slice_key
from . import lowering


def _source_key(node, x_type: TensorType, array: str, sliced: str | None = None) -> str:
    """The subscript of a slice node as Numba source.

    A symbolic bound is written relative to its axis' run-time extent (`T - 1` becomes
    `x.shape[1] - 1`); the lowering of `x[:, -1]` makes exactly these.  A bound that is a dim
    of another axis (`pe[0:T]` on an axis of 16) is read from the run-time extent of the sliced
    array `sliced` (step 1 only): stop = start + its length, or start = stop - its length.
    """
    attrs = [node.attrs.get(k, ()) for k in ("starts", "stops", "steps", "squeeze")]
    dropped = {axis % x_type.rank for axis in attrs[3]}

    def relative(value, axis):
        if value is None or isinstance(value, int):
            return value
        offset = dim_sub(value, x_type.shape[axis])
        if not isinstance(offset, int):
            return _UNRESOLVED
        extent = f"{array}.shape[{axis}]"
        return extent if offset == 0 else f"{extent} {'+' if offset > 0 else '-'} {abs(offset)}"

    def position(value, axis, default):
        """A bound as a non-negative position (source), counting negative ints from the end."""
        if value is None:
            return default
        if isinstance(value, int) and value < 0:
            return f"{array}.shape[{axis}] - {-value}"
        return str(value)

    def bound(value, axis, which):
        rendered = relative(value, axis)
        if rendered is not _UNRESOLVED:
            return rendered
        step = (list(attrs[2]) + [None] * x_type.rank)[axis] or 1
        starts, stops = (list(a) + [None] * x_type.rank for a in attrs[:2])
        other = relative(stops[axis] if which == "start" else starts[axis], axis)
        if sliced is None or step != 1 or axis in dropped or other is _UNRESOLVED:
            raise Error(f"the cpu target cannot slice an axis of length {x_type.shape[axis]} "
                        f"at {value} here: a symbolic bound must be the axis' own length plus "
                        f"or minus a number, or, with step 1, a bound whose other end is such "
                        f"a bound or a number", node.span,
                        hint="slice from a number (`pe[0:T]`) or from the axis' end "
                             "(`x[:, -2:]`), or run it with --target reference")
        length = f"{sliced}.shape[{axis - sum(1 for d in dropped if d < axis)}]"
        if which == "stop":
            return f"{position(other, axis, '0')} + {length}"
        return f"{position(other, axis, f'{array}.shape[{axis}]')} - {length}"

    counter = {}

    def each(value, axis):
        # slice_key asks for the start, then the stop, of every axis in turn.
        which = "stop" if counter.get(axis) else "start"
        counter[axis] = True
        return bound(value, axis, which)

    return _source(slice_key(x_type.rank, *attrs, bound=each))


_UNRESOLVED = object()


def _guard_lines(ctx, idx: str, n: str) -> list[str]:
    """A serial loop that raises INDEX_ERROR for an index outside [0, n) (before any access)."""
    j, k = ctx.fresh("j"), ctx.fresh("k")
    return [f"for {j} in range({idx}.shape[0]):",
            f"    {k} = {idx}[{j}]",
            f"    if {k} < 0 or {k} >= {n}:",
            f"        raise IndexError({INDEX_ERROR!r})"]


def _blocks(x: str, axis: int, rank: int) -> tuple[str, str, str]:
    """Source for the (outer, n, inner) extents of x around `axis`."""
    def product(axes):
        return " * ".join(f"{x}.shape[{a}]" for a in axes) or "1"
    return product(range(axis)), f"{x}.shape[{axis}]", product(range(axis + 1, rank))


def _source(key: tuple) -> str:
    """The subscript as Numba source text."""
    def part(item):
        if isinstance(item, (int, str)):        # an index, or source text for a bound
            return str(item)
        return bounds_text(item.start, item.stop, item.step if item.step != 1 else None)
    return ", ".join(part(item) for item in key) or "..."


@lowering('slice')
def lower_slice(ctx, node, ins, outs):
    sliced = outs[0] if node.outputs[0].rank else None
    key = _source_key(node, node.inputs[0].type, ins[0], sliced)
    return [f"{outs[0]}[...] = {ins[0]}[{key}]"]


@lowering('slice_grad')
def lower_slice_grad(ctx, node, ins, outs):
    sliced = ins[0] if node.inputs[0].rank else None
    key = _source_key(node, node.inputs[1].type, ins[1], sliced)
    source = f"{ins[0]}[()]" if node.inputs[0].rank == 0 else ins[0]
    return [f"{outs[0]}[...] = 0", f"{outs[0]}[{key}] = {source}"]


@lowering('take')
def lower_take(ctx, node, ins, outs):
    axis = normalize_axis(node.attrs.get("axis", 0), node.inputs[0].rank)
    outer, n, inner = _blocks(ins[0], axis, node.inputs[0].rank)
    src, idx, dst, j, i, k, m = (ctx.fresh(p) for p in ("src", "idx", "dst", *"jikm"))
    # Parallel over the index positions: each writes its own output rows.  The bounds
    # check is its own serial loop: a raise inside a prange would stop the parallelisation.
    return [f"{src} = {ins[0]}.reshape(({outer}, {n}, {inner}))",
            f"{idx} = {ins[1]}.reshape(({ins[1]}.size,))",
            f"{dst} = {outs[0]}.reshape(({outer}, {ins[1]}.size, {inner}))",
            *_guard_lines(ctx, idx, f"{src}.shape[1]"),
            f"for {j} in {ctx.range}({idx}.shape[0]):",
            f"    {k} = {idx}[{j}]",
            f"    for {i} in range({src}.shape[0]):",
            f"        for {m} in range({src}.shape[2]):",
            f"            {dst}[{i}, {j}, {m}] = {src}[{i}, {k}, {m}]"]


@lowering('take_grad')
def lower_take_grad(ctx, node, ins, outs):
    axis = normalize_axis(node.attrs.get("axis", 0), node.inputs[2].rank)
    outer, n, inner = _blocks(ins[2], axis, node.inputs[2].rank)
    grad, idx, dst, j, i, k, m = (ctx.fresh(p) for p in ("grad", "idx", "dst", *"jikm"))
    # Parallel over the outer rows only: repeated indices add into the same element, so
    # index positions within a row must run in order.
    return [f"{outs[0]}[...] = 0",
            f"{dst} = {outs[0]}.reshape(({outer}, {n}, {inner}))",
            f"{idx} = {ins[1]}.reshape(({ins[1]}.size,))",
            f"{grad} = {ins[0]}.reshape(({outer}, {ins[1]}.size, {inner}))",
            *_guard_lines(ctx, idx, f"{dst}.shape[1]"),
            f"for {i} in {ctx.range}({dst}.shape[0]):",
            f"    for {j} in range({idx}.shape[0]):",
            f"        {k} = {idx}[{j}]",
            f"        for {m} in range({dst}.shape[2]):",
            f"            {dst}[{i}, {k}, {m}] += {grad}[{i}, {j}, {m}]"]


@lowering('one_hot')
def lower_one_hot(ctx, node, ins, outs):
    idx, dst, j, k = (ctx.fresh(p) for p in ("idx", "dst", "j", "k"))
    depth = node.attrs["depth"]
    return [f"{outs[0]}[...] = 0",
            f"{idx} = {ins[0]}.reshape(({ins[0]}.size,))",
            f"{dst} = {outs[0]}.reshape(({ins[0]}.size, {depth}))",
            f"for {j} in {ctx.range}({idx}.shape[0]):",
            f"    {k} = {idx}[{j}]",
            f"    if 0 <= {k} < {depth}:",
            f"        {dst}[{j}, {k}] = 1"]
