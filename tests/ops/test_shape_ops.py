"""Shape inference of the data-movement and reduction ops on symbolic dims, and their errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netdsl.backends.reference import evaluate
from netdsl.errors import Error
from netdsl.ir.graph import GraphBuilder
from netdsl.ir.types import (DType, ShapeError, Sym, TensorType, dim_add, dim_mul, dim_sub,
                             evaluate_dim)
from netdsl.ops import get_op
from netdsl.ops.indexing import slice_attrs, slice_length

B, T, D = Sym.named("B"), Sym.named("T"), Sym.named("D")
f32 = DType.f32


def t(*shape, dtype=f32) -> TensorType:
    return TensorType(dtype, tuple(shape))


def infer(name, *types, **attrs):
    return get_op(name).infer(*types, **attrs)


# -- reshape -------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, shape, expected", [
    (t(B, 4, 4), (B, -1), t(B, 16)),
    (t(B, T, D), (dim_mul(B, T), D), t(dim_mul(B, T), D)),
    (t(dim_mul(B, T), 8), (B, T, 2, 4), t(B, T, 2, 4)),
    (t(B, T, 8), (B, -1, 2, 4), t(B, T, 2, 4)),
    (t(B, 12), (-1, 3), t(dim_mul(B, 4), 3)),
    (t(2, 3), (-1,), t(6)),
])
def test_reshape_resolves_minus_one_with_dim_arithmetic(source, shape, expected):
    assert infer("reshape", source, shape=shape) == expected


def test_reshape_like_takes_the_shape_of_its_second_input():
    assert infer("reshape", t(B, 6), t(B, 2, 3)) == t(B, 2, 3)


@pytest.mark.parametrize("source, shape", [
    (t(B, 4), (16,)),            # equal only when B = 4: not for every batch size
    (t(2, 3), (4, 2)),
    (t(B, T), (T, 2)),
    (t(10), (-1, 3)),
    (t(B, 4), (-1, -1)),
])
def test_reshape_errors_name_both_shapes(source, shape):
    with pytest.raises(ShapeError) as error:
        infer("reshape", source, shape=shape)
    assert str(source) in error.value.message


def test_reshape_error_through_the_builder_is_a_user_error():
    b = GraphBuilder()
    x = b.input("x", t(B, 5))
    with pytest.raises(Error, match=r"cannot reshape f32\[B, 5\]"):
        b.op("reshape", x, shape=(B, 4))


def test_reshape_with_a_non_exact_minus_one_gives_an_opaque_dim():
    result = infer("reshape", t(B, 5), shape=(-1, 3))
    assert result.rank == 2 and result.shape[1] == 3 and isinstance(result.shape[0], Sym)


# -- transpose, concat, split, pad, broadcast ------------------------------------------------------

def test_transpose_permutes_symbolic_axes():
    assert infer("transpose", t(B, T, 4), perm=(1, 0, 2)) == t(T, B, 4)
    assert infer("transpose", t(B, T)) == t(T, B)
    with pytest.raises(ShapeError, match="not a permutation"):
        infer("transpose", t(B, T, 4), perm=(0, 0, 1))


def test_concat_adds_symbolic_extents():
    assert infer("concat", t(B, T, 4), t(B, T, 3), axis=-1) == t(B, T, 7)
    assert infer("concat", t(B, T), t(B, 1), axis=1) == t(B, dim_add(T, 1))
    assert infer("concat", t(B, 4), t(B, 4), axis=0) == t(dim_mul(B, 2), 4)
    with pytest.raises(ShapeError, match="differ on another axis"):
        infer("concat", t(B, 4), t(T, 4), axis=1)
    with pytest.raises(ShapeError, match="element types"):
        infer("concat", t(3), t(3, dtype=DType.i64))


def test_split_is_the_inverse_of_concat():
    assert infer("split", t(B, 7), axis=1, sizes=(3, 4)) == (t(B, 3), t(B, 4))
    assert infer("split", t(B, dim_add(T, 2)), t(B, T), t(B, 2), axis=1) == (t(B, T), t(B, 2))
    with pytest.raises(ShapeError, match="add up to"):
        infer("split", t(B, 7), axis=1, sizes=(3, 3))


def test_pad_adds_to_symbolic_extents():
    assert infer("pad", t(B, T), pads=((0, 0), (2, 1))) == t(B, dim_add(T, 3))


def test_broadcast_to_checks_the_target():
    assert infer("broadcast_to", t(B, 1), shape=(B, T)) == t(B, T)
    assert infer("broadcast_to", t(1, 4), t(B, 3, 4)) == t(B, 3, 4)
    with pytest.raises(ShapeError, match=r"cannot broadcast f32\[B, 2\]"):
        infer("broadcast_to", t(B, 2), shape=(B, 3))
    with pytest.raises(ShapeError):
        infer("broadcast_to", t(B, 4), shape=(4,))


def test_expand_dims_and_squeeze_are_inverse():
    assert infer("expand_dims", t(B, T), axes=(0, -1)) == t(1, B, T, 1)
    assert infer("squeeze", t(1, B, T, 1), axes=(0, 3)) == t(B, T)
    with pytest.raises(ShapeError, match="not 1"):
        infer("squeeze", t(B, T), axes=(0,))


def test_full_takes_shape_from_attr_or_like():
    assert infer("full", shape=(B, 16), value=0.0, dtype=f32) == t(B, 16)
    assert infer("full", t(B, T, dtype=DType.f64), value=1.0) == t(B, T, dtype=DType.f64)
    with pytest.raises(ShapeError, match="either"):
        infer("full", value=0.0)


# -- slice ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, expected", [
    (np.s_[:, -1], t(B, 4)),
    (np.s_[:, 0:8], t(B, 8, 4)),
    (np.s_[:, 1:], t(B, dim_sub(T, 1), 4)),
    (np.s_[:, 1:-1], t(B, dim_sub(T, 2), 4)),
    (np.s_[:, -3:], t(B, 3, 4)),
    (np.s_[:, ::-1], t(B, T, 4)),
    (np.s_[:, :, ::2], t(B, T, 2)),
    (np.s_[0], t(T, 4)),
])
def test_slice_on_symbolic_axes(key, expected):
    assert infer("slice", t(B, T, 4), **slice_attrs(key)) == expected


def test_slice_with_a_stride_on_a_symbolic_axis_gives_an_opaque_dim():
    result = infer("slice", t(B, T), **slice_attrs(np.s_[:, ::2]))
    assert result.shape[0] == B and isinstance(result.shape[1], Sym)


def test_slice_errors():
    with pytest.raises(ShapeError, match="length 3, not 1"):
        infer("slice", t(B, 5), starts=(None, 1), stops=(None, 4), squeeze=(1,))
    with pytest.raises(ShapeError, match="non-zero"):
        infer("slice", t(B, 5), steps=(None, 0))
    with pytest.raises(ShapeError, match="rank 2"):
        infer("slice", t(B, 5), starts=(0, 0, 0))


bounds = st.one_of(st.none(), st.integers(-8, 8))


@settings(max_examples=300, deadline=None)
@given(size=st.integers(0, 7), start=bounds, stop=bounds,
       step=st.one_of(st.none(), st.integers(-3, 3).filter(lambda s: s != 0)))
def test_slice_matches_numpy_on_concrete_axes(size, start, stop, step):
    x = np.arange(size * 2, dtype=np.float32).reshape(2, size)
    attrs = {"starts": (None, start), "stops": (None, stop), "steps": (None, step)}
    assert infer("slice", t(2, size), **attrs).shape == x[:, start:stop:step].shape
    np.testing.assert_array_equal(get_op("slice").reference(x, **attrs), x[:, start:stop:step])


@settings(max_examples=300, deadline=None)
@given(size=st.integers(8, 20), start=st.one_of(st.none(), st.integers(-4, 4)),
       stop=st.one_of(st.none(), st.integers(-4, 4)),
       step=st.integers(-3, 3).filter(lambda s: s != 0))
def test_symbolic_slice_length_is_exact_when_the_axis_is_long_enough(size, start, stop, step):
    """The symbolic length, evaluated at T = size, is Python's, once T exceeds every bound."""
    try:
        length = slice_length(T, start, stop, step)
    except ShapeError:
        # Bounds from both ends whose distance depends on T: refused, never guessed.
        assert (start is not None and start < 0) != (stop is not None and stop < 0) or \
            (step < 0 and (start is None) != (stop is None))
        return
    expected = len(range(size)[start:stop:step])
    if isinstance(length, Sym) and any(not n.isidentifier() for n in length.symbols):
        return       # an opaque (T + k) // step: checked at run time, not by arithmetic
    assert evaluate_dim(length, {"T": size}) == expected


