"""The cuda target's random ops (lowerings/random.py) and unfused reductions
(lowerings/reduce.py).

Random: every example compiled alone for "cuda" gives the cpu target's numbers bit for bit over
several counters, seeds at the ends of int64 and a symbolic shape; the launcher against the cpu
target's njit kernel directly.  And every kernel of the indexing, nn, random and reduce
lowerings compiled (typed and lowered to LLVM) by numba-cuda's real compiler, not the simulator:
the simulator runs kernels on NumPy scalars, so it cannot see a typing error, nor uint64
arithmetic mixed with int64 that Numba would turn into float64.

Reductions: logsumexp, argmax and numel compile to their lowerings; sum, mean, max and min fuse
into the code generator's kernels when compiled, so their launchers are called directly on every
example.  Then what a block-level tree must get right: integer sums in int64, ties resolved to
the first position across threads, NaN as NumPy propagates it, more cells than blocks.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cuda_helpers import needs_cuda
from netdsl.backends import compile_graph
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import DType, TensorType
from netdsl.ops import all_ops
from netdsl.ops.reduce import reduced_axes
from op_examples import B, compile_one, draw, examples, launched, reference, rng_for, run_one

pytestmark = needs_cuda

OPS = all_ops()
RANDOM = ("random_uniform", "random_normal", "dropout_mask")
COUNTERS = (0, 5, -7, 2 ** 40)


def _simulating() -> bool:
    from netdsl.backends.numba_cuda.device import simulating
    return simulating()


def _assert_same_numbers(name, got, want):
    """Bit for bit; a GPU's float64 log and cos (libdevice) may differ from the host's libm by
    an ulp, so normals drawn on a GPU get a few ulps."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if name == "random_normal" and not _simulating():
        np.testing.assert_allclose(got, want, rtol=1e-13 if got.dtype == np.float64 else 1e-6)
    else:
        np.testing.assert_array_equal(got, want)


def _one_node(name, types, attrs) -> Graph:
    b = GraphBuilder(Graph(name=f"cpu_{name}"))
    inputs = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    b.graph.outputs = {"y": b.op(OPS[name], *inputs, **attrs)}
    return b.graph


@pytest.mark.parametrize("name, index, types, attrs, options",
                         [pytest.param(*case, id=f"{case[0]}-{case[1]}")
                          for case in examples(*RANDOM)])
def test_random_example_is_the_cpu_targets(name, index, types, attrs, options, cache_dir):
    compiled = compile_one(name, types, attrs, cache_dir)
    assert launched(compiled, "random", "draw")
    cpu = compile_graph(_one_node(name, types, attrs), target="cpu", cache_dir=cache_dir)
    rng = rng_for(name, index)
    for counter in COUNTERS:
        arrays = [np.array(counter, np.int64)] + draw(types[1:], options, rng)
        got = run_one(compiled, arrays)
        _assert_same_numbers(name, got, run_one(cpu, arrays))
        want = reference(name, arrays, attrs)
        if name == "random_normal":        # the reference's NumPy log and cos, in float64 too
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(got, want)


def test_random_over_a_symbolic_shape(cache_dir):
    """Element i depends on i alone: B = 1 draws the first row of B = 3's numbers."""
    types = (TensorType(DType.i64, ()), TensorType(DType.f32, (B, 4)))
    attrs = {"seed": 9}
    compiled = compile_one("random_uniform", types, attrs, cache_dir)
    counter = np.array(3, np.int64)
    rows = {batch: run_one(compiled, [counter, np.zeros((batch, 4), np.float32)])
            for batch in (1, 3)}
    np.testing.assert_array_equal(rows[1], rows[3][:1])
    np.testing.assert_array_equal(rows[3], reference("random_uniform",
                                                     [counter, np.zeros((3, 4), np.float32)],
                                                     attrs))


@pytest.mark.parametrize("kind, p", [(0, 0.0), (1, 0.0), (2, 0.25)],
                         ids=["uniform", "normal", "dropout"])
