"""Cumulative ops along one axis: `cumsum` and `cumprod` (attrs `axis`, `reverse`).

`reverse=True` accumulates from the end (y[i] = x[i] + x[i+1] + ...), which is what the
gradients need: the VJP of cumsum is the reverse cumsum of g, and the VJP of cumprod is
reverse-cumsum(g * y) / x (PyTorch's formula for inputs without zeros; a zero input gives a
non-finite gradient, where PyTorch falls back to a slower exact rule).

Why ops and not compile-time functions: a diffusion schedule (alpha_bar = cumprod(1 - beta))
is made of constants, and constant folding (passes/fold.py) evaluates any op on constants
with its `reference` rule, so the schedule is a constant table in the graph either way; as ops
they also work on run-time tensors (a learned schedule, cumulative attention sums) and have
gradients.
"""
from __future__ import annotations

import numpy as np

from ..ir.types import DType, ShapeError, TensorType, normalize_axis
from .registry import op


def _type(name: str, x: TensorType, axis: int) -> TensorType:
    if x.rank == 0:
        raise ShapeError(f"{name} needs a tensor of rank at least 1, got {x}")
    try:
        normalize_axis(axis, x.rank)
    except ShapeError as problem:
        raise ShapeError(f"{name}: {problem.message}") from None
    if x.dtype == DType.bool:
        raise ShapeError(f"{name} expects numbers, got {x}", hint='cast first: cast(x, "i64")')
    return x


def _accumulate(ufunc, x: np.ndarray, axis: int, reverse: bool) -> np.ndarray:
    axis = normalize_axis(axis, x.ndim)
    if reverse:
        return np.flip(ufunc.accumulate(np.flip(x, axis), axis=axis, dtype=x.dtype), axis)
    return ufunc.accumulate(x, axis=axis, dtype=x.dtype)


def _examples():
    f32, i64 = DType.f32, DType.i64
    return [((TensorType(f32, (7,)),), {"axis": 0}, {"low": 0.5, "high": 1.5}),
            ((TensorType(f32, (3, 5, 2)),), {"axis": 1, "reverse": True},
             {"low": 0.5, "high": 1.5}),
            ((TensorType(f32, (4, 6)),), {"axis": -1}, {"low": -1.5, "high": 1.5,
                                                         "avoid": [0.0]}),
            ((TensorType(i64, (3, 4)),), {"axis": 0}, {"int_high": 4})]


@op("cumsum")
class Cumsum:
    """Running sum along `axis` (from the end with reverse=True), as np.cumsum."""
    traits = {"pure"}

    def infer(x, axis: int = 0, reverse: bool = False):
        return _type("cumsum", x, axis)

    def reference(x, axis: int = 0, reverse: bool = False):
        return _accumulate(np.add, x, axis, reverse)

    def vjp(b, grads, inputs, outputs, axis: int = 0, reverse: bool = False):
        return (b.op("cumsum", grads[0], axis=axis, reverse=not reverse),)

    examples = staticmethod(_examples)


@op("cumprod")
class Cumprod:
    """Running product along `axis` (from the end with reverse=True), as np.cumprod."""
    traits = {"pure"}

    def infer(x, axis: int = 0, reverse: bool = False):
        return _type("cumprod", x, axis)

    def reference(x, axis: int = 0, reverse: bool = False):
        return _accumulate(np.multiply, x, axis, reverse)

    def vjp(b, grads, inputs, outputs, axis: int = 0, reverse: bool = False):
        weighted = b.op("mul", grads[0], outputs[0])
        summed = b.op("cumsum", weighted, axis=axis, reverse=not reverse)
        return (b.op("div", summed, inputs[0]),)

    examples = staticmethod(_examples)
