"""The CPU target's lowerings: how each non-elementwise op becomes lines of Numba source.

One module per op family (matching netdsl/ops/): each registers a function per op,

    @lowering("matmul")
    def lower_matmul(ctx, node, ins, outs) -> list[str]: ...

which returns source lines for the body of the generated njit step function: it reads the input
arrays named `ins` and writes the preallocated output arrays named `outs` (already of their
concrete shapes).  Heavy kernels are `@njit(cache=True)` functions beside their lowering, which
the lines call through `ctx.use(function)` (see ../emit.py for the context).  Elementwise ops
need no lowering (codegen renders their `kernel` templates into fused loop nests); `scan` is
written by ../scan.py around its body's kernels.

The family modules import Numba, so they load on the first lookup, not when this package is
imported: building or checking a graph never needs them.
"""
from __future__ import annotations

from ...lowering_registry import Lowering, LoweringRegistry

_FAMILIES = ("concat", "conv", "cumulative", "indexing", "linalg", "nn", "pool", "random",
             "reduce", "shape", "unary")
_REGISTRY = LoweringRegistry(__name__, _FAMILIES, "CPU")
lowering = _REGISTRY.lowering          # decorator: register the CPU lowering of an op
lowering_for = _REGISTRY.lowering_for  # the CPU lowering of an op, or None
lowered_ops = _REGISTRY.lowered_ops    # the names of every op with a CPU lowering

__all__ = ["Lowering", "lowered_ops", "lowering", "lowering_for"]
