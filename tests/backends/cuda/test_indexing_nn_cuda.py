"""The cuda target's take, take_grad, one_hot (lowerings/indexing.py) and log_softmax, softmax
cross-entropy and its gradient (lowerings/nn.py) against the ops' reference rules: every example
compiled alone through compile_graph(target="cuda"), symbolic batch axes run at two sizes, ids
out of range (IndexError from the launcher, the cpu target's error from a compiled graph),
repeated ids summed in take_grad, one_hot's zero rows, and labels out of range (NaN, as on the
cpu target)."""
from __future__ import annotations

import numpy as np
import pytest

from cuda_helpers import needs_cuda
from netdsl.backends import compile_graph
from netdsl.errors import Error
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import DType, TensorType
from netdsl.ops.indexing import INDEX_ERROR
from op_examples import (B, compile_one, draw, examples, launched, reference, rng_for,
                         run_one)

pytestmark = needs_cuda

F32, I64 = DType.f32, DType.i64
FAMILY = {"take": "indexing", "take_grad": "indexing", "one_hot": "indexing",
          "log_softmax": "nn", "softmax_cross_entropy": "nn",
          "softmax_cross_entropy_grad": "nn"}
LAUNCHER = {"softmax_cross_entropy_grad": "softmax_cross_entropy"}


def _check(compiled, name, arrays, attrs):
    got, want = run_one(compiled, arrays), reference(name, arrays, attrs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, index, types, attrs, options",
                         [pytest.param(*case, id=f"{case[0]}-{case[1]}")
                          for case in examples(*FAMILY)])
def test_example_matches_reference(name, index, types, attrs, options, cache_dir):
    compiled = compile_one(name, types, attrs, cache_dir)
    assert launched(compiled, FAMILY[name], LAUNCHER.get(name, name))
    arrays = draw(types, options, rng_for(name, index))
    _check(compiled, name, arrays, attrs)


@pytest.mark.parametrize("name, types, attrs, positions", [
    ("take", (TensorType(F32, (5, 4)), TensorType(I64, (B, 3))), {"axis": 0}, (1,)),
    ("take", (TensorType(F32, (B, 4, 3)), TensorType(I64, (2,))), {"axis": 1}, (0,)),
    ("take_grad", (TensorType(F32, (B, 3, 4)), TensorType(I64, (B, 3)),
                   TensorType(F32, (3, 4))), {"axis": 0}, (0, 1)),
    ("one_hot", (TensorType(I64, (B, 3)),), {"depth": 4}, (0,)),
    ("log_softmax", (TensorType(F32, (B, 5)),), {"axis": 0}, (0,)),
    ("softmax_cross_entropy", (TensorType(F32, (B, 5)), TensorType(I64, (B,))), {}, (0, 1)),
    ("softmax_cross_entropy_grad", (TensorType(F32, (B, 2, 5)), TensorType(I64, (B, 2))), {},
     (0, 1)),
], ids=["take-ids", "take-table", "take_grad", "one_hot", "log_softmax-batch-axis",
        "cross_entropy", "cross_entropy_grad"])
def test_symbolic_batch(name, types, attrs, positions, cache_dir):
    """Sizes are read from the arrays at run time: one compiled graph at B = 1 and B = 3."""
    compiled = compile_one(name, types, attrs, cache_dir)
    rng = rng_for(name, 100 + len(types))
    for batch in (1, 3):
        _check(compiled, name, draw(types, {"int_high": 3}, rng, batch), attrs)


def test_take_grad_sums_repeated_ids(cache_dir):
    types = (TensorType(F32, (2, 6, 3)), TensorType(I64, (6,)), TensorType(F32, (2, 4, 3)))
    ids = np.array([1, 3, 1, 1, 0, 3])
    g = draw(types[:1], {}, rng_for("take_grad", 200))[0]
    arrays = [g, ids, np.zeros((2, 4, 3), np.float32)]
    got = run_one(compile_one("take_grad", types, {"axis": 1}, cache_dir), arrays)
    np.testing.assert_allclose(got[:, 1], g[:, 0] + g[:, 2] + g[:, 3], rtol=1e-6)
    np.testing.assert_array_equal(got[:, 2], 0)
    np.testing.assert_allclose(got, reference("take_grad", arrays, {"axis": 1}), rtol=1e-6)


def test_take_grad_sums_each_id_in_ascending_positions(cache_dir):
    """300 rows (more than a block's threads, so the bucket starts are scanned in chunks), 200
    ids, 60% of them id 3.  Each row is the float64 sum of its positions' g in ascending order
    (the buckets are filled by atomics in a varying order and then ranked): id 3's first two
    values are 2**60 and -2**60, which cancel only when added first, before the small ones."""
    rng = rng_for("take_grad", 201)
    ids = np.where(rng.random(200) < 0.6, 3, rng.integers(0, 300, 200))
    ids[ids == 5] = 6                                              # row 5 receives nothing
    g = rng.uniform(-2, 2, (2, 200, 2)).astype(np.float32)
    first_two = np.flatnonzero(ids == 3)[:2]
    g[:, first_two[0]], g[:, first_two[1]] = 2.0 ** 60, -(2.0 ** 60)
    types = (TensorType(F32, (2, 200, 2)), TensorType(I64, (200,)), TensorType(F32, (2, 300, 2)))
    compiled = compile_one("take_grad", types, {"axis": 1}, cache_dir)
    arrays = [g, ids, np.zeros((2, 300, 2), np.float32)]
    first, second = run_one(compiled, arrays), run_one(compiled, arrays)
    want = np.zeros((2, 300, 2))
    for j, r in enumerate(ids):
        want[:, r] += g[:, j].astype(np.float64)
    assert (ids == 3).sum() > 100 and np.abs(want[:, 3]).max() < 1e3
    np.testing.assert_array_equal(first, want.astype(np.float32))
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(first[:, 5], 0)
    np.testing.assert_allclose(first, reference("take_grad", arrays, {"axis": 1}), rtol=1e-5,
                               atol=1e-5)


