"""CPU lowerings of the reductions (netdsl/ops/reduce.py) that do not fuse into loop nests.

Each views the input as a 2-D (kept, reduced) array: the reduced axes are moved last (a copy
only when they are not already last), one output element per row, rows in parallel.  Float sums
accumulate in f64, so f32 results are at least as accurate as NumPy's pairwise summation.
"""
from __future__ import annotations

from ....ir.types import DType
from ....ops.reduce import reduced_axes
from . import lowering


def reduction_lines(ctx, node, source: str, out: str, axes, row_body) -> list[str]:
    """Loop over the output's elements; `row_body(row, i, result)` reduces row `row[i, :]`.

    Returns lines that bind a 2-D (outer, inner) view of `source` with the reduced axes last and
    a flat view of `out`, then loop over the rows (prange when the context is parallel).
    """
    x = node.inputs[0]
    chosen = reduced_axes(x.type, axes)
    kept = [axis for axis in range(x.rank) if axis not in chosen]
    rows, row, flat, i = ctx.fresh("rows"), ctx.fresh("row"), ctx.fresh("flat"), ctx.fresh("i")
    outer = " * ".join(f"{source}.shape[{a}]" for a in kept) or "1"
    inner = " * ".join(f"{source}.shape[{a}]" for a in chosen) or "1"
    perm = tuple(kept + list(chosen))
    moved = source if perm == tuple(range(x.rank)) else \
        f"np.ascontiguousarray(np.transpose({source}, {perm!r}))"
    lines = [f"{rows} = {outer}",
             f"{row} = {moved}.reshape(({rows}, {inner}))",
             f"{flat} = {out}.reshape(({rows},))",
             f"for {i} in {ctx.range}({rows}):"]
    return lines + ["    " + line for line in row_body(row, i, f"{flat}[{i}]")]


def _accumulator(dtype: DType) -> str:
    return "0.0" if dtype.is_float else "0"


def _extremum_lines(comparison: str):
    def emit(ctx, node, ins, outs):
        best, j = ctx.fresh("best"), ctx.fresh("j")

        def row_extremum(row, i, result):
            # A NaN wins and stays (np.max, torch.max): `v != v` is true for NaN alone.
            return [f"{best} = {row}[{i}, 0]",
                    f"for {j} in range(1, {row}.shape[1]):",
                    (f"    if {row}[{i}, {j}] {comparison} {best} or "
                     f"{row}[{i}, {j}] != {row}[{i}, {j}]:"),
                    f"        {best} = {row}[{i}, {j}]",
                    f"        if {best} != {best}:",
                    "            break",
                    f"{result} = {best}"]
        return reduction_lines(ctx, node, ins[0], outs[0], node.attrs.get("axes"), row_extremum)
    return emit


@lowering('sum')
def lower_sum(ctx, node, ins, outs):
    acc, j = ctx.fresh("acc"), ctx.fresh("j")
    start = _accumulator(node.outputs[0].dtype)

    def row_sum(row, i, result):
        return [f"{acc} = {start}",
                f"for {j} in range({row}.shape[1]):",
                f"    {acc} += {row}[{i}, {j}]",
                f"{result} = {acc}"]
    return reduction_lines(ctx, node, ins[0], outs[0], node.attrs.get("axes"), row_sum)


@lowering('mean')
def lower_mean(ctx, node, ins, outs):
    acc, j = ctx.fresh("acc"), ctx.fresh("j")

    def row_mean(row, i, result):
        return [f"{acc} = 0.0",
                f"for {j} in range({row}.shape[1]):",
                f"    {acc} += {row}[{i}, {j}]",
                f"{result} = {acc} / {row}.shape[1]"]
    return reduction_lines(ctx, node, ins[0], outs[0], node.attrs.get("axes"), row_mean)


lower_max = lowering('max')(staticmethod(_extremum_lines(">")))


lower_min = lowering('min')(staticmethod(_extremum_lines("<")))


@lowering('logsumexp')
def lower_logsumexp(ctx, node, ins, outs):
    top, total, j = ctx.fresh("top"), ctx.fresh("total"), ctx.fresh("j")

    def row_logsumexp(row, i, result):
        return [f"{top} = {row}[{i}, 0]",
                f"for {j} in range(1, {row}.shape[1]):",
                f"    if {row}[{i}, {j}] > {top}:",
                f"        {top} = {row}[{i}, {j}]",
                f"if np.isinf({top}):",          # all -inf (or an inf): no shift to make
                f"    {result} = {top}",
                "else:",
                f"    {total} = 0.0",
                f"    for {j} in range({row}.shape[1]):",
                f"        {total} += np.exp({row}[{i}, {j}] - {top})",
                f"    {result} = {top} + np.log({total})"]
    return reduction_lines(ctx, node, ins[0], outs[0], node.attrs.get("axes"), row_logsumexp)


@lowering('argmax')
def lower_argmax(ctx, node, ins, outs):
    best, where, j = ctx.fresh("best"), ctx.fresh("where"), ctx.fresh("j")

    def row_argmax(row, i, result):
        return [f"{best} = {row}[{i}, 0]",
                f"{where} = 0",
                f"for {j} in range(1, {row}.shape[1]):",
                f"    if {best} != {best}:",       # the first NaN is the maximum (np.argmax)
                "        break",
                f"    if {row}[{i}, {j}] > {best} or {row}[{i}, {j}] != {row}[{i}, {j}]:",
                f"        {best} = {row}[{i}, {j}]",
                f"        {where} = {j}",
                f"{result} = {where}"]
    axes = (node.attrs.get("axis", -1),)
    return reduction_lines(ctx, node, ins[0], outs[0], axes, row_argmax)


@lowering('numel')
def lower_numel(ctx, node, ins, outs):
    chosen = reduced_axes(node.inputs[0].type, node.attrs.get("axes"))
    count = " * ".join(f"{ins[0]}.shape[{axis}]" for axis in chosen) or "1"
    return [f"{outs[0]}[()] = {count}"]
