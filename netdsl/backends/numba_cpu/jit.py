"""`njit` for everything netdsl compiles: each compiled function runs its own copies of the
functions it links in, so its numbers do not depend on what else the process has loaded.

Numba links the LLVM code of a called njit function into its caller as `linkonce_odr`
(a weak symbol in the object code) and optimises it there again.  With the fast-math flags
generated code uses (`reassoc`, `contract`), the caller's copy may round differently from the
callee's own code, which LLVM's "one definition" promise allows.  Which of the two a
non-inlined call then reaches is up to the JIT's linker: the first definition of the symbol
it has seen.  A caller compiled in this process found the callee already loaded (typing the
caller compiled it) and called the callee's code; the same caller loaded from Numba's cache in
a fresh process called its own copy.  So a model's numbers changed by an ulp between its first
run and the next (a repeated block's segment: 98 of 110 training outputs differed after two
Adam steps), and under a compile helper process they depended on which process won a lock.

Here the linked copies become `internal` before the caller's module is optimised: the
caller's object code, the one Numba caches, always calls its own copies, compiled or loaded.
(Functions called through separate.py are not linked at all: one copy, called by symbol.)

The same goes for a parallel loop's gufunc, which Numba defines `weak_odr` under a name made
of the id of its parfor object and a process-wide counter (`__gufunc__...
__numba_parfor_gufunc_0x7f...B2v6...`).  A compile helper (compile_helper.py) is forked from
this process and numbers its objects alike, so two different loops, one compiled in each
process, could get one name; once both were loaded, the JIT bound calls of one to the other's
code.  The differential tester found it: `t1 ** 3` computed `exp(t1)`, whose loop had the
same argument types, in 5 of 8 runs of two programs.  Internal, each loop is its caller's.

`kernel` is `njit` for the library kernels beside the lowerings, which only compiled code
calls: without Numba's entry points for Python and C callers (`no_cpython_wrapper`,
`no_cfunc_wrapper`).  Numba builds those wrappers for every signature it compiles, ~0.07 s
each; a cold LeNet-5 compile built 30 of them, 2 s of its 12.5 s of compiling.  A test that
calls a kernel from Python calls `python_entry(kernel)`.
"""
from __future__ import annotations

import functools

import llvmlite.binding as llvm
import numba
from numba.core import compiler
from numba.core.codegen import JITCodeLibrary

from ..scipy_blas import load_cython_blas
from .lean_passes import lean_pipeline
from .numba_cache import keyed_data_files
from .numba_speedups import cheaper_compiles
from .vector_width import prefer_full_vectors

prefer_full_vectors()         # before Numba's first compile creates its target machine

# Before Numba's first compile too: refreshing its CPU target imports numba.np.arraymath, which
# checks for np.dot's BLAS with `import scipy.linalg.cython_blas`.  Loaded alone first
# (scipy_blas.py), that import finds it and skips the rest of scipy.linalg (which pulls in
# numpy.f2py and charset_normalizer: 236 more modules); the MLP's cold compile 2.87 -> 2.69 s.
# Where MKL is the chosen BLAS nothing else loaded it this early.
try:
    load_cython_blas()
except ImportError:           # no SciPy: Numba has no np.dot, netdsl's own BLAS may be MKL
    pass


def _type_arrays_without_numpy_ma() -> None:
    """Replace Numba's typeof of NumPy arrays with one that does not import numpy.ma.

    Numba's first tests whether the array is a masked one, `np.ma.MaskedArray`, and NumPy
    imports numpy.ma when that name is first read: 15-26 ms of every process's first step.
    No masked array exists before numpy.ma is imported, so the test runs only once it is (then
    Numba's own typeof answers); the rest is Numba's (tests/backends/test_jit_typeof.py holds
    the two to the same types)."""
    import sys

    import numpy as np
    from numba.core import errors, types
    from numba.core.typing.typeof import typeof_impl
    from numba.np import numpy_support
    numba_typeof = typeof_impl.dispatch(np.ndarray)

    @typeof_impl.register(np.ndarray)
    def typeof_array(value, context):
        if "numpy.ma" in sys.modules:
            return numba_typeof(value, context)
        try:
            dtype = numpy_support.from_dtype(value.dtype)
        except errors.NumbaNotImplementedError:
            raise errors.NumbaValueError(f"Unsupported array dtype: {value.dtype}")
        return types.Array(dtype, value.ndim, numpy_support.map_layout(value),
                           readonly=not value.flags.writeable)

    typeof_array.numba_typeof = numba_typeof


