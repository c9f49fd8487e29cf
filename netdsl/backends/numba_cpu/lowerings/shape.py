"""CPU lowerings of data movement (netdsl/ops/shape.py).

Each copies into the preallocated output (reshape of a C-contiguous array, NumPy calls Numba
supports); ops with the "view" trait may instead be aliased by the memory planner.  `literal`
writes a scalar as Numba source (inf and nan through numpy).
"""
from __future__ import annotations

import numpy as np
from numba import uint64 as u64

from ..jit import kernel
from . import lowering


def literal(value) -> str:
    """A Python/Numba source literal for a scalar (inf and nan spelled through numpy)."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and not np.isfinite(value):
        return "np.nan" if np.isnan(value) else ("np.inf" if value > 0 else "-np.inf")
    return repr(value)


def _copy(outs, expression: str) -> list[str]:
    return [f"{outs[0]}[...] = {expression}"]


@lowering('constant')
def lower_constant(ctx, node, ins, outs):
    # A literal keeps the generated source self-contained (content-hashed, cached across
    # processes); constant folding leaves large results to run time for this reason.
    value = node.attrs["value"]
    dtype = f"np.{value.dtype.name}"
    if value.ndim == 0:
        return [f"{outs[0]}[()] = {dtype}({literal(value.item())})"]
    items = ", ".join(literal(v) for v in value.ravel().tolist())
    return [f"{outs[0]}.reshape(({value.size},))[:] = np.array([{items}], dtype={dtype})"]


@lowering('full')
def lower_full(ctx, node, ins, outs):
    return _copy(outs, literal(node.attrs.get("value", 0.0)))


@lowering('reshape')
def lower_reshape(ctx, node, ins, outs):
    return _copy(outs, f"{ins[0]}.reshape({outs[0]}.shape)")


@lowering('expand_dims')
def lower_expand_dims(ctx, node, ins, outs):
    return _copy(outs, f"{ins[0]}.reshape({outs[0]}.shape)")


@lowering('squeeze')
def lower_squeeze(ctx, node, ins, outs):
    return _copy(outs, f"{ins[0]}.reshape({outs[0]}.shape)")


TRANSPOSE_RANK = 6           # transpose_kernel's axes: a transpose of more keeps its loops


@kernel(cache=True)
def transpose_kernel(flat, out6, strides):
    """out6[i0, ..., i5] = flat[i0 * s0 + ... + i5 * s5]: a transpose as a strided gather,
    `flat` the source's elements, `out6` the output seen with six axes (leading axes of size
    1 added) and `strides` the source's element strides in the output's axis order (0 for
    the added axes).  Unsigned indices (`u64`): no negative-index wraparound tests."""
    s0, s1, s2, s3, s4, s5 = strides
    for i0 in range(out6.shape[0]):
        for i1 in range(out6.shape[1]):
            for i2 in range(out6.shape[2]):
                b2 = i0 * s0 + i1 * s1 + i2 * s2
                for i3 in range(out6.shape[3]):
                    b3 = b2 + i3 * s3
                    for i4 in range(out6.shape[4]):
                        b4 = b3 + i4 * s4
                        for i5 in range(out6.shape[5]):
                            out6[i0, i1, i2, i3, i4, u64(i5)] = flat[u64(b4 + i5 * s5)]


@lowering('transpose')
def lower_transpose(ctx, node, ins, outs):
    rank = node.inputs[0].rank
    perm = node.attrs.get("perm")
    perm = tuple(reversed(range(rank))) if perm is None else tuple(p % rank for p in perm)
    if rank <= 1:
        return _copy(outs, ins[0])
    if rank <= TRANSPOSE_RANK:
        # One library kernel, compiled once per dtype and called separately.  The loops
        # written here instead cost LLVM's loop passes ~0.35 s each in a driver part, where
        # the source and the output are views of one arena at symbolic offsets: 1.5 s of
        # compile for four 4-d transposes, against 0.28 s for the same loops over separate
        # arrays (the transformer's parts took 3.3-3.8 s each).
        source, out = ins[0], outs[0]
        sizes = [f"{source}.shape[{axis}]" for axis in range(rank)]
        flat = f"_view({source}, 0, ({' * '.join(sizes)},))"
        padding = TRANSPOSE_RANK - rank
        shape = ["1"] * padding + [f"{out}.shape[{axis}]" for axis in range(rank)]
        strides = ["0"] * padding + [
            f"np.int64({' * '.join(sizes[perm[axis] + 1:]) or '1'})" for axis in range(rank)]
        return [f"{ctx.use(transpose_kernel)}({flat}, _view({out}, 0, ({', '.join(shape)})), "
                f"({', '.join(strides)}))"]
    # Explicit loops, not np.transpose: Numba's transpose compiles hasattr/hash/string
    # machinery for its axis checks, seconds on the first compile of every process.
    index = [ctx.fresh("i") for _ in range(rank)]
    inverse = [int(k) for k in np.argsort(perm)]
    lines = []
    for depth, name in enumerate(index):
        lines.append("    " * depth + f"for {name} in range({outs[0]}.shape[{depth}]):")
    source = ", ".join(index[inverse[axis]] for axis in range(rank))
    lines.append("    " * rank + f"{outs[0]}[{', '.join(index)}] = {ins[0]}[{source}]")
    return lines


@lowering('broadcast_to')
def lower_broadcast_to(ctx, node, ins, outs):
    source = f"{ins[0]}[()]" if node.inputs[0].rank == 0 else ins[0]
    return _copy(outs, source)


@kernel(cache=True)
def iota_kernel(out3):
    """out3[i, j, k] = j: an iota along the middle axis of a (before, along, after) view."""
    for i in range(out3.shape[0]):
        for j in range(out3.shape[1]):
            for k in range(out3.shape[2]):
                out3[i, j, k] = j


@lowering('iota')
def lower_iota(ctx, node, ins, outs):
    axis, rank = int(node.attrs.get("axis", 0)), node.outputs[0].rank
    out = outs[0]
    before = " * ".join([f"{out}.shape[{d}]" for d in range(axis)]) or "1"
    after = " * ".join([f"{out}.shape[{d}]" for d in range(axis + 1, rank)]) or "1"
    return [f"{ctx.use(iota_kernel)}({out}.reshape({before}, {out}.shape[{axis}], {after}))"]
