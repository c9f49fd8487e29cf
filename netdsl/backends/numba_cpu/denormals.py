"""A compiled step flushes subnormal floats to zero: FTZ and DAZ on while it runs.

x86 processors compute with subnormal operands or results (below 1.2e-38 in float32) through
a microcode assist of a hundred cycles or more.  Training makes them: a unit that stays off for
the batch gets zero gradients, and Adam's first moment decays by 0.9 a step through the
subnormal range; a well-fit example's gradients shrink below it.  Measured on the MLP
benchmark at batch 1 (784-256-256-10, Adam), one thread: 0.27 ms a step for the first 1,000
steps, then 0.70 ms from step ~1,000 on (2.6x), as the moments of the units the example leaves
off go subnormal; with the flush, 0.26 ms throughout.  TensorFlow runs its CPU kernels with
the flush on for the same reason; PyTorch offers it (`torch.set_flush_denormal`).

The step driver sets the MXCSR's flush-to-zero and denormals-are-zero bits at its start and
puts the register back before it returns, so the Python thread's arithmetic (NumPy's, the
user's) is untouched; oneTBB runs a parallel region's tasks under the calling thread's
floating-point settings, so Numba's workers flush inside the step too (checked: a prange's
iterations on the worker read MXCSR 0x9fe0 with the flush, 0x1fa0 without).  A kernel that
raises (an index out of range, a failed allocation) leaves before the restore: every caller of
a driver (compiled.py's `run` and bound step, epoch_runner.py) clears the two bits on its
error path (`clear_flush`).  The numbers differ from unflushed arithmetic only where a value
or an operand is below 1.2e-38, where the fast exp (fast_math.py) flushed already.

On other processors (no MXCSR) both functions do nothing.
"""
from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .jit import kernel

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
# MXCSR bits: flush-to-zero (15) and denormals-are-zero (6).
_FLUSH_BITS = 0x8040


def _mxcsr_call(builder, name: str, slot) -> None:
    """Call `llvm.x86.sse.<name>` (stmxcsr stores the register to `slot`, ldmxcsr loads it)."""
    i8p = ir.IntType(8).as_pointer()
    function = builder.module.declare_intrinsic(
        f"llvm.x86.sse.{name}", fnty=ir.FunctionType(ir.VoidType(), [i8p]))
    builder.call(function, [builder.bitcast(slot, i8p)])


@intrinsic
def _read_mxcsr(typingctx):
    """The MXCSR (int64; 0 off x86)."""
    def codegen(context, builder, signature, args):
        if not _X86:
            return ir.Constant(ir.IntType(64), 0)
        slot = builder.alloca(ir.IntType(32))
        _mxcsr_call(builder, "stmxcsr", slot)
        return builder.zext(builder.load(slot), ir.IntType(64))
    return types.int64(), codegen


@intrinsic
def _write_mxcsr(typingctx, value):
    """Set the MXCSR to `value` (no effect off x86)."""
    def codegen(context, builder, signature, args):
        if _X86:
            slot = builder.alloca(ir.IntType(32))
            builder.store(builder.trunc(args[0], ir.IntType(32)), slot)
            _mxcsr_call(builder, "ldmxcsr", slot)
        return context.get_dummy_value()
    return types.none(types.int64), codegen


# Inlined where the driver calls them (`inline="always"`): two or three instructions each, not
# worth a separately compiled function (separate.py) and its call.
@kernel(inline="always")
def flush_denormals():
    """Turn the flush on; returns the floating-point state to give `restore_floating_point`."""
    before = _read_mxcsr()
    _write_mxcsr(before | _FLUSH_BITS)
    return before


@kernel(inline="always")
def restore_floating_point(state):
    """Put back the state `flush_denormals` returned."""
    _write_mxcsr(state)
    return 0


@kernel(cache=True, no_cpython_wrapper=False)
def clear_flush():
    """Turn the flush off in this thread (a step that raised left it on)."""
    _write_mxcsr(_read_mxcsr() & ~_FLUSH_BITS)
    return 0


def driver_lines(ctx) -> tuple[list[str], list[str]]:
    """A step driver's first lines (the flush on, the caller's state kept) and its last before
    it returns (that state back); ctx: the emit context whose imports they use."""
    flush, restore = ctx.use(flush_denormals), ctx.use(restore_floating_point)
    return [f"_fp_state = {flush}()"], [f"{restore}(_fp_state)"]


__all__ = ["clear_flush", "driver_lines", "flush_denormals", "restore_floating_point"]
