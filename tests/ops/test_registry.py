"""The registry test: every registered op, including ones added later, checked from its examples.

For every op in `all_ops()`:
* it has a docstring, `infer`, `reference`, consistent traits (a `vjp` exactly when it lacks
  "no_grad"; a `kernel` only on "elementwise" ops) and examples (or an exemption below);
* on every registered target it is lowered (the CPU: a `kernel` template or a lowering in
  backends/numba_cpu/lowerings/; the reference: always, by its `reference` rule) or listed in
  NOT_LOWERED with the reason; an exemption for an op that is lowered fails too;
* for each example: `infer` agrees with the shape and dtype of `reference` on random inputs;
* for each example of a differentiable op: the VJP graph, evaluated by the reference backend in
  float64 (a scan's body widened too), matches central finite differences of `reference` along
  a random direction, for every floating-point input, to a relative 1e-6;
* for each example of an op the CPU lowers: the production compiler -- fuse -> plan_memory ->
  generate_module -> Numba, i.e. `compile_graph` -- agrees with `reference` on the example's
  inputs.  Every op with a `kernel` template is also compiled over symbolic shapes with size-1
  axes that broadcast ([B, 1, 3] against [2, 1], ...), run at B = 1 and then B = 3;
* the same on the cuda target for every op it lowers (on a GPU, or in Numba's CUDA simulator
  with NUMBA_ENABLE_CUDASIM=1 as in CI; skipped when there is neither);
* for the first example of every op whose production code has a parallel form (a prange loop
  nest or a library kernel's `_parallel` variant): the same, compiled with parallel_min=1 so
  that the parallel form is what runs.  SERIAL_ONLY lists the ops without one, and a test
  keeps that list exact.

To keep compile time down, the examples of one op family (one module of netdsl/ops) are
compiled as one graph, each example a separate node on its own inputs (so nothing fuses across
examples); when a family's graph fails to compile, each of its tests compiles its own op alone,
so the failure lands on the op that causes it.

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

from netdsl.backends import compile_graph
from netdsl.backends.reference import evaluate, run_body
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import DType, Sym, TensorType
from netdsl.ops import all_ops
from netdsl.passes.precision import to_float64

# Ops that may lack `examples`, and why (each is tested by its own test file instead).
NO_EXAMPLES = {
    "scan": "needs a body subgraph; tested in tests/passes/test_passes_scan.py",
}
# Ops a target does not lower, and why: reviewed exemptions, (op, target) -> reason.
NOT_LOWERED = {
    ("scan", "cpu"): "control flow: numba_cpu/scan.py writes its loop around the body's kernels",
    ("scan", "cuda"): "control flow: numba_cuda/scan.py loops on the host over the body's kernels",
    ("row_blocks", "cpu"): "control flow: numba_cpu/row_blocks.py runs its body on blocks of rows",
    ("row_blocks", "cuda"): "made only by the cpu target's own pass (passes/row_regions.py)",
}


def _cpu_lowers(name: str) -> bool:
    from netdsl.backends.numba_cpu.lowerings import lowering_for
    return OPS[name].kernel is not None or lowering_for(name) is not None


# How each target says whether it lowers an op.  test_every_target_is_listed keeps this in step
# with the target registry: a new target must say here which ops it lowers.
def _cuda_lowers(name: str) -> bool:
    from netdsl.backends.numba_cuda.lowerings import lowering_for
    return OPS[name].kernel is not None or lowering_for(name) is not None


LOWERS = {
    "cpu": _cpu_lowers,
    "cuda": _cuda_lowers,
    "reference": lambda name: True,       # evaluates every op through its `reference` rule
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


def _reference(opdef, arrays, attrs):
    """The op's reference result as a tuple (a control op is given the interpreter's run_body)."""
    extra = {"run_body": run_body} if opdef.has("control") else {}
    return _as_tuple(opdef.reference(*arrays, **attrs, **extra))


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
    assert (opdef.merge_key is None) == (opdef.widen is None), \
        f"op {name}: CSE needs merge_key and widen together"
    if opdef.examples is None:
        assert name in NO_EXAMPLES, f"op {name} has no examples() and no exemption"
    else:
        examples = opdef.examples()
        assert examples, f"op {name}: examples() is empty"
        for example in examples:
            assert len(example) in (2, 3), f"op {name}: bad example {example!r}"


def test_every_target_is_listed():
    from netdsl.backends.target import target_names
    assert sorted(LOWERS) == sorted(target_names())


@pytest.mark.parametrize("target", sorted(LOWERS))
@pytest.mark.parametrize("name", sorted(OPS))
def test_lowered_or_exempt(name, target):
    """Every op is lowered on every target, or exempted with a reason in NOT_LOWERED."""
    lowered, exempt = LOWERS[target](name), (name, target) in NOT_LOWERED
    assert lowered or exempt, f"op {name} has no {target} lowering and no exemption"
    assert not (lowered and exempt), f"op {name} is lowered on {target}: drop its exemption"


@pytest.mark.parametrize("package", ["netdsl.backends.numba_cpu.lowerings",
                                     "netdsl.backends.numba_cuda.lowerings"])
def test_lowerings_live_in_their_ops_family(package):
    """A lookup by OpDef loads the op's family module first (lowering_registry.py): the same
    lowering by OpDef as by name, for every op, and on the CPU every family module lowers its
    own family's ops only, so that a graph loads only the families it uses."""
    import importlib
    registry = importlib.import_module(package)._REGISTRY
    for name, definition in OPS.items():
        assert registry.lowering_for(definition) is registry.lowering_for(name), name
    assert registry._lowerings, package
    if package.endswith("numba_cpu.lowerings"):
        for name, lowering in registry._lowerings.items():
            assert lowering.__module__ == f"{package}.{OPS[name].family}", (name, lowering)


