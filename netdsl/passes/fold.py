"""Constant folding: evaluate at compile time the nodes whose inputs are all known constants.

Algorithm: walk the nodes in order.  A value is *known* when it is a `constant`, a `full` of a
concrete shape (whose `like` input gives only a shape), or made by another input-free node that
is not random.  A node whose inputs are all
known, whose outputs have concrete shapes of at most `MAX_ELEMENTS` elements each, and which is
not a loop (`control`) or a random draw, is evaluated with its op's NumPy `reference` rule (the
same oracle every backend is tested against, so folding cannot change results) and each output
is replaced by a `constant` node carrying the folded array, with the node's span and scope.
Large results are left to run time: a folded constant is embedded in the generated code.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..ir.graph import Graph, Node, Value
from .rewrite import Rebuilder, graph_pass, map_bodies

MAX_ELEMENTS = 4096


def known_value(value: Value, max_elements: int = MAX_ELEMENTS) -> np.ndarray | None:
    """The array of a value made by an input-free, non-random node (small and concrete), else
    None.  Used by folding and by the algebraic rules (`x * 1`)."""
    node = value.producer
    if node is None or _excluded(node) or not _small(node, max_elements):
        return None
    if node.op.name == "constant":
        return np.asarray(node.attrs["value"])
    if node.op.name == "full":          # reads only its `like` input's shape, never its values
        return np.full([int(d) for d in value.shape], node.attrs.get("value", 0.0),
                       dtype=value.dtype.numpy)
    if node.inputs:
        return None
    result = _evaluate(node, [])
    return None if result is None else result[value.index]


def _excluded(node: Node) -> bool:
    return bool(node.op.traits & {"random", "control"})


def _small(node: Node, max_elements: int) -> bool:
    return all(v.type.is_concrete and int(np.prod(v.shape, dtype=np.int64)) <= max_elements
               for v in node.outputs)


def _evaluate(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray] | None:
    with np.errstate(all="ignore"):        # 1/0 folds to inf, exactly as it would run
        try:
            result = node.op.reference(*arrays, **node.attrs)
        except Exception:                  # leave it to run time, where it reports properly
            return None
    results = result if isinstance(result, tuple) else (result,)
    return [np.asarray(r, dtype=v.dtype.numpy) for r, v in zip(results, node.outputs)]


@graph_pass
def fold_constants(graph: Graph, bodies: Callable[[Graph], Graph]) -> Graph:
    """A new graph in which small computations on constants are replaced by their results."""
    rebuilder = Rebuilder(graph)
    for node in graph.nodes:
        inputs = rebuilder.inputs_of(node)
        arrays = [known_value(v) for v in inputs]
        if (inputs and all(a is not None for a in arrays) and not _excluded(node)
                and _small(node, MAX_ELEMENTS)):
            results = _evaluate(node, arrays)
            if results is not None:
                with rebuilder.like(node) as b:
                    for old, array in zip(node.outputs, results):
                        rebuilder.replace(old, b.constant(array, old.dtype))
                continue
        rebuilder.copy(node, map_bodies(node, bodies))
    return rebuilder.finish()
