"""Random tensors in the graph: `normal([B, D])`, `uniform([B, D], low=0, high=1)`.

They draw from a counter-based generator keyed by a per-call seed and the per-step counter
input `__rng__`, so every step draws new numbers and every backend draws the same ones.
"""
from __future__ import annotations

from .base import bind_call
from .functions import element_type


def _normal(ctx, shape: list, mean: float = 0.0, std: float = 1.0, dtype: str = "f32"):
    """The user-visible signature of normal(...) as a random tensor."""


def _uniform(ctx, shape: list, low: float = 0.0, high: float = 1.0, dtype: str = "f32"):
    """The user-visible signature of uniform(...) as a random tensor."""


def random_tensor(ctx, name: str, args, kwargs):
    """Build `normal(shape, mean, std)` or `uniform(shape, low, high)` as graph ops."""
    signature = _normal if name == "normal" else _uniform
    bound = bind_call(signature, name, args, kwargs, ctx.span)
    dims = tuple(ctx.dims(bound.pop("shape")))
    dtype = element_type(ctx, name, bound.pop("dtype"))
    primitive = "random_normal" if name == "normal" else "random_uniform"
    sample = ctx.op(primitive, ctx.rng_counter(), shape=dims, dtype=dtype, seed=ctx.fresh_seed())
    if name == "normal":
        scale, shift = bound["std"], bound["mean"]
    else:
        scale, shift = bound["high"] - bound["low"], bound["low"]
    if scale != 1.0:
        sample = ctx.op("mul", sample, ctx.const(scale, sample))
    if shift != 0.0:
        sample = ctx.op("add", sample, ctx.const(shift, sample))
    return sample

