"""The reference backend: a NumPy interpreter over the graph IR.

Slow on purpose and always right: it calls each op's `reference` rule in topological order.
Every compiled backend is tested against it.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import Error
from ..ir.graph import Graph, Value
from ..ir.types import Sym


def evaluate(graph: Graph, feeds: Mapping[int, np.ndarray],
             wanted: list[Value] | None = None) -> dict[int, np.ndarray]:
    """Evaluate `graph` given arrays for its inputs/params (by Value id).

    Returns the environment: Value id -> array, for every value computed.  `wanted` limits the
    result to what those values need (all nodes otherwise).
    """
    env: dict[int, np.ndarray] = dict(feeds)
    for node in graph.nodes:
        arrays = [env[v.id] for v in node.inputs]
        result = node.op.reference(*arrays, **node.attrs)
        results = result if isinstance(result, tuple) else (result,)
        for value, array in zip(node.outputs, results):
            env[value.id] = np.asarray(array, dtype=value.dtype.numpy)
    return env


def bind_dims(graph: Graph, arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Bind symbolic dims (B, T, ...) from the concrete shapes of the fed inputs."""
    bindings: dict[str, int] = {}
    for value in graph.inputs:
        if value.name not in arrays:
            continue
        array = arrays[value.name]
        if array.ndim != value.rank:
            raise Error(f"input '{value.name}' has declared type {value.type} "
                        f"(rank {value.rank}), but the data has shape {list(array.shape)}",
                        graph.input_spans.get(value.name))
        for declared, actual in zip(value.shape, array.shape):
            if isinstance(declared, int):
                if declared != actual:
                    raise Error(f"input '{value.name}' has declared type {value.type}, "
                                f"but the data has shape {list(array.shape)}",
                                graph.input_spans.get(value.name))
            elif isinstance(declared, Sym) and declared.is_single_symbol:
                name = declared.terms[0][0][0]
                if bindings.setdefault(name, int(actual)) != actual:
                    raise Error(f"dimension {name} is {bindings[name]} in one input but "
                                f"{actual} in input '{value.name}'",
                                graph.input_spans.get(value.name))
    return bindings


def run(graph: Graph, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a graph by names: the calling convention every backend implements.

    `arrays` maps every input, parameter and state name to an array.  Returns each output and
    each loss by name.  For every `graph.state_updates[name] = value`, the array `arrays[name]`
    is overwritten in place with the new value after the step (parameters, optimiser state and
    BatchNorm running statistics are updated this way), so a training step is one call.
    """
    feeds: dict[int, np.ndarray] = {}
    for value in graph.inputs:
        if value.name not in arrays:
            raise Error(f"no data for input '{value.name}'", graph.input_spans.get(value.name))
        feeds[value.id] = np.asarray(arrays[value.name], dtype=value.dtype.numpy)
    for info in graph.params:
        feeds[info.value.id] = arrays[info.name]
    env = evaluate(graph, feeds)
    results = {name: env[value.id] for name, value in graph.outputs.items()}
    for loss in graph.losses:
        results[loss.name] = env[loss.value.id]
    # Read every update before writing any, so an update that reads another parameter sees the
    # value from before the step, as in a compiled step where all updates happen together.
    updates = {name: np.array(env[value.id]) for name, value in graph.state_updates.items()}
    for name, new in updates.items():
        arrays[name][...] = new
    return results