def test_exemptions_name_known_ops_and_targets():
    for name, target in NOT_LOWERED:
        assert name in OPS and target in LOWERS, (name, target)


@pytest.mark.parametrize("name, example", CASES)
def test_infer_matches_reference(name, example, example_inputs):
    _check_example(example)
    opdef = OPS[name]
    types, attrs, options = example
    _, _, outputs = _build(opdef, types, attrs)
    arrays = example_inputs(types, options, _rng(name, example))
    results = _reference(opdef, arrays, attrs)
    assert len(results) == len(outputs)
    for value, result in zip(outputs, results):
        result = np.asarray(result)
        assert tuple(result.shape) == tuple(value.shape), \
            f"infer says {value.type}, reference gives shape {result.shape}"
        assert result.dtype == value.dtype.numpy, \
            f"infer says {value.type}, reference gives dtype {result.dtype}"


@pytest.mark.parametrize("name, example",
                         [c for c in CASES if OPS[c.values[0]].window or OPS[c.values[0]].tiles])
def test_window_and_tiles_match_reference(name, example, example_inputs):
    """A `window` is the box the reference cuts out; `tiles` put the inputs where the reference
    puts them (the cpu target's loop nests read and write at these offsets instead)."""
    _check_example(example)
    opdef = OPS[name]
    types, attrs, options = example
    arrays = example_inputs(types, options, _rng(name, example))
    (result,) = _reference(opdef, arrays, attrs)
    if opdef.window is not None:
        offsets = opdef.window(*types, **attrs)
        if offsets is not None:
            box = tuple(slice(o, o + n) for o, n in zip(offsets, np.shape(result)))
            np.testing.assert_array_equal(np.asarray(arrays[0])[box], result)
    if opdef.tiles is not None:
        starts = opdef.tiles(*types, **attrs)
        if starts is not None:
            for array, start in zip(arrays, starts):
                box = tuple(slice(o, o + n) for o, n in zip(start, np.shape(array)))
                np.testing.assert_array_equal(np.asarray(result)[box], array)


def _f64(value):
    """Example types and attrs in float64 (a DType attribute too: cast(f32) becomes cast(f64);
    a body subgraph is rebuilt in float64)."""
    if isinstance(value, DType) and value.is_float:
        return DType.f64
    if isinstance(value, Graph):
        return to_float64(value)
    if hasattr(value, "dtype") and hasattr(value, "with_dtype"):
        return value.with_dtype(DType.f64) if value.dtype.is_float else value
    return value


def _objective(opdef, arrays, attrs, cotangents):
    results = _reference(opdef, arrays, attrs)
    return sum(float(np.sum(g * np.asarray(r, dtype=np.float64)))
               for g, r in zip(cotangents, results) if g is not None)


def _differentiable(case) -> bool:
    """An example with something to check: a vjp, a float input, and no opt-out."""
    name, example = case.values
    if example[0] == "broken":
        return True                         # fails in the test, naming the error
    types, _, options = example
    return (OPS[name].vjp is not None and options.get("grad", True) is not False
            and any(t.dtype.is_float for t in types))


