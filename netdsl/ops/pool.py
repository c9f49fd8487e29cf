"""Max and average pooling over the H and W axes of NCHW images, with their gradients.

`max_pool2d(x)` and `avg_pool2d(x)` take attrs `size` (int or pair), `stride` (default: size),
`padding` (default 0, at most half the window, as in PyTorch) and, for averages,
`count_include_pad` (default True, PyTorch's default).  Gradients are ops: `max_pool2d_grad(x, g)`
sends each output gradient to its window's first maximum (row-major order, PyTorch's choice on
ties); `max_pool2d_gather(x, v)` picks v at those same positions (the transpose, used for
second derivatives); `avg_pool2d_grad(x, g)` spreads g evenly (x read only for its shape).
"""
from __future__ import annotations

import numpy as np

from ..ir.types import ShapeError, TensorType
from .conv import output_dim
from .registry import op


def _pair(value, name: str, what: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) for v in value):
        return int(value[0]), int(value[1])
    raise ShapeError(f"{what}: {name} must be an int or a pair of ints, got {value!r}")


def window(what: str, size, stride=None, padding=0):
    """((kh, kw), (sh, sw), (ph, pw)) from the attrs, checked like PyTorch."""
    kh, kw = _pair(size, "size", what)
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride", what)
    ph, pw = _pair(padding, "padding", what)
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        raise ShapeError(f"{what}: size and stride must be positive and padding not negative, "
                         f"got size {size!r}, stride {stride!r}, padding {padding!r}")
    if 2 * ph > kh or 2 * pw > kw:
        raise ShapeError(f"{what}: padding {padding!r} must be at most half the window "
                         f"{kh}x{kw}")
    return (kh, kw), (sh, sw), (ph, pw)


def _pool_type(what: str, x: TensorType, size, stride, padding) -> TensorType:
    if x.rank != 4:
        raise ShapeError(f"{what} expects input {x.dtype}[B, C, H, W] (rank 4), got {x}")
    if not x.dtype.is_float:
        raise ShapeError(f"{what} expects a floating-point tensor, got {x}",
                         hint="convert first: cast(x, f32)")
    (kh, kw), (sh, sw), (ph, pw) = window(what, size, stride, padding)
    ho = output_dim(x.shape[2], ph, ph, kh, sh, 1)
    wo = output_dim(x.shape[3], pw, pw, kw, sw, 1)
    if any(isinstance(d, int) and d < 1 for d in (ho, wo)):
        raise ShapeError(f"{what}: the {kh}x{kw} window does not fit in the padded input {x}")
    return TensorType(x.dtype, (x.shape[0], x.shape[1], ho, wo))


def _grad_types(what: str, x: TensorType, g: TensorType, attrs) -> TensorType:
    expected = _pool_type(what, x, attrs.get("size"), attrs.get("stride"),
                          attrs.get("padding", 0))
    if g.dtype != x.dtype or tuple(g.shape) != tuple(expected.shape):
        raise ShapeError(f"{what}: the gradient {g} does not match the pooled output "
                         f"{expected} of input {x}")
    return x


# ---------------------------------------------------------------------------------------------
# NumPy references

def _windows(x, size, stride, padding, fill):
    """[N, C, Ho, Wo, kh*kw] windows of x padded with `fill`."""
    (kh, kw), (sh, sw), (ph, pw) = window("pool", size, stride, padding)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(2, 3))
    view = view[:, :, ::sh, ::sw]
    return view.reshape(view.shape[:4] + (kh * kw,))


def _argmax_positions(x, size, stride=None, padding=0):
    """Index arrays (n, c, row, col) into x padded by `padding` of each window's first max."""
    (kh, kw), (sh, sw), _ = window("pool", size, stride, padding)
    first = np.argmax(_windows(x, size, stride, padding, -np.inf), axis=-1)
    n, c, y, xx = np.indices(first.shape)
    return n, c, y * sh + first // kw, xx * sw + first % kw


def _crop(padded, padding, shape):
    ph, pw = _pair(padding, "padding", "pool")
    return padded[:, :, ph:ph + shape[2], pw:pw + shape[3]]


def _divisor(x, size, stride, padding, count_include_pad):
    (kh, kw), _, _ = window("pool", size, stride, padding)
    if count_include_pad:
        return float(kh * kw)
    ones = np.ones((1, 1) + x.shape[2:])
    return _windows(ones, size, stride, padding, 0.0).sum(axis=-1)


# ---------------------------------------------------------------------------------------------
# Compiled kernels (x viewed as [planes, H, W]; a window's rows/columns clipped to the image)


# Each kernel works plane by plane (a `_plane` function), in a serial loop or, in its
# `_parallel` variant, in prange.  The code generator calls the parallel one only for large
# tensors (EmitContext.large): a prange over a small batch pays a thread-pool barrier per call,
# slow on busy cores, and a parallel kernel takes far longer to compile.


def _examples(kind: str):
    """Examples for `kind`: "pool" (x), "grad" (x, pooled g), "gather" (x, v like x)."""
    from ..ir.types import DType
    T = lambda *shape: TensorType(DType.f32, shape)
    cases = [(T(2, 3, 6, 6), {"size": 2}),
             (T(2, 2, 7, 6), {"size": 3, "stride": 2, "padding": 1}),
             (T(1, 3, 5, 7), {"size": (2, 3), "stride": (1, 2), "padding": (1, 0)})]
    result = []
    for x, attrs in cases:
        pooled = _pool_type("pool", x, attrs["size"], attrs.get("stride"),
                            attrs.get("padding", 0))
        inputs = {"pool": (x,), "grad": (x, pooled), "gather": (x, x)}[kind]
        result.append((inputs, attrs))
    return result


