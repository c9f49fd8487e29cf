"""A stable text form of a graph, for golden tests, debugging and `netdsl compile --emit ir`.

    graph mlp
      input x: f32[B, 4]
      param dense_1.weight: f32[4, 10] init=he
      %0: f32[B, 10] = matmul(x, dense_1.weight)  # dense_1 @ mlp.net:3:5
      %1: f32[B, 10] = add(%0, dense_1.bias)  # dense_1 @ mlp.net:3:5
      output logits = %1

Inputs, parameters and states are referred to by name; node results are numbered `%0, %1, ...`
in the order of the printout (not by their global ids), so the text of a graph does not depend on
how many values were made before it.  Attributes are printed sorted by name.  A `scan` body
(any Graph-valued attribute) is printed indented beneath its node, with its own numbering.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.types import DType, TensorType
from .graph import Graph, Node, Value

_INDENT = "  "
_MAX_INLINE = 8          # constants with at most this many elements are printed in full


def print_graph(graph: Graph, *, spans: bool = True) -> str:
    """The whole graph as text (one line per input, parameter, node, output, loss, update)."""
    return "\n".join(_graph_lines(graph, _INDENT, spans, header=f"graph {graph.name}"))


def format_node(node: Node, names: dict[int, str] | None = None) -> str:
    """One node as a line (values not in `names` print by their global id); for error messages."""
    names = dict(names or {})
    for value in node.outputs:
        names.setdefault(value.id, f"%{value.id}")
    return _node_line(node, _Namer(names), spans=True)


def _graph_lines(graph: Graph, indent: str, spans: bool, header: str) -> list[str]:
    namer = _Namer({})
    lines = [header]
    for value in graph.inputs:
        namer.name_leaf(value)
        lines.append(f"{indent}input {namer[value]}: {value.type}")
    for info in graph.params:
        namer.name_leaf(info.value)
        kind = "param" if info.trainable else "state"
        init = f" init={_format_init(info.init)}" if info.init is not None else ""
        lines.append(f"{indent}{kind} {namer[info.value]}: {info.value.type}{init}")
    for node in graph.nodes:
        for value in node.outputs:
            namer.number(value)
        lines.append(indent + _node_line(node, namer, spans))
        for key in sorted(node.attrs):
            if isinstance(node.attrs[key], Graph):
                body = node.attrs[key]
                lines.extend(_graph_lines(body, indent + 2 * _INDENT, spans,
                                          header=f"{indent}{_INDENT}{key} {body.name}:"))
    for name, value in graph.outputs.items():
        lines.append(f"{indent}output {name} = {namer[value]}")
    for loss in graph.losses:
        wrt = f" wrt {', '.join(loss.wrt)}" if loss.wrt else ""
        lines.append(f"{indent}loss {loss.name} = {namer[loss.value]}{wrt}")
    for name, value in graph.state_updates.items():
        lines.append(f"{indent}update {name} = {namer[value]}")
    return lines


class _Namer:
    """Names values as they appear: leaves by name, node results by a local counter."""

    def __init__(self, names: dict[int, str]):
        self.names = names
        self.counter = 0

    def name_leaf(self, value: Value) -> None:
        self.names[value.id] = value.name or self._next()

    def number(self, value: Value) -> None:
        self.names[value.id] = self._next()

    def _next(self) -> str:
        name = f"%{self.counter}"
        self.counter += 1
        return name

    def __getitem__(self, value: Value) -> str:
        # A value defined nowhere in this graph (a verifier would reject it) still prints.
        return self.names.get(value.id, f"<undefined %{value.id}>")


def _node_line(node: Node, namer: _Namer, spans: bool) -> str:
    results = ", ".join(f"{namer[v]}: {v.type}" for v in node.outputs)
    arguments = [namer[v] for v in node.inputs]
    arguments += [f"{key}={format_attr(node.attrs[key])}" for key in sorted(node.attrs)]
    line = f"{results} = {node.op.name}({', '.join(arguments)})"
    if spans:
        comment = " ".join(part for part in (".".join(node.scope),
                                             f"@ {node.span}" if node.span else "") if part)
        if comment:
            line += f"  # {comment}"
    return line


def format_attr(value: Any) -> str:
    """An attribute value as stable text (floats by repr, arrays inline when small)."""
    if isinstance(value, Graph):
        return f"<graph {value.name}>"
    if isinstance(value, np.ndarray):
        type_text = str(TensorType(DType.from_numpy(value.dtype), tuple(value.shape))) \
            if value.dtype.name in ("float16", "float32", "float64", "int32", "int64", "bool") \
            else f"{value.dtype}{list(value.shape)}"
        if value.size <= _MAX_INLINE:
            return f"{type_text} {np.array2string(value, separator=', ')}".replace("\n", "")
        return f"<{type_text}>"
    if isinstance(value, tuple):
        inner = ", ".join(format_attr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _format_init(init: Any) -> str:
    if isinstance(init, tuple) and init and isinstance(init[0], str):
        if len(init) == 1:
            return init[0]
        return f"{init[0]}({', '.join(format_attr(v) for v in init[1:])})"
    return format_attr(init)