def test_slice_gradient_scatters_into_zeros():
    b = GraphBuilder()
    x = b.input("x", t(3, 4))
    y = b.op("slice", x, **slice_attrs(np.s_[1:, -1]))
    g = b.input("g", y.type)
    (dx,) = get_op("slice").vjp(b, [g], (x,), (y,), **slice_attrs(np.s_[1:, -1]))
    env = evaluate(b.graph, {x.id: np.zeros((3, 4), np.float32),
                             g.id: np.array([5.0, 7.0], np.float32)})
    expected = np.zeros((3, 4), np.float32)
    expected[1:, -1] = [5.0, 7.0]
    np.testing.assert_array_equal(env[dx.id], expected)


# -- take, one_hot -------------------------------------------------------------------------------

def test_take_and_one_hot_types():
    assert infer("take", t(1000, D), t(B, T, dtype=DType.i64), axis=0) == t(B, T, D)
    assert infer("one_hot", t(B, dtype=DType.i64), depth=10) == t(B, 10)
    with pytest.raises(ShapeError, match="integer indices"):
        infer("take", t(10, 4), t(B), axis=0)


def test_take_grad_adds_repeated_indices():
    ref = get_op("take_grad").reference
    g = np.ones((3, 2), np.float32)
    out = ref(g, np.array([0, 2, 0]), np.zeros((4, 2), np.float32), axis=0)
    np.testing.assert_array_equal(out[:, 0], [2, 0, 1, 0])


