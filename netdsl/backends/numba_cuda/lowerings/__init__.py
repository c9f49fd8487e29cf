"""The cuda target's lowerings: how each non-elementwise op becomes lines of the host driver.

One module per op family (matching netdsl/ops/): each registers a function per op,

    @lowering("matmul")
    def lower_matmul(ctx, node, ins, outs) -> list[str]: ...

which returns Python lines for the generated host driver (plain Python, not a kernel): `ins`
and `outs` name numba.cuda device arrays, C-contiguous and already of the node's concrete
shapes (outputs preallocated).  The lines call launchers through `ctx.use(function)`: plain
Python functions beside the lowering that take device arrays and numbers and launch
`@cuda.jit` kernels, each a grid-stride loop launched with `device.launch(n)`.  Attributes are
read from `node.attrs` when the lines are generated; sizes that depend on symbolic dims are
read from the arrays' `.shape` by the launcher at run time.

Elementwise ops and fused groups need no lowering (codegen.py renders their loop nests as
kernels).  The family modules import numba.cuda, so they load on the first lookup.
"""
from __future__ import annotations

from ...lowering_registry import Lowering, LoweringRegistry

_FAMILIES = ("conv", "cumulative", "indexing", "linalg", "nn", "pool", "random", "reduce",
             "shape")
_REGISTRY = LoweringRegistry(__name__, _FAMILIES, "CUDA")
lowering = _REGISTRY.lowering          # decorator: register the CUDA lowering of an op
lowering_for = _REGISTRY.lowering_for  # the CUDA lowering of an op, or None
lowered_ops = _REGISTRY.lowered_ops    # the names of every op with a CUDA lowering

__all__ = ["Lowering", "lowered_ops", "lowering", "lowering_for"]
