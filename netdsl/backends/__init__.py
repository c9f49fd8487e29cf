"""Backends: one package (or module) per target, found through the registry in target.py.

    target = get_target("cpu")                   # or "reference"; target_names() lists them
    compiled = target.compile(graph)             # the target's own stages (cpu: fuse -> plan
                                                 # -> codegen -> cache -> load)
    results = compiled.run(arrays)               # reference.run semantics
    step = compiled.bind(arrays)                 # fast path: step(*inputs) -> outputs tuple
    print(compiled.report.format())              # phases, cache hit, fusion and memory report

The whole stage list (training graph, pass pipeline, then these) runs in
`netdsl.compiler.compile_step`; `compile_graph` compiles a graph that is already optimised (a
hand-built one in the tests) with the target's stages only.
"""
from __future__ import annotations

from ..ir.graph import Graph
from .target import CompileReport, Target, get_target, register_target, target_names


def compile_graph(graph: Graph, target: str = "cpu", cache_dir=None, *, options=None):
    """The target's own stages on `graph` (no graph passes); see `Target.compile`."""
    return get_target(target).compile(graph, cache_dir=cache_dir, options=options)


def check_target_support(graph: Graph, target: str) -> None:
    """Raise an Error at the first value whose element type `target` cannot compile."""
    get_target(target).check_support(graph)


__all__ = ["CompileReport", "Target", "check_target_support", "compile_graph", "get_target",
           "register_target", "target_names"]
