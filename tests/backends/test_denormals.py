"""denormals.py: a compiled step runs with subnormal floats flushed to zero, and gives the
calling thread its floating-point state back, also when a kernel raises."""
from __future__ import annotations

import platform

import numpy as np
import pytest
from backend_helpers import B, t32

from netdsl.backends import compile_graph
from netdsl.backends.numba_cpu.denormals import _read_mxcsr
from netdsl.backends.numba_cpu.jit import njit
from netdsl.errors import Error
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import DType, TensorType

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="MXCSR is x86's")
FLUSH = 0x8040


@njit
def _state():
    return _read_mxcsr()


def _product() -> Graph:
    b = GraphBuilder(Graph(name="tiny"))
    x, y = b.input("x", t32(B, 3)), b.input("y", t32(B, 3))
    b.graph.outputs = {"out": b.op("mul", x, y)}
    return b.graph


def test_subnormal_results_are_flushed_inside_the_step_only():
    compiled = compile_graph(_product())
    x = np.full((2, 3), 1e-20, np.float32)
    before = _state()
    out = compiled.run({"x": x, "y": x})["out"]
    assert _state() == before and not before & FLUSH        # the thread's state is back
    np.testing.assert_array_equal(out, 0.0)                  # 1e-40 is subnormal: flushed
    assert (x * x)[0, 0] > 0                                 # NumPy here still is not
    normal = compiled.run({"x": np.full((2, 3), 1e-10, np.float32), "y": x})["out"]
    np.testing.assert_allclose(normal, 1e-30, rtol=1e-6)


def test_a_step_that_raises_leaves_the_flush_off():
    b = GraphBuilder(Graph(name="lookup"))
    ids = b.input("ids", TensorType(DType.i64, (B,)))
    table = b.input("table", t32(4, 3))
    b.graph.outputs = {"rows": b.op("take", table, ids, axis=0)}
    compiled = compile_graph(b.graph)
    table_values = np.ones((4, 3), np.float32)
    with pytest.raises(Error):
        compiled.run({"ids": np.array([1, 7]), "table": table_values})
    assert not _state() & FLUSH
    step = compiled.bind({"table": table_values}, inputs=["ids"])
    with pytest.raises(Error):
        step(np.array([9, 0]))
    assert not _state() & FLUSH