# -- reductions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "logsumexp"])
def test_reductions_on_symbolic_axes(name):
    x = t(B, T, 4)
    assert infer(name, x, axes=(1,)) == t(B, 4)
    assert infer(name, x, axes=(-1,), keepdims=True) == t(B, T, 1)
    assert infer(name, x, axes=(0, 1)) == t(4)
    assert infer(name, x) == t()
    assert infer(name, x, axes=()) == x            # the empty tuple reduces nothing
    with pytest.raises(ShapeError, match="out of range"):
        infer(name, x, axes=(3,))
    with pytest.raises(ShapeError, match="repeated"):
        infer(name, x, axes=(1, -2))


def test_argmax_and_sum_dtypes():
    assert infer("argmax", t(B, 10), axis=-1) == t(B, dtype=DType.i64)
    assert infer("sum", t(B, 3, dtype=DType.bool), axes=(1,)) == t(B, dtype=DType.i64)
    with pytest.raises(ShapeError, match="floating-point"):
        infer("mean", t(B, dtype=DType.i64))
    with pytest.raises(ShapeError, match="empty"):
        infer("max", t(B, 0), axes=(1,))


def test_mean_over_a_symbolic_axis_divides_by_its_run_time_extent():
    b = GraphBuilder()
    x = b.input("x", t(B, 3))
    y = b.op("mean", x, axes=(0,))
    g = b.input("g", y.type)
    (dx,) = get_op("mean").vjp(b, [g], (x,), (y,), axes=(0,))
    assert dx.type == x.type
    env = evaluate(b.graph, {x.id: np.zeros((5, 3), np.float32), g.id: np.ones(3, np.float32)})
    np.testing.assert_allclose(env[dx.id], np.full((5, 3), 0.2, np.float32))


def test_emitted_slice_reads_symbolic_bounds_off_the_array():
    """The lowering writes x[:, -1] on T as T - 1 : T; the kernel uses x.shape[1] - 1."""
    from netdsl.backends.numba_cpu.emit import compile_single_node
    b = GraphBuilder()
    x = b.input("x", t(B, T, 4))
    y = b.op("slice", x, starts=(None, dim_sub(T, 1)), stops=(None, T), squeeze=(1,))
    assert y.type == t(B, 4)
    kernel, source = compile_single_node(y.producer)
    assert "in_0.shape[1] - 1" in source
    data = np.arange(2 * 5 * 4, dtype=np.float32).reshape(2, 5, 4)
    out = np.zeros((2, 4), np.float32)
    kernel(data, out)
    np.testing.assert_array_equal(out, data[:, -1])
