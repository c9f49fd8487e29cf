"""Scans over blocks of rows (passes/scan_rows.py, backends/numba_cpu/scan_rows.py): which
loops keep the rows of their batch apart, and the parallel path agreeing with the reference."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from backend_helpers import (B, assert_matches_reference, random_arrays, scalar_constant, t32,
                             training_arrays, training_graph)

from netdsl.backends import compile_graph
from netdsl.backends.numba_cpu import CodegenOptions
from netdsl.backends.numba_cpu.scan_rows import scan_chunks
from netdsl.ir.graph import Graph, GraphBuilder, LossInfo
from netdsl.ops.control import scan
from netdsl.passes.scan_rows import row_work, rows_independent


def _loop(cell_ops, axis: int = 1, carry=(B, 3), extra=None) -> Graph:
    """A graph with one scan whose body is `cell_ops(builder, h, x_t, w, u, extra)` -> new h;
    `extra`: the type of one more constant the body reads (a [B, 3] tensor from outside)."""
    cell = GraphBuilder(Graph(name="cell"))
    h = cell.input("h", t32(*carry))
    x_t = cell.input("x_t", t32(B, 2))
    w = cell.input("w", t32(2, 3))
    u = cell.input("u", t32(3, 3))
    e = cell.input("e", extra) if extra is not None else None
    new = cell_ops(cell, h, x_t, w, u, e)
    cell.graph.outputs = {"h": new, "y": cell.op("mul", new, scalar_constant(cell, 2.0))}
    b = GraphBuilder(Graph(name="rnn"))
    xs = b.input("xs", t32(B, 4, 2) if axis == 1 else t32(4, B, 2))
    h0 = b.input("h0", t32(*carry))
    w, u = b.param("w", t32(2, 3), init=None), b.param("u", t32(3, 3), init=None)
    constants = [w, u] + ([b.input("e", extra)] if extra is not None else [])
    (final,), (ys,) = scan(b, cell.graph, [h0], [xs], constants, axis=axis)
    b.graph.outputs = {"final": final, "ys": ys}
    b.graph.losses = [LossInfo("l", b.op("mean", b.op("mul", ys, ys)))]
    return b.graph


def _gates(cell, h, x_t, w, u, e):
    """An Elman cell with a slice and a concat along the features, as an LSTM's gates."""
    pre = cell.op("add", cell.op("matmul", x_t, w), cell.op("matmul", h, u))
    head = cell.op("slice", pre, starts=(None, 0), stops=(None, 1), steps=(None, None))
    tail = cell.op("slice", pre, starts=(None, 1), stops=(None, 3), steps=(None, None))
    return cell.op("tanh", cell.op("concat", cell.op("sigmoid", head), tail, axis=1))


def _scans(graph: Graph) -> list:
    return [node for node in graph.nodes if node.op.name == "scan"]


def test_a_recurrent_cell_and_its_gradient_keep_rows_apart():
    graph = _loop(_gates)
    (forward,) = _scans(graph)
    assert rows_independent(forward)
    # per row: the products' outputs and multiply-adds (3 + 2*3, 3 + 3*3), the add 3, the
    # slices 1 and 2, sigmoid 1, concat 3, tanh 3, the scalar 2.0 1, the y's mul 3
    assert row_work(forward, 128) == 9 + 12 + 3 + 1 + 2 + 1 + 3 + 3 + 1 + 3
    train = training_graph(graph, "sgd")
    assert _scans(train) and all(rows_independent(node) for node in _scans(train))


@pytest.mark.parametrize("cell_ops, extra", [
    # the mean over the batch mixes rows
    (lambda c, h, x, w, u, e: c.op("add", h, c.op("mean", h, axes=(0,), keepdims=True)), None),
    # h @ h^T: a product of two row values over the batch
    (lambda c, h, x, w, u, e: c.op("matmul", c.op("matmul", h, h, transpose_b=True), h), None),
    # a [B, 3] tensor from outside the loop: its rows would have to be split too
    (lambda c, h, x, w, u, e: c.op("add", h, e), t32(B, 3)),
    # a random op draws other numbers in a block
    (lambda c, h, x, w, u, e: c.op("add", h, c.op(
        "random_normal", c.op("constant", value=np.array(3, np.int64)), like=h, seed=1)), None),
], ids=["mean over the batch", "row times row", "a per-row constant", "random"])
def test_loops_that_mix_rows_or_may_are_refused(cell_ops, extra):
    assert not rows_independent(_scans(_loop(cell_ops, extra=extra))[0])


