"""How compiled products reach netdsl's own float32 kernels (own_gemm.py) without waiting for
them to compile: a trampoline bound by symbol, and the entry point compiled beside the model.

Compiled code reads the int32 flag `blas_library.OWN_SGEMM` before each float32 product and,
where it is 1, calls the function `blas_library.OWN_GEMM` names (linalg.py).  LLVM resolves a
symbol when it finalises the code that names it, so while that symbol named the entry point
itself, the entry point (~1 s of a cold compile on an AVX-512 machine) was compiled before a
process's first compile could begin, on one core.  The symbol now names a trampoline that
calls through a pointer (`_entry`), and the flag stays 0, every product on the BLAS, until
`load()` has set both:

- `prepare()`, at the start of a compile, forks a helper (compile_helper.py) that compiles the
  entry point into Numba's cache while this process compiles the model on the other core;
- `load()`, before a compiled graph is handed out, waits for that helper and loads the entry
  point from the cache (compiling it here where there was no helper or it failed).

A helper of a compile never loads it: helpers compile into caches and run nothing.  Code that
calls library kernels straight from Python (tests, tools) calls `load()` first.
"""
from __future__ import annotations

import ctypes

POINTER = "netdsl_own_gemm_entry"           # the symbol of the pointer the trampoline reads
_entry = ctypes.c_void_p(0)                  # the entry point's address once loaded
_helper = None                               # the helper compiling it (compile_helper.Ahead)
_trampoline_library = None                   # keeps the trampoline's code alive


def trampoline() -> int:
    """The address of `void (float*, float*, float*, int64 x 8)` that calls the function
    `_entry` points to with its arguments (built once, with llvmlite: a few milliseconds)."""
    global _trampoline_library
    if _trampoline_library is None:
        import llvmlite.binding as llvm
        from llvmlite import ir
        from numba.core.compiler_lock import global_compiler_lock
        from numba.core.registry import cpu_target
        llvm.add_symbol(POINTER, ctypes.addressof(_entry))
        library = cpu_target.target_context.codegen().create_library(
            "netdsl_own_gemm_trampoline")
        module = library.create_ir_module("netdsl_own_gemm_trampoline")
        float_pointer, int64 = ir.FloatType().as_pointer(), ir.IntType(64)
        kind = ir.FunctionType(ir.VoidType(), [float_pointer] * 3 + [int64] * 8)
        function = ir.Function(module, kind, "netdsl_own_gemm_trampoline")
        pointer = ir.GlobalVariable(module, kind.as_pointer(), POINTER)
        builder = ir.IRBuilder(function.append_basic_block())
        builder.call(builder.load(pointer), function.args, tail=True)
        builder.ret_void()
        with global_compiler_lock:            # Numba's codegen asks for it
            library.add_ir_module(module)
            library.finalize()
        _trampoline_library = library
    return _trampoline_library.get_pointer_to_function("netdsl_own_gemm_trampoline")


def prepare() -> None:
    """Start compiling the entry point in a helper, where the kernels run here, are not loaded
    yet and a helper may be forked (compile_helper.beside)."""
    global _helper
    from . import compile_helper
    from .blas_library import own_sgemm
    if _entry.value or _helper is not None or compile_helper.in_helper() or not own_sgemm():
        return
    from .own_gemm import cached
    if not cached():                         # else loading it is ~10 ms: no helper
        _helper = compile_helper.beside(_compile)


def load() -> None:
    """Point the trampoline at the entry point and raise the flag, where the kernels run here
    (blas_library.own_sgemm) and this is not a compile's helper."""
    global _helper
    from . import compile_helper
    from .blas_library import own_sgemm, set_own_sgemm_flag
    if _entry.value or compile_helper.in_helper() or not own_sgemm():
        return
    if _helper is not None:
        _helper.join()
        _helper = None
    from .own_gemm import entry
    _entry.value = entry().address
    set_own_sgemm_flag()


def _compile() -> None:
    """In the helper: compile the entry point into Numba's cache."""
    from .own_gemm import entry
    entry()


__all__ = ["POINTER", "load", "prepare", "trampoline"]