def test_launcher_is_the_cpu_kernel(kind, p):
    from numba import cuda
    from netdsl.backends.numba_cpu.jit import python_entry
    from netdsl.backends.numba_cpu.lowerings import random as cpu_random
    from netdsl.backends.numba_cuda.lowerings.random import draw as draw_on_device
    random_kernel = python_entry(cpu_random.random_kernel)
    for dtype, seed, counter in [(np.float32, -2 ** 63, 2 ** 63 - 1), (np.float64, 2 ** 62, -1),
                                 (np.float32, 12345, 0)]:
        want = np.empty((3, 11), dtype)
        random_kernel(want, seed, counter, kind, p, dtype == np.float32)
        out = cuda.device_array((3, 11), dtype)
        draw_on_device(out, cuda.to_device(np.array(counter, np.int64)), seed, kind, p)
        _assert_same_numbers("random_normal" if kind == 1 else "", out.copy_to_host(), want)
    # The numbers are not all alike (a dropout mask: both 0 and the scale).
    assert len(np.unique(want)) == 2 if kind == 2 else len(np.unique(want)) > 25


_TYPING = textwrap.dedent("""
    import types as pytypes
    import numba.cuda.dispatcher as dispatcher
    # No GPU: device functions ask the current device for its compute capability; say 8.0.
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=(8, 0))
    from numba import types as T
    from numba.cuda.compiler import compile_cuda
    from netdsl.backends.numba_cuda.lowerings import indexing, nn, random as r, reduce as red

    def compiled(kernel, args, returns=T.void):
        return compile_cuda(kernel.py_func, returns, args, cc=(8, 0))

    for f, args in ((r._mix, (T.uint64,)), (r._stream_key, (T.int64, T.int64)),
                    (r._element_bits, (T.uint64, T.int64))):
        result = compiled(f, args, None)
        floats = [str(t) for t in result.type_annotation.typemap.values() if "float" in str(t)]
        print(f.py_func.__name__, result.signature.return_type, floats)
    for dtype in (T.float32, T.float64):
        result = compiled(r._random_kernel, (dtype[::1], T.int64[::1], T.int64, T.int64,
                                             T.float64, T.boolean, T.float64))
        print("kernel", result.type_annotation.typemap["key"],
              result.type_annotation.typemap["bits"])
    # Every other kernel of the four modules, on the dtypes the ops take.
    f32, i64 = (lambda n: T.Array(T.float32, n, "C")), (lambda n: T.Array(T.int64, n, "C"))
    box = (T.UniTuple(T.int64, 2),) * 2 + (T.UniTuple(T.int64, 3),) * 2 + (T.int64,)
    for kernel, args in [
            (red._SUM_FLOAT, (f32(1), f32(1)) + box + (T.boolean,)),
            (red._SUM_INTEGER, (T.Array(T.boolean, 1, "C"), i64(1)) + box + (T.boolean,)),
            (red._extremum_kernel, (f32(1), i64(1)) + box + (T.boolean, T.boolean)),
            (red._extremum_kernel, (i64(1), i64(1)) + box + (T.boolean, T.boolean)),
            (red._logsumexp_kernel, (f32(1), f32(1)) + box),
            (indexing._check_ids_kernel, (i64(1), T.int64, T.Array(T.int32, 1, "C"))),
            (indexing._take_kernel, (f32(3), i64(1), f32(3))),
            (indexing._zero_kernel, (i64(1),)),
            (indexing._count_kernel, (i64(1), i64(1))),
            (indexing._starts_kernel, (i64(1), i64(1))),
            (indexing._bucket_kernel, (i64(1), i64(1), i64(1), i64(1))),
            (indexing._order_kernel, (i64(1), i64(1), i64(1), i64(1))),
            (indexing._take_grad_kernel, (f32(3), i64(1), i64(1), f32(3))),
            (indexing._one_hot_kernel, (i64(1), T.Array(T.float64, 2, "C"))),
            (nn._log_softmax_kernel, (f32(3), f32(3))),
            (nn._log_softmax_block_kernel, (f32(3), f32(3))),
            (nn._cross_entropy_kernel, (f32(3), i64(1), f32(2), T.boolean)),
            (nn._cross_entropy_block_kernel, (f32(3), i64(1), f32(2), T.boolean))]:
        compiled(kernel, args)
        print("compiled", kernel.py_func.__name__)
""")


