"""Promote a graph's f32 values to f64 (for gradient checking by finite differences).

Every f32 input, parameter, constant, dtype attribute and scan body is rewritten to f64 and every
node re-built through the builder, so types are re-inferred exactly as for the original.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.graph import Graph, GraphBuilder, LossInfo, Value
from ..ir.types import DType, TensorType


def _promote_type(type_: TensorType) -> TensorType:
    return type_.with_dtype(DType.f64) if type_.dtype in (DType.f32, DType.f16) else type_


def _promote_attr(value: Any) -> Any:
    if isinstance(value, DType):
        return DType.f64 if value in (DType.f32, DType.f16) else value
    if isinstance(value, np.ndarray) and value.dtype in (np.float32, np.float16):
        return value.astype(np.float64)
    if isinstance(value, Graph):
        return to_float64(value)
    if isinstance(value, tuple):
        return tuple(_promote_attr(v) for v in value)
    return value


def to_float64(graph: Graph) -> Graph:
    """A copy of `graph` computing in f64 wherever it computed in f32."""
    new = Graph(name=graph.name)
    builder = GraphBuilder(new)
    mapping: dict[int, Value] = {}
    for value in graph.inputs:
        mapping[value.id] = builder.input(value.name, _promote_type(value.type),
                                          graph.input_spans.get(value.name))
    for info in graph.params:
        builder.scope = info.scope
        mapping[info.value.id] = builder.param(info.name, _promote_type(info.value.type),
                                               info.init, trainable=info.trainable,
                                               span=info.span, fan=info.fan)
    for node in graph.nodes:
        builder.scope, builder.span = node.scope, node.span
        attrs = {key: _promote_attr(value) for key, value in node.attrs.items()}
        result = builder.op(node.op, *(mapping[v.id] for v in node.inputs), **attrs)
        for old, value in zip(node.outputs, result if isinstance(result, tuple) else (result,)):
            mapping[old.id] = value
    new.outputs = {name: mapping[v.id] for name, v in graph.outputs.items()}
    new.losses = [LossInfo(loss.name, mapping[loss.value.id], loss.wrt, loss.span)
                  for loss in graph.losses]
    new.state_updates = {name: mapping[v.id] for name, v in graph.state_updates.items()}
    return new
