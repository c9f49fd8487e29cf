"""broadcast_shapes agrees with NumPy on concrete shapes and follows the rules on symbolic dims."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netdsl.ir.types import ShapeError, Sym, broadcast_shapes, dim_add, dim_mul

# Small dims make matches (and so successful broadcasts) common; 0 is a legal extent too.
shapes = st.lists(st.integers(min_value=0, max_value=4), min_size=0, max_size=4).map(tuple)


@settings(max_examples=400, deadline=None)
@given(st.lists(shapes, min_size=1, max_size=4))
def test_broadcast_shapes_agrees_with_numpy(operands):
    try:
        expected = np.broadcast_shapes(*operands)
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ShapeError):
            broadcast_shapes(*operands)
    else:
        assert broadcast_shapes(*operands) == tuple(expected)


B, T = Sym.named("B"), Sym.named("T")


@pytest.mark.parametrize("operands, expected", [
    (((B, 1), (1, 4)), (B, 4)),
    (((B, T, 4), (4,)), (B, T, 4)),
    (((B, 1, 4), (T, 1)), (B, T, 4)),
    (((B,), (B,)), (B,)),
    (((1,), (B,)), (B,)),
    (((), (B, T)), (B, T)),
    (((dim_mul(B, T), 3), (1, 3)), (dim_mul(B, T), 3)),
    (((dim_add(T, 1),), (dim_add(1, T),)), (dim_add(T, 1),)),
])
def test_symbolic_dims_broadcast(operands, expected):
    assert broadcast_shapes(*operands) == expected


@pytest.mark.parametrize("operands", [
    ((B,), (T,)),             # different symbols need not be equal
    ((B,), (3,)),             # a symbol is not provably 3
    ((B, 4), (B, 5)),
    ((dim_add(T, 1),), (T,)),
])
def test_symbolic_mismatch_is_an_error_naming_both_shapes(operands):
    with pytest.raises(ShapeError) as error:
        broadcast_shapes(*operands)
    for shape in operands:
        assert "[" + ", ".join(str(d) for d in shape) + "]" in error.value.message
