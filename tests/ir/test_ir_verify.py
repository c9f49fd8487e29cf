"""The IR verifier accepts well-formed graphs and names each broken invariant."""
from __future__ import annotations

import pytest

from netdsl.ir.graph import Graph, GraphBuilder, LossInfo, Node, Value
from netdsl.ir.types import DType, TensorType
from netdsl.ir.verify import InternalError, verify
from netdsl.ops import get_op

F32 = DType.f32
T = TensorType(F32, (2, 3))


def _graph():
    b = GraphBuilder(Graph(name="g"))
    x = b.input("x", T)
    w = b.param("w", T, ("zeros",))
    y = b.op("mul", b.op("add", x, w), x)
    b.graph.outputs["y"] = y
    return b.graph


def test_valid_graph_passes():
    graph = _graph()
    assert verify(graph) is graph


def test_out_of_order_nodes():
    graph = _graph()
    graph.nodes.reverse()
    with pytest.raises(InternalError, match="used before it is defined"):
        verify(graph)


def test_undefined_input_and_output():
    graph = _graph()
    stray = Value(T, kind="input", name="stray")
    node = Node(get_op("neg"), (stray,), {})
    node.outputs = (Value(T, node, 0),)
    graph.nodes.append(node)
    graph.outputs["z"] = Value(T)
    with pytest.raises(InternalError) as info:
        verify(graph)
    assert "used before it is defined" in str(info.value)
    assert "output 'z' references an undefined value" in str(info.value)


def test_type_mismatch_is_reported():
    graph = _graph()
    node = graph.nodes[0]
    node.outputs[0].type = TensorType(F32, (5,))
    with pytest.raises(InternalError, match="infers f32\\[2, 3\\], but records f32\\[5\\]"):
        verify(graph)


def test_losses_and_state_updates_checked():
    graph = _graph()
    graph.losses.append(LossInfo("l", graph.outputs["y"]))
    graph.state_updates["nope"] = graph.outputs["y"]
    with pytest.raises(InternalError) as info:
        verify(graph)
    assert "loss 'l' is not a scalar" in str(info.value)
    assert "state update 'nope' names no parameter" in str(info.value)


def test_duplicate_names():
    graph = _graph()
    graph.inputs.append(Value(T, kind="input", name="w"))
    with pytest.raises(InternalError, match="named 'w'"):
        verify(graph)


def test_scan_body_verified_recursively():
    body = GraphBuilder(Graph(name="step"))
    h = body.input("h", T)
    new = body.op("neg", h)
    body.graph.outputs = {"h": new}
    b = GraphBuilder(Graph(name="loop"))
    h0 = b.input("h0", T)
    b.op("scan", h0, body=body.graph, n_carry=1, n_seq=0, axis=0, length=4)
    verify(b.graph)
    body.graph.nodes.clear()                  # break the body: its output is now undefined
    with pytest.raises(InternalError, match="in body of `scan`"):
        verify(b.graph)
