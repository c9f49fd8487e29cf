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

from typing import Callable

Lowering = Callable[..., list[str]]

_LOWERINGS: dict[str, Lowering] = {}
_FAMILIES = ("conv", "cumulative", "indexing", "linalg", "nn", "pool", "random", "reduce",
             "shape")
_loaded = False


def lowering(op_name: str) -> Callable[[Lowering], Lowering]:
    """Decorator: register the function as the CUDA lowering of the op called `op_name`."""

    def register(function: Lowering) -> Lowering:
        if op_name in _LOWERINGS:
            raise ValueError(f"op {op_name!r} has two CUDA lowerings")
        _LOWERINGS[op_name] = function
        return function

    return register


def lowering_for(op) -> Lowering | None:
    """The CUDA lowering of `op` (an OpDef or an op name), or None when it has none."""
    _load_families()
    return _LOWERINGS.get(op if isinstance(op, str) else op.name)


def lowered_ops() -> frozenset[str]:
    _load_families()
    return frozenset(_LOWERINGS)


def _load_families() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    for family in _FAMILIES:
        try:
            importlib.import_module(f"{__name__}.{family}")
        except ModuleNotFoundError as error:     # a family not written yet
            if error.name != f"{__name__}.{family}":
                raise
