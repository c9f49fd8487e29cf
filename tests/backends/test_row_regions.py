"""Row regions (passes/row_regions.py, backends/numba_cpu/row_blocks.py): which runs of ops
become `row_blocks` nodes, and their blocks of rows agreeing with the reference and with the
graph compiled without them, on one block and on several."""
from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest
from backend_helpers import (
    B,
    assert_matches_reference,
    mlp_graph,
    random_arrays,
    t32,
    training_arrays,
    training_graph,
)

from netdsl.backends import compile_graph
from netdsl.backends.numba_cpu import CodegenOptions
from netdsl.backends.numba_cpu.row_blocks import row_chunks
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.passes.row_regions import product_rows, row_regions

ALWAYS = CodegenOptions(parallel_min=1, row_regions="always")


def _forward(sizes=(6, 40, 40, 5)) -> Graph:
    """An MLP's inference graph: dense layers, relu, softmax (no loss)."""
    b = GraphBuilder(Graph(name="forward"))
    h = b.input("x", t32(B, sizes[0]))
    for i, (m, n) in enumerate(itertools.pairwise(sizes)):
        w = b.param(f"w{i}", t32(n, m), init=None)
        h = b.op("add", b.op("matmul", h, w, transpose_b=True),
                 b.param(f"b{i}", t32(n), init=None))
        if i < len(sizes) - 2:
            h = b.op("relu", h)
    b.graph.outputs = {"probs": b.op("exp", b.op("log_softmax", h, axis=-1))}
    return b.graph


def _regions(graph: Graph) -> list:
    return [node for node in graph.nodes if node.op.name == "row_blocks"]


def test_an_mlp_forward_is_one_region_and_nothing_is_left_twice():
    graph = _forward()
    wrapped = row_regions(graph)
    (region,) = _regions(wrapped)
    assert len(wrapped.nodes) == 1
    assert [v.name for v in region.inputs[:region.attrs["n_rows"]]] == ["x"]
    assert list(wrapped.outputs) == ["probs"] and wrapped.outputs["probs"] is region.outputs[0]
    assert [n.op.name for n in region.attrs["body"].nodes].count("matmul") == 3
    assert product_rows(region.attrs["body"]) == 1


def test_an_op_that_mixes_rows_splits_the_regions_and_values_cross_them():
    """h leaves the first region for a sum over the batch and for the second region."""
    b = GraphBuilder(Graph(name="mixed"))
    x = b.input("x", t32(B, 4))
    w1, w2 = b.param("w1", t32(4, 8), init=None), b.param("w2", t32(8, 3), init=None)
    h = b.op("relu", b.op("tanh", b.op("matmul", x, w1)))
    total = b.op("sum", h, axes=(0,))                     # mixes rows: ends the run
    y = b.op("matmul", b.op("add", h, total), w2)
    b.graph.outputs = {"y": b.op("sigmoid", y), "h": h}
    wrapped = row_regions(b.graph)
    first, second = _regions(wrapped)
    assert second.inputs[0] is not h and second.inputs[0].producer is not None
    assert any(v.producer is first for v in second.inputs)
    for batch in (1, 5, 40):
        assert_matches_reference(b.graph, random_arrays(b.graph, batch=batch),
                                 compile_graph(b.graph, options=ALWAYS), rtol=2e-5)


def test_a_static_batch_or_a_lone_product_gets_no_region():
    b = GraphBuilder(Graph(name="static"))
    x = b.input("x", t32(8, 4))
    w = b.param("w", t32(4, 3), init=None)
    b.graph.outputs = {"y": b.op("relu", b.op("matmul", x, w))}
    assert row_regions(b.graph) is b.graph
    b = GraphBuilder(Graph(name="lone"))
    x = b.input("x", t32(B, 4))
    b.graph.outputs = {"y": b.op("matmul", x, b.param("w", t32(4, 3), init=None))}
    assert row_regions(b.graph) is b.graph


def test_training_steps_keep_their_graph_by_default():
    step = training_graph(mlp_graph((6, 40, 5)))
    assert not CodegenOptions().regions_for(step)
    assert CodegenOptions().regions_for(_forward())
    assert not CodegenOptions(parallel_min=0).regions_for(_forward())


@pytest.mark.parametrize("batch", [1, 31, 64, 129])
def test_blocks_of_rows_agree_with_the_reference_and_the_whole_graph(batch):
    graph = _forward((30, 64, 64, 7))
    arrays = random_arrays(graph, batch=batch, seed=batch)
    for name in ("w0", "w1", "w2"):                 # logits of a few units, not saturated
        arrays[name] = arrays[name] / np.float32(np.sqrt(arrays[name].shape[1]))
    compiled = compile_graph(graph, options=ALWAYS)
    assert compiled.report.kernels.get("row_blocks") == 1
    assert_matches_reference(graph, arrays, compiled, rtol=2e-5, atol=2e-6)
    whole = compile_graph(graph, options=CodegenOptions(parallel_min=1, row_regions="never"))
    np.testing.assert_allclose(compiled.run(arrays)["probs"], whole.run(arrays)["probs"],
                               rtol=2e-5, atol=2e-6)