@pytest.mark.parametrize("name, example", [c for c in CASES if _differentiable(c)])
def test_vjp_finite_differences(name, example, example_inputs):
    _check_example(example)
    opdef = OPS[name]
    types, attrs, options = example
    rng = _rng(name, example)
    types = tuple(_f64(t) for t in types)
    attrs = {k: _f64(v) for k, v in attrs.items()}
    b, inputs, outputs = _build(opdef, types, attrs)
    eps, rtol = 1e-6, 1e-6
    arrays = example_inputs(types, options, rng, DType.f64)
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


def _cpu_compiles(name: str) -> bool:
    """Does the CPU compiler make code for the op (scan, row_blocks: around their bodies'
    kernels)?"""
    return _cpu_lowers(name) or name in ("scan", "row_blocks")


B = Sym.named("B")
BINDINGS = (1, 3)          # B = 1: the batch axis is an extent-1 loop too; B = 3 then grows


def _broadcast_types(opdef) -> list[tuple]:
    """Input types over symbolic shapes with size-1 axes that broadcast, for an op with a
    kernel template: the dtypes of its first example, one set of shapes per arity."""
    dtypes = [t.dtype for t in _normalize(opdef.examples()[0])[0]]
    shapes = {
        1: [[(B, 1, 3)], [(1, 1)]],
        2: [[(B, 1, 3), (2, 1)], [(1,), (B, 2, 1)]],
        3: [[(B, 1, 3), (2, 1), (3,)], [(1,), (B, 1, 1), (1, 2)]],
    }[len(dtypes)]
    return [tuple(TensorType(d, s) for d, s in zip(dtypes, case)) for case in shapes]


def _broadcast_cases():
    cases = []
    for name, opdef in sorted(OPS.items()):
        if opdef.kernel is None or opdef.examples is None:
            continue
        _, attrs, options = _normalize(opdef.examples()[0])
        for index, types in enumerate(_broadcast_types(opdef)):
            cases.append(pytest.param(name, (types, attrs, options), id=f"{name}-broadcast{index}"))
    return cases


EMITTED = [case for case in CASES if _cpu_compiles(case.values[0])] + _broadcast_cases()

def _blas_threads_itself() -> bool:
    """Whether the BLAS the products call runs its own threads (OpenBLAS) and netdsl's own
    float32 kernels do not run, so that matmul has no parallel form of its own
    (numba_cpu/blas_library.py)."""
    from netdsl.backends.numba_cpu.blas_library import netdsl_cuts_products
    return not netdsl_cuts_products()


# Ops whose production code has no parallel form, and why.  test_parallel_forms_are_listed
# keeps this exact: an op that gains a parallel form must join test_compiled_parallel.
SERIAL_ONLY = {
    "argmax": "its lowering loops with ctx.range, which the graph compiler never makes prange",
    "cumsum": "its lowering loops with ctx.range, which the graph compiler never makes prange",
    "cumprod": "its lowering loops with ctx.range, which the graph compiler never makes prange",
    "logsumexp": "its lowering loops with ctx.range, which the graph compiler never makes prange",
    "one_hot": "its lowering loops with ctx.range, which the graph compiler never makes prange",
    "take": "its lowering loops with ctx.range, which the graph compiler never makes prange",
    "take_grad": "scatter-add: its ctx.range loop is never prange in the graph compiler",
    "constant": "not a kernel: an argument of the step",
    **({"matmul": "OpenBLAS runs each product on threads of its own"}
       if _blas_threads_itself() else {}),
    "reshape": "a view: no code",
    "numel": "writes one number",
    "iota": "a small serial fill (positions and masks are [T] or [T, S], never batched)",
    **{name: "a copy of memory, emitted serially" for name in
       ("concat", "expand_dims", "pad", "slice", "slice_grad", "split", "squeeze", "transpose")},
}
FIRST_PARALLEL = [case for case in CASES if _cpu_compiles(case.values[0])
                  and case.id.endswith("-0") and case.values[0] not in SERIAL_ONLY]


def _family(name: str) -> str:
    return OPS[name].reference.__module__


