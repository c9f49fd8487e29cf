"""The registry test: every registered op, including ones added later, checked from its examples.

For every op in `all_ops()`:
* it has a docstring, `infer`, `reference`, consistent traits (a `vjp` exactly when it lacks
  "no_grad"; a `kernel` only on "elementwise" ops), examples (or an exemption below), and a
  Numba emitter, `kernel` or `emit_numba` (or an exemption below);
* for each example: `infer` agrees with the shape and dtype of `reference` on random inputs;
* for each example of a differentiable op: the VJP graph, evaluated by the reference backend in
  float64, matches central finite differences of `reference` along a random direction, for every
  floating-point input (an example that cannot be widened to f64, such as a scan whose body is
  fixed to f32, is checked at its own precision with a looser tolerance);
* for each example of an op with an emitter: the code compiled by `backends/emit.py` agrees with
  `reference` on f32 inputs (and the first example also compiles and agrees with parallel=True).

Example protocol (for op authors).  `examples()` returns a list whose entries are
`(input_types, attrs)` or `(input_types, attrs, options)`, with concrete shapes.  `options`:
  "low", "high"   range of the uniform float inputs (default -2, 2): positive for log/sqrt/pow
  "avoid"         points that float inputs keep 0.05 away from (kinks: relu and abs at 0)
  "int_high"      integer inputs are drawn from [0, int_high) (default 3): valid indices
  "inputs"        callable(rng, types) -> list of arrays, replacing the generator entirely
  "grad"          False skips the finite-difference check of this example (say why beside it)
  "compare"       "values" (default) or "shape": how emitted code is compared with reference
                  (for ops whose reference draws random numbers differently)
  "rtol", "atol"  tolerance of the emitted-versus-reference comparison (default 1e-5, 1e-6)
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from netdsl.backends.emit import EmitContext, run_single_node
from netdsl.backends.reference import evaluate
from netdsl.ir.graph import GraphBuilder
from netdsl.ir.types import DType
from netdsl.ops import all_ops

# Ops that may lack `examples`, and why (each is tested by its own test file instead).
NO_EXAMPLES = {
    "scan": "needs a body subgraph; tested in tests/passes/test_passes_scan.py",
}
# Ops that may have neither `kernel` nor `emit_numba`, and why.
NO_EMITTER = {
    "scan": "control flow: the code generator emits its loop around the body's kernels",
}
KNOWN_TRAITS = {"elementwise", "reduction", "shape", "matmul", "conv", "random", "control",
                "no_grad", "view", "constant", "pure"}

OPS = all_ops()


def _normalize(example):
    types, attrs, *rest = example
    return tuple(types), dict(attrs), dict(rest[0] if rest else {})


def _cases():
    cases = []
    for name, opdef in sorted(OPS.items()):
        if opdef.examples is None:
            continue
        try:
            examples = [_normalize(e) for e in opdef.examples()]
        except Exception as error:          # reported by test_rules, not at collection
            examples = [("broken", repr(error))]
        for index, example in enumerate(examples):
            cases.append(pytest.param(name, example, id=f"{name}-{index}"))
    return cases


CASES = _cases()


def _rng(name, example):
    return np.random.default_rng(zlib.crc32(f"{name}/{example[1]!r}".encode()))


def _check_example(example):
    if example[0] == "broken":
        pytest.fail(f"examples() raised {example[1]}")


def _build(opdef, types, attrs):
    b = GraphBuilder()
    inputs = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    result = b.op(opdef, *inputs, **attrs)
    outputs = result if isinstance(result, tuple) else (result,)
    return b, inputs, outputs


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("name", sorted(OPS))
def test_rules(name):
    opdef = OPS[name]
    assert opdef.doc, f"op {name} has no docstring"
    assert callable(opdef.infer) and callable(opdef.reference)
    assert opdef.traits <= KNOWN_TRAITS, f"unknown traits {set(opdef.traits - KNOWN_TRAITS)}"
    assert (opdef.vjp is None) == opdef.has("no_grad"), \
        f"op {name}: set vjp = None exactly when traits include 'no_grad'"
    if opdef.kernel is not None:
        assert opdef.is_elementwise, f"op {name} has a kernel template but is not 'elementwise'"
    if opdef.examples is None:
        assert name in NO_EXAMPLES, f"op {name} has no examples() and no exemption"
    else:
        examples = opdef.examples()
        assert examples, f"op {name}: examples() is empty"
        for example in examples:
            assert len(example) in (2, 3), f"op {name}: bad example {example!r}"
    if opdef.kernel is None and opdef.emit_numba is None:
        assert name in NO_EMITTER, f"op {name} has neither kernel nor emit_numba"


@pytest.mark.parametrize("name, example", CASES)
def test_infer_matches_reference(name, example, example_inputs):
    _check_example(example)
    opdef = OPS[name]
    types, attrs, options = example
    _, _, outputs = _build(opdef, types, attrs)
    arrays = example_inputs(types, options, _rng(name, example))
    results = _as_tuple(opdef.reference(*arrays, **attrs))
    assert len(results) == len(outputs)
    for value, result in zip(outputs, results):
        result = np.asarray(result)
        assert tuple(result.shape) == tuple(value.shape), \
            f"infer says {value.type}, reference gives shape {result.shape}"
        assert result.dtype == value.dtype.numpy, \
            f"infer says {value.type}, reference gives dtype {result.dtype}"


def _f64(value):
    """Example types and attrs in float64 (a DType attribute too: cast(f32) becomes cast(f64))."""
    if isinstance(value, DType) and value.is_float:
        return DType.f64
    if hasattr(value, "dtype") and hasattr(value, "with_dtype"):
        return value.with_dtype(DType.f64) if value.dtype.is_float else value
    return value


def _objective(opdef, arrays, attrs, cotangents):
    results = _as_tuple(opdef.reference(*arrays, **attrs))
    return sum(float(np.sum(g * np.asarray(r, dtype=np.float64)))
               for g, r in zip(cotangents, results) if g is not None)


@pytest.mark.parametrize("name, example", CASES)
def test_vjp_finite_differences(name, example, example_inputs):
    _check_example(example)
    opdef = OPS[name]
    if opdef.vjp is None:
        pytest.skip("not differentiable (no_grad)")
    types, attrs, options = example
    if options.get("grad", True) is False:
        pytest.skip("the example opts out of the gradient check")
    if not any(t.dtype.is_float for t in types):
        pytest.skip("no floating-point input")
    rng = _rng(name, example)
    try:
        wide_types = tuple(_f64(t) for t in types)
        wide_attrs = {k: _f64(v) for k, v in attrs.items()}
        b, inputs, outputs = _build(opdef, wide_types, wide_attrs)
        types, attrs, eps, rtol, float_dtype = wide_types, wide_attrs, 1e-6, 1e-6, DType.f64
    except Exception:
        # The example cannot be widened (a scan body fixed to f32): check at its own precision.
        b, inputs, outputs = _build(opdef, types, attrs)
        eps, rtol, float_dtype = 1e-3, 1e-2, None
    arrays = example_inputs(types, options, rng, float_dtype)
    cotangents = [rng.standard_normal(tuple(v.shape)) if v.dtype.is_float else None
                  for v in outputs]
    grad_inputs = [b.input(f"g{k}", v.type) if g is not None else None
                   for k, (v, g) in enumerate(zip(outputs, cotangents))]
    grads = tuple(opdef.vjp(b, grad_inputs, tuple(inputs), tuple(outputs), **attrs))
    assert len(grads) == len(inputs), f"vjp gave {len(grads)} gradients for {len(inputs)} inputs"
    feeds = {v.id: a for v, a in zip(inputs, arrays)}
    feeds.update({v.id: g for v, g in zip(grad_inputs, cotangents) if v is not None})
    env = evaluate(b.graph, feeds)
    for i, (value, grad) in enumerate(zip(inputs, grads)):
        if not value.dtype.is_float:
            continue
        if grad is not None:
            assert grad.type == value.type, \
                f"gradient of input {i} has type {grad.type}, the input {value.type}"
        analytic = env[grad.id] if grad is not None else np.zeros(arrays[i].shape)
        direction = rng.standard_normal(arrays[i].shape).astype(arrays[i].dtype)
        plus, minus = list(arrays), list(arrays)
        plus[i] = arrays[i] + eps * direction
        minus[i] = arrays[i] - eps * direction
        numeric = (_objective(opdef, plus, attrs, cotangents)
                   - _objective(opdef, minus, attrs, cotangents)) / (2 * eps)
        projected = float(np.sum(analytic * direction))
        scale = float(np.sum(np.abs(analytic * direction))) + abs(numeric)
        assert abs(numeric - projected) <= rtol * scale + 1e-8, \
            f"input {i}: vjp gives {projected}, finite differences {numeric}"


def _emit_and_compare(name, example, example_inputs, parallel: bool):
    opdef = OPS[name]
    types, attrs, options = example
    b, inputs, outputs = _build(opdef, types, attrs)
    node = b.graph.nodes[-1]
    arrays = example_inputs(types, options, _rng(name, example))
    try:
        got = run_single_node(node, arrays, parallel=parallel)
    except Exception as error:
        if "name 'math' is not defined" in str(error):
            pytest.xfail("backends/emit.py's test module does not import math yet")
        raise
    expected = _as_tuple(opdef.reference(*arrays, **attrs))
    for value, have, want in zip(outputs, got, expected):
        want = np.asarray(want)
        assert have.shape == want.shape and have.dtype == want.dtype
        if options.get("compare", "values") == "shape":
            continue
        if value.dtype.is_float:
            np.testing.assert_allclose(have, want, rtol=options.get("rtol", 1e-5),
                                       atol=options.get("atol", 1e-6))
        else:
            np.testing.assert_array_equal(have, want)


@pytest.mark.parametrize("name, example", CASES)
def test_emitted_matches_reference(name, example, example_inputs):
    _check_example(example)
    opdef = OPS[name]
    if opdef.kernel is None and opdef.emit_numba is None:
        pytest.skip("no emitter (test_rules checks the exemption)")
    _emit_and_compare(name, example, example_inputs, parallel=False)


FIRST_EMITTED = [case for case in CASES if OPS[case.values[0]].emit_numba is not None
                 and case.id.endswith("-0")]


@pytest.mark.parametrize("name, example", FIRST_EMITTED)
def test_emitted_parallel(name, example, example_inputs):
    """Emitters that loop with ctx.range also compile and agree under prange."""
    _check_example(example)
    opdef = OPS[name]
    types, attrs, _ = example
    _, inputs, outputs = _build(opdef, types, attrs)
    node = outputs[0].producer
    lines = opdef.emit_numba(EmitContext(parallel=True), node,
                             [f"in_{i}" for i in range(len(inputs))],
                             [f"out_{i}" for i in range(len(outputs))])
    if not any("prange" in line for line in lines):
        pytest.skip("the emitter does not use prange: the serial test covers it")
    _emit_and_compare(name, example, example_inputs, parallel=True)
