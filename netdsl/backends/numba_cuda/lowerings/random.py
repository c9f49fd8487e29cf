"""CUDA lowerings of the counter-based random ops (netdsl/ops/random.py): random_uniform,
random_normal and dropout_mask.

Element i is a function of (seed, counter, i) only, the cpu target's generator exactly
(numba_cpu/lowerings/random.py, with the constants of ops/random.py), so a seed and counter give
the cpu target's numbers bit for bit: uniforms and dropout masks always (integer arithmetic, then
an exact scaling), normals up to the last bit of the device's float64 log and cos (CUDA's
libdevice against the host's libm; the simulator runs the host's, so there they are identical).

Every operand of the uint64 arithmetic is a np.uint64 (constants, the index, the casts of seed
and counter): Numba types uint64 op int64 as float64, which would silently round the bits.  The
counter is read inside the kernel from its device array, so a step needs no device-to-host copy.
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import numpy as np
from numba import cuda

from ....ir.types import DType
from ....ops.random import (_GOLDEN, _LOW32, _M1, _M2, _S11, _S27, _S30, _S31, _S32, _S40,
                            _TWO_PI)
from ..device import launch, simulating
from . import lowering

UNIFORM, NORMAL, DROPOUT = 0, 1, 2


@cuda.jit(device=True)
def _mix(z):
    """splitmix64's finaliser: a bijection of uint64 with good avalanche."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@cuda.jit(device=True)
def _stream_key(seed, counter):
    """The key of (seed, counter): mix(mix(seed) ^ mix(counter + golden)), all in uint64."""
    return _mix(_mix(np.uint64(np.int64(seed))) ^ _mix(np.uint64(np.int64(counter)) + _GOLDEN))


@cuda.jit(device=True)
def _element_bits(key, i):
    """The 64 random bits of element i: mix(key + (i + 1) * golden)."""
    return _mix(key + (np.uint64(i) + np.uint64(1)) * _GOLDEN)


@cuda.jit(cache=True)
def _random_kernel(flat, counter, seed, kind, p, narrow, scale):
    """Fill `flat` (1-D): kind UNIFORM, NORMAL or DROPOUT (rate p, kept values `scale`);
    `narrow`: flat is f32, so uniforms take 24 bits.  counter: a 1-element integer array."""
    key = _stream_key(seed, counter[0])
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < flat.size:
        bits = _element_bits(key, i)
        if kind == UNIFORM:
            if narrow:
                flat[i] = np.float64(bits >> _S40) * 2.0 ** -24
            else:
                flat[i] = np.float64(bits >> _S11) * 2.0 ** -53
        elif kind == NORMAL:
            u1 = (np.float64(bits >> _S32) + 1.0) * 2.0 ** -32
            u2 = np.float64(bits & _LOW32) * 2.0 ** -32
            flat[i] = math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)
        else:
            keep = np.float64(bits >> _S40) * 2.0 ** -24 >= p
            flat[i] = scale if keep else 0.0
        i += stride


@contextmanager
def _wrapping_is_intended():
    """The simulator runs the kernel on NumPy scalars, which warn when uint64 arithmetic wraps;
    wrapping is the generator's arithmetic (a GPU wraps silently), so the warning is noise."""
    if not simulating():
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        yield


def draw(out, counter, seed: int, kind: int, p: float = 0.0) -> None:
    """Fill the device array `out` (f32 or f64, any shape) from (seed, counter[()])."""
    if out.size == 0:
        return
    narrow = out.dtype == np.float32
    scale = 1.0 / (1.0 - p)
    blocks, threads = launch(out.size)
    with _wrapping_is_intended():
        _random_kernel[blocks, threads](out.reshape(out.size), counter.reshape(1), seed, kind,
                                        p, narrow, scale)


def _lines(kind: int, ctx, node, ins, outs, p: float = 0.0) -> list[str]:
    if node.outputs[0].dtype not in (DType.f32, DType.f64):    # infer allows only these
        raise AssertionError(f"{node.op.name} draws f32 or f64, not {node.outputs[0].dtype}")
    seed = int(node.attrs.get("seed", 0))
    return [f"{ctx.use(draw)}({outs[0]}, {ins[0]}, {seed}, {kind}, {float(p)!r})"]


@lowering("random_uniform")
def lower_random_uniform(ctx, node, ins, outs):
    return _lines(UNIFORM, ctx, node, ins, outs)


@lowering("random_normal")
def lower_random_normal(ctx, node, ins, outs):
    return _lines(NORMAL, ctx, node, ins, outs)


@lowering("dropout_mask")
def lower_dropout_mask(ctx, node, ins, outs):
    return _lines(DROPOUT, ctx, node, ins, outs, node.attrs.get("p", 0.5))