class _Batch:
    """Examples compiled as one graph by compile_graph; results per binding of B."""

    def __init__(self, cases, parallel: bool, example_inputs, target: str = "cpu"):
        from netdsl.backends.numba_cpu import CodegenOptions
        b = GraphBuilder(Graph(name="registry_parallel" if parallel else f"registry_{target}"))
        self.inputs: dict[str, list] = {}        # case id -> [(input name, type, options)]
        self.outputs: dict[str, list[str]] = {}  # case id -> output names
        for case in cases:
            name, (types, attrs, options) = case.values
            _check_example(case.values[1])
            ins = [b.input(f"{case.id}.x{i}", t) for i, t in enumerate(types)]
            results = _as_tuple(b.op(OPS[name], *ins, **attrs))
            self.outputs[case.id] = [f"{case.id}.y{k}" for k in range(len(results))]
            b.graph.outputs.update(zip(self.outputs[case.id], results))
            self.inputs[case.id] = [(v.name, t) for v, t in zip(ins, types)]
        self.graph, self.cases = b.graph, {case.id: case for case in cases}
        self.compiled = compile_graph(b.graph, target, options=CodegenOptions(
            parallel_min=1 if parallel else 0) if target == "cpu" else None)
        self.example_inputs = example_inputs
        self._runs: dict[int, tuple[dict, dict]] = {}

    def arrays(self, case_id: str, batch: int) -> list[np.ndarray]:
        name, (types, attrs, options) = self.cases[case_id].values
        concrete = [t.with_shape(tuple(batch if d == B else d for d in t.shape)) for t in types]
        return self.example_inputs(concrete, options, _rng(name, (types, attrs)))

    def run(self, batch: int) -> tuple[dict, dict]:
        """(feeds, results) of one compiled run with B bound to `batch`."""
        if batch not in self._runs:
            feeds = {}
            for case_id, inputs in self.inputs.items():
                arrays = self.arrays(case_id, batch)
                feeds.update({name: a for (name, _), a in zip(inputs, arrays)})
            results = self.compiled.run({k: np.array(v) for k, v in feeds.items()})
            self._runs[batch] = feeds, results
        return self._runs[batch]


_BATCHES: dict = {}


def _batch_for(case, parallel: bool, example_inputs, target: str = "cpu") -> _Batch:
    """The compiled graph holding `case`: its family's, or its own if the family's fails."""
    family = _family(case.values[0])
    key = (family, parallel, target)
    pool = FIRST_PARALLEL if parallel else EMITTED_CUDA if target == "cuda" else EMITTED
    if key not in _BATCHES:
        members = [c for c in pool if _family(c.values[0]) == family]
        try:
            _BATCHES[key] = _Batch(members, parallel, example_inputs, target)
        except Exception as error:              # noqa: BLE001 -- attributed below, per op
            _BATCHES[key] = error
    if isinstance(_BATCHES[key], Exception):
        alone = [c for c in pool if c.values[0] == case.values[0]]
        return _Batch(alone, parallel, example_inputs, target)
    return _BATCHES[key]


def _compiled_matches_reference(case, parallel: bool, example_inputs,
                                target: str = "cpu") -> None:
    name, (types, attrs, options) = case.values
    opdef = OPS[name]
    batch = _batch_for(case, parallel, example_inputs, target)
    symbolic = any(not isinstance(d, int) for t in types for d in t.shape)
    for size in BINDINGS if symbolic else BINDINGS[:1]:
        feeds, results = batch.run(size)
        arrays = [feeds[input_name] for input_name, _ in batch.inputs[case.id]]
        expected = _reference(opdef, arrays, attrs)
        for output, want in zip(batch.outputs[case.id], expected):
            have, want = results[output], np.asarray(want)
            assert have.shape == want.shape and have.dtype == want.dtype, \
                f"B={size}: compiled {have.dtype}{list(have.shape)}, " \
                f"reference {want.dtype}{list(want.shape)}"
            if options.get("compare", "values") == "shape":
                continue
            if want.dtype.kind == "f":
                np.testing.assert_allclose(have, want, rtol=options.get("rtol", 1e-5),
                                           atol=options.get("atol", 1e-6), err_msg=f"B={size}")
            else:
                np.testing.assert_array_equal(have, want, err_msg=f"B={size}")


@pytest.mark.parametrize("name, example", EMITTED)
def test_compiled_matches_reference(name, example, example_inputs, request):
    case = next(c for c in EMITTED if c.id == request.node.callspec.id)
    _compiled_matches_reference(case, False, example_inputs)


