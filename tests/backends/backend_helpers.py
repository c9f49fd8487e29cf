"""Shared helpers for the backend tests: graph shorthands, random arrays, compiled-vs-reference."""
from __future__ import annotations

import numpy as np

from netdsl.backends import compile_graph
from netdsl.backends.reference import run as reference_run
from netdsl.errors import Error
from netdsl.ir.graph import Graph, GraphBuilder, LossInfo
from netdsl.ir.types import DType, Sym, TensorType

F32 = DType.f32
B = Sym.named("B")

def t32(*shape) -> TensorType:
    return TensorType(F32, tuple(shape))


def scalar_constant(b: GraphBuilder, value: float, dtype=np.float32):
    return b.op("constant", value=np.array(value, dtype=dtype))


def random_arrays(graph: Graph, batch: int = 3, seed: int = 0, positive=()) -> dict:
    """Random data for every input and parameter; symbolic dims bound to `batch`."""
    rng = np.random.default_rng(seed)
    values = list(graph.inputs) + [p.value for p in graph.params]
    arrays = {}
    for value in values:
        shape = tuple(d if isinstance(d, int) else batch for d in value.shape)
        if value.dtype == DType.bool:
            arrays[value.name] = rng.random(shape) > 0.5
        elif value.dtype.is_int:
            arrays[value.name] = rng.integers(0, 3, shape).astype(value.dtype.numpy)
        else:
            data = rng.standard_normal(shape)
            if value.name in positive:
                data = np.abs(data) + 0.5
            arrays[value.name] = np.asarray(data, dtype=value.dtype.numpy)
    return arrays


def copy_arrays(arrays: dict) -> dict:
    return {k: np.array(v) for k, v in arrays.items()}


def assert_matches_reference(graph: Graph, arrays: dict, compiled=None, steps: int = 1,
                             rtol: float = 1e-5, atol: float = 1e-5):
    """Run `steps` steps compiled and with the reference; outputs and states must agree."""
    compiled = compiled or compile_graph(graph)
    ours, theirs = copy_arrays(arrays), copy_arrays(arrays)
    for _ in range(steps):
        got = compiled.run(ours)
        want = reference_run(graph, theirs)
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol,
                                       err_msg=f"output {name}")
            assert got[name].dtype == want[name].dtype, name
    for name in graph.state_updates:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=rtol, atol=atol,
                                   err_msg=f"state {name}")
    return compiled


def mlp_graph(sizes=(4, 8, 3), name="mlp") -> Graph:
    """Dense layers with ReLU and a mean-squared loss (a forward graph with params)."""
    b = GraphBuilder(Graph(name=name))
    x = b.input("x", t32(B, sizes[0]))
    y = b.input("y", t32(B, sizes[-1]))
    h = x
    for i, (m, n) in enumerate(zip(sizes, sizes[1:])):
        w = b.param(f"w{i}", t32(m, n), init=None)
        bias = b.param(f"b{i}", t32(n), init=None)
        h = b.op("add", b.op("matmul", h, w), bias)
        if i < len(sizes) - 2:
            h = b.op("relu", h)
    d = b.op("sub", h, y)
    b.graph.outputs = {"out": h}
    b.graph.losses = [LossInfo("mse", b.op("mean", b.op("mul", d, d)))]
    return b.graph


def training_graph(graph: Graph, optimizer: str = "adam") -> Graph:
    """The training step of `graph` after the pass pipeline."""
    from netdsl.passes.pipeline import run_pipeline
    from netdsl.passes.training import build_training_graph
    from netdsl.passes.optimizers import make_optimizer
    return run_pipeline(build_training_graph(graph, make_optimizer(optimizer, lr=0.01)))


def training_arrays(graph: Graph, batch: int = 5, seed: int = 0) -> dict:
    arrays = random_arrays(graph, batch, seed)
    for p in graph.params:
        if p.name.startswith("opt."):
            arrays[p.name] = np.zeros_like(arrays[p.name])
        else:
            arrays[p.name] = arrays[p.name] * np.float32(0.3)
    arrays["__lr__"] = np.array(0.01, np.float32)
    arrays["__step__"] = np.array(1.0, np.float32)
    return arrays


