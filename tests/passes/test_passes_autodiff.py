"""Reverse-mode autodiff: composite graphs against finite differences (float64, reference)."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.verify import InternalError
from netdsl.ops.registry import OpDef
from netdsl.passes.autodiff import GRAD_SCOPE, gradients, vjp

from passes_helpers import check_gradients, t64, vjp_graph

rng = np.random.default_rng(42)


def arr(*shape):
    return rng.standard_normal(shape)


def test_composite_rational_function():
    def build(b, v):
        x, y = v["x"], v["y"]
        numerator = b.op("add", b.op("mul", x, y), b.op("neg", x))
        denominator = b.op("add", b.op("mul", y, y), b.constant(1.5, x.dtype))
        return b.op("sub", b.op("div", numerator, denominator), y)
    check_gradients(build, {"x": arr(3, 4), "y": arr(3, 4)})


def test_fan_out_is_summed():
    def build(b, v):
        x = v["x"]
        a = b.op("mul", x, x)               # x used twice here ...
        c = b.op("tanh", x)                 # ... once here ...
        return b.op("add", b.op("mul", a, c), x)  # ... and once here
    graph = check_gradients(build, {"x": arr(5)})
    assert sum(1 for n in graph.nodes if n.op.name == "add" and n.scope[:1] == ("grad",)) >= 2


def test_broadcasting_unbroadcasts():
    def build(b, v):
        return b.op("mul", b.op("add", v["x"], v["bias"]), v["scale"])
    check_gradients(build, {"x": arr(2, 3, 4), "bias": arr(4), "scale": arr(3, 1)})


def test_matmul_tanh_chain():
    def build(b, v):
        hidden = b.op("tanh", b.op("add", b.op("matmul", v["x"], v["w1"]), v["b1"]))
        return b.op("matmul", hidden, v["w2"])
    check_gradients(build, {"x": arr(4, 3), "w1": arr(3, 5), "b1": arr(5), "w2": arr(5, 2)})


def test_reductions_and_shapes():
    def build(b, v):
        x = v["x"]
        s = b.op("sum", b.op("exp", x), axes=(1,), keepdims=True)
        y = b.op("div", b.op("exp", x), s)                       # a softmax by hand
        y = b.op("transpose", b.op("reshape", y, shape=(3, 2, 2)), perm=(2, 0, 1))
        return b.op("mean", y, axes=(0,), keepdims=False)
    check_gradients(build, {"x": arr(3, 4)})


def test_stop_gradient_cuts_the_path():
    def build(b, v):
        x = v["x"]
        return b.op("mul", x, b.op("stop_gradient", b.op("mul", x, x)))
    arrays = {"x": arr(4)}
    graph = vjp_graph(build, arrays, ["x"])
    from netdsl.backends.reference import run
    cot = np.ones(4)
    result = run(graph, {**arrays, "cot": cot})
    # d/dx (x * sg(x^2)) = sg(x^2) = x^2, not 3 x^2.
    np.testing.assert_allclose(result["grad.x"], arrays["x"] ** 2)


def test_no_path_gives_none_and_integers_are_skipped():
    b = GraphBuilder(Graph())
    x = b.input("x", t64(3))
    y = b.input("y", t64(3))
    mask = b.op("greater", x, y)                      # boolean: no gradient through it
    out = b.op("where", mask, x, b.constant(0.0, x.dtype))
    grads = vjp(b, [out], [b.input("cot", t64(3))], [x, y])
    assert grads[0] is not None and grads[1] is None


def test_gradient_nodes_scoped_and_spanned():
    from netdsl.source import Span
    span = Span("m.net", 2, 3, 2, 9)
    b = GraphBuilder(Graph())
    x = b.input("x", t64())
    with b.at(span), b.scoped("layer"):
        y = b.op("mul", x, x)
    forward = len(b.graph.nodes)
    (gx,) = gradients(b, y, [x])
    grad_nodes = b.graph.nodes[forward:]
    mul_grads = [n for n in grad_nodes if n.op.name == "mul"]
    assert mul_grads and all(n.scope == (GRAD_SCOPE, "layer") for n in mul_grads)
    assert all(n.span == span for n in mul_grads)


def test_missing_vjp_is_an_internal_error():
    opaque = OpDef(name="opaque", infer=lambda a: a, reference=lambda a: a)
    b = GraphBuilder(Graph())
    x = b.input("x", t64())
    y = b.op(opaque, x)
    with pytest.raises(InternalError, match="op 'opaque' has no vjp rule"):
        gradients(b, y, [x])


def test_wrong_vjp_shape_is_an_internal_error():
    bad = OpDef(name="bad", infer=lambda a: a, reference=lambda a: a,
                vjp=lambda b, grads, inputs, outputs: (b.op("sum", grads[0], axes=(0,),
                                                             keepdims=False),))
    b = GraphBuilder(Graph())
    x = b.input("x", t64(3))
    y = b.op("sum", b.op(bad, x), axes=(0,), keepdims=False)
    with pytest.raises(InternalError, match="vjp of 'bad' gave a gradient of type"):
        gradients(b, y, [x])


def test_a_concat_along_a_static_axis_differentiates_without_reading_its_inputs():
    """Its gradient is a split by sizes: the forward values are not kept alive for their
    shapes (nor stored step by step by a loop's gradient, passes/scan_residuals.py).  Along a
    symbolic axis the split still takes its sizes from them."""
    def build(b, v):
        joined = b.op("concat", b.op("tanh", v["x"]), b.op("sigmoid", v["y"]), axis=1)
        return b.op("mul", joined, joined)
    graph = check_gradients(build, {"x": arr(2, 3), "y": arr(2, 4)})
    (split,) = [n for n in graph.nodes if n.op.name == "split"]
    assert len(split.inputs) == 1 and split.attrs["sizes"] == (3, 4)

    from netdsl.ir.types import DType, Sym, TensorType
    b = GraphBuilder(Graph(name="symbolic"))
    rows = TensorType(DType.f64, (Sym.named("B"), 3))
    x, y = b.input("x", rows), b.input("y", rows)
    out = b.op("concat", x, y, axis=0)
    grads = vjp(b, [out], [b.input("cot", out.type)], [x, y])
    (split,) = [n for n in b.graph.nodes if n.op.name == "split"]
    assert len(split.inputs) == 3 and all(g is not None for g in grads)


def test_a_static_reshape_differentiates_without_reading_its_input():
    def build(b, v):
        flat = b.op("reshape", b.op("tanh", v["x"]), shape=(6,))
        return b.op("mul", flat, flat)
    graph = check_gradients(build, {"x": arr(2, 3)})
    backward = [n for n in graph.nodes if n.op.name == "reshape" and n.scope[:1] == ("grad",)]
    assert backward and all(len(n.inputs) == 1 and n.attrs["shape"] == (2, 3)
                            for n in backward)
