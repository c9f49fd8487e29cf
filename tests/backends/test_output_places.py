"""The cpu driver leaves outputs carved from its arenas where they are and returns the rest:
the caller's views of them (compiled.output_views) must be exactly what it computed, through
`run`, a bound step (all placed, or mixed with returned ones) and a change of batch size."""
from __future__ import annotations

import numpy as np
import pytest
from backend_helpers import B, copy_arrays, random_arrays, scalar_constant, t32

from netdsl.backends import compile_graph
from netdsl.backends.reference import run as reference_run
from netdsl.ir.graph import Graph, GraphBuilder


def _graph(mixed: bool) -> Graph:
    """Outputs in arena slots of several shapes and a scalar; with `mixed`, also an input, a
    parameter and a reshaped view of a buffer, which the driver returns."""
    b = GraphBuilder(Graph(name="places"))
    x = b.input("x", t32(B, 4))
    w = b.param("w", t32(3, 4), init=None)
    hidden = b.op("relu", b.op("matmul", x, w, transpose_b=True))
    squared = b.op("mul", hidden, hidden)
    outputs = {"hidden": hidden, "squared": squared,
               "total": b.op("sum", b.op("add", squared, scalar_constant(b, 1.0)))}
    if mixed:
        outputs.update({"x": x, "w": w, "flat": b.op("reshape", squared, shape=(-1,))})
    b.graph.outputs = outputs
    return b.graph


@pytest.mark.parametrize("mixed", [False, True])
def test_outputs_left_in_the_arenas_read_the_same_as_returned_ones(mixed):
    graph = _graph(mixed)
    compiled = compile_graph(graph)
    places = getattr(compiled.generated, "output_places", None)
    if places is None:
        pytest.skip("this target returns every output")
    assert sum(place is not None for place in places) >= 3   # hidden, squared, total
    if not mixed:
        assert "return ()" in compiled.source            # nothing left to box
    bound_arrays = random_arrays(graph, batch=2)
    step = compiled.bind(copy_arrays(bound_arrays), inputs=["x"])
    for batch in (2, 7, 3, 7):                   # new shapes re-lay the arena: new views
        arrays = dict(bound_arrays, x=random_arrays(graph, batch=batch, seed=batch)["x"])
        want = reference_run(graph, copy_arrays(arrays))
        ran = compiled.run(copy_arrays(arrays))
        bound = dict(zip(step.output_names, step(arrays["x"])))
        for name, expected in want.items():
            np.testing.assert_allclose(ran[name], expected, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(bound[name], expected, rtol=1e-5, atol=1e-6)
            assert bound[name].shape == expected.shape and bound[name].dtype == expected.dtype
