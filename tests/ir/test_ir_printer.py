"""The stable text form of graphs: golden output, local numbering, nested scan bodies."""
from __future__ import annotations

import textwrap

from netdsl.ir.graph import Graph, GraphBuilder, LossInfo
from netdsl.ir.printer import format_attr, print_graph
from netdsl.ir.types import DType, Sym, TensorType
from netdsl.source import Span

B = Sym.named("B")
F32 = DType.f32


def _dense_graph() -> Graph:
    b = GraphBuilder(Graph(name="mlp"))
    x = b.input("x", TensorType(F32, (B, 4)))
    with b.scoped("dense_1"), b.at(Span("mlp.net", 3, 5, 3, 20)):
        w = b.param("dense_1.weight", TensorType(F32, (4, 10)), ("he",))
        bias = b.param("dense_1.bias", TensorType(F32, (10,)), ("zeros",))
        y = b.op("add", b.op("matmul", x, w), bias)
    z = b.op("mul", y, y)
    b.graph.outputs["logits"] = y
    b.graph.outputs["square"] = z
    return b.graph


def test_golden_dense_graph():
    expected = textwrap.dedent("""\
        graph mlp
          input x: f32[B, 4]
          param dense_1.weight: f32[4, 10] init=he
          param dense_1.bias: f32[10] init=zeros
          %0: f32[B, 10] = matmul(x, dense_1.weight)  # dense_1 @ mlp.net:3:5
          %1: f32[B, 10] = add(%0, dense_1.bias)  # dense_1 @ mlp.net:3:5
          %2: f32[B, 10] = mul(%1, %1)
          output logits = %1
          output square = %2""")
    assert print_graph(_dense_graph()) == expected


def test_numbering_is_local_and_stable():
    # Two graphs built at different times (different global ids) print identically.
    assert print_graph(_dense_graph()) == print_graph(_dense_graph())


def test_attrs_sorted_and_losses_and_updates():
    b = GraphBuilder(Graph(name="g"))
    x = b.input("x", TensorType(F32, (3, 2)))
    s = b.param("bn.mean", TensorType(F32, (3, 2)), ("zeros",), trainable=False)
    y = b.op("matmul", x, x, transpose_b=True, transpose_a=False)
    b.graph.state_updates["bn.mean"] = b.op("add", s, x)
    b.graph.losses.append(LossInfo("d_loss", y, ("D",)))
    text = print_graph(b.graph, spans=False)
    assert "matmul(x, x, transpose_a=False, transpose_b=True)" in text
    assert "state bn.mean: f32[3, 2] init=zeros" in text
    assert "loss d_loss = %0 wrt D" in text
    assert "update bn.mean = %1" in text


def test_scan_body_printed_indented():
    body = GraphBuilder(Graph(name="step"))
    h = body.input("h", TensorType(F32, (2, 3)))
    x_t = body.input("x_t", TensorType(F32, (2, 3)))
    new = body.op("add", h, x_t)
    body.graph.outputs = {"h": new, "y": new}
    b = GraphBuilder(Graph(name="rnn"))
    h0 = b.input("h0", TensorType(F32, (2, 3)))
    xs = b.input("xs", TensorType(F32, (2, 5, 3)))
    b.op("scan", h0, xs, body=body.graph, n_carry=1, n_seq=1, axis=1, reverse=False)
    expected = textwrap.dedent("""\
        graph rnn
          input h0: f32[2, 3]
          input xs: f32[2, 5, 3]
          %0: f32[2, 3], %1: f32[2, 5, 3] = scan(h0, xs, axis=1, body=<graph step>, n_carry=1, n_seq=1, reverse=False)
            body step:
              input h: f32[2, 3]
              input x_t: f32[2, 3]
              %0: f32[2, 3] = add(h, x_t)
              output h = %0
              output y = %0""")
    assert print_graph(b.graph) == expected


def test_format_attr_values():
    import numpy as np
    assert format_attr((1,)) == "(1,)"
    assert format_attr((B, 2)) == "(B, 2)"
    assert format_attr(0.5) == "0.5"
    assert format_attr(DType.f64) == "f64"
    assert format_attr(np.array([1.0, 2.0], dtype=np.float32)) == "f32[2] [1., 2.]"
    assert format_attr(np.zeros((100,), dtype=np.float32)) == "<f32[100]>"