def random_graph(seed: int) -> Graph:
    """A random DAG of elementwise ops, reductions and matmuls over a few shapes."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(Graph(name=f"random{seed}"))
    pool = [b.input("x", t32(B, 4)), b.input("y", t32(B, 4)), b.input("v", t32(4))]
    w = b.param("w", t32(4, 4), init=None)
    for _ in range(25):
        choice = rng.integers(0, 6)
        a = pool[rng.integers(len(pool))]
        c = pool[rng.integers(len(pool))]
        if choice <= 2:
            try:
                pool.append(b.op(["add", "mul", "sub"][choice], a, c))
            except Error:                  # shapes that do not broadcast
                pool.append(b.op("neg", a))
        elif choice == 3 and a.shape == (B, 4):
            pool.append(b.op("matmul", a, w))
        elif choice == 4 and a.rank == 2:
            pool.append(b.op("sum", a, axes=(int(rng.integers(0, 2)),)))
        else:
            pool.append(b.op("tanh", a))
    b.graph.outputs = {f"o{i}": v for i, v in enumerate(pool[-4:])}
    b.graph.state_updates = {"w": b.op("sub", w, b.op("mul", w, scalar_constant(b, 0.1)))}
    return b.graph


def random_fusion_graph(seed: int) -> Graph:
    """A random DAG mixing what fusion and the loop IR must get right together: size-1 axes
    that broadcast ([B, 1] against [1, 4]), reductions of every kind with and without keepdims,
    centring (x - mean(x)), reshape views, matmuls with epilogues, and an in-place update."""
    rng = np.random.default_rng(1000 + seed)
    b = GraphBuilder(Graph(name=f"random_fusion{seed}"))
    pool = [b.input("x", t32(B, 4)), b.input("col", t32(B, 1)), b.input("row", t32(1, 4)),
            b.input("v", t32(4))]
    w = b.param("w", t32(4, 4), init=None)
    unary = ["tanh", "neg", "abs", "relu", "sigmoid"]
    for _ in range(20):
        choice = int(rng.integers(0, 8))
        a = pool[int(rng.integers(len(pool)))]
        c = pool[int(rng.integers(len(pool)))]
        if choice <= 1:
            try:
                pool.append(b.op(["add", "mul", "sub", "maximum"][int(rng.integers(4))], a, c))
            except Error:                   # shapes that do not broadcast
                pool.append(b.op(unary[int(rng.integers(len(unary)))], a))
        elif choice == 2 and a.rank == 2:
            op = ["sum", "mean", "max", "min"][int(rng.integers(4))]
            axes = [(0,), (1,), (0, 1)][int(rng.integers(3))]
            pool.append(b.op(op, a, axes=axes, keepdims=bool(rng.integers(2))))
        elif choice == 3 and a.rank == 2:
            axis = int(rng.integers(2))
            pool.append(b.op("sub", a, b.op("mean", a, axes=(axis,), keepdims=True)))
        elif choice == 4 and a.shape == (B, 4):
            h = b.op("matmul", a, w)
            pool.append(b.op("tanh", b.op("add", h, pool[3])) if rng.integers(2) else h)
        elif choice == 5 and a.shape == (B, 4):
            folded = b.op("reshape", a, shape=(B, 2, 2))
            pool.append(b.op("reshape", b.op("mul", folded, folded), shape=(B, 4)))
        else:
            pool.append(b.op(unary[int(rng.integers(len(unary)))], a))
    b.graph.outputs = {f"o{i}": v for i, v in enumerate(pool[-5:])}
    b.graph.losses = [LossInfo("total", b.op("sum", b.op("square", pool[-1])))]
    b.graph.state_updates = {"w": b.op("sub", w, b.op("mul", w, scalar_constant(b, 0.1)))}
    return b.graph
