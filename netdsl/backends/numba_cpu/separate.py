"""Separately compiled calls: generated code calls an njit function without taking in its code.

When one njit function calls another, Numba links the callee's whole LLVM module into the
caller's, where LLVM optimises it and compiles it to machine code again: a step that calls a
conv kernel pays ~0.9 s for the kernel a second time (0.97 s against 0.08 s for the same
caller without it), and a repeated block's segment, the epoch runner's step and every shared
loop nest are compiled once in their own module and again in each caller.

`separately(dispatcher)` returns an intrinsic that generated code calls in its place.  At
typing it compiles (or loads from Numba's cache) the callee for the call's argument types and
publishes the address of the compiled function under a stable symbol
(`netdsl_<function>_<digest of its module, name and types>`, llvmlite's `add_symbol`); the
caller's IR only declares that symbol and calls it with Numba's own calling convention, so an
exception the callee raises reaches the caller as it would through a linked call.  The
caller's cached object code names the symbol, not an address: a `reload_init` entry
(`_register` with the module, the name and the types, all picklable) publishes it again
before Numba loads that object in a later process.  A callee whose return type changed since
the caller was cached gets another symbol, which the loader then does not find: the load
fails and the caller compiles again, rather than calling with the wrong layout.

What it costs: a call through a declared symbol (no inlining across it), ~2-4 ns, against
kernels of microseconds at least.  Functions meant to be inlined (`inline="always"`, the
`view` helpers, fast math) stay plain calls.
"""
from __future__ import annotations

import functools
import hashlib
import importlib

_published: dict[str, int] = {}          # symbol -> the address published for it (this process)


def separately(dispatcher):
    """An intrinsic calling `dispatcher` as a separately compiled function (see above)."""
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    module, name = dispatcher.py_func.__module__, dispatcher.py_func.__name__

    def typer(typingctx, *args):
        from . import compile_helper
        # The callee's own overload resolution: it compiles for these types where it may, else
        # (a driver after disable_compile) picks a compiled signature the arguments convert to;
        # while a helper process compiles beside this one, one of the two at a time
        # (compile_helper.py).
        with compile_helper.function_lock(module, name):
            chosen = types.Dispatcher(dispatcher).get_call_type(
                typingctx, tuple(types.unliteral(arg) for arg in args), {})
        if chosen is None or len(chosen.args) != len(args):
            return None                                    # defaults are not passed this way
        concrete = tuple(chosen.args)
        symbol, return_type = _register(module, name, concrete)

        def codegen(context, builder, signature, values):
            function_type = context.call_conv.get_function_type(return_type, concrete)
            callee = cgutils.get_or_insert_function(builder.module, function_type, symbol)
            items = cgutils.unpack_tuple(builder, values[0], len(args))
            cast = [context.cast(builder, value, source, target)
                    for value, source, target in zip(items, args, concrete)]
            context.active_code_library._reload_init.add(
                functools.partial(_register, module, name, concrete, symbol))
            status, result = context.call_conv.call_function(builder, callee, return_type,
                                                             concrete, cast)
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            return result

        return return_type(types.StarArgTuple.from_types(args)), codegen

    typer.__name__ = name           # intrinsic names itself after the typer (error messages)
    call = intrinsic(typer)
    call.dispatcher = dispatcher    # numba_cache.guard finds the dispatcher through this
    return call


def _register(module: str, name: str, argument_types: tuple,
              expected: str | None = None) -> tuple[str, object]:
    """Compile (or load) `module.name` for `argument_types` and publish its address; returns
    the symbol and the return type.  Runs at the caller's typing and before each load of a
    cached caller (its `reload_init`, with the symbol the caller calls as `expected`): a
    caller whose symbol is not the callee's now must not load, since a call to a symbol that
    nothing published jumps to address 0 (a segfault, tested); the error makes the guarded
    cache load (numba_cache.guard) discard the caller and compile it again."""
    import llvmlite.binding as llvm
    from numba.core.compiler_lock import global_compiler_lock

    from . import compile_helper, numba_cache
    dispatcher = getattr(importlib.import_module(module), name)
    dispatcher = getattr(dispatcher, "dispatcher", dispatcher)
    with global_compiler_lock:         # reentrant: typing runs under it already
        if argument_types not in dispatcher.overloads:
            # A cache load without Numba's registry refresh (0.2-0.3 s of a warm start), and a
            # damaged cache entry recompiled (numba_cache.guard); while a helper process
            # compiles beside this one, one of the two at a time (compile_helper.py).
            numba_cache.guard_function(dispatcher)
            with compile_helper.function_lock(module, name):
                dispatcher.compile(argument_types)
        result = dispatcher.overloads[argument_types]
        return_type = result.signature.return_type
        described = repr((module, name, [str(t) for t in argument_types], str(return_type)))
        symbol = f"netdsl_{name}_{hashlib.sha256(described.encode()).hexdigest()[:20]}"
        address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
        if _published.get(symbol) != address:      # new, or another dispatcher of that name
            llvm.add_symbol(symbol, address)
            _published[symbol] = address
    if expected is not None and symbol != expected:
        raise RuntimeError(f"{module}.{name} is no longer what its cached caller calls "
                           f"({symbol}, not {expected})")
    return symbol, return_type


__all__ = ["separately"]
