"""The `scan` op: forward against an unrolled loop, gradients (a reverse scan) against finite
differences, type errors, and CSE merging the forward loop with its gradient's twin."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.backends.reference import run
from netdsl.errors import Error
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import DType, TensorType
from netdsl.ops.control import scan
from netdsl.passes.pipeline import run_pipeline

from passes_helpers import check_gradients, t64

B, T, D, H = 2, 4, 3, 5
rng = np.random.default_rng(7)


def elman_body(dtype=DType.f64) -> Graph:
    """h = tanh(x_t @ wx + h @ wh + b); yields h."""
    body = GraphBuilder(Graph(name="elman_step"))
    h = body.input("h", TensorType(dtype, (B, H)))
    x_t = body.input("x_t", TensorType(dtype, (B, D)))
    wx = body.input("wx", TensorType(dtype, (D, H)))
    wh = body.input("wh", TensorType(dtype, (H, H)))
    bias = body.input("b", TensorType(dtype, (H,)))
    pre = body.op("add", body.op("add", body.op("matmul", x_t, wx), body.op("matmul", h, wh)),
                  bias)
    new = body.op("tanh", pre)
    body.graph.outputs = {"h": new, "y": new}
    return body.graph


def elman_arrays():
    return {"x": rng.standard_normal((B, T, D)), "h0": rng.standard_normal((B, H)) * 0.5,
            "wx": rng.standard_normal((D, H)) * 0.5, "wh": rng.standard_normal((H, H)) * 0.5,
            "b": rng.standard_normal(H) * 0.1}


def unrolled(a, reverse=False):
    h = a["h0"]
    hs = [None] * T
    for t in (reversed(range(T)) if reverse else range(T)):
        h = np.tanh(a["x"][:, t] @ a["wx"] + h @ a["wh"] + a["b"])
        hs[t] = h
    return h, np.stack(hs, axis=1)


def build_elman(reverse=False, which="hs"):
    def build(b, v):
        (last,), (hs,) = scan(b, elman_body(), [v["h0"]], [v["x"]], [v["wx"], v["wh"], v["b"]],
                              axis=1, reverse=reverse)
        if which == "hs":
            return hs
        if which == "last":
            return last
        return b.op("add", b.op("sum", hs, axes=(1,), keepdims=False), b.op("mul", last, last))
    return build


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_forward_matches_unrolled_loop(reverse):
    a = elman_arrays()
    b = GraphBuilder(Graph())
    v = {k: b.input(k, TensorType(DType.f64, x.shape)) for k, x in a.items()}
    (last,), (hs,) = scan(b, elman_body(), [v["h0"]], [v["x"]], [v["wx"], v["wh"], v["b"]],
                          axis=1, reverse=reverse)
    assert hs.type == t64(B, T, H) and last.type == t64(B, H)
    b.graph.outputs = {"last": last, "hs": hs}
    result = run(b.graph, a)
    expected_last, expected_hs = unrolled(a, reverse)
    np.testing.assert_allclose(result["last"], expected_last, rtol=1e-12)
    np.testing.assert_allclose(result["hs"], expected_hs, rtol=1e-12)


@pytest.mark.parametrize("reverse,which", [(False, "hs"), (False, "last"), (True, "both")])
def test_scan_gradients_match_finite_differences(reverse, which):
    check_gradients(build_elman(reverse, which), elman_arrays(), rtol=1e-5, atol=1e-8)


def test_stack_carries_outputs_entering_carries():
    a = elman_arrays()
    b = GraphBuilder(Graph())
    v = {k: b.input(k, TensorType(DType.f64, x.shape)) for k, x in a.items()}
    last, hs, stored = b.op("scan", v["h0"], v["x"], v["wx"], v["wh"], v["b"],
                            body=elman_body(), n_carry=1, n_seq=1, axis=1, reverse=False,
                            stack_carries=True)
    b.graph.outputs = {"stored": stored, "hs": hs}
    result = run(b.graph, a)
    np.testing.assert_allclose(result["stored"][:, 0], a["h0"])
    np.testing.assert_allclose(result["stored"][:, 1:], result["hs"][:, :-1])


def test_cse_merges_forward_scan_with_gradient_twin():
    from passes_helpers import vjp_graph
    graph = vjp_graph(build_elman(False, "hs"), elman_arrays(), ["wx", "wh"])
    scans = [n for n in graph.nodes if n.op.name == "scan"]
    assert len(scans) == 3                     # forward, its stack_carries twin, reverse
    simplified = run_pipeline(graph)
    scans = [n for n in simplified.nodes if n.op.name == "scan"]
    assert len(scans) == 2
    assert scans[0].attrs["stack_carries"] is True and scans[1].attrs["reverse"] is True


def test_scan_without_sequences_uses_length():
    body = GraphBuilder(Graph(name="double"))
    x = body.input("x", t64(3))
    y = body.op("mul", x, body.constant(2.0, DType.f64))
    body.graph.outputs = {"x": y, "y": y}
    b = GraphBuilder(Graph())
    x0 = b.input("x0", t64(3))
    final, ys = b.op("scan", x0, body=body.graph, n_carry=1, n_seq=0, axis=0, length=3)
    b.graph.outputs = {"final": final, "ys": ys}
    result = run(b.graph, {"x0": np.ones(3)})
    np.testing.assert_allclose(result["final"], 8 * np.ones(3))
    np.testing.assert_allclose(result["ys"][:, 0], [2, 4, 8])


def test_scan_type_errors():
    body = elman_body()
    b = GraphBuilder(Graph())
    h0 = b.input("h0", t64(B, H + 1))
    x = b.input("x", t64(B, T, D))
    ws = [b.input(n, t) for n, t in (("wx", t64(D, H)), ("wh", t64(H, H)), ("b", t64(H)))]
    with pytest.raises(Error, match="body input 0 has type f64\\[2, 5\\]"):
        scan(b, body, [h0], [x], ws, axis=1)
    with pytest.raises(Error, match="body takes 5 inputs"):
        scan(b, body, [h0], [x], ws[:2], axis=1)


def test_dce_prunes_unneeded_gradients_inside_the_loop():
    from passes_helpers import vjp_graph
    graph = vjp_graph(build_elman(False, "hs"), elman_arrays(), ["wh"])   # not x, wx or b
    simplified = run_pipeline(graph)
    reverse = [n for n in simplified.nodes if n.op.name == "scan"][-1]
    # wh's gradient, Σ_t h_tᵀ @ d_pre_t, is one product after the loop: the loop keeps the
    # carry's cotangent and yields d_pre (h_t is the stored carry, a sequence already)
    assert len(reverse.attrs["body"].outputs) == 2 and reverse.attrs["n_carry"] == 1
    assert reverse.outputs[1].type == t64(B, T, H)
    a = elman_arrays()
    cot = rng.standard_normal((B, T, H))
    np.testing.assert_allclose(run(simplified, {**a, "cot": cot})["grad.wh"],
                               run(graph, {**a, "cot": cot})["grad.wh"], rtol=1e-12)


def test_weight_gradients_are_one_product_after_the_loop():
    """Gradients of weights used as `v @ W` (Σ_t v_tᵀ @ g_t) and of a bias (Σ_t Σ_b g_t) are
    summed over time after the reverse loop, not accumulated in carries of it."""
    from passes_helpers import vjp_graph
    graph = vjp_graph(build_elman(True, "both"), elman_arrays(), ["wx", "wh", "b", "h0", "x"])
    reverse = [n for n in graph.nodes if n.op.name == "scan"][-1]
    assert reverse.attrs["n_carry"] == 1                 # the cotangent of h only
    check_gradients(build_elman(True, "both"), elman_arrays(), rtol=1e-5, atol=1e-8)


def test_integer_carry_gets_no_gradient():
    """A loop with a float carry and an integer step counter; only floats are differentiated."""
    body = GraphBuilder(Graph(name="counted"))
    h = body.input("h", t64(3))
    count = body.input("count", TensorType(DType.i64, ()))
    x_t = body.input("x_t", t64(3))
    scale = body.op("cast", count, dtype=DType.f64)
    new_h = body.op("add", body.op("mul", body.op("sin", h), scale), x_t)
    one = body.constant(1, DType.i64)
    body.graph.outputs = {"h": new_h, "count": body.op("add", count, one),
                          "y": new_h}

    def build(b, v):
        c0 = b.constant(1, DType.i64)
        h_final, count, ys = b.op("scan", v["h0"], c0, v["x"], body=body.graph, n_carry=2,
                                  n_seq=1, axis=0)
        return b.op("add", h_final, b.op("sum", ys, axes=(0,), keepdims=False))
    check_gradients(build, {"h0": rng.standard_normal(3), "x": rng.standard_normal((4, 3))})


def test_training_step_through_a_scan():
    from netdsl.ir.graph import LossInfo
    from netdsl.passes.training import build_training_graph
    from netdsl.passes.optimizers import make_optimizer
    b = GraphBuilder(Graph(name="rnn"))
    x = b.input("x", t64(B, T, D))
    with b.scoped("rnn"):
        ws = [b.param(f"rnn.{n}", t, ("normal",)) for n, t in
              (("wx", t64(D, H)), ("wh", t64(H, H)), ("b", t64(H)))]
        h0 = b.op("full", shape=(B, H), value=0.0, dtype=DType.f64)
        (last,), (hs,) = scan(b, elman_body(), [h0], [x], ws, axis=1)
    loss = b.op("mean", b.op("mul", hs, hs), axes=None, keepdims=False)
    b.graph.outputs["last"] = last
    b.graph.losses.append(LossInfo("loss", loss))
    step = build_training_graph(b.graph, make_optimizer("Adam", lr=0.01))
    simplified = run_pipeline(step)
    a = elman_arrays()
    params = {"rnn.wx": a["wx"], "rnn.wh": a["wh"], "rnn.b": a["b"]}
    runs = []
    for graph in (step, simplified):
        arrays = {**{k: v.copy() for k, v in params.items()}, "x": a["x"],
                  "__lr__": np.float32(0.01), "__step__": np.float32(1)}
        for info in graph.params[3:]:
            arrays[info.name] = np.zeros([int(d) for d in info.value.shape])
        losses = [float(run(graph, arrays)["loss"]) for _ in range(3)]
        runs.append((losses, arrays["rnn.wh"].copy()))
    assert runs[0][0][2] < runs[0][0][0]                    # it learns
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-12)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-12)
    assert sum(n.op.name == "scan" for n in simplified.nodes) == 2


def test_gradient_of_a_map_without_carries():
    body = GraphBuilder(Graph(name="map"))
    x_t = body.input("x_t", t64(3))
    w = body.input("w", t64(3))
    body.graph.outputs = {"y": body.op("tanh", body.op("mul", x_t, w))}

    def build(b, v):
        (ys,) = b.op("scan", v["x"], v["w"], body=body.graph, n_carry=0, n_seq=1, axis=0)
        return ys
    check_gradients(build, {"x": rng.standard_normal((4, 3)), "w": rng.standard_normal(3)})


def test_gradient_of_a_loop_without_sequences():
    body = GraphBuilder(Graph(name="iterate"))
    x = body.input("x", t64(3))
    w = body.input("w", t64(3))
    new = body.op("mul", body.op("sin", x), w)
    body.graph.outputs = {"x": new}

    def build(b, v):
        (final,) = b.op("scan", v["x0"], v["w"], body=body.graph, n_carry=1, n_seq=0, axis=0,
                        length=3)
        return final
    check_gradients(build, {"x0": rng.standard_normal(3), "w": rng.standard_normal(3)})
