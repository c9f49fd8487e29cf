"""Shared by the cuda target's op-family tests: an op's examples compiled as one-node graphs for
"cuda" and checked against the op's `reference` rule.

Inputs follow the example protocol of tests/ops/test_registry.py (options "low", "high",
"avoid", "int_high"); `batched` turns an example's batch axis symbolic (B), so one compiled
graph runs at several batch sizes and the launchers must read sizes from the arrays.
"""
from __future__ import annotations

import zlib

import numpy as np

from netdsl.backends import compile_graph
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import Sym, TensorType
from netdsl.ops import all_ops

OPS = all_ops()
B = Sym.named("B")
AVOID_DISTANCE = 0.05


def examples(*names: str) -> list[tuple[str, int, tuple, dict, dict]]:
    """(op name, example index, input types, attrs, options) for every example of the ops."""
    result = []
    for name in names:
        for index, example in enumerate(OPS[name].examples()):
            types, attrs, *rest = example
            result.append((name, index, tuple(types), dict(attrs), dict(rest[0] if rest else {})))
    return result


def rng_for(name: str, index: int) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"cuda/{name}/{index}".encode()))


def draw(types, options: dict, rng: np.random.Generator, batch: int | None = None) -> list:
    """Random arrays for `types` (a symbolic dim bound to `batch`)."""
    low, high = options.get("low", -2.0), options.get("high", 2.0)
    arrays = []
    for t in types:
        shape = tuple(d if isinstance(d, int) else batch for d in t.shape)
        if t.dtype.is_float:
            x = rng.uniform(low, high, shape)
            for point in options.get("avoid", ()):
                near = np.abs(x - point) < AVOID_DISTANCE
                x = np.where(near, point + np.where(x >= point, 2, -2) * AVOID_DISTANCE, x)
            arrays.append(x.astype(t.dtype.numpy))
        else:
            arrays.append(rng.integers(0, options.get("int_high", 3), shape).astype(t.dtype.numpy))
    return arrays


def batched(types, positions) -> tuple:
    """The types with axis 0 of the inputs at `positions` made the symbolic B."""
    return tuple(TensorType(t.dtype, (B,) + tuple(t.shape[1:])) if i in positions else t
                 for i, t in enumerate(types))


def compile_one(name: str, types, attrs: dict, cache_dir):
    """The op alone in a graph (inputs x0, x1, ..., output y), compiled for cuda."""
    b = GraphBuilder(Graph(name=f"cuda_{name}"))
    inputs = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    b.graph.outputs = {"y": b.op(OPS[name], *inputs, **attrs)}
    return compile_graph(b.graph, target="cuda", cache_dir=cache_dir)


def run_one(compiled, arrays) -> np.ndarray:
    return compiled.run({f"x{i}": a for i, a in enumerate(arrays)})["y"]


def reference(name: str, arrays, attrs: dict) -> np.ndarray:
    return np.asarray(OPS[name].reference(*arrays, **attrs))


def launched(compiled, module: str, launcher: str) -> bool:
    """Whether the generated host driver calls `launcher` of lowerings/<module>.py (the name
    HostContext.use gives it)."""
    return f"_{module}_{launcher}(" in compiled.source
