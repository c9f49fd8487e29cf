"""What generated cpu code imports (numba_cpu/support.py) and how the code generator spells
it: `assign` (slice assignment as loops written into the caller), `view` (a buffer carved
from an array, C layout only) and reshapes of buffers written as views (function.py)."""
from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from netdsl.backends.numba_cpu.function import reshapes_as_views  # noqa: E402
from netdsl.backends.numba_cpu.support import assign, view  # noqa: E402


@numba.njit
def _assign(out, source):
    assign(out, source)


@numba.njit
def _assign_columns(out, source):
    assign(out[:, 1:3], source)


@pytest.mark.parametrize("out_shape, source", [
    ((3, 4), np.arange(4, dtype=np.int64)),                 # a row, broadcast, cast
    ((3, 4), np.arange(3.0).reshape(3, 1)),                 # a column, broadcast
    ((2, 3, 4), np.arange(12.0).reshape(3, 4)),             # trailing axes aligned
    ((3, 4), np.array(2.5)),                                # 0-d
    ((), np.array(3.0)),
    ((0, 3), np.ones(3)),                                   # nothing to write
    ((2, 2), np.array([[1.7, -2.2]])),                      # float to int truncates
])
def test_assign_is_numpys_slice_assignment(out_shape, source):
    for dtype in (np.float32, np.int64):
        ours, numpys = np.zeros(out_shape, dtype), np.zeros(out_shape, dtype)
        _assign(ours, source)
        numpys[...] = source
        assert np.array_equal(ours, numpys)


def test_assign_of_scalars_and_into_a_strided_view():
    out = np.zeros((3, 4), np.float32)
    _assign(out, 7)
    assert (out == 7).all()
    _assign_columns(out, np.full((3, 2), 9.0, np.float32))
    assert out.tolist() == [[7, 9, 9, 7]] * 3
    flags = np.zeros(3, np.bool_)
    _assign(flags, True)
    assert flags.all()


def test_assign_refuses_a_source_that_does_not_broadcast():
    with pytest.raises(ValueError, match="does not broadcast"):
        _assign(np.zeros((3, 4), np.float32), np.ones(3, np.float32))


def test_view_refuses_a_layout_other_than_c():
    @numba.njit
    def carve(array):
        return view(array, 0, (2,))

    assert carve(np.arange(4.0)).tolist() == [0.0, 1.0]
    with pytest.raises(numba.core.errors.TypingError):
        carve(np.arange(8.0)[::2])


@pytest.mark.parametrize("line, expected", [
    ("f(v_7.reshape(v_7.shape[0], 1), in_1.reshape(v_7.shape[0]))",
     "f(_view(v_7, 0, (v_7.shape[0], 1)), _view(in_1, 0, (v_7.shape[0],)))"),
    ("assign(v_18, v_16.reshape(v_18.shape))", "assign(v_18, _view(v_16, 0, v_18.shape))"),
    ("g(p_2.reshape((p_2.size,)), v_view_3.reshape(4))",
     "g(_view(p_2, 0, (p_2.size,)), _view(v_view_3, 0, (4,)))"),
    ("h(v_4.reshape(-1, 3), a3.reshape(2, 2))", "h(v_4.reshape(-1, 3), a3.reshape(2, 2))"),
])
def test_reshapes_of_buffers_are_written_as_views(line, expected):
    assert reshapes_as_views(line) == expected


def test_an_unbalanced_reshape_is_left_as_it_is():
    assert reshapes_as_views("f(v_1.reshape(3, 2") == "f(v_1.reshape(3, 2"
