"""The cuda target's own kernels through numba-cuda's real compiler (typing and lowering to
LLVM for compute capability 8.0), not the simulator, which runs kernels on NumPy scalars and
cannot see a typing error: every loop-nest kernel the codegen writes for the examples'
training steps (both reduction forms), and the library kernels of matmul, data movement and
the support module.  Runs in a subprocess without NUMBA_ENABLE_CUDASIM; no GPU is needed."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

_SCRIPT = textwrap.dedent("""
    import sys, types as pytypes
    import numba.cuda.dispatcher as dispatcher
    # No GPU: device functions ask the current device for its compute capability; say 8.0.
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=(8, 0))
    from numba import from_dtype, types as T
    from numba.cuda.compiler import compile_cuda
    import netdsl
    from netdsl.compiler import Training, compile_step
    from netdsl.passes.memory import plan_memory
    from netdsl.backends.loopir import build_loop_nest, collapse
    from netdsl.backends.numba_cpu.function import has_nest, memory_key
    from netdsl.backends.numba_cuda import codegen, render
    from netdsl.backends.numba_cuda.lowerings import linalg, shape
    from netdsl.backends.numba_cuda import support

    def compiled(function, args):
        return compile_cuda(getattr(function, "py_func", function), T.void, args, cc=(8, 0))

    namespace = {}
    exec("\\n".join(codegen._HEADER), namespace)
    count = 0

    def nests(fused, plan):
        constants = {n.id: n for n in fused.constants}
        for group in fused.groups:
            if has_nest(group):
                yield collapse(build_loop_nest(group, constants))
            for node in group.nodes:
                body = node.attrs.get("body")
                if body is not None:
                    from netdsl.passes.fusion import fuse
                    inner = fuse(body)
                    yield from nests(inner, plan_memory(inner))

    for name in sys.argv[2:]:
        model = netdsl.load(f"{sys.argv[1]}/examples/{name}")
        from netdsl.compiler import GRADIENTS
        fused = compile_step(model.training_forward, "cuda", GRADIENTS, stop_after="fuse")
        plan = plan_memory(fused)
        for nest in nests(fused, plan):
            for tree in (True, False):
                if nest.reduction is None and not tree:
                    continue
                source, arrays = render.kernel_source(nest, lambda v: memory_key(plan, v),
                                                     threads=256, tree=tree)
                scope = dict(namespace)
                exec(source, scope)
                args = [T.int64] * len(nest.groups) + \\
                    [T.Array(from_dtype(v.dtype.numpy), 1, "C") for v in arrays]
                compiled(scope["kernel"], tuple(args))
                count += 1
    print("nests", count)
    f32 = T.Array(T.float32, 1, "C")
    for rank in (1, 2, 3):
        tup = T.UniTuple(T.int64, rank)
        compiled(shape._strided_copy_kernel, (f32, T.int64, tup, f32, T.int64, tup, tup,
                                              T.int64))
    compiled(shape._fill_kernel, (f32, T.float64))
    compiled(shape._iota_kernel, (T.Array(T.int64, 1, "C"), T.int64, T.int64))
    compiled(support._copy_kernel, (f32, f32))
    for dtype in (T.float32, T.float64):
        array = T.Array(dtype, 1, "C")
        for rank in (1, 2):
            tup = T.UniTuple(T.int64, rank)
            arguments = (array, array, array, T.int64, T.int64, T.int64, T.boolean, T.boolean,
                         tup, tup, tup, T.int64, T.int64, T.int64, T.int64, T.int64)
            compiled(linalg._kernel(dtype.name), arguments)
            compiled(linalg._simple_kernel, arguments)
    print("library ok")
""")


def test_generated_and_library_kernels_compile_for_the_gpu():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    examples = ["mlp_digits.net", "lenet_digits.net", "bert_tiny.net", "rnn_sequence.net",
                "vae_digits.net"]
    run = subprocess.run([sys.executable, "-c", _SCRIPT, str(ROOT), *examples], env=env,
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    if run.returncode and "compile_cuda" in run.stderr and "ImportError" in run.stderr:
        pytest.skip(f"numba-cuda's compiler API moved: {run.stderr.splitlines()[-1]}")
    assert run.returncode == 0, run.stderr[-3000:]
    nests = int(run.stdout.split("nests ")[1].split()[0])
    assert nests > 50 and "library ok" in run.stdout
