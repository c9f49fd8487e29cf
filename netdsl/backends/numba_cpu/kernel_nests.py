"""A kernel group's loop nest in generated code: inlined into the function, or a shared
kernel function (parallel, repeated, or reading shifted windows) that the function calls.
FunctionWriter.group calls `emit_nest` for elementwise and reduction groups and for the
epilogue of a matmul or convolution."""
from __future__ import annotations

from ...passes.fusion import KernelGroup
from ..loopir import build_loop_nest, collapse, extents, mark_parallel, parallelizable
from .parallel_nests import split_parallel
from .render import kernel_source, render_nest

# The njit options of the functions only generated code calls (shared kernels, segments, scan
# bodies): no entry points for Python or C callers, as jit.INTERNAL_OPTIONS for library kernels
# (written out here: this module must import without Numba, for `netdsl check`).  Numba's
# wrappers unbox (or box) every array argument, about as much IR as a small kernel itself,
# compiled and then never used.
INTERNAL = "no_cpython_wrapper=True, no_cfunc_wrapper=True"
_OPTIONS = "cache=True, fastmath=_FASTMATH, error_model='numpy'"
_SERIAL = f"@njit({_OPTIONS}, parallel=False, {INTERNAL})"
_PARALLEL = f"@njit({_OPTIONS}, parallel=True, {INTERNAL})"
_NO_ALIAS = f"@njit({_OPTIONS}, parallel=False, no_alias=True, {INTERNAL})"
# Loads, statements and stores from which a loop nest is a shared function (see emit_nest).
LONG_BODY = 12


def has_nest(group: KernelGroup) -> bool:
    """Whether the group's lines include a loop nest (emit_nest)."""
    return group.kind in ("elementwise", "reduction") or (
        group.kind in ("matmul", "conv") and bool(group.epilogue))


def emit_nest(writer, t: int, group: KernelGroup) -> list[str]:
    """The lines of group `t`'s loop nest in `writer`'s function (a FunctionWriter): the
    nest inline (prefixed `g{t}_`), or a call of its shared kernel, made on first use."""
    module = writer.module
    nest = collapse(build_loop_nest(group, writer.const_nodes))
    sizes = extents(nest)
    parallel = (writer.options.parallel_min > 0 and parallelizable(nest) and
                writer.size_at_hint(nest.shape) >= writer.options.parallel_min)
    if parallel:
        nest = mark_parallel(nest)
    source, arrays = kernel_source(nest, writer.memory)
    shared = module.functions.get(source)
    repeats = writer.options.share_repeated and module.repeated.get(source, 0) > 1
    # A nest with shifted loads or stores (windows, tiles) is a function of its own: inline,
    # its 2-D loop over views of one arena (a gate read from one, a result stored to
    # another) ran 11x slower (GRU gradient cell, 117 against 10.8 us: LLVM sees the
    # views share a base and no longer vectorises); as a callee its arrays are arguments.
    shifted = any(x.offsets is not None for x in (*nest.loads, *nest.stores))
    # A long loop body in the step driver is a function of its own too: inline among a driver
    # part's views it cost that part's compile ~0.2 s (LeNet-5's two inlined Adam updates, 22
    # loads, statements and stores each: part_1 1.07 -> 0.49-0.66 s as calls), a function of
    # its own ~0.13 s, which the compile helper can take; short bodies (a bias add, 5) cost
    # ~25 ms inline, ~0.1 s as functions.  Not in a scan body, a function of its own already,
    # where such a nest is most of what it compiles (the LSTM's cell gradient).
    long_body = writer.is_driver and bool(sizes) and \
        len(nest.loads) + len(nest.body) + len(nest.stores) >= LONG_BODY
    if shared is None and (parallel or repeats or shifted or long_body):
        shared = f"kernel_{len(module.functions)}"
        module.functions[source] = shared
        lines = source.replace("def kernel(", f"def {shared}(", 1).splitlines()
        # Its prange as a part function on Numba's threads (parallel_nests.py), where it can.
        split = split_parallel(lines, shared) if parallel else None
        if split is not None:
            lines, part, aliased = split
            # Nor `noalias` where two of its arrays are one buffer in two shapes.
            aliased = aliased or len({writer.memory(v) for v in arrays}) < len(arrays)
            module.add_function(f"{shared}_part", [_SERIAL if aliased else _NO_ALIAS, *part])
            module.add_parallel(f"{shared}_parts", f"{shared}_part")
        decorator = _SERIAL if not parallel or split is not None else _PARALLEL
        # Called separately (separate.py), so that a compile helper can compile it beside
        # the driver (compile_helper.py: the MLP step's cold compile 3.2-3.4 s linked,
        # 2.45-2.5 s so; LeNet's the same within the noise; warm loads and the steps'
        # times unchanged).  Before the helpers, linked was faster (LeNet 16.1 s against
        # 18.1 s separately).
        module.add_standalone(shared, [decorator, *lines], "a shared loop nest")
        if split is None:
            module.counts["parallel" if parallel else "shared"] += 1
    if shared is not None:
        module.counts["calls"] += 1
        # np.int64(): a bare literal would make Numba specialise the kernel per value
        args = [f"np.int64({writer.dim(d)})" for d in sizes] + \
            [writer.names[v.id] for v in arrays]
        return [f"{shared}({', '.join(args)})"]
    module.counts["inlined"] += 1
    # In the step driver every array is an argument or carved from one (FunctionWriter): its
    # nests' views need no owner.  A scan body's may be arrays it allocates.
    view_call = writer.carve_view if writer.is_driver else "_view"
    return render_nest(nest, writer.names, [writer.dim(d) for d in sizes], f"g{t}_",
                       view_call)


__all__ = ["emit_nest", "has_nest"]