def test_one_hot_out_of_range_ids_are_zero_rows(cache_dir):
    types = (TensorType(I64, (5,)),)
    ids = np.array([0, -1, 3, 4, 2])
    got = run_one(compile_one("one_hot", types, {"depth": 4}, cache_dir), [ids])
    np.testing.assert_array_equal(got.sum(axis=1), [1, 0, 1, 0, 1])
    np.testing.assert_array_equal(got, reference("one_hot", [ids], {"depth": 4}))


@pytest.mark.parametrize("bad", [5, -1])
@pytest.mark.parametrize("name", ["take", "take_grad"])
def test_launcher_raises_index_error(name, bad):
    from numba import cuda
    from netdsl.backends.numba_cuda.lowerings.indexing import take, take_grad
    ids = cuda.to_device(np.array([0, 4, bad, 1]))
    out = cuda.to_device(np.full((4, 3), 7.0, np.float32))
    with pytest.raises(IndexError) as raised:
        if name == "take":
            take(cuda.to_device(np.ones((5, 3), np.float32)), ids, out, 0)
        else:
            take_grad(cuda.to_device(np.ones((4, 3), np.float32)), ids,
                      cuda.to_device(np.zeros((5, 3), np.float32)), 0)
    assert str(raised.value) == INDEX_ERROR
    if name == "take":                   # nothing was gathered: the check runs first
        np.testing.assert_array_equal(out.copy_to_host(), 7.0)


def _shifted_take_graph() -> Graph:
    """take(table, ids + 3): the ids are computed, so no input check can name them."""
    b = GraphBuilder(Graph(name="shifted_take"))
    table = b.input("table", TensorType(F32, (5, 2)))
    ids = b.input("ids", TensorType(I64, (3,)))
    shifted = b.op("add", ids, b.constant(np.array(3, np.int64)))
    b.graph.outputs = {"y": b.op("take", table, shifted, axis=0)}
    return b.graph


def test_computed_id_out_of_range_is_the_cpu_targets_error(cache_dir):
    graph = _shifted_take_graph()
    arrays = {"table": np.ones((5, 2), np.float32), "ids": np.array([0, 2, 1])}
    messages = []
    for target in ("cpu", "cuda"):
        compiled = compile_graph(graph, target=target, cache_dir=cache_dir)
        np.testing.assert_array_equal(compiled.run({**arrays, "ids": np.array([0, 1, 1])})["y"],
                                      1.0)
        with pytest.raises(Error) as raised:
            compiled.run(arrays)
        messages.append(str(raised.value))
    assert messages[0] == messages[1] and "out of range" in messages[1]


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "softmax_cross_entropy_grad"])
def test_label_out_of_range_is_nan_like_the_cpu_target(name, cache_dir):
    types = (TensorType(F32, (3, 4)), TensorType(I64, (3,)))
    logits = draw(types[:1], {}, rng_for(name, 300))[0]
    arrays = [logits, np.array([1, 4, -1])]
    got = run_one(compile_one(name, types, {}, cache_dir), arrays)
    b = GraphBuilder(Graph(name=f"cpu_{name}"))
    inputs = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    b.graph.outputs = {"y": b.op(name, *inputs)}
    want = run_one(compile_graph(b.graph, target="cpu", cache_dir=cache_dir), arrays)
    assert np.isnan(got[1:]).all() and np.isfinite(got[0]).all()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_log_softmax_is_stable_for_large_logits(cache_dir):
    types = (TensorType(F32, (2, 6)),)
    x = np.array([[1e4, -1e4, 0, 3e3, 1e4, -5], [-3e4, -3e4 + 1, -3e4 + 2, -1e30, 0, 0]],
                 np.float32)
    got = run_one(compile_one("log_softmax", types, {"axis": -1}, cache_dir), [x])
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, reference("log_softmax", [x], {"axis": -1}), rtol=1e-6)


@pytest.mark.parametrize("name, types, attrs", [
    ("log_softmax", (TensorType(F32, (3, 300)),), {"axis": -1}),
    ("log_softmax", (TensorType(F32, (2, 40, 3)),), {"axis": 1}),
    ("softmax_cross_entropy", (TensorType(F32, (4, 300)), TensorType(I64, (4,))), {}),
    ("softmax_cross_entropy_grad", (TensorType(F32, (2, 2, 300)), TensorType(I64, (2, 2))), {}),
], ids=["log_softmax-last", "log_softmax-middle", "cross_entropy", "cross_entropy_grad"])
def test_lines_longer_than_a_block(name, types, attrs, cache_dir):
    """Lines of at least REDUCE_THREADS elements get a block each (its threads' maxima and
    sums combined in shared memory): 300 is more than a GPU's block of 256, 40 more than the
    simulator's 32; a NaN poisons its own line only, as in the reference."""
    arrays = draw(types, {"int_high": 40}, rng_for(name, 400), None)
    arrays[0].reshape(-1)[7] = np.nan
    compiled = compile_one(name, types, attrs, cache_dir)
    _check(compiled, name, arrays, attrs)
