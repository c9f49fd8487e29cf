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

from typing import Callable

Lowering = Callable[..., list[str]]

_LOWERINGS: dict[str, Lowering] = {}
_FAMILIES = ("concat", "conv", "cumulative", "indexing", "linalg", "nn", "pool", "random",
             "reduce", "shape", "unary")
_loaded = False


def lowering(op_name: str) -> Callable[[Lowering], Lowering]:
    """Decorator: register the function as the CPU lowering of the op called `op_name`."""

    def register(function: Lowering) -> Lowering:
        if op_name in _LOWERINGS:
            raise ValueError(f"op {op_name!r} has two CPU lowerings")
        _LOWERINGS[op_name] = function
        return function

    return register


def lowering_for(op) -> Lowering | None:
    """The CPU lowering of `op` (an OpDef or an op name), or None when it has none."""
    _load_families()
    return _LOWERINGS.get(op if isinstance(op, str) else op.name)


def lowered_ops() -> frozenset[str]:
    """The names of every op with a CPU lowering."""
    _load_families()
    return frozenset(_LOWERINGS)


def _load_families() -> None:
    """Import every family module once, so that their @lowering functions register."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    for family in _FAMILIES:
        importlib.import_module(f"{__name__}.{family}")
