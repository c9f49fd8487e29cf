"""conv2d and pooling: shape rules and errors, references against naive loops and torch,
gradients (and second derivatives) against finite differences, compiled kernels against the
references, on LeNet shapes too."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.ir.types import DType, ShapeError, Sym, dim_add
from netdsl.ops import get_op

from op_checks import t, build, check_vjp, emitted, normal  # noqa: E402

B, H, W = Sym.named("B"), Sym.named("H"), Sym.named("W")
f32 = DType.f32


# -- conv2d shapes ---------------------------------------------------------------------------

@pytest.mark.parametrize("x, w, attrs, expected", [
    (t(B, 1, 28, 28), t(6, 1, 5, 5), {"padding": 2}, t(B, 6, 28, 28)),
    (t(B, 6, 14, 14), t(16, 6, 5, 5), {}, t(B, 16, 10, 10)),
    (t(B, 3, H, W), t(8, 3, 3, 3), {}, t(B, 8, dim_add(H, -2), dim_add(W, -2))),
    (t(B, 3, H, W), t(8, 3, 4, 3), {"padding": "same"}, t(B, 8, H, W)),
    (t(B, 3, 32, 32), t(8, 3, 3, 3), {"stride": 2, "padding": 1}, t(B, 8, 16, 16)),
    (t(B, 3, 9, 9), t(8, 3, 3, 3), {"dilation": 2}, t(B, 8, 5, 5)),
    (t(B, 4, 8, 8), t(8, 2, 3, 3), {"groups": 2, "padding": (1, 0)}, t(B, 8, 8, 6)),
])
def test_conv_infer(x, w, attrs, expected):
    assert get_op("conv2d").infer(x, w, **attrs) == expected


def test_strided_conv_on_a_symbolic_extent_gives_an_opaque_dim():
    out = get_op("conv2d").infer(t(B, 3, H, W), t(8, 3, 3, 3), stride=2)
    assert out.shape[:2] == (B, 8) and all(isinstance(d, Sym) for d in out.shape[2:])


@pytest.mark.parametrize("x, w, attrs, message", [
    (t(B, 120), t(16, 6, 5, 5), {},
     "conv2d expects input f32[B, C, H, W] (rank 4), got f32[B, 120]"),
    (t(B, 3, 32, 32), t(16, 6, 5, 5), {},
     "conv2d: input has 3 channels but the weight expects 6: input f32[B, 3, 32, 32], "
     "weight f32[16, 6, 5, 5]"),
    (t(B, 3, 32, 32), t(16, 3, 5), {}, "weight [out, in, kh, kw] (rank 4)"),
    (t(B, 3, 32, 32), t(16, 3, 3, 3), {"stride": 2, "padding": "same"},
     'padding="same" needs stride 1'),
    (t(B, 3, 4, 4), t(16, 3, 5, 5), {}, "does not fit"),
    (t(B, 4, 8, 8), t(6, 2, 3, 3), {"groups": 4}, "groups=4"),
    (t(B, 3, 8, 8), t(6, 3, 3, 3, dtype=DType.f64), {}, "one type"),
])
def test_conv_errors(x, w, attrs, message):
    with pytest.raises(ShapeError) as error:
        get_op("conv2d").infer(x, w, **attrs)
    assert message in error.value.message


# -- conv2d reference, gradients, kernels --------------------------------------------------------

CONV_CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), {}),
    ((2, 2, 8, 7), (3, 2, 3, 2), {"stride": 2, "padding": 1}),
    ((1, 2, 6, 7), (3, 2, 2, 4), {"padding": "same", "dilation": (1, 2)}),
    ((2, 4, 5, 5), (6, 2, 3, 3), {"groups": 2, "stride": (1, 2), "padding": (1, 0)}),
    ((1, 1, 9, 8), (2, 1, 3, 3), {"stride": 3, "padding": 2, "dilation": 2}),
]


def naive_conv(x, w, stride, padding, dilation, groups):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, height, width = x.shape
    o, cg, kh, kw = w.shape
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo))
    for b, k, y, z in np.ndindex(out.shape):
        group = k // (o // groups)
        for ci, i, j in np.ndindex(cg, kh, kw):
            out[b, k, y, z] += w[k, ci, i, j] * padded[b, group * cg + ci, y * sh + i * dh,
                                                      z * sw + j * dw]
    return out


def test_reference_matches_a_naive_loop():
    x, w = normal(2, 4, 7, 6), normal(6, 2, 3, 2, seed=1)
    got = get_op("conv2d").reference(x, w, stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                                     groups=2)
    np.testing.assert_allclose(got, naive_conv(x, w, (2, 1), (1, 2), (1, 2), 2), rtol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, attrs", CONV_CASES)
def test_references_match_torch(x_shape, w_shape, attrs):
    torch = pytest.importorskip("torch")
    x, w = normal(*x_shape), normal(*w_shape, seed=1)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wt, **attrs)
    g = normal(*y.shape, seed=2)
    y.backward(torch.from_numpy(g))
    np.testing.assert_allclose(get_op("conv2d").reference(x, w, **attrs), y.detach().numpy(),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(get_op("conv2d_grad_input").reference(g, w, x, **attrs),
                               xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        get_op("conv2d_grad_weight").reference(x, g, kernel_size=w_shape[2:], **attrs),
        wt.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x_shape, w_shape, attrs", CONV_CASES[:3])
def test_conv_vjps_and_second_derivatives(x_shape, w_shape, attrs):
    x, w = normal(*x_shape), normal(*w_shape, seed=1)
    check_vjp("conv2d", [x, w], **attrs)
    g = normal(*get_op("conv2d").reference(x, w, **attrs).shape, seed=2)
    check_vjp("conv2d_grad_input", [g, w, x], **attrs)
    check_vjp("conv2d_grad_weight", [x, g], kernel_size=w_shape[2:], **attrs)


@pytest.mark.parametrize("x_shape, w_shape, attrs", CONV_CASES + [
    ((64, 1, 28, 28), (6, 1, 5, 5), {"padding": 2}),
    ((64, 6, 14, 14), (16, 6, 5, 5), {}),
])
def test_compiled_conv_kernels_match_the_references(x_shape, w_shape, attrs):
    x, w = normal(*x_shape, dtype=np.float32), normal(*w_shape, dtype=np.float32, seed=1)
    conv = get_op("conv2d").reference(x, w, **attrs)
    g = normal(*conv.shape, dtype=np.float32, seed=2)
    tolerance = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(emitted("conv2d", [x, w], **attrs), conv, **tolerance)
    np.testing.assert_allclose(emitted("conv2d_grad_input", [g, w, x], **attrs),
                               get_op("conv2d_grad_input").reference(g, w, x, **attrs),
                               **tolerance)
    attrs_w = dict(attrs, kernel_size=w_shape[2:])
    np.testing.assert_allclose(emitted("conv2d_grad_weight", [x, g], **attrs_w),
                               get_op("conv2d_grad_weight").reference(x, g, **attrs_w),
                               rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("x_shape, w_shape, attrs", [
    ((64, 1, 28, 28), (6, 1, 5, 5), {"padding": 2}),      # LeNet-5's conv1: 8 chunks
    ((64, 6, 14, 14), (16, 6, 5, 5), {}),                  # conv2
    ((11, 4, 9, 9), (6, 2, 3, 3), {"groups": 2, "stride": 2, "padding": 1}),
    ((1, 3, 6, 6), (4, 3, 3, 3), {}),                      # one chunk: runs serially
])
def test_parallel_conv_kernels_give_the_serial_kernels_numbers(x_shape, w_shape, attrs):
    """The `_parallel` kernels run whole chunks of images on Numba's threads, each chunk's gemm
    on one BLAS thread: the same chunks and products as the serial kernels, so the same bits."""
    x, w = normal(*x_shape, dtype=np.float32), normal(*w_shape, dtype=np.float32, seed=1)
    conv = emitted("conv2d", [x, w], **attrs)
    g = normal(*conv.shape, dtype=np.float32, seed=2)
    attrs_w = dict(attrs, kernel_size=w_shape[2:])
    for name, arrays, op_attrs in [("conv2d", [x, w], attrs),
                                   ("conv2d_grad_input", [g, w, x], attrs),
                                   ("conv2d_grad_weight", [x, g], attrs_w)]:
        serial = emitted(name, arrays, **op_attrs)
        parallel = emitted(name, arrays, parallel=True, **op_attrs)
        assert np.array_equal(serial, parallel), name


def test_convolutions_of_many_multiply_adds_call_the_parallel_kernels():
    """From 4 * parallel_min multiply-adds at the size hint (LeNet-5's convolutions at batch
    128: 15M and 31M); a small convolution stays serial."""
    from netdsl.backends.numba_cpu.emit import EmitContext
    from netdsl.backends.numba_cpu.lowerings import conv as lowerings
    from netdsl.ir.graph import GraphBuilder

    def lowered(x_type, w_type, **attrs):
        b = GraphBuilder()
        x, w = b.input("x", x_type), b.input("w", w_type)
        out = b.op("conv2d", x, w, **attrs)
        grad_input = b.op("conv2d_grad_input", out, w, x, **attrs)
        grad_weight = b.op("conv2d_grad_weight", x, out, kernel_size=w_type.shape[2:], **attrs)
        ctx = EmitContext(parallel=False, parallel_min=1 << 20, size_hint=128)
        return " ".join(rule(ctx, v.producer, ["a", "b", "c"], ["o"])[0] for rule, v in [
            (lowerings.lower_conv2d, out), (lowerings.lower_conv2d_grad_input, grad_input),
            (lowerings.lower_conv2d_grad_weight, grad_weight)])

    lenet = lowered(t(B, 6, 14, 14), t(16, 6, 5, 5))
    assert lenet.count("_parallel(") == 3
    assert "_parallel(" not in lowered(t(B, 3, 8, 8), t(4, 3, 3, 3))


def test_compiled_grad_input_overwrites_a_dirty_buffer():
    """Buffers are reused between kernels: the kernel must not rely on a zeroed output."""
    from netdsl.backends.numba_cpu.emit import compile_single_node
    x, w = normal(2, 3, 8, 8, dtype=np.float32), normal(4, 3, 3, 3, dtype=np.float32)
    g = normal(2, 4, 3, 3, dtype=np.float32)
    _, _, out = build("conv2d_grad_input", [g, w, x], stride=2)
    kernel, _ = compile_single_node(out.producer)
    dx = np.full(x.shape, 7.0, dtype=np.float32)
    kernel(g, w, x, dx)
    np.testing.assert_allclose(dx, get_op("conv2d_grad_input").reference(g, w, x, stride=2),
                               rtol=1e-5, atol=1e-5)
    assert np.all(dx[:, :, 7, :] == 0)          # the row that stride 2 never reads


# -- pooling -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pool_infer_and_errors(name):
    infer = get_op(name).infer
    assert infer(t(B, 6, 28, 28), size=2) == t(B, 6, 14, 14)
    assert infer(t(B, 6, H, W), size=(2, 2), stride=(1, 1)) == \
        t(B, 6, dim_add(H, -1), dim_add(W, -1))
    assert infer(t(B, 3, 7, 7), size=3, stride=2, padding=1) == t(B, 3, 4, 4)
    for x, attrs, words in [(t(B, 120), {"size": 2}, "(rank 4), got f32[B, 120]"),
                            (t(B, 3, 8, 8), {"size": 2, "padding": 2}, "at most half"),
                            (t(B, 3, 1, 8), {"size": 2}, "does not fit"),
                            (t(B, 3, 8, 8), {"size": 0}, "must be positive")]:
        with pytest.raises(ShapeError, match=None) as error:
            infer(x, **attrs)
        assert words in error.value.message


POOL_CASES = [
    ((2, 3, 6, 6), {"size": 2}),
    ((2, 3, 7, 5), {"size": 2}),       # the unrolled 2x2 path, a row and a column uncovered
    ((2, 2, 7, 6), {"size": 3, "stride": 2, "padding": 1}),
    ((1, 3, 5, 7), {"size": (2, 3), "stride": (1, 2), "padding": (1, 0)}),
]


@pytest.mark.parametrize("x_shape, attrs", POOL_CASES)
@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pool_references_match_torch(name, x_shape, attrs):
    torch = pytest.importorskip("torch")
    extra = [{}] if name == "max_pool2d" else [{}, {"count_include_pad": False}]
    for more in extra:
        x = normal(*x_shape)
        xt = torch.tensor(x, requires_grad=True)
        function = getattr(torch.nn.functional, name)
        y = function(xt, attrs["size"], attrs.get("stride"), attrs.get("padding", 0), **more)
        g = normal(*y.shape, seed=1)
        y.backward(torch.from_numpy(g))
        np.testing.assert_allclose(get_op(name).reference(x, **attrs, **more),
                                   y.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(get_op(f"{name}_grad").reference(x, g, **attrs, **more),
                                   xt.grad.numpy(), rtol=1e-12)


def test_max_pool_gradient_goes_to_the_first_maximum_on_ties():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 1, 0] = 1.0          # a tie inside the first window
    g = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    expected = np.zeros_like(x)
    expected[0, 0, 1, 0] = 1.0                   # row-major first of the tied pair
    expected[0, 0, 0, 2], expected[0, 0, 2, 0], expected[0, 0, 2, 2] = 2.0, 3.0, 4.0
    for array in (get_op("max_pool2d_grad").reference(x, g, size=2),
                  emitted("max_pool2d_grad", [x, g], size=2)):
        np.testing.assert_array_equal(array, expected)


@pytest.mark.parametrize("x_shape, attrs", POOL_CASES)
def test_pool_vjps_and_second_derivatives(x_shape, attrs):
    x = normal(*x_shape)
    check_vjp("max_pool2d", [x], **attrs)
    check_vjp("avg_pool2d", [x], **attrs)
    check_vjp("avg_pool2d", [x], count_include_pad=False, **attrs)
    g = normal(*get_op("max_pool2d").reference(x, **attrs).shape, seed=1)
    check_vjp("max_pool2d_grad", [x, g], **attrs)
    check_vjp("max_pool2d_gather", [x, normal(*x_shape, seed=2)], **attrs)
    check_vjp("avg_pool2d_grad", [x, g], **attrs)


@pytest.mark.parametrize("x_shape, attrs", POOL_CASES + [((64, 6, 28, 28), {"size": 2})])
def test_compiled_pool_kernels_match_the_references(x_shape, attrs):
    x = normal(*x_shape, dtype=np.float32)
    pooled = get_op("max_pool2d").reference(x, **attrs)
    g = normal(*pooled.shape, dtype=np.float32, seed=1)
    v = normal(*x_shape, dtype=np.float32, seed=2)
    for name, arrays, more in [("max_pool2d", [x], {}), ("max_pool2d_grad", [x, g], {}),
                               ("max_pool2d_gather", [x, v], {}), ("avg_pool2d", [x], {}),
                               ("avg_pool2d_grad", [x, g], {}),
                               ("avg_pool2d", [x], {"count_include_pad": False}),
                               ("avg_pool2d_grad", [x, g], {"count_include_pad": False})]:
        expected = get_op(name).reference(*arrays, **attrs, **more)
        np.testing.assert_allclose(emitted(name, arrays, **attrs, **more), expected,
                                   rtol=1e-5, atol=1e-6)


def _nan_images():
    x = normal(2, 2, 6, 6, dtype=np.float32)
    x[0, 0, 1, 1] = x[0, 0, 4, 3] = x[1, 1, 0, 5] = x[1, 0, 2, 2] = np.nan
    x[1, 0, 3, 3] = np.nan                           # two NaNs in one window
    return x


def test_two_by_two_max_pooling_gives_nan_for_a_window_with_nan():
    """A NaN in a window is its maximum (np.max, torch's max_pool2d): the unrolled 2x2 kernel
    (LeNet's, VGG's pooling) took max(best, nan) as best, so the NaN vanished before the
    loss and its non-finite watch."""
    x, attrs = _nan_images(), {"size": (2, 2), "stride": (2, 2)}
    pooled = emitted("max_pool2d", [x], **attrs)
    assert np.isnan(pooled).sum() == 4
    np.testing.assert_array_equal(pooled, get_op("max_pool2d").reference(x, **attrs))


@pytest.mark.parametrize("attrs", [{"size": (2, 2), "stride": (2, 2)},
                                   {"size": (3, 3), "stride": (1, 1), "padding": 1}],
                         ids=["2x2", "3x3-pad"])
def test_max_pooling_routes_nan_as_the_reference_and_torch_do(attrs):
    """The general kernel's pooled value, and the gradient at the first NaN (np.argmax)."""
    x = _nan_images()
    pooled = get_op("max_pool2d").reference(x, **attrs)
    if attrs["size"] != (2, 2):
        np.testing.assert_array_equal(emitted("max_pool2d", [x], **attrs), pooled)
    g = normal(*pooled.shape, dtype=np.float32, seed=1)
    for name, second in (("max_pool2d_grad", g), ("max_pool2d_gather", normal(*x.shape,
                                                                           dtype=np.float32))):
        np.testing.assert_allclose(emitted(name, [x, second], **attrs),     # sums in f32
                                   get_op(name).reference(x, second, **attrs), rtol=1e-6)


def test_two_by_two_routing_takes_the_first_maximum_or_the_first_nan():
    """The unrolled 2x2 routing picks, per window, its first NaN (after an inf too), else its
    first maximum (ties and windows of -inf alike), as the reference's np.argmax does."""
    x = np.zeros((1, 1, 2, 8), np.float32)
    x[0, 0, :, 0:2] = [[np.inf, np.nan], [1.0, np.nan]]      # inf before NaN: the first NaN
    x[0, 0, :, 2:4] = 3.0                                     # a tie of four: the first
    x[0, 0, :, 4:6] = -np.inf                                 # nothing above -inf: the first
    x[0, 0, :, 6:8] = [[0.0, 2.0], [2.0, np.inf]]             # inf last
    attrs = {"size": (2, 2), "stride": (2, 2)}
    g = np.arange(1.0, 5.0, dtype=np.float32).reshape(1, 1, 1, 4)
    routed = emitted("max_pool2d_grad", [x, g], **attrs)
    np.testing.assert_array_equal(routed, get_op("max_pool2d_grad").reference(x, g, **attrs))
    np.testing.assert_array_equal(routed[0, 0], [[0, 1, 2, 0, 3, 0, 0, 0],
                                                 [0, 0, 0, 0, 0, 0, 0, 4]])
    values = np.arange(16, dtype=np.float32).reshape(1, 1, 2, 8)
    np.testing.assert_array_equal(emitted("max_pool2d_gather", [x, values], **attrs)[0, 0, 0],
                                  [1, 2, 4, 15])
