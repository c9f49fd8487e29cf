"""CPU lowerings of concat, split and pad (netdsl/ops/concat.py)."""
from __future__ import annotations

from ....ir.types import normalize_axis
from . import lowering
from .shape import literal


@lowering('concat')
def lower_concat(ctx, node, ins, outs):
    axis = normalize_axis(node.attrs.get("axis", 0), node.inputs[0].rank)
    offset = ctx.fresh("offset")
    lines = [f"{offset} = 0"]
    for name in ins:
        lead = ":, " * axis
        lines += [f"{outs[0]}[{lead}{offset}:{offset} + {name}.shape[{axis}]] = {name}",
                  f"{offset} += {name}.shape[{axis}]"]
    return lines


@lowering('split')
def lower_split(ctx, node, ins, outs):
    axis = normalize_axis(node.attrs.get("axis", 0), node.inputs[0].rank)
    offset = ctx.fresh("offset")
    lines = [f"{offset} = 0"]
    for name in outs:
        lead = ":, " * axis
        lines += [f"{name}[...] = {ins[0]}[{lead}{offset}:{offset} + {name}.shape[{axis}]]",
                  f"{offset} += {name}.shape[{axis}]"]
    return lines


@lowering('pad')
def lower_pad(ctx, node, ins, outs):
    inside = ", ".join(f"{before}:{outs[0]}.shape[{axis}] - {after}"
                       for axis, (before, after) in enumerate(node.attrs["pads"]))
    return [f"{outs[0]}[...] = {literal(node.attrs.get('value', 0.0))}",
            f"{outs[0]}[{inside or '...'}] = {ins[0]}"]
