"""Graph rebuilding helpers: passes make new graphs, share unchanged nodes, inline bodies."""
from __future__ import annotations

import numpy as np

from netdsl.backends.reference import run
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import DType, TensorType
from netdsl.ir.verify import verify
from netdsl.passes.rewrite import inline_graph, rebuild

T = TensorType(DType.f64, (3,))


def test_rebuild_replaces_and_shares():
    b = GraphBuilder(Graph(name="g"))
    x = b.input("x", T)
    e = b.op("exp", x)
    n = b.op("neg", x)
    b.graph.outputs = {"y": b.op("add", e, n)}
    original = list(b.graph.nodes)

    def rule(rebuilder, node):                 # exp(x) -> tanh(x)
        if node.op.name == "exp":
            with rebuilder.like(node) as builder:
                return [builder.op("tanh", rebuilder.get(node.inputs[0]))]
        return None

    new = verify(rebuild(b.graph, rule))
    assert [n.op.name for n in new.nodes] == ["tanh", "neg", "add"]
    assert new.nodes[1] is original[1]         # unchanged inputs: the node is shared
    assert new.nodes[2] is not original[2]     # an input changed: rebuilt
    assert b.graph.nodes == original           # the old graph is untouched
    value = np.array([0.1, -2.0, 3.0])
    np.testing.assert_allclose(run(new, {"x": value})["y"], np.tanh(value) - value)


def test_inline_graph_binds_inputs():
    body = GraphBuilder(Graph(name="f"))
    u = body.input("u", T)
    v = body.input("v", T)
    body.graph.outputs = {"w": body.op("mul", u, v), "u": u}
    b = GraphBuilder(Graph(name="g"))
    x = b.input("x", T)
    w, passed = inline_graph(b, body.graph, [x, b.op("exp", x)])
    assert passed is x
    b.graph.outputs = {"w": w}
    value = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(run(verify(b.graph), {"x": value})["w"], value * np.exp(value))


def test_constant_keeps_scalars_rank_zero():
    b = GraphBuilder(Graph())
    assert b.constant(1.0, DType.f32).type == TensorType(DType.f32, ())
    assert b.constant([1, 2], DType.i64).type == TensorType(DType.i64, (2,))
