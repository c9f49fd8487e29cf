"""passes/scan_hoist.py: a scan body's products of a sequence slice with a loop constant leave
the loop as one product, with the same results; products reading a carry stay in it."""
from __future__ import annotations

import numpy as np

from netdsl.backends.reference import run
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import DType, TensorType
from netdsl.ops.control import scan
from netdsl.passes.scan_hoist import hoist_scan_products

from passes_helpers import vjp_graph
from test_passes_scan import build_elman, elman_arrays, elman_body, unrolled


def _scans(graph):
    return [n for n in graph.nodes if n.op.name == "scan"]


def _body_products(node):
    body = node.attrs["body"]
    n_carry, n_seq = node.attrs["n_carry"], node.attrs["n_seq"]
    sequences = {v.id for v in body.inputs[n_carry:n_carry + n_seq]}
    products = [n for n in body.nodes if n.op.name == "matmul"]
    return products, [n for n in products if n.inputs[0].id in sequences]


def _forward_graph(axis=1):
    a = elman_arrays()
    if axis == 0:
        a["x"] = np.ascontiguousarray(a["x"].transpose(1, 0, 2))
    b = GraphBuilder(Graph())
    v = {k: b.input(k, TensorType(DType.f64, x.shape)) for k, x in a.items()}
    (last,), (hs,) = scan(b, elman_body(), [v["h0"]], [v["x"]], [v["wx"], v["wh"], v["b"]],
                          axis=axis)
    b.graph.outputs = {"last": last, "hs": hs}
    return b.graph, a


def test_the_input_product_of_an_rnn_leaves_the_loop():
    graph, a = _forward_graph()
    hoisted = hoist_scan_products(graph)
    (node,) = _scans(hoisted)
    products, from_sequences = _body_products(node)
    assert len(products) == 1 and not from_sequences         # h @ wh stays: h is a carry
    assert node.attrs["n_seq"] == 2
    outer = [n for n in hoisted.nodes if n.op.name == "matmul"]
    assert len(outer) == 1 and outer[0].outputs[0].shape == (2, 4, 5)   # [B, T, H] at once
    result = run(hoisted, a)
    expected_last, expected_hs = unrolled(a)
    np.testing.assert_allclose(result["last"], expected_last, rtol=1e-12)
    np.testing.assert_allclose(result["hs"], expected_hs, rtol=1e-12)


def test_a_time_major_sequence_is_hoisted_too():
    graph, a = _forward_graph(axis=0)
    hoisted = hoist_scan_products(graph)
    assert not _body_products(_scans(hoisted)[0])[1]
    np.testing.assert_allclose(run(hoisted, a)["hs"], run(graph, a)["hs"], rtol=1e-12)


def test_the_gradients_recomputed_product_leaves_the_reverse_loop():
    """The reverse loop recomputes each step from the stored carry h_{t-1}, a sequence of that
    loop: h_{t-1} @ wh is one product before it; the gradients do not change."""
    from netdsl.passes import pipeline
    graph = vjp_graph(build_elman(False, "both"), elman_arrays(), ["x", "h0", "wx", "wh", "b"])
    full = pipeline.run_pipeline(graph)
    saved = list(pipeline.PIPELINE)
    pipeline.PIPELINE[:] = [stage for stage in saved if stage[0] != "scan_hoist"]
    try:
        plain = pipeline.run_pipeline(graph)
    finally:
        pipeline.PIPELINE[:] = saved
    reverse_plain, reverse_full = _scans(plain)[-1], _scans(full)[-1]
    assert _body_products(reverse_plain)[1]                   # it recomputed h_{t-1} @ wh
    assert not _body_products(reverse_full)[1]
    assert len(_body_products(reverse_full)[0]) < len(_body_products(reverse_plain)[0])
    a = elman_arrays()
    a["cot"] = np.random.default_rng(3).standard_normal((2, 5))
    got, expected = run(full, a), run(plain, a)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-14)


def test_products_of_carries_and_transposed_slices_stay():
    body = GraphBuilder(Graph(name="step"))
    h = body.input("h", TensorType(DType.f64, (3, 3)))
    x_t = body.input("x_t", TensorType(DType.f64, (3, 3)))
    w = body.input("w", TensorType(DType.f64, (3, 3)))
    new = body.op("add", body.op("matmul", h, w),
                  body.op("matmul", x_t, w, transpose_a=True, transpose_b=False))
    body.graph.outputs = {"h": new, "y": new}
    b = GraphBuilder(Graph())
    h0 = b.input("h0", TensorType(DType.f64, (3, 3)))
    x = b.input("x", TensorType(DType.f64, (3, 4, 3)))
    wv = b.input("w", TensorType(DType.f64, (3, 3)))
    (last,), _ = scan(b, body.graph, [h0], [x], [wv], axis=1)
    b.graph.outputs = {"last": last}
    (node,) = _scans(hoist_scan_products(b.graph))
    assert node.attrs["n_seq"] == 1 and len(_body_products(node)[0]) == 2


def test_the_gradient_reads_the_forward_loops_own_products():
    """After hoisting, the reverse loop's h_{t-1} @ wh over the stored carries is no product of
    its own: the forward loop yields its step products and the gradient reads those."""
    from netdsl.passes.pipeline import cleanup, run_pipeline
    from netdsl.passes.scan_hoist import reuse_loop_products
    graph = vjp_graph(build_elman(False, "both"), elman_arrays(), ["x", "h0", "wx", "wh", "b"])
    # the stages before scan_hoist, then its first two steps (not reuse_loop_values, which
    # goes further: tests/passes/test_scan_residuals.py)
    full = cleanup(reuse_loop_products(hoist_scan_products(run_pipeline(graph, "simplify"))))
    forward = _scans(full)[0]
    assert forward.attrs["stack_carries"]
    stored = set(forward.outputs[-forward.attrs["n_carry"]:])
    assert not any(n.op.name == "matmul" and n.inputs[0] in stored for n in full.nodes)
    assert len(forward.attrs["body"].outputs) == 3              # h, y and the reused product
    a = elman_arrays()
    a["cot"] = np.random.default_rng(4).standard_normal((2, 5))
    expected = run(graph, a)
    got = run(full, a)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-14)
