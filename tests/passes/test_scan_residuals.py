"""passes/scan_residuals.py: a loop that recomputes an earlier loop's step values reads them
from that loop instead, when that moves no more bytes; the numbers do not change."""
from __future__ import annotations

import numpy as np

from netdsl.backends.reference import run
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import DType, TensorType
from netdsl.ops.control import scan
from netdsl.passes import pipeline
from netdsl.passes.dce import eliminate_dead_code
from netdsl.passes.scan_residuals import reuse_loop_values

from passes_helpers import vjp_graph
from test_passes_scan import build_elman, elman_arrays

F64 = DType.f64


def _scans(graph):
    return [n for n in graph.nodes if n.op.name == "scan"]


def _ops(node):
    return [n.op.name for n in node.attrs["body"].nodes]


def _without_scan_hoist(graph):
    saved = list(pipeline.PIPELINE)
    pipeline.PIPELINE[:] = [stage for stage in saved if stage[0] != "scan_hoist"]
    try:
        return pipeline.run_pipeline(graph)
    finally:
        pipeline.PIPELINE[:] = saved


def test_the_rnn_gradient_reads_the_forward_states_instead_of_recomputing_tanh():
    """Elman RNN: the gradient loop recomputed tanh(x_t wx + h_{t-1} wh + b) to get the
    derivative 1 - h_t^2; it now reads h_t, which the forward loop yields anyway (its y), so
    the forward loop stops yielding its step products and nothing new is stored."""
    graph = vjp_graph(build_elman(False, "both"), elman_arrays(), ["x", "h0", "wx", "wh", "b"])
    full = pipeline.run_pipeline(graph)
    forward, gradient = _scans(full)
    assert "tanh" not in _ops(gradient) and "tanh" in _ops(forward)
    assert list(forward.attrs["body"].outputs) == ["h", "y"]
    a = elman_arrays()
    a["cot"] = np.random.default_rng(5).standard_normal((2, 5))
    expected, got = run(_without_scan_hoist(graph), a), run(full, a)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-14)


def _pair(second_reads_both: bool):
    """F: h' = h + exp(x_t) + exp(-x_t), yielding h'; G reads F's y and x and recomputes
    exp(x_t) (and exp(-x_t) when `second_reads_both`)."""
    t = TensorType(F64, (2, 3))
    body = GraphBuilder(Graph(name="f_step"))
    h, x_t = body.input("h", t), body.input("x_t", t)
    e1, e2 = body.op("exp", x_t), body.op("exp", body.op("neg", x_t))
    new = body.op("add", body.op("add", h, e1), e2)
    body.graph.outputs = {"h": new, "y": new}
    g_body = GraphBuilder(Graph(name="g_step"))
    y_t, gx_t = g_body.input("y_t", t), g_body.input("x_t", t)
    out = g_body.op("mul", g_body.op("exp", gx_t), y_t)
    if second_reads_both:
        out = g_body.op("add", out, g_body.op("exp", g_body.op("neg", gx_t)))
    g_body.graph.outputs = {"z": out}
    b = GraphBuilder(Graph(name="pair"))
    h0 = b.input("h0", t)
    x = b.input("x", TensorType(F64, (2, 4, 3)))
    _, (hs,) = scan(b, body.graph, [h0], [x], [], axis=1)
    _, (zs,) = scan(b, g_body.graph, [], [hs, x], [], axis=1)
    b.graph.outputs = {"zs": zs}
    return b.graph


def _arrays():
    rng = np.random.default_rng(0)
    return {"h0": rng.standard_normal((2, 3)), "x": rng.standard_normal((2, 4, 3))}


def test_a_value_costing_less_than_the_sequence_it_frees_is_read():
    graph = _pair(second_reads_both=False)
    rewritten = eliminate_dead_code(reuse_loop_values(graph))
    forward, second = _scans(rewritten)
    assert "exp" not in _ops(second)
    assert second.attrs["n_seq"] == 2                 # F's y and F's exp(x_t); no longer x
    assert len(forward.attrs["body"].outputs) == 3    # h, y and exp(x_t)
    np.testing.assert_allclose(run(rewritten, _arrays())["zs"], run(graph, _arrays())["zs"],
                               rtol=1e-14)


def test_values_costing_more_than_what_they_free_are_recomputed():
    """Two [2, 3] values per step to store and read against one [2, 3] sequence freed."""
    graph = _pair(second_reads_both=True)
    assert reuse_loop_values(graph) is graph


def test_lstm_gradient_reads_the_gates_and_the_forward_loop_stops_yielding_products(tmp_path):
    """The stdlib LSTM's training step: the gradient loop has no sigmoid or tanh left and
    reads the four gates and tanh(c_t) (5 x [B, 128]) instead of x_t W_ih and h W_hh
    (2 x [B, 512])."""
    import netdsl
    from netdsl.compiler import Training, compile_step
    source = """
model M {
    in tokens: i64[B, T]
    in label: i64[B]
    last = tokens |> Embedding(50, 8) |> LSTM(16, return_sequences=false)
    logits = last |> Dense(3)
    loss cross_entropy(logits, label)
}
train M {
    batch = 4
    optimizer = SGD(lr=0.1)
}
"""
    (tmp_path / "m.net").write_text(source)
    model = netdsl.load(tmp_path / "m.net")
    graph = compile_step(model.training_forward, "cpu",
                         Training.from_config(model.train_config), stop_after="cleanup")
    forward, gradient = _scans(graph)
    assert not {"sigmoid", "tanh"} & set(_ops(gradient))
    assert gradient.attrs["n_seq"] == 6               # stored c, 4 gates, tanh(c_t)
    assert all(v.shape[-1] == 16 for v in gradient.inputs[2:8])
    ys = list(forward.attrs["body"].outputs.values())[2:]
    assert len(ys) == 5 and all(v.producer.op.name in ("sigmoid", "tanh") for v in ys)
