"""CPU lowerings of cumsum and cumprod (netdsl/ops/cumulative.py).

The input is viewed as (outer, n, inner) around the axis; each (outer, inner) line is
accumulated in order along n (forward, or from the end with reverse), the outer rows in
parallel.  The running value is kept in the output's dtype, as NumPy's accumulate does, so
the compiled result matches the reference rule.
"""
from __future__ import annotations

from ....ir.types import normalize_axis
from . import lowering
from .indexing import _blocks


def _emit(ctx, node, ins, outs, combine: str) -> list[str]:
    x = node.inputs[0]
    axis = normalize_axis(node.attrs.get("axis", 0), x.rank)
    reverse = bool(node.attrs.get("reverse", False))
    outer, n, inner = _blocks(ins[0], axis, x.rank)
    src, dst, i, j, k, m = (ctx.fresh(p) for p in ("src", "dst", "i", "j", "k", "m"))
    position = f"{n} - 1 - {j}" if reverse else j
    previous = f"{n} - {j}" if reverse else f"{j} - 1"
    return [f"{src} = {ins[0]}.reshape(({outer}, {n}, {inner}))",
            f"{dst} = {outs[0]}.reshape(({outer}, {n}, {inner}))",
            f"for {i} in {ctx.range}({src}.shape[0]):",
            f"    for {m} in range({src}.shape[2]):",
            f"        for {j} in range({src}.shape[1]):",
            f"            {k} = {position}",
            f"            if {j} == 0:",
            f"                {dst}[{i}, {k}, {m}] = {src}[{i}, {k}, {m}]",
            f"            else:",
            f"                {dst}[{i}, {k}, {m}] = {dst}[{i}, {previous}, {m}] {combine} "
            f"{src}[{i}, {k}, {m}]"]


@lowering('cumsum')
def lower_cumsum(ctx, node, ins, outs):
    return _emit(ctx, node, ins, outs, "+")


@lowering('cumprod')
def lower_cumprod(ctx, node, ins, outs):
    return _emit(ctx, node, ins, outs, "*")
