"""Shared checks of the op-family tests: build one node, check its VJP element by element
against central differences (reference backend, float64), run its compiled CPU lowering."""
from __future__ import annotations

import numpy as np

from netdsl.backends.numba_cpu.emit import run_single_node
from netdsl.backends.reference import evaluate
from netdsl.ir.graph import GraphBuilder
from netdsl.ir.types import DType, TensorType
from netdsl.ops import get_op


def t(*shape, dtype=DType.f32) -> TensorType:
    return TensorType(dtype, tuple(shape))


def build(name, arrays, **attrs):
    """A graph with one input per array and the op `name` applied to them."""
    b = GraphBuilder()
    inputs = [b.input(f"x{i}", TensorType(DType.from_numpy(a.dtype), a.shape))
              for i, a in enumerate(arrays)]
    return b, inputs, b.op(name, *inputs, **attrs)


def numeric_gradient(function, arrays, index, cotangent, eps=1e-6):
    """d <cotangent, function(arrays)> / d arrays[index], by central differences per element."""
    grad = np.zeros_like(arrays[index])
    for position in np.ndindex(arrays[index].shape):
        shifted = [a.copy() for a in arrays]
        shifted[index][position] += eps
        plus = np.sum(cotangent * function(*shifted))
        shifted[index][position] -= 2 * eps
        minus = np.sum(cotangent * function(*shifted))
        grad[position] = (plus - minus) / (2 * eps)
    return grad


def check_vjp(name, arrays, **attrs):
    """Every element of the VJP of each float input against central differences; integer
    inputs must get no gradient.  Returns the graph holding the VJP."""
    opdef = get_op(name)
    b, inputs, out = build(name, arrays, **attrs)
    g = b.input("g", out.type)
    grads = opdef.vjp(b, (g,), tuple(inputs), (out,), **attrs)
    cotangent = np.random.default_rng(0).standard_normal(out.shape)
    env = evaluate(b.graph, {v.id: a for v, a in zip(inputs, arrays)} | {g.id: cotangent})
    function = lambda *xs: opdef.reference(*xs, **attrs)  # noqa: E731
    for i, grad in enumerate(grads):
        if arrays[i].dtype.kind != "f":
            assert grad is None
            continue
        expected = numeric_gradient(function, arrays, i, cotangent)
        actual = env[grad.id] if grad is not None else np.zeros_like(expected)
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)
    return b.graph


def emitted(name, arrays, parallel=False, **attrs):
    """The op's compiled CPU lowering run on `arrays` (its first output)."""
    _, _, out = build(name, arrays, **attrs)
    return run_single_node(out.producer, arrays, parallel=parallel)[0]


def normal(*shape, scale=1.0, dtype=np.float64, seed=0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)
