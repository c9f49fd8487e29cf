"""The reference backend: a NumPy interpreter over the graph IR.

Slow on purpose and always right: it calls each op's `reference` rule in topological order.
Every compiled backend is tested against it.  As the "reference" target (registered at the
end of this module) it has no stages of its own: `ReferenceCompiled` runs the graph as it is.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import Error
from ..ir.graph import Graph, Value
from ..ir.types import Sym, evaluate_dim
from .target import CompileReport, Target, register_target


def evaluate(graph: Graph, feeds: Mapping[int, np.ndarray],
             bindings: Mapping[str, int] | None = None) -> dict[int, np.ndarray]:
    """Evaluate `graph` given arrays for its inputs/params (by Value id).

    Returns the environment: Value id -> array, for every value computed.  Symbolic dims in
    attributes (`reshape(x, [B, -1])`) are bound from the shapes of the fed inputs unless
    `bindings` gives them.
    """
    env: dict[int, np.ndarray] = dict(feeds)
    if bindings is None:
        bindings = _bindings_from_feeds(graph, feeds)
    for node in graph.nodes:
        arrays = [env[v.id] for v in node.inputs]
        attrs = _concrete_attrs(node.attrs, bindings) if _has_symbols(node) else node.attrs
        if node.op.has("control"):              # scan: runs its body through this interpreter
            attrs = {**attrs, "run_body": run_body}
        result = node.op.reference(*arrays, **attrs)
        results = result if isinstance(result, tuple) else (result,)
        for value, array in zip(node.outputs, results):
            env[value.id] = np.asarray(array, dtype=value.dtype.numpy)
    return env


def run_body(body: Graph, arrays) -> list[np.ndarray]:
    """Evaluate a control op's body subgraph on `arrays` (its inputs, in order): what a control
    op's `reference` rule is given to run its body, since ops import no backend."""
    env = evaluate(body, {v.id: a for v, a in zip(body.inputs, arrays)})
    return [env[v.id] for v in body.outputs.values()]


def _has_symbols(node) -> bool:
    flag = getattr(node, "_symbolic_attrs", None)
    if flag is None:
        flag = any(_contains_sym(v) for v in node.attrs.values())
        node._symbolic_attrs = flag
    return flag


def _contains_sym(value) -> bool:
    if isinstance(value, Sym):
        return True
    return isinstance(value, tuple) and any(_contains_sym(v) for v in value)


def _concrete_attrs(attrs: Mapping, bindings: Mapping[str, int]) -> dict:
    def concrete(value):
        if isinstance(value, Sym):
            return evaluate_dim(value, bindings)
        if isinstance(value, tuple):
            return tuple(concrete(v) for v in value)
        return value
    return {key: concrete(value) for key, value in attrs.items()}


def _bindings_from_feeds(graph: Graph, feeds: Mapping[int, np.ndarray]) -> dict[str, int]:
    """Single-symbol dims of the graph's inputs, bound to the fed arrays' extents."""
    bindings: dict[str, int] = {}
    for value in list(graph.inputs) + [p.value for p in graph.params]:
        array = feeds.get(value.id)
        if array is None or np.ndim(array) != value.rank:
            continue
        for declared, actual in zip(value.shape, np.shape(array)):
            if isinstance(declared, Sym) and declared.is_single_symbol:
                bindings.setdefault(declared.terms[0][0][0], int(actual))
    return bindings


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
    # Copies: an output may be a NumPy view of a parameter (a transpose or reshape of it),
    # which the state updates below would otherwise overwrite after the fact.
    results = {name: np.array(env[value.id]) for name, value in graph.outputs.items()}
    for loss in graph.losses:
        results[loss.name] = np.array(env[loss.value.id])
    # Read every update before writing any, so an update that reads another parameter sees the
    # value from before the step, as in a compiled step where all updates happen together.
    updates = {name: np.array(env[value.id]) for name, value in graph.state_updates.items()}
    for name, new in updates.items():
        arrays[name][...] = new
    return results


# ---------------------------------------------------------------------------------------------
# the "reference" target: this interpreter behind the compiled interface (run, bind, report)

class ReferenceCompiled:
    """The reference interpreter behind the CompiledGraph interface (run, bind, report)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.report = CompileReport("reference")
        self.output_names = list(graph.outputs) + [loss.name for loss in graph.losses]
        self.source = ""

    def run(self, arrays):
        from .numba_cpu.compiled import index_error
        try:
            return run(self.graph, arrays)
        except IndexError as error:       # the same Error as the compiled kernels' bounds check
            raise index_error(self.graph, arrays, error) from None

    __call__ = run

    def bind(self, arrays, inputs=None):
        names = list(inputs) if inputs is not None else [v.name for v in self.graph.inputs]

        def step(*values):
            feeds = dict(arrays)
            feeds.update(zip(names, values))
            results = self.run(feeds)
            return tuple(results[name] for name in self.output_names)

        step.input_names, step.output_names = names, self.output_names
        return step


class ReferenceTarget(Target):
    """No stages of its own: the graph after the pass pipeline is interpreted as it is."""

    name = "reference"
    stages = ()
    description = "the NumPy interpreter (slow, always right)"

    def compile(self, graph, *, cache_dir=None, options=None, trace=None, stop_after=None):
        return ReferenceCompiled(graph)


register_target(ReferenceTarget())