def _cuda_ready() -> bool:
    import os
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return True
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:                           # noqa: BLE001 -- no driver, no device
        return False


# scan: compiled around its body's kernels (numba_cuda/scan.py), as on the cpu.
EMITTED_CUDA = [case for case in EMITTED if _cuda_lowers(case.values[0]) or
                case.values[0] == "scan"]


@pytest.mark.skipif(not _cuda_ready(), reason="no CUDA device and NUMBA_ENABLE_CUDASIM is off")
@pytest.mark.parametrize("name, example", EMITTED_CUDA)
def test_cuda_matches_reference(name, example, example_inputs, request):
    """The cuda target's code (a GPU, or the simulator in CI) agrees with the reference."""
    case = next(c for c in EMITTED_CUDA if c.id == request.node.callspec.id)
    _compiled_matches_reference(case, False, example_inputs, "cuda")


@pytest.mark.parametrize("name, example", FIRST_PARALLEL)
def test_compiled_parallel(name, example, example_inputs, request):
    """The op's parallel form (prange nest or `_parallel` kernel) agrees with the reference."""
    case = next(c for c in FIRST_PARALLEL if c.id == request.node.callspec.id)
    _compiled_matches_reference(case, True, example_inputs)


@pytest.mark.parametrize("name", sorted(n for n in OPS if _cpu_compiles(n) and OPS[n].examples))
def test_parallel_forms_are_listed(name):
    """With parallel_min=1 the compiled step runs threads exactly for the ops not in
    SERIAL_ONLY (generated source only: nothing is compiled here)."""
    from netdsl.backends.numba_cpu import CodegenOptions, generate_module
    from netdsl.passes.fusion import fuse
    from netdsl.passes.memory import plan_memory
    types, attrs, _ = _normalize(OPS[name].examples()[0])
    b, _, outputs = _build(OPS[name], types, attrs)
    b.graph.outputs = {f"y{k}": v for k, v in enumerate(outputs)}
    fused = fuse(b.graph)
    generated = generate_module(fused, plan_memory(fused), CodegenOptions(parallel_min=1))
    assert _uses_threads(generated) == (name not in SERIAL_ONLY), \
        SERIAL_ONLY.get(name, "expected a parallel form")


def _uses_threads(generated) -> bool:
    """Does the generated driver run parallel code: a `parallel=True` function of its own or
    of a segment module it imports (a shared loop nest), or a library kernel it imports that
    was compiled with parallel=True or calls one (the parallel kernels keep their prange in a
    function of its own, called separately), or that runs a function on Numba's threads
    (parallel_calls.in_parallel)?"""
    import importlib
    if any("parallel=True" in source or "_in_parallel(" in source
           for source in [generated.source, *generated.segments.values()]):
        return True
    return any(_runs_threads(getattr(importlib.import_module(module), attribute, None))
               for module, attribute in generated.imports)


def _runs_threads(function, depth: int = 3) -> bool:
    """Is `function` (a dispatcher, or separately's or in_parallel's intrinsic) parallel, or
    does it name one among its globals, `depth` calls deep?"""
    if getattr(function, "on_threads", False):          # parallel_calls.in_parallel
        return True
    function = getattr(function, "dispatcher", function)
    if getattr(function, "targetoptions", {}).get("parallel"):
        return True
    code = getattr(getattr(function, "py_func", None), "__code__", None)
    if code is None or depth == 0:
        return False
    names = function.py_func.__globals__
    return any(_runs_threads(names.get(name), depth - 1) for name in code.co_names)


SHAPE_ONLY = [c for c in CASES if OPS[c.values[0]].shape_inputs and c.values[1][0] != "broken"
              and any(p < len(c.values[1][0]) for p in OPS[c.values[0]].shape_inputs)]


def _garbled(array: np.ndarray) -> np.ndarray:
    """The same shape and dtype, other values: NaN, or the dtype's largest integer."""
    if array.dtype.kind == "f":
        return np.full_like(array, np.nan)
    if array.dtype.kind == "b":
        return ~array
    return np.full_like(array, np.iinfo(array.dtype).max)


def test_every_shape_only_op_has_a_case():
    """Each op declaring `shape_inputs` has an example that passes one (checked below)."""
    covered = {c.values[0] for c in SHAPE_ONLY}
    assert covered == {name for name, opdef in OPS.items() if opdef.shape_inputs}


