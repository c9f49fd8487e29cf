"""Parallel calls: a separately compiled function run once per index on Numba's threads, no prange.

`in_parallel(dispatcher)` returns an intrinsic that compiled code calls as `call(count, *args)`:
it runs `dispatcher(np.int64(i), *args)` for every i in range(count) on Numba's thread pool
(the threading layer's `parallel_for`, which `prange` reaches too) and returns when all have.
The function is compiled (or loaded from Numba's cache) and called by symbol as separate.py
calls it; the caller holds only a small worker (a loop over its share of the indices calling
that symbol) and the launch.

Why not a prange: Numba's parfor passes and the gufunc they build made a function holding
nothing but `for i in prange(n): f(i, ...)` cost ~0.35-0.45 s of a cold compile each
(`_blocks_in_parallel`, the parallel product's loop: 0.45 s, 0.37 s of it parfor lowering, on
the AMD EPYC (Zen 3) of 2026-12-07), against a few milliseconds for this launch.  The threads
are the same: the number is Numba's `get_num_threads()` of the calling thread, and fewer where
there are fewer indices (the workqueue layer would give every index to its last thread).

An exception the function raises stops that thread's share of the indices (others run to their
end) and is raised by the caller once all threads are done, as if the call were serial; a
prange dropped it.
"""
from __future__ import annotations

import functools

from llvmlite import ir

_INTP = ir.IntType(64)
_BYTES = ir.IntType(8).as_pointer()


def in_parallel(dispatcher):
    """An intrinsic `call(count, *args)` running `dispatcher(i, *args)` for i in range(count)
    on Numba's threads (see the module docstring)."""
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    module, name = dispatcher.py_func.__module__, dispatcher.py_func.__name__

    def typer(typingctx, count, *args):
        from numba.np.ufunc.parallel import _launch_threads

        from . import compile_helper
        from .separate import _register
        if not isinstance(count, types.Integer):
            return None
        _launch_threads()           # the thread pool, and the symbols the launch calls
        with compile_helper.function_lock(module, name):
            chosen = types.Dispatcher(dispatcher).get_call_type(
                typingctx, (types.int64,) + tuple(types.unliteral(arg) for arg in args), {})
        if chosen is None or len(chosen.args) != len(args) + 1:
            return None
        concrete = tuple(chosen.args)
        symbol, return_type = _register(module, name, concrete)

        def codegen(context, builder, signature, values):
            context.active_code_library._reload_init.add(
                functools.partial(_reload, module, name, concrete, symbol))
            items = cgutils.unpack_tuple(builder, values[1], len(args))
            cast = [context.cast(builder, value, source, target)
                    for value, source, target in zip(items, args, concrete[1:])]
            block_type = ir.LiteralStructType([value.type for value in cast])
            block = cgutils.alloca_once(builder, block_type)
            for k, value in enumerate(cast):
                builder.store(value, cgutils.gep_inbounds(builder, block, 0, k))
            error_type = ir.LiteralStructType([ir.IntType(32), _excinfo_pointer()])
            error = cgutils.alloca_once(builder, error_type)
            builder.store(ir.Constant(error_type, None), error)
            worker = _worker(context, builder.module, symbol, return_type, concrete,
                             block_type, error_type)
            count_value = context.cast(builder, values[0], signature.args[0], types.int64)
            with builder.if_then(builder.icmp_signed(">", count_value, _INTP(0))):
                _launch(builder, worker, count_value, block, error)
            code = builder.load(cgutils.gep_inbounds(builder, error, 0, 0))
            with cgutils.if_unlikely(builder, builder.icmp_signed("!=", code, code.type(0))):
                excinfo = builder.load(cgutils.gep_inbounds(builder, error, 0, 1))
                status = context.call_conv._get_return_status(builder, code, excinfo)
                context.call_conv.return_status_propagate(builder, status)
            return context.get_dummy_value()

        return types.none(count, types.StarArgTuple.from_types(args)), codegen

    typer.__name__ = name           # intrinsic names itself after the typer (error messages)
    call = intrinsic(typer)
    call.dispatcher = dispatcher    # numba_cache.guard finds the dispatcher through this
    call.on_threads = True          # what tells a parallel kernel (tests/ops/test_registry.py)
    return call


def _reload(module: str, name: str, argument_types: tuple, symbol: str) -> None:
    """Before a cached caller loads: the thread pool started (its symbols, which the launch
    and maybe the function call, published) and then the function compiled or loaded and
    published under the symbol the caller calls (separate._register)."""
    from numba.np.ufunc.parallel import _launch_threads

    from .separate import _register
    _launch_threads()
    _register(module, name, argument_types, symbol)


