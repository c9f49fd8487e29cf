"""Random numbers in the graph: `random_uniform`, `random_normal` and `dropout_mask`.

Each is a deterministic function of (seed attr, counter input, element index): a counter-based
generator, so the NumPy reference and every compiled backend draw bit-identical streams, a
training step draws fresh numbers by passing a new counter, and nothing hides mutable state.
The bits of element i are splitmix64's finaliser applied to key + (i + 1) * golden, with
key = mix(mix(seed) ^ mix(counter)); uniforms take the top 24 (f32) or 53 (f64) bits, so they are
exact; normals use Box–Muller on the two 32-bit halves (float64 libm, so reference and compiled
normals agree to an ulp or so rather than bitwise).

Inputs: `counter`, an integer scalar, then an optional `like` tensor whose shape (never values)
is the output's (required for dropout_mask; for the others it replaces attr `shape`, and is how
a symbolic shape such as [B, 16] is given).  Attrs: `seed` (int), `dtype` (float, default f32 or
like's float dtype), `shape`; dropout_mask has `p` and yields a mask already scaled by 1/(1-p).
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.types import DType, ShapeError, TensorType
from .registry import op
from .shape import concrete, target

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
_S40, _S11 = np.uint64(40), np.uint64(11)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO_PI = 2.0 * math.pi


def _key(seed: int, counter) -> np.uint64:
    """The stream key of (seed, counter), in NumPy (wrapping uint64 arithmetic)."""
    seed_bits = np.array([seed], dtype=np.int64).astype(np.uint64)
    counter_bits = np.asarray(counter).reshape(1).astype(np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        return _mix_numpy(_mix_numpy(seed_bits) ^ _mix_numpy(counter_bits + _GOLDEN))


def _mix_numpy(z):
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


def _bits(seed: int, counter, size: int) -> np.ndarray:
    index = np.arange(1, size + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return _mix_numpy(_key(seed, counter) + index * _GOLDEN)


def _uniform(bits, dtype) -> np.ndarray:
    if dtype == np.float32:
        return ((bits >> _S40).astype(np.float64) * 2.0 ** -24).astype(np.float32)
    return (bits >> _S11).astype(np.float64) * 2.0 ** -53


def _normal(bits) -> np.ndarray:
    u1 = ((bits >> _S32).astype(np.float64) + 1.0) * 2.0 ** -32
    u2 = (bits & _LOW32).astype(np.float64) * 2.0 ** -32
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


def _random_type(name: str, counter: TensorType, like, shape, dtype) -> TensorType:
    if counter.rank != 0 or not counter.dtype.is_int:
        raise ShapeError(f"{name} expects an integer scalar counter as its first input, "
                         f"got {counter}")
    dims = target(name, like, shape)
    if dtype is None:
        dtype = like.dtype if like is not None and like.dtype.is_float else DType.f32
    if not dtype.is_float or dtype == DType.f16:
        raise ShapeError(f"{name} draws f32 or f64 numbers, not {dtype}")
    return TensorType(dtype, dims)


def _draw(kind: str, counter, like, shape, dtype, seed):
    dims = like.shape if like is not None else concrete(shape, kind)
    if dtype is None:
        dtype = DType.from_numpy(like.dtype) if like is not None and like.dtype.kind == "f" \
            else DType.f32
    bits = _bits(seed, counter, int(np.prod(dims, dtype=np.int64)))
    values = _uniform(bits, dtype.numpy) if kind == "uniform" else _normal(bits)
    return values.astype(dtype.numpy).reshape(dims)


def _examples():
    i64, f32, f64 = DType.i64, DType.f32, DType.f64
    counter = TensorType(i64, ())
    return [((counter,), {"shape": (3, 4), "seed": 1}),
            ((counter, TensorType(f32, (2, 5, 3))), {"seed": 7}),
            ((counter,), {"shape": (17,), "seed": -3, "dtype": f64})]


@op("random_uniform")
class RandomUniform:
    """Uniform numbers in [0, 1): inputs (counter[, like]); attrs shape, dtype, seed."""
    traits = {"random", "no_grad"}
    vjp = None

    def infer(counter, like=None, shape=None, dtype=None, seed=0):
        return _random_type("random_uniform", counter, like, shape, dtype)

    def reference(counter, like=None, shape=None, dtype=None, seed=0):
        return _draw("uniform", counter, like, shape, dtype, seed)

    examples = staticmethod(_examples)


@op("random_normal")
class RandomNormal:
    """Standard normal numbers: inputs (counter[, like]); attrs shape, dtype, seed."""
    traits = {"random", "no_grad"}
    vjp = None

    def infer(counter, like=None, shape=None, dtype=None, seed=0):
        return _random_type("random_normal", counter, like, shape, dtype)

    def reference(counter, like=None, shape=None, dtype=None, seed=0):
        return _draw("normal", counter, like, shape, dtype, seed)

    examples = staticmethod(_examples)


@op("dropout_mask")
class DropoutMask:
    """Inverted-dropout mask shaped like `like`: 0 with probability p, else 1/(1-p); inputs
    (counter, like); attrs p, seed."""
    traits = {"random", "no_grad"}
    vjp = None

    def infer(counter, like, p=0.5, seed=0):
        if not 0.0 <= p < 1.0:
            raise ShapeError(f"dropout_mask: p must be in [0, 1), got {p!r}")
        return _random_type("dropout_mask", counter, like, None, None)

    def reference(counter, like, p=0.5, seed=0):
        dtype = like.dtype if like.dtype.kind == "f" else np.dtype(np.float32)
        uniform = (_bits(seed, counter, like.size) >> _S40).astype(np.float64) * 2.0 ** -24
        mask = np.where(uniform >= p, 1.0 / (1.0 - p), 0.0)
        return mask.astype(dtype).reshape(like.shape)

    def examples():
        counter = TensorType(DType.i64, ())
        return [((counter, TensorType(DType.f32, (4, 6))), {"p": 0.5, "seed": 3}),
                ((counter, TensorType(DType.f32, (2, 3, 5))), {"p": 0.1, "seed": 11}),
                ((counter, TensorType(DType.f32, (5,))), {"p": 0.0})]
