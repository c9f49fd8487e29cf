"""take and take_grad never touch memory outside their table: an index outside [0, n) is an
IndexError on the reference and in the compiled kernels (issue 8: an id of 10**12 segfaulted,
an id equal to the vocabulary size trained on whatever lay past the table)."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.backends.numba_cpu.emit import compile_single_node
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import DType, TensorType
from netdsl.ops.indexing import INDEX_ERROR
from netdsl.ops.registry import get_op

F32, I64 = DType.f32, DType.i64
BAD = [5, -1, -6, 10**12, -10**12, np.iinfo(np.int64).max, np.iinfo(np.int64).min]


def _node(name: str, *types: TensorType, **attrs):
    b = GraphBuilder(Graph(name=name))
    ins = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    b.op(get_op(name), *ins, **attrs)
    return b.graph.nodes[-1]


@pytest.fixture(scope="module")
def take_kernel():
    node = _node("take", TensorType(F32, (5, 3)), TensorType(I64, (2, 2)), axis=0)
    return compile_single_node(node)[0]


@pytest.fixture(scope="module")
def take_grad_kernel():
    node = _node("take_grad", TensorType(F32, (2, 2, 3)), TensorType(I64, (2, 2)),
                 TensorType(F32, (5, 3)), axis=0)
    return compile_single_node(node)[0]


def test_in_range_indices_gather_and_scatter_like_the_reference(take_kernel, take_grad_kernel):
    table = np.arange(15, dtype=np.float32).reshape(5, 3)
    ids = np.array([[0, 4], [4, 2]])
    out = np.zeros((2, 2, 3), np.float32)
    take_kernel(table, ids, out)
    np.testing.assert_array_equal(out, get_op("take").reference(table, ids, axis=0))
    grad = np.ones((2, 2, 3), np.float32)
    scattered = np.full((5, 3), 7.0, np.float32)
    take_grad_kernel(grad, ids, table, scattered)
    np.testing.assert_array_equal(scattered,
                                  get_op("take_grad").reference(grad, ids, table, axis=0))


@pytest.mark.parametrize("bad", BAD)
def test_compiled_take_raises_before_reading(take_kernel, bad):
    table = np.zeros((5, 3), np.float32)
    out = np.full((2, 2, 3), 9.0, np.float32)
    ids = np.array([[0, 1], [bad, 2]])
    with pytest.raises(IndexError, match=INDEX_ERROR):
        take_kernel(table, ids, out)
    assert (out == 9.0).all()             # checked before anything was gathered


@pytest.mark.parametrize("bad", BAD)
def test_compiled_take_grad_raises_before_writing(take_grad_kernel, bad):
    table = np.zeros((5, 3), np.float32)
    grad = np.ones((2, 2, 3), np.float32)
    out = np.full((5, 3), 9.0, np.float32)
    with pytest.raises(IndexError, match=INDEX_ERROR):
        take_grad_kernel(grad, np.array([[0, 1], [2, bad]]), table, out)
    assert (out == 0).all()               # zeroed, then refused before the first scatter


@pytest.mark.parametrize("name", ["take", "take_grad"])
@pytest.mark.parametrize("bad", [5, -1, 10**12])
def test_reference_names_the_index_and_its_position(name, bad):
    table, ids = np.zeros((5, 3), np.float32), np.array([[0, 1], [2, bad]])
    args = (table, ids) if name == "take" else (np.ones((2, 2, 3), np.float32), ids, table)
    with pytest.raises(IndexError) as caught:
        get_op(name).reference(*args, axis=0)
    assert str(caught.value) == (f"{INDEX_ERROR}: {name} index {bad} at position [1, 1] of an "
                                 f"axis of length 5")


def test_one_hot_ignores_out_of_range_labels():
    node = _node("one_hot", TensorType(I64, (4,)), depth=3)
    kernel = compile_single_node(node)[0]
    out = np.full((4, 3), 5.0, np.float32)
    labels = np.array([0, 3, -1, 10**12])
    kernel(labels, out)
    np.testing.assert_array_equal(out, get_op("one_hot").reference(labels, depth=3))
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