def test_a_time_major_loop_is_left_serial():
    assert not rows_independent(_scans(_loop(_gates, axis=0))[0])


def test_a_static_batch_or_the_batch_elsewhere_is_refused():
    # the registry's example, batch 2: its body is compiled for 2 rows, and would run 2 rows
    # in a block of 1
    from netdsl.ops.registry import get_op
    types, attrs = get_op("scan").examples()[0][:2]
    b = GraphBuilder(Graph(name="static"))
    node_inputs = [b.input(f"i{k}", t) for k, t in enumerate(types)]
    b.op("scan", *node_inputs, **attrs)
    assert not rows_independent(b.graph.nodes[-1])
    # a constant [3, B]: h @ c is [B, B], its second axis the whole batch, not the block's
    mixed = _loop(lambda c, h, x, w, u, e: c.op("matmul", c.op("matmul", h, e), h), extra=t32(3, B))
    assert not rows_independent(_scans(mixed)[0])


def test_scan_chunks_splits_only_enough_work():
    threads = numba.get_num_threads()
    assert scan_chunks(np.int64(1), np.int64(100), np.int64(10 ** 6), np.int64(1)) == 1
    assert scan_chunks(np.int64(64), np.int64(10), np.int64(10), np.int64(10 ** 6)) == 1
    assert scan_chunks(np.int64(64), np.int64(10), np.int64(10), np.int64(1)) == min(threads, 64)
    assert scan_chunks(np.int64(3), np.int64(10), np.int64(10), np.int64(1)) == min(threads, 3)


@pytest.mark.parametrize("batch", [5, 2, 1])     # uneven blocks, one row each, one block
def test_blocks_of_rows_agree_with_the_reference(batch):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread: the loop never splits")
    graph = _loop(_gates)
    train = training_graph(graph, "adam")
    previous = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        for g, arrays in ((graph, random_arrays(graph, batch=batch)),
                          (train, training_arrays(train, batch=batch))):
            compiled = compile_graph(g, options=CodegenOptions(parallel_min=1))
            assert "scan_rows_" in compiled.source and "_in_parallel(scan_rows_" in compiled.source
            assert_matches_reference(g, arrays, compiled=compiled, steps=2, rtol=1e-4,
                                     atol=1e-5)
    finally:
        numba.set_num_threads(previous)


def test_without_parallel_kernels_the_loop_stays_in_the_driver():
    compiled = compile_graph(training_graph(_loop(_gates), "sgd"),
                             options=CodegenOptions(parallel_min=0))
    assert "scan_rows_" not in compiled.source


@pytest.mark.parametrize("parallel_min", [0, 1], ids=["loop in the driver", "blocks of rows"])
def test_what_only_the_gradient_loop_reads_is_stored_step_major(parallel_min):
    """scan.py `step_major`: the forward loop's step values that only the gradient loop reads
    (passes/scan_residuals.py) are written and read in place, one contiguous block per step;
    the stored carries that the weight gradient reads as [B*T, H] rows are copied as before.
    The numbers are the reference's."""
    train = training_graph(_loop(_gates), "adam")
    compiled = compile_graph(train, options=CodegenOptions(parallel_min=parallel_min))
    source = compiled.source
    step = "t * " if parallel_min else "_t * "
    # two step values of the forward loop (the sigmoid's and the tanh's), written by it and
    # read by the gradient loop; the concat's gradient reads none (a split by sizes)
    assert source.count(step) >= 4
    previous = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))   # blocks from row 0 and 3
    try:
        assert_matches_reference(train, training_arrays(train, batch=5), compiled=compiled,
                                 steps=2, rtol=1e-4, atol=1e-5)
    finally:
        numba.set_num_threads(previous)
