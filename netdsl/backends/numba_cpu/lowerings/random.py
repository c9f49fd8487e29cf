"""CPU lowerings of the counter-based random ops: one kernel, element i a function of (seed,
counter, i) (netdsl/ops/random.py)."""
from __future__ import annotations

import math

import numpy as np
from numba.np.ufunc.parallel import _iget_num_threads

from ....ir.types import DType
from ....ops.random import (_GOLDEN, _LOW32, _M1, _M2, _S11, _S27, _S30, _S31, _S32, _S40,
                            _TWO_PI)
from ..builtins_inline import min2
from ..jit import kernel
from ..parallel_calls import in_parallel
from ..support import view as _view
from . import lowering


def _emit(kind: int, ctx, node, ins, outs, p=0.0) -> list[str]:
    seed = int(node.attrs.get("seed", 0))
    narrow = node.outputs[0].dtype == DType.f32
    kernel = ctx.use(random_kernel_parallel if ctx.large(node.outputs[0].type) else
                     random_kernel)
    return [f"{kernel}({outs[0]}, {seed}, {ins[0]}[()], {kind}, {float(p)!r}, {narrow})"]


@kernel(cache=True)
def _mix(z):
    """splitmix64's finaliser: a bijection of uint64 with good avalanche."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@kernel(cache=True)
def _random_element(flat, i, key, kind, p, narrow, scale):
    bits = _mix(key + (np.uint64(i) + np.uint64(1)) * _GOLDEN)
    if kind == 0:
        if narrow:
            flat[i] = np.float64(bits >> _S40) * 2.0 ** -24
        else:
            flat[i] = np.float64(bits >> _S11) * 2.0 ** -53
    elif kind == 1:
        u1 = (np.float64(bits >> _S32) + 1.0) * 2.0 ** -32
        u2 = np.float64(bits & _LOW32) * 2.0 ** -32
        flat[i] = math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)
    else:
        keep = np.float64(bits >> _S40) * 2.0 ** -24 >= p
        flat[i] = scale if keep else 0.0


@kernel(cache=True)
def random_kernel(out, seed, counter, kind, p, narrow):
    """Fill `out` (any shape, C order): kind 0 uniform, 1 normal, 2 dropout mask with rate p;
    `narrow` says out is f32 (24-bit uniforms).  Element i depends only on (seed, counter, i),
    so random_kernel_parallel (used for large tensors) gives the same numbers."""
    flat = _view(out, 0, (out.size,))
    key = _mix(_mix(np.uint64(np.int64(seed))) ^ _mix(np.uint64(np.int64(counter)) + _GOLDEN))
    scale = 1.0 / (1.0 - p)
    for i in range(flat.size):
        _random_element(flat, np.uint64(i), key, kind, p, narrow, scale)


@kernel(cache=True)
def _random_part(part, parts, flat, key, kind, p, narrow, scale):
    """Part `part` of `parts` of random_kernel's elements (each a function of its index)."""
    for i in range(part * flat.size // parts, (part + 1) * flat.size // parts):
        _random_element(flat, np.uint64(i), key, kind, p, narrow, scale)


_random_parts = in_parallel(_random_part)


@kernel(cache=True)
def random_kernel_parallel(out, seed, counter, kind, p, narrow):
    """random_kernel with its elements in one part per thread (parallel_calls.py)."""
    flat = _view(out, 0, (out.size,))
    key = _mix(_mix(np.uint64(np.int64(seed))) ^ _mix(np.uint64(np.int64(counter)) + _GOLDEN))
    scale = 1.0 / (1.0 - p)
    parts = min2(_iget_num_threads(), flat.size)
    _random_parts(parts, parts, flat, key, kind, p, narrow, scale)


@lowering('random_uniform')
def lower_random_uniform(ctx, node, ins, outs):
    return _emit(0, ctx, node, ins, outs)


@lowering('random_normal')
def lower_random_normal(ctx, node, ins, outs):
    return _emit(1, ctx, node, ins, outs)


@lowering('dropout_mask')
def lower_dropout_mask(ctx, node, ins, outs):
    return _emit(2, ctx, node, ins, outs, node.attrs.get("p", 0.5))
