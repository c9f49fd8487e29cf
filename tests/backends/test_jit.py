"""netdsl's njit (jit.py): what a compiled function links in is private to it."""
import llvmlite.binding as llvm
import numba
import numpy as np

from netdsl.backends.numba_cpu.jit import njit


def _callee(x, n):
    total = 0.0
    for i in range(n):
        total += x[i] * x[i] + np.sin(x[i])
    return total


def _caller_source(x):
    return callee(x, 3) + callee(x, x.shape[0]) + callee(x, 5)   # noqa: F821 (bound below)


def _compiled(jit):
    callee = jit(fastmath=True)(_callee)
    caller = type(_caller_source)(_caller_source.__code__, {"callee": callee, "np": np})
    return jit(fastmath=True)(caller)


def _linked_definitions(caller) -> dict[str, str]:
    library = caller.overloads[caller.signatures[0]].library
    return {function.name: function.linkage for function in library._final_module.functions
            if not function.is_declaration}


def test_a_caller_keeps_no_weak_copy_that_another_loaded_definition_could_replace():
    x = np.linspace(0.0, 1.0, 10)
    want = sum(_callee(x, n) for n in (3, 10, 5))
    ours, numbas = _compiled(njit), _compiled(numba.njit)
    np.testing.assert_allclose(ours(x), want, rtol=1e-12)
    np.testing.assert_allclose(numbas(x), want, rtol=1e-12)
    # Numba's own linked functions are weak (linkonce_odr): the JIT binds a call to whichever
    # definition it loaded first.  Ours are internal: always the caller's own copy.
    assert llvm.Linkage.linkonce_odr in _linked_definitions(numbas).values()
    linkages = _linked_definitions(ours)
    assert llvm.Linkage.linkonce_odr not in linkages.values()
    assert llvm.Linkage.internal in linkages.values()


def _cube_in_parallel(n, a, b):
    for i in numba.prange(n):
        b[i] = a[i] ** 3


def test_a_parallel_loop_is_private_to_its_caller():
    """Numba defines a parallel loop's gufunc `weak_odr`, named after the parfor object's id
    and a process-wide counter, which a forked compile helper repeats: a loop compiled there
    and another here could share a name, and the JIT ran the one's code for the other's
    (found by the differential tester: `t1 ** 3` computed `exp(t1)`).  Ours are internal."""
    signature = (numba.int64, numba.float32[::1], numba.float32[::1])
    ours = njit(parallel=True)(_cube_in_parallel)
    numbas = numba.njit(parallel=True)(_cube_in_parallel)
    for compiled in (ours, numbas):
        compiled.compile(signature)
    assert llvm.Linkage.weak_odr in _linked_definitions(numbas).values()
    linkages = _linked_definitions(ours)
    gufuncs = {name: linkage for name, linkage in linkages.items() if "parfor_gufunc" in name}
    assert gufuncs and set(gufuncs.values()) == {llvm.Linkage.internal}
    a, b = np.linspace(-3.0, 3.0, 7).astype(np.float32), np.zeros(7, np.float32)
    ours(7, a, b)
    np.testing.assert_allclose(b, a ** 3, rtol=1e-6)


def test_the_pipeline_is_the_default_and_an_explicit_one_is_kept():
    from numba.core.compiler import Compiler

    from netdsl.backends.numba_cpu.jit import OwnCopiesCompiler
    assert njit(_callee)._compiler.pipeline_class is OwnCopiesCompiler           # @njit
    assert njit(cache=True)(_callee)._compiler.pipeline_class is OwnCopiesCompiler  # @njit(...)
    assert njit(pipeline_class=Compiler)(_callee)._compiler.pipeline_class is Compiler


def test_float32_loops_use_the_full_vector_width():
    """vector_width.py: with AVX-512, Numba's target machine drops LLVM's 256-bit preference,
    so a float32 exp loop runs in 512-bit registers (unless the user set the CPU features)."""
    import pytest

    from netdsl.backends.numba_cpu.fast_math import exp
    features = llvm.get_host_cpu_features()
    if not features.get("avx512f") or "NUMBA_CPU_FEATURES" in __import__("os").environ:
        pytest.skip("no AVX-512F on this host, or the CPU features are set by the user")
    assert numba.config.CPU_FEATURES.endswith(",-prefer-256-bit")

    @njit(fastmath=True)
    def exps(x, out):
        for i in range(x.shape[0]):
            out[i] = exp(x[i])

    x = np.linspace(-3, 3, 1000, dtype=np.float32)
    out = np.empty_like(x)
    exps(x, out)
    np.testing.assert_allclose(out, np.exp(x), rtol=1e-6)
    assert "zmm" in exps.inspect_asm(exps.signatures[0])