def test_training_steps_with_regions_agree_with_the_reference():
    step = training_graph(mlp_graph((6, 40, 40, 5)))
    compiled = compile_graph(step, options=ALWAYS)
    assert compiled.report.kernels.get("row_blocks", 0) >= 1
    assert_matches_reference(step, training_arrays(step, batch=67), compiled, steps=2,
                             rtol=1e-4, atol=1e-5)


def test_row_chunks_split_only_enough_rows_of_enough_work():
    threads = numba.get_num_threads()
    if threads < 2:
        pytest.skip("one Numba thread")
    assert row_chunks(64, 16, 1000, 1000) == min(threads, 4)
    assert row_chunks(31, 16, 10**6, 1) == 1                    # too few rows for two blocks
    assert row_chunks(32, 16, 10**6, 1) == 2                    # two blocks of 16, not more
    assert row_chunks(64, 1, 10, 1 << 20) == 1                  # too little work
    assert row_chunks(2, 1, 10**6, 1) == 2
    assert row_chunks(10**6, 1, 10**6, 1) == threads


def test_the_environment_chooses_the_mode_and_a_bad_value_is_an_error(monkeypatch):
    import netdsl
    monkeypatch.setenv("NETDSL_ROW_REGIONS", " Never ")
    assert CodegenOptions().row_regions == "never"
    monkeypatch.setenv("NETDSL_ROW_REGIONS", "sometimes")
    with pytest.raises(netdsl.Error, match="NETDSL_ROW_REGIONS must be"):
        CodegenOptions()
    monkeypatch.delenv("NETDSL_ROW_REGIONS")
    monkeypatch.setenv("NETDSL_PARALLEL_MIN", "1e6")
    with pytest.raises(netdsl.Error, match="NETDSL_PARALLEL_MIN must be a whole number"):
        CodegenOptions()


def test_a_loop_body_that_mixes_rows_gets_its_own_regions():
    """The body's mean over the batch keeps the loop serial (no row scan); its dense layers
    still run on blocks of rows, step by step."""
    from netdsl.ops.control import scan
    cell = GraphBuilder(Graph(name="cell"))
    h = cell.input("h", t32(B, 8))
    x_t = cell.input("x_t", t32(B, 8))
    w, u = cell.input("w", t32(8, 8)), cell.input("u", t32(8, 8))
    hidden = cell.op("tanh", cell.op("matmul", cell.op("add", h, x_t), w))
    new = cell.op("sub", cell.op("matmul", hidden, u), cell.op("mean", hidden, axes=(0,)))
    cell.graph.outputs = {"h": new, "y": new}
    b = GraphBuilder(Graph(name="loop"))
    xs, h0 = b.input("xs", t32(B, 3, 8)), b.input("h0", t32(B, 8))
    w, u = b.param("w", t32(8, 8), init=None), b.param("u", t32(8, 8), init=None)
    (final,), _ = scan(b, cell.graph, [h0], [xs], [w, u], axis=1)
    b.graph.outputs = {"final": final}
    compiled = compile_graph(b.graph, options=ALWAYS)
    assert compiled.report.kernels.get("row_blocks") == 1
    for batch in (2, 40):
        arrays = random_arrays(b.graph, batch=batch, seed=batch)
        arrays["w"], arrays["u"] = arrays["w"] * np.float32(0.3), arrays["u"] * np.float32(0.3)
        assert_matches_reference(b.graph, arrays, compiled, rtol=2e-5, atol=2e-6)


def test_convolutions_and_pooling_run_on_blocks_of_images():
    """A small CNN's inference: conv, bias, relu, max pool, conv, avg pool, flatten, dense."""
    b = GraphBuilder(Graph(name="cnn"))
    x = b.input("x", t32(B, 2, 9, 9))
    w1, w2 = b.param("w1", t32(4, 2, 3, 3), init=None), b.param("w2", t32(3, 4, 2, 2), init=None)
    bias = b.param("bias", t32(4, 1, 1), init=None)
    h = b.op("relu", b.op("add", b.op("conv2d", x, w1, padding=1), bias))
    h = b.op("max_pool2d", h, size=(2, 2))
    h = b.op("avg_pool2d", b.op("conv2d", h, w2, stride=2), size=(2, 2), stride=1)
    flat = b.op("reshape", h, shape=(B, 3))
    b.graph.outputs = {"y": b.op("matmul", flat, b.param("w3", t32(5, 3), init=None),
                                 transpose_b=True)}
    (region,) = _regions(row_regions(b.graph))
    assert [n.op.name for n in region.attrs["body"].nodes].count("conv2d") == 2
    compiled = compile_graph(b.graph, options=ALWAYS)
    for batch in (1, 5, 40):
        assert_matches_reference(b.graph, random_arrays(b.graph, batch=batch, seed=batch),
                                 compiled, rtol=2e-5, atol=2e-5)


def test_the_kernel_listing_shows_a_region_body():
    from netdsl.passes.fusion import fuse
    listing = fuse(row_regions(_forward()), windows=True).format()
    assert "op[]: row_blocks" in listing
    assert "    body: k0 matmul[B, 40]: matmul add relu" in listing
