"""CPU lowerings of cast (netdsl/ops/unary.py)."""
from __future__ import annotations

from . import lowering


@lowering('cast')
def lower_cast(ctx, node, ins, outs):
    # Assigning into the preallocated output converts element by element.
    return [f"{outs[0]}[...] = {ins[0]}"]
