"""The cuda target's convolution and pooling lowerings (backends/numba_cuda/lowerings/conv.py,
pool.py) against the ops' reference rules: every example of every op, compiled alone through
compile_graph(target="cuda"); each op again over a symbolic batch run at B = 1 and B = 3;
max pooling's first-maximum rule on ties, -inf windows and NaN, bit for bit; a conv2d with its
bias and relu epilogue; two training steps of a small CNN."""
from __future__ import annotations

import numpy as np
import pytest

from backend_helpers import B, assert_matches_reference, t32, training_arrays, training_graph
from cuda_helpers import needs_cuda
from netdsl.backends import compile_graph
from netdsl.ir.graph import Graph, GraphBuilder, LossInfo
from op_examples import (batched, compile_one, draw, examples, launched, reference, rng_for,
                         run_one)

pytestmark = needs_cuda

CONV = ("conv2d", "conv2d_grad_input", "conv2d_grad_weight")
POOL = ("max_pool2d", "max_pool2d_grad", "max_pool2d_gather", "avg_pool2d", "avg_pool2d_grad")
# Inputs that carry the batch on axis 0 (conv's weight, input 1 of two ops, does not).
BATCHED_INPUTS = {"conv2d": (0,), "conv2d_grad_input": (0, 2), "conv2d_grad_weight": (0, 1),
                  **{name: (0, 1) for name in POOL}}
# Max pooling picks, sums and reads values without rounding: equal to the reference exactly.
EXACT = ("max_pool2d", "max_pool2d_grad", "max_pool2d_gather")


def _family(name: str) -> str:
    return "conv" if name in CONV else "pool"


def _compare(name, got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    if name in EXACT:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, index, types, attrs, options",
                         [pytest.param(*case, id=f"{case[0]}-{case[1]}")
                          for case in examples(*CONV, *POOL)])
def test_example_matches_reference(name, index, types, attrs, options, cache_dir):
    compiled = compile_one(name, types, attrs, cache_dir)
    assert launched(compiled, _family(name), name)
    arrays = draw(types, options, rng_for(name, index))
    _compare(name, run_one(compiled, arrays), reference(name, arrays, attrs))


@pytest.mark.parametrize("name", CONV + POOL)
def test_symbolic_batch(name, cache_dir):
    """The example with the widest geometry (strides, padding), its batch axis symbolic: one
    compiled graph run at B = 1 then B = 3 (the launchers read N from the arrays)."""
    _, index, types, attrs, options = examples(name)[1]
    compiled = compile_one(name, batched(types, BATCHED_INPUTS[name]), attrs, cache_dir)
    rng = rng_for(name, 100 + index)
    for batch in (1, 3):
        arrays = draw(batched(types, BATCHED_INPUTS[name]), options, rng, batch)
        _compare(name, run_one(compiled, arrays), reference(name, arrays, attrs))


def _tied_input(rng, shape):
    """Small integers (many ties in every window), a plane of -inf windows and two NaNs."""
    x = rng.integers(-1, 2, shape).astype(np.float32)
    x[0, 0, :3, :3] = -np.inf
    x[-1, -1, 2, 1] = np.nan
    x[-1, -1, 3, 3] = np.nan
    return x


@pytest.mark.parametrize("attrs", [{"size": 2}, {"size": 3, "stride": 2, "padding": 1},
                                   {"size": (2, 3), "stride": 1, "padding": (1, 1)}],
                         ids=["2x2", "3x3-stride2-pad1", "overlapping-2x3-pad1"])
@pytest.mark.parametrize("name", EXACT)
def test_max_pool_first_maximum(name, attrs, cache_dir):
    """Ties go to the window's first maximum in row-major order, a window of -inf picks its
    first cell (a padding cell: the gradient is dropped, the gather reads 0), NaN wins --
    bit for bit as the reference; overlapping windows sum their gradients."""
    example_types = examples(name)[1][2]
    rng = rng_for(name, 200)
    x = _tied_input(rng, (2, 2, 7, 6))
    pooled = reference("max_pool2d", [x], attrs)
    others = {"max_pool2d": [], "max_pool2d_grad": [pooled.shape],
              "max_pool2d_gather": [x.shape]}[name]
    arrays = [x] + [rng.uniform(-2, 2, shape).astype(np.float32) for shape in others]
    types = tuple(t32(*a.shape) for a in arrays)
    assert [t.dtype for t in types] == [t.dtype for t in example_types]
    got = run_one(compile_one(name, types, attrs, cache_dir), arrays)
    want = reference(name, arrays, attrs)
    np.testing.assert_array_equal(got, want)
    if name == "max_pool2d":
        assert np.isnan(got[-1, -1]).any() and np.isneginf(got[0, 0, 0, 0])