_type_arrays_without_numpy_ma()
cheaper_compiles()
keyed_data_files()            # before any cache save (numba_cache.py: concurrent saves)


# Linkages of what Numba links into a caller (copies of callees, parallel loops' gufuncs);
# the library's own functions, which Numba finds by name, are `external`.
_LINKED = frozenset({llvm.Linkage.linkonce_odr, llvm.Linkage.linkonce_any,
                     llvm.Linkage.weak_odr, llvm.Linkage.weak_any})


class OwnCopiesLibrary(JITCodeLibrary):
    """A code library whose linked-in functions are private to it (see the module docstring)."""

    def _optimize_final_module(self):
        for function in self._final_module.functions:
            if not function.is_declaration and function.linkage in _LINKED:
                function.linkage = "internal"
        super()._optimize_final_module()


class OwnCopiesCompiler(compiler.Compiler):
    """Numba's compiler pipeline, lowering into an `OwnCopiesLibrary`, two of its passes
    skipped where they have nothing to do (lean_passes.py)."""

    def define_pipelines(self):
        if self.state.flags.force_pyobject:
            return super().define_pipelines()
        return [lean_pipeline(compiler.DefaultPassBuilder.define_nopython_pipeline(self.state))]

    def compile_extra(self, func):
        if self.state.library is None:
            codegen = self.state.targetctx.codegen()
            if codegen._library_class is JITCodeLibrary:    # the CPU target (not CUDA, AOT)
                library = OwnCopiesLibrary(codegen, func.__qualname__)
                library.enable_object_caching()        # as Numba's own lowering does (cache=True)
                self.state.library = library
        return super().compile_extra(func)


class NoAliasCompiler(OwnCopiesCompiler):
    """OwnCopiesCompiler for a function none of whose array arguments overlap another that it
    writes: their data pointers are `noalias` to LLVM, which then vectorises and unrolls their
    loops without runtime overlap checks.  Numba's parfor passes compile a prange's body so
    when their alias analysis finds no view of one array among its arrays; the part
    functions of parallel_nests.py are compiled so under the same condition (a loop over 2 M
    floats: 513 against 439 us without it, at one thread)."""

    def compile_extra(self, func):
        self.state.flags.noalias = True
        return super().compile_extra(func)


@functools.wraps(numba.njit)
def njit(*args, no_alias: bool = False, **options):
    """`numba.njit` with the pipeline above; the same arguments, and `no_alias`: the
    function's array arguments never overlap one it writes (NoAliasCompiler)."""
    options.setdefault("pipeline_class", NoAliasCompiler if no_alias else OwnCopiesCompiler)
    return numba.njit(*args, **options)


INTERNAL_OPTIONS = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}


def kernel(*args, **options):
    """`njit` for a library kernel that only compiled code calls (see the module docstring)."""
    for option, value in INTERNAL_OPTIONS.items():
        options.setdefault(option, value)
    return njit(*args, **options)


def python_entry(dispatcher):
    """`dispatcher`'s function compiled again with its Python entry point, uncached (a cached
    copy would share the kernel's cache index), for calling a library kernel from Python."""
    options = {key: value for key, value in dispatcher.targetoptions.items()
               if key not in INTERNAL_OPTIONS and key != "cache"}
    return njit(**options)(dispatcher.py_func)


__all__ = ["kernel", "njit", "python_entry"]
