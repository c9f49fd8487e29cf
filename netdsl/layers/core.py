"""Built-in layers with PyTorch's parameter names and layouts (LANGUAGE.md section 9).

A layer's `__init__` takes its compile-time arguments; `apply(ctx, x)` builds its ops.  Parameters
come from `ctx.param(local_name, shape, init, fan=...)`, which names them by the instance's scope
and returns the existing parameter when a bound layer is applied a second time (weight sharing).
"""
from __future__ import annotations

from .base import ArgumentError, Init, Tensor, layer
from .init import InitSpec


def _known_size(ctx, x, axis: int, what: str) -> int:
    if not 0 <= axis < x.rank:          # axis is rank - 1 (the last) or a fixed one
        ctx.error(f"{what} expects a tensor of rank at least {max(axis, 0) + 1}, "
                  f"got {x.type}")
    size = x.shape[axis]
    if not isinstance(size, int):
        ctx.error(f"{what} needs a known size for axis {axis} of its input {x.type}, "
                  f"but it is the symbolic dimension {size}",
                  hint="declare that dimension as a number or a const in the input's type")
    return size


@layer("Dense")
class Dense:
    """y = x Wᵀ + b on the last axis of any input of rank ≥ 2; weight [units, in]."""

    def __init__(self, units: int, bias: bool = True, init: Init = "he"):
        self.units, self.bias, self.init = _positive("units", "Dense", units), bias, init

    def apply(self, ctx, x: Tensor):
        x = ctx.floating(x)
        if x.rank < 1:
            ctx.error(f"Dense expects a tensor of rank at least 1, got {x.type}")
        features = _known_size(ctx, x, x.rank - 1, "Dense")
        weight = ctx.param("weight", (self.units, features), self.init,
                           fan=(features, self.units))
        y = ctx.op("matmul", x, weight, transpose_b=True)
        if self.bias:
            y = ctx.op("add", y, ctx.param("bias", (self.units,), "zeros"))
        return y

    def describe(self) -> dict[str, str]:
        return {"units": str(self.units)} | ({} if self.bias else {"bias": "false"})


@layer("Flatten")
class Flatten:
    """[B, d1, d2, ...] -> [B, d1*d2*...]."""

    def apply(self, ctx, x: Tensor):
        if x.rank < 2:
            ctx.error(f"Flatten expects a tensor of rank at least 2, got {x.type}")
        return ctx.op("reshape", x, shape=(x.shape[0], -1))


@layer("Dropout")
class Dropout:
    """Zeroes elements with probability p in training (scaling the rest); identity in evaluation."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p < 1.0:
            raise ArgumentError("p", f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def apply(self, ctx, x: Tensor):
        if not ctx.training or self.p == 0.0:
            return x
        mask = ctx.op("dropout_mask", ctx.rng_counter(), x, p=self.p, seed=ctx.fresh_seed())
        return ctx.op("mul", x, mask)

    def describe(self) -> dict[str, str]:
        return {"p": str(self.p)}


def _positive(argument: str, kind: str, value: int) -> int:
    if value < 1:
        raise ArgumentError(argument, f"{kind}: {argument} must be at least 1, got {value}")
    return value


def _pair(value, argument: str = "size", kind: str = "", minimum: int = 1) -> tuple[int, int]:
    """An int or a list of two ints (height, width), each at least `minimum`."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ArgumentError(argument, f"{kind}: {argument} must be an int or a list of two ints "
                                      f"(height, width), got {list(pair)}")
    if min(pair) < minimum:
        raise ArgumentError(argument, f"{kind}: {argument} must be at least {minimum}, "
                                      f"got {value}")
    return pair


