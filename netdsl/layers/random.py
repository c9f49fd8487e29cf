"""Random tensors in the graph: `normal([B, D])`, `uniform([B, D], low=0, high=1)`,
`randint([B], 0, T)`.

They draw from a counter-based generator keyed by a per-call seed and the per-step counter
input `__rng__`, so every step draws new numbers and every backend draws the same ones.
"""
from __future__ import annotations

from ..ir.types import DType
from .base import bind_call, function
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



@function("randint")
def randint(ctx, shape: list, low: int, high: int):
    """Integers uniform in [low, high) (i64), as torch.randint: floor(u * (high - low)) + low
    with an f64 uniform u in [0, 1), whose 53 bits keep the product below high - low (for
    DDPM's per-example time steps, `randint([B], 0, T)`)."""
    for name, value in (("low", low), ("high", high)):
        if not isinstance(value, int) or isinstance(value, bool):
            ctx.error(f"randint: {name} must be a compile-time int, got {value!r}")
    if high <= low:
        ctx.error(f"randint: high must be greater than low, got low={low}, high={high}",
                  hint="the numbers drawn lie in [low, high), e.g. randint([B], 0, T)")
    dims = tuple(ctx.dims(shape))
    u = ctx.op("random_uniform", ctx.rng_counter(), shape=dims, dtype=DType.f64,
               seed=ctx.fresh_seed())
    scaled = ctx.op("mul", u, ctx.const(float(high - low), u))
    drawn = ctx.op("cast", scaled, dtype=DType.i64)          # truncation: floor for u >= 0
    return drawn if low == 0 else ctx.op("add", drawn, ctx.const(low, drawn))
