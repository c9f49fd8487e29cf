"""The built-in lowercase functions: activations, math, reductions and shape functions.

Each is a composite over primitive ops, written against the call context `ctx` (see
`frontend/context.py`): `ctx.op(name, *inputs, **attrs)`, `ctx.const(value, like)`,
`ctx.error(message, hint)`.  Losses live in `losses.py`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.graph import Value
from ..ir.types import DType
from .base import AnyValue, Tensor, function

# ---------------------------------------------------------------------------------------------
# Activations


def _unary(name: str, primitive: str | None = None):
    def apply(ctx, x: Tensor):
        return ctx.op(primitive or name, ctx.floating(x))
    apply.__name__ = name
    apply.__doc__ = f"{name}(x), elementwise."
    function(name)(apply)


for _name in ("relu", "sigmoid", "tanh", "step", "exp", "log", "sqrt", "abs", "softplus",
              "sin", "cos", "square", "sign"):
    _unary(_name)


@function("leaky_relu")
def leaky_relu(ctx, x: Tensor, alpha: float = 0.01):
    """max(x, 0) + alpha * min(x, 0)."""
    return ctx.op("leaky_relu", ctx.floating(x), alpha=alpha)


@function("gelu")
def gelu(ctx, x: Tensor, approximate: str = "none"):
    """GELU, exact (erf) or `approximate="tanh"`, as torch.nn.functional.gelu."""
    if approximate not in ("none", "tanh"):
        ctx.error(f'gelu: approximate must be "none" or "tanh", got "{approximate}"')
    return ctx.op("gelu" if approximate == "none" else "gelu_tanh", ctx.floating(x))


@function("log_softmax")
def log_softmax(ctx, x: Tensor, axis: int = -1):
    """log(softmax(x)), a fused primitive because the composite loses precision."""
    return ctx.op("log_softmax", ctx.floating(x), axis=ctx.axis(axis, x))


@function("softmax")
def softmax(ctx, x: Tensor, axis: int = -1):
    """exp(log_softmax(x)): stable for large logits, gradient through the fused primitive."""
    return ctx.op("exp", log_softmax(ctx, x, axis))


@function("clip")
def clip(ctx, x: Tensor, low: float, high: float):
    """Clamp every element into [low, high]."""
    return ctx.op("clip", x, lo=low, hi=high)


@function("maximum")
def maximum(ctx, a: Tensor, b: Tensor):
    return ctx.op("maximum", a, b)


@function("minimum")
def minimum(ctx, a: Tensor, b: Tensor):
    return ctx.op("minimum", a, b)


@function("stop_gradient")
def stop_gradient(ctx, x: Tensor):
    """The value of x, with no gradient flowing back through it."""
    return ctx.op("stop_gradient", x)


def element_type(ctx, name: str, dtype: str) -> DType:
    """`"f32"` as a DType, or an error naming the function it was given to."""
    try:
        return DType(dtype)
    except ValueError:
        ctx.error(f'{name}: unknown element type "{dtype}"',
                  hint="element types are f32, f64, f16, i32, i64, bool")


@function("cast")
def cast(ctx, x: Tensor, dtype: str):
    """Convert the element type: cast(x, "f32")."""
    target = element_type(ctx, "cast", dtype)
    return x if x.dtype == target else ctx.op("cast", x, dtype=target)


# ---------------------------------------------------------------------------------------------
# Reductions


def _reduction(name: str):
    def apply(ctx, x: Tensor, axis: AnyValue = None, keepdims: bool = False):
        return ctx.op(name, x, axes=ctx.axes(axis, x), keepdims=keepdims)
    apply.__name__ = name
    apply.__doc__ = f"{name}(x, axis=none, keepdims=false): over all axes, one axis or a list."
    function(name)(apply)


for _name in ("sum", "mean", "max", "min"):
    _reduction(_name)


@function("argmax")
def argmax(ctx, x: Tensor, axis: int = -1):
    """Index of the largest element along `axis` (i64)."""
    return ctx.op("argmax", x, axis=ctx.axis(axis, x))


# ---------------------------------------------------------------------------------------------
# Shape functions


@function("reshape")
def reshape(ctx, x: Tensor, shape: list):
    """reshape(x, [B, -1]): dimensions may be ints, consts, symbolic dims and one -1."""
    return ctx.op("reshape", x, shape=tuple(ctx.dims(shape)))


@function("transpose")
def transpose(ctx, x: Tensor, perm: list = None):
    """transpose(x, [0, 2, 1]); without a permutation, reverses the axes."""
    perm = list(range(x.rank))[::-1] if perm is None else perm
    if sorted(ctx.axis(p, x) for p in perm) != list(range(x.rank)):
        ctx.error(f"transpose: {list(perm)} is not a permutation of the {x.rank} axes of {x.type}")
    return ctx.op("transpose", x, perm=tuple(ctx.axis(p, x) for p in perm))


@function("concat")
def concat(ctx, tensors: list, axis: int = 0):
    """Join a list of tensors along an existing axis."""
    values = [ctx.tensor(t) for t in tensors]
    if not values:
        ctx.error("concat needs at least one tensor")
    return ctx.op("concat", *values, axis=ctx.axis(axis, values[0]))


@function("where")
def where(ctx, condition: Any, a: Any, b: Any):
    """Elementwise choice: a where condition holds, else b (NumPy broadcasting).

    With a compile-time bool condition (a block argument) it picks one of the two values
    statically, so a block can return different things by configuration.
    """
    if isinstance(condition, bool):
        return a if condition else b
    if not isinstance(condition, Value):
        ctx.error(f"where: the condition must be a tensor or a bool, got {condition!r}")
    a_value = a if isinstance(a, Value) else None
    b_value = b if isinstance(b, Value) else None
    like = a_value or b_value
    a_value = a_value or ctx.const(a, like)
    b_value = b_value or ctx.const(b, like)
    if condition.dtype != DType.bool:
        condition = ctx.op("not_equal", condition, ctx.const(0, condition))
    return ctx.op("where", condition, a_value, b_value)


@function("one_hot")
def one_hot(ctx, labels: Tensor, depth: int):
    """one_hot(y, 10): f32[..., depth] from integer labels."""
    if not labels.dtype.is_int:
        ctx.error(f"one_hot expects integer labels, got {labels.type}")
    if depth < 1:
        ctx.error(f"one_hot: the depth (number of classes) must be at least 1, got {depth}")
    return ctx.op("one_hot", labels, depth=depth)


@function("zeros")
def zeros(ctx, shape: list, dtype: str = "f32"):
    """A tensor of zeros; `zeros([B, hidden])` takes symbolic dims from the model."""
    return ctx.op("full", shape=tuple(ctx.dims(shape)), value=0.0,
                  dtype=element_type(ctx, "zeros", dtype))


@function("ones")
def ones(ctx, shape: list, dtype: str = "f32"):
    """A tensor of ones."""
    return ctx.op("full", shape=tuple(ctx.dims(shape)), value=1.0,
                  dtype=element_type(ctx, "ones", dtype))


@function("flatten")
def flatten(ctx, x: Tensor):
    """Keep the first axis and flatten the rest: [B, C, H, W] -> [B, C*H*W]."""
    if x.rank < 2:
        ctx.error(f"flatten expects a tensor of rank at least 2, got {x.type}")
    return ctx.op("reshape", x, shape=(x.shape[0], -1))


# ---------------------------------------------------------------------------------------------
# Positions and masks


@function("arange")
def arange(ctx, n: AnyValue, dtype: str = "i64"):
    """0, 1, ..., n-1 along one axis; n may be a symbolic dim: `arange(T)`, `arange(D / 2)`."""
    size = ctx.dims([n])[0]
    if isinstance(size, int) and size < 1:
        ctx.error(f"arange: the length must be at least 1, got {size}")
    return ctx.op("iota", shape=(size,), axis=0, dtype=element_type(ctx, "arange", dtype))


@function("tril")
def tril(ctx, x: Tensor, k: int = 0):
    """x with the elements above the k-th diagonal of its last two axes set to 0 (as
    torch.tril): a [R, 1] and a [1, C] iota compared, so no index tensor of x's size is made."""
    if x.rank < 2:
        ctx.error(f"tril expects a tensor of rank at least 2, got {x.type}")
    rows, cols = x.shape[-2], x.shape[-1]
    row = ctx.op("iota", shape=(rows, 1), axis=0)
    col = ctx.op("iota", shape=(1, cols), axis=1)
    keep = ctx.op("greater_equal", ctx.op("add", row, ctx.const(k, row)), col)
    return ctx.op("where", keep, x, ctx.const(0, x))