@layer("Conv2D")
class Conv2D:
    """2-D convolution over NCHW input; weight [filters, in, kh, kw], bias [filters]."""

    def __init__(self, filters: int, kernel: (int, list) = 3, stride: (int, list) = 1,
                 padding: (int, list, str) = 0, bias: bool = True, init: Init = "he"):
        self.filters = _positive("filters", "Conv2D", filters)
        self.kernel = _pair(kernel, "kernel", "Conv2D")
        self.stride = _pair(stride, "stride", "Conv2D")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ArgumentError("padding", f'Conv2D: padding must be a number, a pair, "same" or '
                                           f'"valid", got "{padding}"')
        self.padding = (0, 0) if padding == "valid" else padding if isinstance(padding, str) \
            else _pair(padding, "padding", "Conv2D", minimum=0)
        self.bias, self.init = bias, init

    def apply(self, ctx, x: Tensor):
        x = ctx.floating(x)
        if x.rank != 4:
            ctx.error(f"Conv2D expects input f32[B, C, H, W] (rank 4), got {x.type}",
                      hint=ctx.where_made(x))
        channels = _known_size(ctx, x, 1, "Conv2D")
        kh, kw = self.kernel
        weight = ctx.param("weight", (self.filters, channels, kh, kw), self.init,
                           fan=(channels * kh * kw, self.filters * kh * kw))
        y = ctx.op("conv2d", x, weight, stride=self.stride, padding=self.padding)
        if self.bias:
            bias = ctx.param("bias", (self.filters,), "zeros")
            y = ctx.op("add", y, ctx.op("reshape", bias, shape=(self.filters, 1, 1)))
        return y

    def describe(self) -> dict[str, str]:
        args = {"filters": str(self.filters), "kernel": _show(self.kernel)}
        if self.stride != (1, 1):
            args["stride"] = _show(self.stride)
        if self.padding not in ((0, 0), 0):
            args["padding"] = _show(self.padding)
        return args


def _show(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple) and len(set(value)) == 1:
        return str(value[0])
    return str(value)


class _Pool:
    op_name = ""

    def __init__(self, size: (int, list) = 2, stride: (int, list) = None,
                 padding: (int, list) = 0):
        self.size = _pair(size, "size", self.kind)
        self.stride = self.size if stride is None else _pair(stride, "stride", self.kind)
        self.padding = _pair(padding, "padding", self.kind, minimum=0)

    def apply(self, ctx, x: Tensor):
        if x.rank != 4:
            ctx.error(f"{self.kind} expects input f32[B, C, H, W] (rank 4), got {x.type}",
                      hint=ctx.where_made(x))
        return ctx.op(self.op_name, x, size=self.size, stride=self.stride, padding=self.padding)

    def describe(self) -> dict[str, str]:
        args = {"size": _show(self.size)}
        if self.stride != self.size:
            args["stride"] = _show(self.stride)
        return args


@layer("MaxPool")
class MaxPool(_Pool):
    """Max pooling over H and W (stride defaults to the size)."""
    op_name = "max_pool2d"


@layer("AvgPool")
class AvgPool(_Pool):
    """Average pooling over H and W (padding counted, as torch's default)."""
    op_name = "avg_pool2d"


@layer("GlobalAvgPool")
class GlobalAvgPool:
    """[B, C, H, W] -> [B, C]: the mean over the spatial axes."""

    def apply(self, ctx, x: Tensor):
        if x.rank < 3:
            ctx.error(f"GlobalAvgPool expects input f32[B, C, ...spatial], got {x.type}")
        return ctx.op("mean", x, axes=tuple(range(2, x.rank)), keepdims=False)


@layer("LayerNorm")
class LayerNorm:
    """Normalise over the last axis with learned weight and bias (eps 1e-5, as torch)."""

    def __init__(self, eps: float = 1e-5):
        self.eps = eps

    def apply(self, ctx, x: Tensor):
        x = ctx.floating(x)
        size = _known_size(ctx, x, x.rank - 1, "LayerNorm")
        axis = (x.rank - 1,)
        mean = ctx.op("mean", x, axes=axis, keepdims=True)
        centred = ctx.op("sub", x, mean)
        variance = ctx.op("mean", ctx.op("mul", centred, centred), axes=axis, keepdims=True)
        scale = ctx.op("rsqrt", ctx.op("add", variance, ctx.const(self.eps, x)))
        normed = ctx.op("mul", centred, scale)
        weight = ctx.param("weight", (size,), "ones")
        bias = ctx.param("bias", (size,), "zeros")
        return ctx.op("add", ctx.op("mul", normed, weight), bias)


@layer("Embedding")
class Embedding:
    """Integer ids [..] -> vectors [.., dim]; weight [vocab, dim] (normal(1) like torch)."""

    def __init__(self, vocab: int, dim: int, init: Init = InitSpec("normal", (1.0,))):
        self.vocab = _positive("vocab", "Embedding", vocab)
        self.dim, self.init = _positive("dim", "Embedding", dim), init

    def apply(self, ctx, ids: Tensor):
        if not ids.dtype.is_int:
            ctx.error(f"Embedding expects integer ids, got {ids.type}",
                      hint="declare the input as i64[...]")
        weight = ctx.param("weight", (self.vocab, self.dim), self.init)
        return ctx.op("take", weight, ids, axis=0)

    def describe(self) -> dict[str, str]:
        return {"vocab": str(self.vocab), "dim": str(self.dim)}

