"""2-D convolution over NCHW images and its two gradients, with PyTorch's layouts and rules.

`conv2d(x, w)`: x [N, C, H, W], w [O, C/groups, kh, kw] -> [N, O, Ho, Wo]; attrs `stride`,
`padding` (int, pair or "same"), `dilation`, `groups`.  Bias is a separate broadcast add (the
fusion pass makes it an epilogue).  The gradients are ops too, so they compile to BLAS:
`conv2d_grad_input(g, w, x)` (x read only for its shape: with stride > 1 several input sizes
give one output size) and `conv2d_grad_weight(x, g)` (attr `kernel_size`).
"""
from __future__ import annotations

import numpy as np

from ..ir.types import DType, ShapeError, TensorType, dim_add, dim_floordiv
from .registry import op


# ---------------------------------------------------------------------------------------------
# Geometry: attrs -> stride, padding (top, bottom, left, right), dilation

def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) for v in value):
        return int(value[0]), int(value[1])
    raise ShapeError(f"conv2d: {name} must be an int or a pair of ints, got {value!r}")


def geometry(kernel: tuple[int, int], stride=1, padding=0, dilation=1):
    """((sh, sw), (top, bottom, left, right), (dh, dw)) for a kernel of size (kh, kw)."""
    (sh, sw), (dh, dw) = _pair(stride, "stride"), _pair(dilation, "dilation")
    if min(sh, sw, dh, dw) < 1:
        raise ShapeError(f"conv2d: stride and dilation must be at least 1, "
                         f"got stride {stride!r}, dilation {dilation!r}")
    if padding == "same":
        if (sh, sw) != (1, 1):
            raise ShapeError(f'conv2d: padding="same" needs stride 1 (as in PyTorch), '
                             f"got stride {stride!r}", hint="give the padding as a number")
        # PyTorch puts the odd pixel of an even kernel's padding at the bottom/right.
        th, tw = dh * (kernel[0] - 1), dw * (kernel[1] - 1)
        pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    else:
        ph, pw = _pair(padding, "padding")
        pads = (ph, ph, pw, pw)
    if min(pads) < 0:
        raise ShapeError(f"conv2d: padding must not be negative, got {padding!r}")
    return (sh, sw), pads, (dh, dw)


def output_dim(size, low: int, high: int, kernel: int, stride: int, dilation: int):
    """(size + low + high - dilation*(kernel-1) - 1) // stride + 1, on symbolic dims too."""
    span = dim_add(size, low + high - dilation * (kernel - 1) - 1)
    return dim_add(span if stride == 1 else dim_floordiv(span, stride), 1)


def _conv_types(x: TensorType, w: TensorType, groups) -> None:
    if x.rank != 4:
        raise ShapeError(f"conv2d expects input {x.dtype}[B, C, H, W] (rank 4), got {x}",
                         hint="images are NCHW; add a channel axis with reshape")
    if w.rank != 4:
        raise ShapeError(f"conv2d expects a weight [out, in, kh, kw] (rank 4), got {w}")
    if not x.dtype.is_float or x.dtype != w.dtype:
        raise ShapeError(f"conv2d expects floating-point input and weight of one type: "
                         f"{x} * {w}", hint="convert first: cast(x, f32)")
    if not all(isinstance(d, int) for d in w.shape):
        raise ShapeError(f"conv2d: the weight shape must be known, got {w}")
    if not isinstance(groups, int) or groups < 1 or w.shape[0] % groups:
        raise ShapeError(f"conv2d: groups={groups!r} must be a positive divisor of the "
                         f"{w.shape[0]} output channels of weight {w}")
    if x.shape[1] != w.shape[1] * groups:
        raise ShapeError(f"conv2d: input has {x.shape[1]} channels but the weight expects "
                         f"{w.shape[1] * groups}: input {x}, weight {w}",
                         hint="the weight layout is [out, in, kh, kw]")