def test_kernels_compile_for_the_gpu_and_random_bits_stay_uint64():
    """numba-cuda's own typing and lowering (not the simulator, which runs NumPy scalars): every
    kernel of the indexing, nn, random and reduce lowerings compiles, and the generator's key
    and bits stay uint64 with no float in its integer arithmetic."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    run = subprocess.run([sys.executable, "-c", _TYPING], env=env, capture_output=True,
                         text=True, timeout=180)
    if run.returncode and ("compile_cuda" in run.stderr or "dispatcher" in run.stderr) \
            and "ImportError" in run.stderr:
        pytest.skip(f"numba-cuda's compiler API moved: {run.stderr.splitlines()[-1]}")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().split("\n")
    assert lines[:3] == ["_mix uint64 []", "_stream_key uint64 []", "_element_bits uint64 []"]
    assert lines[3:5] == ["kernel uint64 uint64"] * 2
    assert len(lines) == 5 + 18 and all(line.startswith("compiled ") for line in lines[5:])


# --- reductions --------------------------------------------------------------------------------

LOWERED = {"logsumexp": "reduce_logsumexp", "argmax": "reduce_extremum", "numel": "numel"}


@pytest.mark.parametrize("name, index, types, attrs, options",
                         [pytest.param(*case, id=f"{case[0]}-{case[1]}")
                          for case in examples(*LOWERED)])
def test_lowered_reduction_matches_reference(name, index, types, attrs, options, cache_dir):
    compiled = compile_one(name, types, attrs, cache_dir)
    assert launched(compiled, "reduce", LOWERED[name])
    arrays = draw(types, options, rng_for(name, index))
    got, want = run_one(compiled, arrays), reference(name, arrays, attrs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _launch(name, x, attrs):
    """Run the reduction launcher for op `name` on host array x; the result on the host."""
    from numba import cuda
    from netdsl.backends.numba_cuda.lowerings import reduce as lowered
    want = reference(name, [x], attrs)
    out = cuda.device_array(want.shape, want.dtype)
    t = TensorType(DType.from_numpy(x.dtype), x.shape)
    device_x = cuda.to_device(x)
    if name == "argmax":
        lowered.reduce_extremum(device_x, out, reduced_axes(t, (attrs.get("axis", -1),)),
                                True, True)
    elif name in ("sum", "mean"):
        lowered.reduce_sum(device_x, out, reduced_axes(t, attrs.get("axes")), name == "mean")
    elif name in ("max", "min"):
        lowered.reduce_extremum(device_x, out, reduced_axes(t, attrs.get("axes")),
                                name == "max", False)
    else:
        lowered.reduce_logsumexp(device_x, out, reduced_axes(t, attrs.get("axes")))
    got = out.copy_to_host()
    assert got.dtype == want.dtype and got.shape == want.shape
    return got, want


@pytest.mark.parametrize("name, index, types, attrs, options",
                         [pytest.param(*case, id=f"{case[0]}-{case[1]}")
                          for case in examples("sum", "mean", "max", "min")])
def test_unfused_reduction_launcher_matches_reference(name, index, types, attrs, options):
    x = draw(types, options, rng_for(name, index))[0]
    got, want = _launch(name, x, attrs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_integer_sums_are_exact_int64():
    x = np.array([[2 ** 55 + 1, 3, -(2 ** 54) + 7] * 20], np.int64)  # float64 would round these
    got, want = _launch("sum", x, {"axes": (1,)})
    np.testing.assert_array_equal(got, want)
    got, want = _launch("sum", np.arange(35).reshape(5, 7) % 3 == 0, {"axes": (0,)})
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_argmax_ties_go_to_the_first_position_across_threads():
    """Positions 9 and 40 fall to different threads of a block of 32 (or 256): the thread of
    the lower index holds the higher position's twin, and the tree must pick 9."""
    x = np.zeros((5, 70), np.float32)
    x[:, 9] = x[:, 40] = 2.0
    x[3, 64] = 3.0
    got, want = _launch("argmax", x, {"axis": 1})
    np.testing.assert_array_equal(got, [9, 9, 9, 64, 9])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["max", "min", "argmax", "logsumexp"])
def test_nan_and_infinities_as_numpy(name):
    x = np.array([[1.0, np.nan, 5.0, np.nan], [-np.inf] * 4, [0.0, np.inf, 1.0, 2.0],
                  [3.0, -1.0, 7.0, 7.0]], np.float32)
    attrs = {"axis": 1} if name == "argmax" else {"axes": (1,)}
    got, want = _launch(name, x, attrs)
    np.testing.assert_array_equal(got, want)       # NaN equals NaN here


def test_many_cells_over_non_adjacent_axes():
    """More cells than blocks (blocks grid-stride over cells), reduced axes 0 and 2."""
    x = draw((TensorType(DType.f32, (3, 9, 40)),), {}, rng_for("sum", 500))[0]
    for name in ("sum", "mean", "max", "logsumexp"):
        got, want = _launch(name, x, {"axes": (0, 2), "keepdims": True})
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
