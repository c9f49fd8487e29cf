"""Shared helpers for the pass tests: graph building shorthands and finite-difference checks."""
from __future__ import annotations

from typing import Callable

import numpy as np

from netdsl.backends.reference import run
from netdsl.ir.graph import Graph, GraphBuilder, Value
from netdsl.ir.types import DType, TensorType
from netdsl.ir.verify import verify
from netdsl.passes.autodiff import vjp
from netdsl.passes.pipeline import run_pipeline

F64 = DType.f64


def t64(*shape) -> TensorType:
    return TensorType(F64, tuple(shape))


def vjp_graph(build: Callable[[GraphBuilder, dict[str, Value]], Value],
              arrays: dict[str, np.ndarray], wrt: list[str]) -> Graph:
    """A graph with inputs named like `arrays`, output `out` = build(...), an input `cot` (the
    cotangent of out) and outputs `grad.<name>` for each name in wrt (absent if None)."""
    b = GraphBuilder(Graph(name="f"))
    values = {name: b.input(name, TensorType(DType.from_numpy(a.dtype), a.shape))
              for name, a in arrays.items()}
    out = build(b, values)
    cot = b.input("cot", out.type)
    grads = vjp(b, [out], [cot], [values[name] for name in wrt])
    b.graph.outputs = {"out": out}
    b.graph.outputs.update((f"grad.{n}", g) for n, g in zip(wrt, grads) if g is not None)
    return verify(b.graph)


def numeric_gradient(graph: Graph, arrays: dict[str, np.ndarray], name: str,
                     cot: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d sum(out * cot) / d arrays[name] by central differences."""
    base = arrays[name]
    grad = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        values = []
        for sign in (1, -1):
            shifted = base.copy()
            shifted[index] += sign * eps
            out = run(graph, {**arrays, name: shifted, "cot": cot})["out"]
            values.append(float(np.sum(out * cot)))
        grad[index] = (values[0] - values[1]) / (2 * eps)
    return grad


def check_gradients(build, arrays: dict[str, np.ndarray], wrt: list[str] | None = None,
                    seed: int = 0, rtol: float = 1e-6, atol: float = 1e-8,
                    simplify: bool = True) -> Graph:
    """Symbolic gradients (also after the pass pipeline) agree with finite differences."""
    wrt = list(arrays) if wrt is None else wrt
    graph = vjp_graph(build, arrays, wrt)
    rng = np.random.default_rng(seed)
    cot = rng.standard_normal([int(d) for d in graph.outputs["out"].shape])
    graphs = [graph, run_pipeline(graph)] if simplify else [graph]
    for candidate in graphs:
        results = run(candidate, {**arrays, "cot": cot})
        for name in wrt:
            expected = numeric_gradient(graph, arrays, name, cot)
            got = results.get(f"grad.{name}", np.zeros_like(expected))
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol,
                                       err_msg=f"gradient of {name} ({candidate.name})")
    return graph