def _excinfo_pointer():
    from numba.core.callconv import excinfo_ptr_t
    return excinfo_ptr_t


def _launch(builder, worker, count, block, error) -> None:
    """numba_parallel_for(worker, [index 0, block, error], [count], [1, 0, 0], NULL, 0, 3,
    threads): each thread gets `args[0]` advanced by its first index (a step of 1 from a null
    pointer: the index itself) and its number of indices in `dims[0]`."""
    from numba.core import cgutils
    module = builder.module
    launch = cgutils.get_or_insert_function(
        module, ir.FunctionType(ir.VoidType(), [_BYTES] * 5 + [_INTP] * 3), "numba_parallel_for")
    get_threads = cgutils.get_or_insert_function(module, ir.FunctionType(_INTP, []),
                                                 "get_num_threads")
    arrays = cgutils.alloca_once(builder, _BYTES, size=3)
    for k, pointer in enumerate((ir.Constant(_BYTES, None), builder.bitcast(block, _BYTES),
                                 builder.bitcast(error, _BYTES))):
        builder.store(pointer, builder.gep(arrays, [_INTP(k)]))
    dims = cgutils.alloca_once(builder, _INTP, size=1)
    builder.store(count, dims)
    steps = cgutils.alloca_once(builder, _INTP, size=3)
    for k, step in enumerate((1, 0, 0)):
        builder.store(_INTP(step), builder.gep(steps, [_INTP(k)]))
    threads = builder.call(get_threads, [])
    threads = builder.select(builder.icmp_signed("<", count, threads), count, threads)
    builder.call(launch, [builder.bitcast(worker, _BYTES), builder.bitcast(arrays, _BYTES),
                          builder.bitcast(dims, _BYTES), builder.bitcast(steps, _BYTES),
                          ir.Constant(_BYTES, None), _INTP(0), _INTP(3), threads])


def _worker(context, module, symbol, return_type, argument_types, block_type, error_type):
    """The function each thread runs, `void (i8** args, i64* dims, i64* steps, i8* data)`:
    call `symbol` for indices args[0] .. args[0] + dims[0] - 1 with the arguments in the block
    args[1]; the first error's code and exception info into args[2] (a compare-and-swap on the
    code, so one thread's pair wins whole), and this thread stops."""
    from numba import types
    from numba.core import cgutils
    name = f"{symbol}_worker"
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    worker = ir.Function(module, ir.FunctionType(
        ir.VoidType(), [_BYTES.as_pointer(), _INTP.as_pointer(), _INTP.as_pointer(), _BYTES]),
        name=name)
    worker.linkage = "internal"
    builder = ir.IRBuilder(worker.append_basic_block("entry"))
    arrays, dims = worker.args[0], worker.args[1]
    first = builder.ptrtoint(builder.load(arrays), _INTP)
    stop = builder.add(first, builder.load(dims))
    block = builder.bitcast(builder.load(builder.gep(arrays, [_INTP(1)])), block_type.as_pointer())
    error = builder.bitcast(builder.load(builder.gep(arrays, [_INTP(2)])), error_type.as_pointer())
    values = [builder.load(cgutils.gep_inbounds(builder, block, 0, k))
              for k in range(len(block_type.elements))]
    callee = cgutils.get_or_insert_function(
        module, context.call_conv.get_function_type(return_type, argument_types), symbol)
    index_slot = cgutils.alloca_once_value(builder, first)
    test, body, done = (worker.append_basic_block(label) for label in ("test", "body", "done"))
    builder.branch(test)
    builder.position_at_end(test)
    index = builder.load(index_slot)
    builder.cbranch(builder.icmp_signed("<", index, stop), body, done)
    builder.position_at_end(body)
    position = context.cast(builder, index, types.int64, argument_types[0])
    status, _ = context.call_conv.call_function(builder, callee, return_type, argument_types,
                                                [position] + values)
    with builder.if_then(status.is_error, likely=False):
        code_slot = cgutils.gep_inbounds(builder, error, 0, 0)
        swapped = builder.cmpxchg(code_slot, code_slot.type.pointee(0), status.code,
                                  "monotonic", "monotonic")
        with builder.if_then(builder.extract_value(swapped, 1)):
            builder.store(status.excinfoptr, cgutils.gep_inbounds(builder, error, 0, 1))
        builder.branch(done)
    builder.store(builder.add(index, _INTP(1)), index_slot)
    builder.branch(test)
    builder.position_at_end(done)
    builder.ret_void()
    return worker


__all__ = ["in_parallel"]