def _conv_output(x: TensorType, w: TensorType, stride, padding, dilation) -> TensorType:
    kh, kw = w.shape[2], w.shape[3]
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = geometry((kh, kw), stride, padding, dilation)
    ho, wo = output_dim(x.shape[2], pt, pb, kh, sh, dh), output_dim(x.shape[3], pl, pr, kw, sw, dw)
    if any(isinstance(d, int) and d < 1 for d in (ho, wo)):
        raise ShapeError(f"conv2d: the {kh}x{kw} kernel (dilation {dh}x{dw}) does not fit in "
                         f"the padded input: input {x}, weight {w}, padding {padding!r}")
    return TensorType(x.dtype, (x.shape[0], w.shape[0], ho, wo))


# ---------------------------------------------------------------------------------------------
# NumPy references: windows of the padded input, then einsum

def _windows(x, kernel, stride, pads, dilation):
    """[N, C, Ho, Wo, kh, kw] view of the padded input's receptive fields."""
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = stride, pads, dilation
    padded = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    eh, ew = dh * (kernel[0] - 1) + 1, dw * (kernel[1] - 1) + 1
    view = np.lib.stride_tricks.sliding_window_view(padded, (eh, ew), axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def _grouped(a, axis: int, groups: int):
    return a.reshape(a.shape[:axis] + (groups, a.shape[axis] // groups) + a.shape[axis + 1:])


def _conv_reference(x, w, stride=1, padding=0, dilation=1, groups=1):
    windows = _windows(x, w.shape[2:], *geometry(w.shape[2:], stride, padding, dilation))
    out = np.einsum("ngchwij,gocij->ngohw", _grouped(windows, 1, groups),
                    _grouped(w, 0, groups), optimize=True)
    return out.reshape(x.shape[0], w.shape[0], *windows.shape[2:4]).astype(x.dtype)


def _grad_input_reference(g, w, x, stride=1, padding=0, dilation=1, groups=1):
    kernel = w.shape[2:]
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = geometry(kernel, stride, padding, dilation)
    n, c, h, wd = x.shape
    ho, wo = g.shape[2], g.shape[3]
    cols = np.einsum("ngohw,gocij->ngchwij", _grouped(g, 1, groups), _grouped(w, 0, groups),
                     optimize=True).reshape(n, c, ho, wo, *kernel)
    padded = np.zeros((n, c, h + pt + pb, wd + pl + pr), dtype=np.float64)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            padded[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                   j * dw:j * dw + sw * (wo - 1) + 1:sw] += cols[..., i, j]
    return padded[:, :, pt:pt + h, pl:pl + wd].astype(g.dtype)


def _grad_weight_reference(x, g, kernel_size, stride=1, padding=0, dilation=1, groups=1):
    kernel = tuple(kernel_size)
    cols = _grouped(_windows(x, kernel, *geometry(kernel, stride, padding, dilation)), 1, groups)
    dw = np.einsum("ngchwij,ngohw->gocij", cols, _grouped(g, 1, groups), optimize=True)
    return dw.reshape(g.shape[1], x.shape[1] // groups, *kernel_size).astype(x.dtype)


def _check_grad_type(name: str, g: TensorType, expected: TensorType) -> None:
    if g.dtype != expected.dtype or tuple(g.shape) != tuple(expected.shape):
        raise ShapeError(f"{name}: the output gradient {g} does not match the conv2d output "
                         f"{expected}")


def _examples(kind: str):
    T = lambda *shape: TensorType(DType.f32, shape)
    cases = [(T(2, 3, 7, 7), T(4, 3, 3, 3), {}),
             (T(2, 3, 8, 8), T(4, 3, 3, 3), {"stride": 2, "padding": 1}),
             (T(2, 3, 8, 7), T(4, 3, 3, 2), {"stride": (2, 1), "padding": (0, 1)}),
             (T(1, 2, 6, 7), T(3, 2, 2, 4), {"padding": "same", "dilation": (1, 2)}),
             (T(2, 6, 5, 5), T(6, 2, 3, 3), {"groups": 3, "stride": (1, 2), "padding": 1})]
    result = []
    for x, w, attrs in cases:
        g = _conv_output(x, w, attrs.get("stride", 1), attrs.get("padding", 0),
                         attrs.get("dilation", 1))
        result.append({"forward": ((x, w), attrs), "input": ((g, w, x), attrs),
                       "weight": ((x, g), {**attrs, "kernel_size": tuple(w.shape[2:])})}[kind])
    return result


@op("conv2d")
class Conv2D:
    """Cross-correlation of NCHW images with filters [O, C/groups, kh, kw] (PyTorch's conv2d)."""
    traits = {"conv", "pure"}

    def infer(x, w, stride=1, padding=0, dilation=1, groups=1):
        _conv_types(x, w, groups)
        return _conv_output(x, w, stride, padding, dilation)

    reference = staticmethod(_conv_reference)

    def vjp(b, grads, inputs, outputs, **attrs):
        g = grads[0]
        if g is None:
            return None, None
        x, w = inputs
        return (b.op("conv2d_grad_input", g, w, x, **attrs),
                b.op("conv2d_grad_weight", x, g, kernel_size=tuple(w.shape[2:]), **attrs))

    def examples():
        return _examples("forward")


@op("conv2d_grad_input")
class Conv2DGradInput:
    """Gradient of conv2d with respect to its input (a transposed convolution): inputs
    (g, w, x), where x is read only for its shape; attrs as conv2d's."""
    traits = {"conv", "pure"}

    def infer(g, w, x, stride=1, padding=0, dilation=1, groups=1):
        _conv_types(x, w, groups)
        _check_grad_type("conv2d_grad_input", g, _conv_output(x, w, stride, padding, dilation))
        return x

    reference = staticmethod(_grad_input_reference)

    def vjp(b, grads, inputs, outputs, **attrs):
        gg = grads[0]
        if gg is None:
            return None, None, None
        g, w, x = inputs
        # The op is bilinear in (g, w): <G, convᵀ(g, w)> = <conv(G, w), g>.
        return (b.op("conv2d", gg, w, **attrs),
                b.op("conv2d_grad_weight", gg, g, kernel_size=tuple(w.shape[2:]), **attrs),
                None)

    def examples():
        return _examples("input")


@op("conv2d_grad_weight")
class Conv2DGradWeight:
    """Gradient of conv2d with respect to its weight: inputs (x, g); attrs as conv2d's plus
    kernel_size (kh, kw)."""
    traits = {"conv", "pure"}

    def infer(x, g, kernel_size, stride=1, padding=0, dilation=1, groups=1):
        known = g.rank == 4 and x.rank == 4 and isinstance(groups, int) and groups > 0
        if not known or not isinstance(g.shape[1], int) or not isinstance(x.shape[1], int) \
                or x.shape[1] % groups:
            raise ShapeError(f"conv2d_grad_weight: no weight gradient for input {x} and output "
                             f"gradient {g} in {groups!r} groups")
        w = TensorType(x.dtype, (g.shape[1], x.shape[1] // groups, *kernel_size))
        _conv_types(x, w, groups)
        _check_grad_type("conv2d_grad_weight", g, _conv_output(x, w, stride, padding, dilation))
        return w

    reference = staticmethod(_grad_weight_reference)

    def vjp(b, grads, inputs, outputs, kernel_size, **attrs):
        gw = grads[0]
        if gw is None:
            return None, None
        x, g = inputs
        # Bilinear in (x, g): <G, gradw(x, g)> = <conv(x, G), g>.
        return (b.op("conv2d_grad_input", g, gw, x, **attrs), b.op("conv2d", x, gw, **attrs))

    def examples():
        return _examples("weight")
