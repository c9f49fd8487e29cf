"""matmul: shape rules on symbolic dims and their errors, the NumPy reference against torch,
the VJP against finite differences (every element), and the BLAS kernels against the reference."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.backends.reference import evaluate
from netdsl.errors import Error
from netdsl.ir.graph import GraphBuilder
from netdsl.ir.types import DType, ShapeError, Sym, dim_mul
from netdsl.ops import get_op

from op_checks import t, check_vjp, emitted  # noqa: E402

B, T, H = Sym.named("B"), Sym.named("T"), Sym.named("H")
f32, f64 = DType.f32, DType.f64


def infer(*types, **attrs):
    return get_op("matmul").infer(*types, **attrs)


# -- shapes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, attrs, expected", [
    (t(B, T, 8), t(8, 16), {}, t(B, T, 16)),
    (t(B, 784), t(256, 784), {"transpose_b": True}, t(B, 256)),
    (t(B, H, T, 4), t(B, H, 4, T), {}, t(B, H, T, T)),
    (t(B, 1, T, 4), t(H, 4, T), {}, t(B, H, T, T)),
    (t(B, T, 4), t(B, T, 5), {"transpose_a": True}, t(B, 4, 5)),
    (t(4, B), t(T, 4), {"transpose_a": True, "transpose_b": True}, t(B, T)),
    (t(8), t(B, 8, 3), {}, t(B, 3)),
    (t(B, T, 8), t(8), {}, t(B, T)),
    (t(8), t(8), {}, t()),
    (t(dim_mul(B, T), 8), t(8, 2), {}, t(dim_mul(B, T), 2)),
])
def test_infer_follows_numpy_matmul_with_symbolic_dims(a, b, attrs, expected):
    assert infer(a, b, **attrs) == expected


def test_inner_dimension_error_names_both_shapes():
    with pytest.raises(ShapeError) as error:
        infer(t(B, 4), t(5, 3))
    assert error.value.message == "matmul: inner dimensions differ: f32[B, 4] @ f32[5, 3] (4 vs 5)"


def test_inner_dimension_error_marks_a_transposed_operand():
    with pytest.raises(ShapeError) as error:
        infer(t(B, 4), t(3, 5), transpose_b=True)
    assert "f32[B, 4] @ f32[3, 5]ᵀ (4 vs 5)" in error.value.message


@pytest.mark.parametrize("a, b, attrs, words", [
    (t(2, 3, 4), t(5, 4, 2), {}, "batch dimensions do not broadcast"),
    (t(3, 4), t(4, 2, dtype=f64), {}, "element types differ"),
    (t(3, 4, dtype=DType.i64), t(4, 2, dtype=DType.i64), {}, "floating-point"),
    (t(), t(4), {}, "rank 1 or more"),
    (t(4), t(4, 2), {"transpose_a": True}, "vector cannot be transposed"),
    (t(B, 4), t(T, 2), {}, "(4 vs T)"),
])
def test_errors(a, b, attrs, words):
    with pytest.raises(ShapeError) as error:
        infer(a, b, **attrs)
    assert words in error.value.message and str(a) in error.value.message


def test_shape_error_through_the_builder_is_a_user_error():
    b = GraphBuilder()
    x, w = b.input("x", t(B, 4)), b.input("w", t(5, 3))
    with pytest.raises(Error, match="inner dimensions differ"):
        b.op("matmul", x, w)


# -- reference ---------------------------------------------------------------------------------

CASES = [
    ((3, 4), (4, 5), {}),
    ((2, 3, 4), (4, 5), {}),
    ((2, 3, 4), (5, 4), {"transpose_b": True}),
    ((4, 3), (4, 5), {"transpose_a": True}),
    ((2, 4, 3), (2, 5, 4), {"transpose_a": True, "transpose_b": True}),
    ((2, 1, 3, 4), (3, 4, 2), {}),
    ((3, 4), (2, 2, 4, 5), {}),
    ((4,), (4, 5), {}),
    ((2, 3, 4), (4,), {}),
    ((4,), (2, 4, 3), {}),
    ((4,), (4,), {}),
]


def _arrays(a_shape, b_shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(a_shape).astype(dtype), rng.standard_normal(b_shape).astype(dtype)


@pytest.mark.parametrize("a_shape, b_shape, attrs", CASES)
def test_reference_agrees_with_einsum_and_torch(a_shape, b_shape, attrs):
    a, b = _arrays(a_shape, b_shape)
    got = get_op("matmul").reference(a, b, **attrs)
    at = np.swapaxes(a, -1, -2) if attrs.get("transpose_a") else a
    bt = np.swapaxes(b, -1, -2) if attrs.get("transpose_b") else b
    np.testing.assert_allclose(got, at @ bt)
    torch = pytest.importorskip("torch")
    expected = torch.matmul(torch.from_numpy(at.copy()), torch.from_numpy(bt.copy())).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


# -- gradient ----------------------------------------------------------------------------------

@pytest.mark.parametrize("a_shape, b_shape, attrs", CASES)
def test_vjp_matches_finite_differences(a_shape, b_shape, attrs):
    check_vjp("matmul", list(_arrays(a_shape, b_shape)), **attrs)


def test_dense_weight_gradient_is_one_product_without_a_batch_sum():
    graph = check_vjp("matmul", list(_arrays((2, 3, 4), (5, 4))), transpose_b=True)
    ops = [node.op.name for node in graph.nodes]
    assert "sum" not in ops
    weight_grads = [n for n in graph.nodes
                    if n.op.name == "matmul" and n.outputs[0].shape == (5, 4)]
    assert len(weight_grads) == 1 and all(v.rank == 2 for v in weight_grads[0].inputs)


def test_vjp_of_symbolic_shapes_runs_on_the_reference_backend():
    """Gradient graphs carry no symbolic dims in attributes (the reference cannot bind them)."""
    b = GraphBuilder()
    x, w = b.input("x", t(B, T, 4, dtype=f64)), b.input("w", t(4, dtype=f64))
    y, v = b.input("y", t(B, 1, T, 4, dtype=f64)), b.input("v", t(H, 4, T, dtype=f64))
    outs = [b.op("matmul", x, w), b.op("matmul", y, v)]
    grads = []
    for (p, q), out in zip(((x, w), (y, v)), outs):
        g = b.input(f"g{out.id}", out.type)
        grads.append((g, get_op("matmul").vjp(b, (g,), (p, q), (out,))))
    rng = np.random.default_rng(1)
    shapes = {x: (2, 3, 4), w: (4,), y: (2, 1, 3, 4), v: (5, 4, 3)}
    feeds = {value.id: rng.standard_normal(shape) for value, shape in shapes.items()}
    feeds |= {grads[0][0].id: rng.standard_normal((2, 3)),
              grads[1][0].id: rng.standard_normal((2, 5, 3, 3))}
    env = evaluate(b.graph, feeds)
    for (g, (ga, gb)), (p, q) in zip(grads, ((x, w), (y, v))):
        assert env[ga.id].shape == shapes[p] and env[gb.id].shape == shapes[q]


# -- compiled kernels --------------------------------------------------------------------------

@pytest.mark.parametrize("a_shape, b_shape, attrs", CASES)
def test_emitted_kernel_matches_reference(a_shape, b_shape, attrs):
    a, b = _arrays(a_shape, b_shape, np.float32)
    expected = get_op("matmul").reference(a, b, **attrs)
    np.testing.assert_allclose(emitted("matmul", [a, b], **attrs), expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")
def test_emitted_kernel_in_a_parallel_module_and_float64():
    a, b = _arrays((4, 2, 6, 8), (4, 1, 8, 3))
    expected = a @ b
    np.testing.assert_allclose(emitted("matmul", [a, b], parallel=True), expected, rtol=1e-12)


def test_emitted_mlp_shapes():
    x, w = _arrays((128, 784), (256, 784), np.float32)
    np.testing.assert_allclose(emitted("matmul", [x, w], transpose_b=True), x @ w.T,
                               rtol=1e-4, atol=1e-4)