def test_conv_with_bias_and_relu_epilogue(cache_dir):
    """conv2d anchors a fused group: the bias add and relu run over its output on the device."""
    b = GraphBuilder(Graph(name="cuda_conv_epilogue"))
    x = b.input("x", t32(2, 3, 6, 6))
    w = b.input("w", t32(4, 3, 3, 3))
    bias = b.input("bias", t32(4, 1, 1))
    y = b.op("conv2d", x, w, stride=1, padding=1)
    b.graph.outputs = {"y": b.op("relu", b.op("add", y, bias))}
    rng = np.random.default_rng(5)
    arrays = {"x": rng.standard_normal((2, 3, 6, 6)).astype(np.float32),
              "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
              "bias": rng.standard_normal((4, 1, 1)).astype(np.float32)}
    compiled = compile_graph(b.graph, target="cuda", cache_dir=cache_dir)
    assert launched(compiled, "conv", "conv2d")
    assert_matches_reference(b.graph, arrays, compiled=compiled, atol=1e-5)


def test_weight_gradient_chunking():
    """The weight gradient's split of each sum covers every term, stores at most MAX_PARTIALS
    partials, and the examples above run both forms: one chunk (no second pass) and several."""
    from netdsl.backends.numba_cuda.lowerings.conv import MAX_PARTIALS, _chunking
    for terms, cells in [(0, 5), (1, 1), (32, 108), (50, 108), (64 * 24 * 24, 150),
                         (64 * 14 * 14, 512 * 512 * 9), (10 ** 6, 4)]:
        chunks, chunk = _chunking(terms, cells)
        assert chunks * chunk >= terms and (chunks - 1) * chunk < max(terms, 1)
        assert chunks == 1 or chunks * cells <= MAX_PARTIALS
    assert _chunking(64 * 24 * 24, 150)[0] > 100          # LeNet's first filter bank: parallel
    used = set()
    for _, _, types, attrs, _ in examples("conv2d_grad_weight"):
        x, g = types
        used.add(_chunking(x.shape[0] * g.shape[2] * g.shape[3], 1)[0] > 1)
    assert used == {False, True}


def test_cnn_training_step(cache_dir):
    """Two SGD steps of a small CNN (conv, grouped conv, max and average pooling, dense) on
    the device agree with the reference: every lowering of this file inside a training graph,
    its arenas and in-place updates, at a batch of 3."""
    b = GraphBuilder(Graph(name="cuda_cnn"))
    x = b.input("x", t32(B, 2, 8, 8))
    y = b.input("y", t32(B, 3))
    w1 = b.param("w1", t32(4, 2, 3, 3), init=None)
    b1 = b.param("b1", t32(4, 1, 1), init=None)
    w2 = b.param("w2", t32(4, 2, 3, 3), init=None)
    w3 = b.param("w3", t32(16, 3), init=None)
    h = b.op("relu", b.op("add", b.op("conv2d", x, w1, padding=1), b1))
    h = b.op("conv2d", h, w2, padding=1, groups=2)
    h = b.op("max_pool2d", h, size=2)
    h = b.op("avg_pool2d", h, size=3, stride=2, padding=1, count_include_pad=False)
    out = b.op("matmul", b.op("reshape", h, shape=(B, 16)), w3)
    d = b.op("sub", out, y)
    b.graph.outputs = {"out": out}
    b.graph.losses = [LossInfo("mse", b.op("mean", b.op("mul", d, d)))]
    graph = training_graph(b.graph, "sgd")
    compiled = compile_graph(graph, target="cuda", cache_dir=cache_dir)
    for name in ("conv2d", "conv2d_grad_input", "conv2d_grad_weight", "max_pool2d",
                 "max_pool2d_grad", "avg_pool2d", "avg_pool2d_grad"):
        assert launched(compiled, _family(name), name), name
    assert_matches_reference(graph, training_arrays(graph, batch=3), compiled=compiled, steps=2)
