"""passes/scan_transpose.py: a constant that a scan body multiplies by transposed is transposed
once before the loop and the body's product reads it untransposed, with the same results;
products by a sequence slice transposed stay as they are."""
from __future__ import annotations

import numpy as np
from passes_helpers import vjp_graph

from netdsl.backends.reference import run
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import DType, TensorType
from netdsl.ops.control import scan
from netdsl.passes.pipeline import run_pipeline
from netdsl.passes.scan_transpose import transpose_loop_constants

B, T, D, H = 2, 4, 3, 5
rng = np.random.default_rng(11)


def _body() -> Graph:
    """h = tanh(x_t @ wxᵀ + h @ whᵀ + tanh(h) @ whᵀ + (x_t @ x_tᵀ) @ h), wx [H, D] and wh
    [H, H] stored as PyTorch stores them: two products by whᵀ, one by wxᵀ, and one by the
    slice transposed, which stays."""
    body = GraphBuilder(Graph(name="step"))
    h = body.input("h", TensorType(DType.f64, (B, H)))
    x_t = body.input("x_t", TensorType(DType.f64, (B, D)))
    wx = body.input("wx", TensorType(DType.f64, (H, D)))
    wh = body.input("wh", TensorType(DType.f64, (H, H)))
    recurrent = body.op("matmul", h, wh, transpose_b=True)
    again = body.op("matmul", body.op("tanh", h), wh, transpose_b=True)
    gram = body.op("matmul", x_t, x_t, transpose_b=True)              # [B, B], a slice's
    pre = body.op("add", body.op("add", body.op("matmul", x_t, wx, transpose_b=True), recurrent),
                  body.op("add", again, body.op("matmul", gram, h)))
    new = body.op("tanh", pre)
    body.graph.outputs = {"h": new, "y": new}
    return body.graph


def _arrays():
    return {"x": rng.standard_normal((B, T, D)), "h0": rng.standard_normal((B, H)) * 0.5,
            "wx": rng.standard_normal((H, D)) * 0.5, "wh": rng.standard_normal((H, H)) * 0.3}


def _build(b, v):
    (last,), (hs,) = scan(b, _body(), [v["h0"]], [v["x"]], [v["wx"], v["wh"]], axis=1)
    return b.op("add", b.op("sum", hs, axes=(1,)), last)


def _transposed_by_constant(graph: Graph) -> list:
    """Products in scan bodies that multiply by one of the body's constants transposed."""
    found = []
    for node in graph.nodes:
        if node.op.name != "scan":
            continue
        body, n_in = node.attrs["body"], node.attrs["n_carry"] + node.attrs["n_seq"]
        constants = {v.id for v in body.inputs[n_in:]}
        found += [n for n in body.nodes if n.op.name == "matmul" and
                  n.attrs.get("transpose_b") and n.inputs[1].id in constants]
    return found


def test_each_constant_is_transposed_once_before_the_loop():
    b = GraphBuilder(Graph())
    v = {k: b.input(k, TensorType(DType.f64, a.shape)) for k, a in _arrays().items()}
    b.graph.outputs = {"out": _build(b, v)}
    graph = b.graph
    assert len(_transposed_by_constant(graph)) == 3
    rewritten = transpose_loop_constants(graph)
    assert not _transposed_by_constant(rewritten)
    transposes = [n for n in rewritten.nodes if n.op.name == "transpose"]
    assert sorted(n.inputs[0].name for n in transposes) == ["wh", "wx"]     # wh once
    assert all(n.attrs["perm"] == (1, 0) for n in transposes)
    (loop,) = [n for n in rewritten.nodes if n.op.name == "scan"]
    body = loop.attrs["body"]
    assert any(n.op.name == "matmul" and n.attrs.get("transpose_b") for n in body.nodes)
    arrays = _arrays()
    np.testing.assert_allclose(run(rewritten, arrays)["out"], run(graph, arrays)["out"],
                               rtol=1e-12)


def test_the_gradient_through_the_pipeline_is_the_same():
    """The whole pipeline (the gradient's loops transposed too) against the graph as built."""
    arrays = _arrays()
    graph = vjp_graph(_build, arrays, ["x", "h0", "wx", "wh"])
    full = run_pipeline(graph)
    assert not _transposed_by_constant(full)
    arrays["cot"] = rng.standard_normal((B, H))
    expected, got = run(graph, arrays), run(full, arrays)
    assert set(expected) == set(got) and len(expected) == 5
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-11, atol=1e-13)