@pytest.mark.parametrize("name, example", SHAPE_ONLY)
def test_shape_inputs_are_read_for_their_shape_only(name, example, example_inputs):
    """The memory planner lets a buffer go before a read of it declared shape-only (a mean's
    gradient broadcasts to the shape of the mean's input): the reference and the cpu target's
    lowering must give the same result with other values in those inputs."""
    opdef = OPS[name]
    types, attrs, options = example
    arrays = example_inputs(types, options, _rng(name, example))
    garbled = [_garbled(np.asarray(a)) if position in opdef.shape_inputs else a
               for position, a in enumerate(arrays)]
    expected = _reference(opdef, arrays, attrs)
    for have, want in zip(_reference(opdef, garbled, attrs), expected):
        np.testing.assert_array_equal(have, want)
    if _cpu_lowers(name):
        from netdsl.backends.numba_cpu.emit import run_single_node
        _, _, outputs = _build(opdef, types, attrs)
        for have, want in zip(run_single_node(outputs[0].producer, garbled), expected):
            np.testing.assert_array_equal(have, np.asarray(want))


NAN_CASES = [pytest.param(name, id=name) for name, opdef in sorted(OPS.items())
             if opdef.kernel is not None and opdef.examples is not None]


@pytest.mark.parametrize("name", NAN_CASES)
def test_elementwise_ops_treat_nan_as_their_reference_does(name, example_inputs):
    """A NaN in any float operand of an elementwise op (relu, maximum, ...) gives what the
    reference gives, NaN or not: a compiled kernel that dropped it (maximum's
    `a if a >= b else b`) hid a NaN made upstream from the loss's non-finite watch."""
    from netdsl.backends.numba_cpu.emit import run_single_node
    opdef = OPS[name]
    types, attrs, options = _normalize(opdef.examples()[0])
    arrays = example_inputs(types, options, _rng(name, (types, attrs)))
    for position, array in enumerate(arrays):
        array = np.asarray(array)
        if array.dtype.kind != "f" or array.size == 0:
            continue
        poisoned = list(arrays)
        poisoned[position] = array.copy()
        poisoned[position].reshape(-1)[::2] = np.nan
        with np.errstate(all="ignore"):
            expected = _reference(opdef, poisoned, attrs)
        _, _, outputs = _build(opdef, types, attrs)
        for have, want in zip(run_single_node(outputs[0].producer, poisoned), expected):
            want = np.asarray(want)
            if want.dtype.kind == "f":
                np.testing.assert_array_equal(np.isnan(have), np.isnan(want),
                                              err_msg=f"NaN in operand {position}")
            else:
                np.testing.assert_array_equal(have, want, err_msg=f"NaN in operand {position}")


def test_relu_keeps_nan_as_torch_does():
    """relu(NaN) is NaN (torch.relu's answer), not 0: the NaN goes on to the loss."""
    result = _reference(OPS["relu"], [np.array([np.nan, -1.0, 2.0], np.float32)], {})[0]
    assert np.isnan(result[0]) and list(result[1:]) == [0.0, 2.0]


@pytest.mark.parametrize("name", ["max", "min", "argmax"])
def test_extremum_reductions_treat_nan_as_numpy_does(name):
    """max and min give NaN where a NaN is reduced, argmax the first NaN's index (np.max,
    np.argmax, torch alike), in the cpu target's lowering and fused into a loop nest."""
    from netdsl.backends.numba_cpu.emit import run_single_node
    x = np.array([[1.0, np.nan, 3.0], [np.nan, 5.0, 0.5], [2.0, 7.0, np.nan],
                  [4.0, 6.0, 1.0]], np.float32)
    attrs = {"axis": 1} if name == "argmax" else {"axes": (1,)}
    want = getattr(np, name)(x, axis=1)
    _, _, outputs = _build(OPS[name], (TensorType(DType.f32, x.shape),), attrs)
    (have,) = run_single_node(outputs[0].producer, [x])
    np.testing.assert_array_equal(have, want)
    if name != "argmax":                            # the loop-nest form: compiled graph
        b = GraphBuilder()
        value = b.input("x", TensorType(DType.f32, x.shape))
        b.graph.outputs = {"y": b.op(name, b.op("exp", value), **attrs)}
        compiled = compile_graph(b.graph)
        np.testing.assert_allclose(compiled.run({"x": x})["y"],
                                   getattr(np, name)(np.exp(x), axis=1), rtol=1e-6)