def _with_pad_mode(examples):
    """Average-pool examples, plus one that does not count padded cells."""
    extra = dict(examples[1][1], count_include_pad=False)
    return examples + [(examples[1][0], extra)]


@op("max_pool2d")
class MaxPool2D:
    """Maximum over each size[0] x size[1] window of NCHW images (padding is -inf)."""
    traits = {"pure"}

    def infer(x, size, stride=None, padding=0):
        return _pool_type("max_pool2d", x, size, stride, padding)

    def reference(x, size, stride=None, padding=0):
        return _windows(x, size, stride, padding, -np.inf).max(axis=-1)

    def vjp(b, grads, inputs, outputs, **attrs):
        g = grads[0]
        return (None if g is None else b.op("max_pool2d_grad", inputs[0], g, **attrs),)

    def examples():
        return _examples("pool")


@op("max_pool2d_grad")
class MaxPool2DGrad:
    """Gradient of max_pool2d: inputs (x, g); each g goes to its window's first maximum in x."""
    traits = {"pure"}

    def infer(x, g, size, stride=None, padding=0):
        return _grad_types("max_pool2d_grad", x, g, dict(size=size, stride=stride,
                                                          padding=padding))

    def reference(x, g, size, stride=None, padding=0):
        ph, pw = _pair(padding, "padding", "pool")
        padded = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * ph, x.shape[3] + 2 * pw))
        np.add.at(padded, _argmax_positions(x, size, stride, padding), g)
        return _crop(padded, padding, x.shape).astype(g.dtype)

    def vjp(b, grads, inputs, outputs, **attrs):
        gg = grads[0]
        x = inputs[0]
        # Linear in g; x only chooses positions (piecewise constant: no gradient).
        return None, (None if gg is None else b.op("max_pool2d_gather", x, gg, **attrs))

    def examples():
        return _examples("grad")


@op("max_pool2d_gather")
class MaxPool2DGather:
    """v (shaped like x) read at each window's first maximum of x: max_pool2d_grad's
    transpose, so second derivatives through max pooling are graphs too."""
    traits = {"pure"}

    def infer(x, v, size, stride=None, padding=0):
        if v.dtype != x.dtype or tuple(v.shape) != tuple(x.shape):
            raise ShapeError(f"max_pool2d_gather: values {v} must have the shape of input {x}")
        return _pool_type("max_pool2d_gather", x, size, stride, padding)

    def reference(x, v, size, stride=None, padding=0):
        ph, pw = _pair(padding, "padding", "pool")
        padded = np.pad(v, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        return padded[_argmax_positions(x, size, stride, padding)]

    def vjp(b, grads, inputs, outputs, **attrs):
        g = grads[0]
        return None, (None if g is None else b.op("max_pool2d_grad", inputs[0], g, **attrs))

    def examples():
        return _examples("gather")


@op("avg_pool2d")
class AvgPool2D:
    """Mean over each window of NCHW images; padded cells count as zeros unless
    count_include_pad=False."""
    traits = {"pure"}

    def infer(x, size, stride=None, padding=0, count_include_pad=True):
        return _pool_type("avg_pool2d", x, size, stride, padding)

    def reference(x, size, stride=None, padding=0, count_include_pad=True):
        total = _windows(x, size, stride, padding, 0.0).sum(axis=-1)
        return (total / _divisor(x, size, stride, padding, count_include_pad)).astype(x.dtype)

    def vjp(b, grads, inputs, outputs, **attrs):
        g = grads[0]
        return (None if g is None else b.op("avg_pool2d_grad", inputs[0], g, **attrs),)

    def examples():
        return _with_pad_mode(_examples("pool"))


@op("avg_pool2d_grad")
class AvgPool2DGrad:
    """Gradient of avg_pool2d: inputs (x, g), x read only for its shape (with stride > 1
    several input sizes pool to the same size); each g is spread evenly over its window."""
    traits = {"pure"}

    def infer(x, g, size, stride=None, padding=0, count_include_pad=True):
        return _grad_types("avg_pool2d_grad", x, g, dict(size=size, stride=stride,
                                                          padding=padding))

    def reference(x, g, size, stride=None, padding=0, count_include_pad=True):
        (kh, kw), (sh, sw), (ph, pw) = window("pool", size, stride, padding)
        share = g / _divisor(x, size, stride, padding, count_include_pad)
        padded = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * ph, x.shape[3] + 2 * pw))
        ho, wo = g.shape[2], g.shape[3]
        for i in range(kh):
            for j in range(kw):
                padded[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += share
        return _crop(padded, padding, x.shape).astype(g.dtype)

    def vjp(b, grads, inputs, outputs, **attrs):
        gg = grads[0]
        # Linear in g with avg_pool2d as its transpose; x gives only the shape.
        return None, (None if gg is None else b.op("avg_pool2d", gg, **attrs))

    def examples():
        return _with_pad_mode(_examples("grad"))
