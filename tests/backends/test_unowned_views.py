"""Buffers carved from the arena without an owner (support.unowned_view, FunctionWriter._carve and
_owned): every buffer the driver keeps to itself, and none that it returns to Python."""
from __future__ import annotations

import re

import numpy as np
from backend_helpers import B, mlp_graph, t32, training_graph
from netdsl.backends import compile_graph, get_target
from netdsl.ir.graph import Graph, GraphBuilder


def test_a_returned_view_keeps_its_arena_alive():
    # `flat` is returned (a view of h's buffer in another shape); `h` is left in the arena.
    b = GraphBuilder(Graph(name="reshaped"))
    x = b.input("x", t32(B, 2, 3))
    h = b.op("relu", b.op("mul", x, x))
    b.graph.outputs = {"flat": b.op("reshape", h, shape=(B, 6)), "h": h}
    compiled = compile_graph(b.graph)
    step = compiled.generated.source.split("def step(")[1]
    carve = re.search(r"^\s*(v_\d+) = (_\w+)\(arena_f32, ", step, re.M)
    assert carve.group(2) == "_view", step              # owned: what is returned is made of it
    xs = np.arange(-6, 6, dtype=np.float32).reshape(2, 2, 3)
    flat, _ = compiled.bind({"x": xs})(xs)
    assert flat.base is not None                        # Numba's owner of the arena
    np.testing.assert_array_equal(flat, np.maximum(xs * xs, 0).reshape(2, 6))


def test_buffers_the_driver_keeps_are_carved_without_an_owner():
    graph = training_graph(mlp_graph((4, 8, 3)), "adam")
    generated = get_target("cpu").compile(graph, stop_after="codegen")
    carves = re.findall(r"^\s*(\w+) = (_\w+)\(arena_f32, offsets\[", generated.source, re.M)
    assert carves and {kind for _, kind in carves} == {"_unowned_view"}, carves
    returned = re.findall(r"return \((.*)\)", generated.source.split("def step(")[1])
    assert not set(returned[-1].replace(",", " ").split()) & {name for name, _ in carves}