# ---------------------------------------------------------------------------------------------
# Schedules and running sums (a diffusion model's beta, alpha_bar tables)

MAX_LINSPACE = 10_000       # a constant table embedded in the compiled step


@function("linspace")
def linspace(ctx, start: float, stop: float, n: int, dtype: str = "f32"):
    """n evenly spaced numbers from start to stop inclusive, as np.linspace: a constant
    computed in f64 when compiling (`linspace(1e-4, 0.02, T)` is a DDPM beta schedule)."""
    for name, value in (("start", start), ("stop", stop)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.error(f"linspace: {name} must be a compile-time number, got {value!r}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LINSPACE:
        ctx.error(f"linspace: n must be an int in [1, {MAX_LINSPACE:,}], got {n!r}",
                  hint="the table is a constant of the compiled step; for a symbolic length "
                       "use arange(n) arithmetic")
    target = element_type(ctx, "linspace", dtype)
    if not target.is_float:
        ctx.error(f'linspace makes floats, not {dtype}', hint='dtype="f32" or "f64"')
    table = np.linspace(float(start), float(stop), n).astype(target.numpy)
    with ctx.lowerer.builder.at(ctx.span):
        return ctx.lowerer.builder.constant(table, target)


def _running(name: str):
    def apply(ctx, x: Tensor, axis: int = 0, reverse: bool = False):
        return ctx.op(name, x, axis=ctx.axis(axis, x), reverse=reverse)
    apply.__name__ = name
    apply.__doc__ = (f"{name}(x, axis=0, reverse=false): running "
                     f"{'sum' if name == 'cumsum' else 'product'} along an axis; on constants "
                     f"it is folded when compiling.")
    function(name)(apply)


for _name in ("cumsum", "cumprod"):
    _running(_name)
