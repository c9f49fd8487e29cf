"""Numba helpers the generated modules import: cheap array views over preallocated memory.

`view(array, offset, shape)` is a C-contiguous array of `shape` whose data starts `offset`
elements into `array` (which must be C-contiguous and large enough: the memory plan guarantees
it).  It replaces `array[offset:offset + n].reshape(shape)`, whose generic implementation
(slice bounds, reshape validation loops) made Numba produce about twelve times more LLVM IR per
buffer and dominated the driver's compile time (measured: 45 buffers, 5.4 s -> 1.8 s).  The
view shares the array's memory owner, so it keeps the arena alive like any NumPy view.
"""
from __future__ import annotations

from numba import types
from numba.core import cgutils, ir_utils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def view(typingctx, array, offset, shape):
    """view(array, offset, shape) -> C-contiguous array of `shape` at element `offset`."""
    if not isinstance(array, types.Array) or not isinstance(shape, types.BaseTuple) or \
            not isinstance(offset, types.Integer):
        return None
    ndim = len(shape)
    result = types.Array(array.dtype, ndim, "C")

    def codegen(context, builder, signature, args):
        array_value, offset_value, shape_value = args
        source = make_array(array)(context, builder, array_value)
        target = make_array(result)(context, builder)
        dims = [context.cast(builder, v, t, types.intp) for v, t in
                zip(cgutils.unpack_tuple(builder, shape_value, ndim), shape.types)]
        itemsize = context.get_constant(
            types.intp, context.get_abi_sizeof(context.get_data_type(array.dtype)))
        strides, stride = [], itemsize
        for d in reversed(dims):
            strides.append(stride)
            stride = builder.mul(stride, d)
        strides.reverse()
        start = context.cast(builder, offset_value, signature.args[1], types.intp)
        populate_array(target, data=builder.gep(source.data, [start]), shape=dims,
                       strides=strides, itemsize=itemsize, meminfo=source.meminfo,
                       parent=source.parent)
        return impl_ret_borrowed(context, builder, result, target._getvalue())

    return result(array, offset, shape), codegen


def _view_aliases(lhs, args, alias_map, arg_aliases) -> None:
    """Tell Numba's alias analysis that a view aliases its array: without this, parfors saw
    writes through a view as dead stores to a fresh array and dropped them."""
    ir_utils._add_alias(lhs, args[0].name, alias_map, arg_aliases)


ir_utils.alias_func_extensions[("view", __name__)] = _view_aliases


__all__ = ["view"]


# Scan helpers: a sequence is viewed as (P, T, Q) -- the axes before the time axis, time, the
# axes after -- so one compiled specialisation per dtype serves every rank and time axis.
from numba import njit  # noqa: E402


@njit(cache=True)
def take_step(sequence, t, out):
    """out[p, q] = sequence[p, t, q]: one time step of a (P, T, Q) sequence."""
    for p in range(sequence.shape[0]):
        for q in range(sequence.shape[2]):
            out[p, q] = sequence[p, t, q]


@njit(cache=True)
def put_step(value, sequence, t):
    """sequence[p, t, q] = value[p, q]: store one time step."""
    for p in range(sequence.shape[0]):
        for q in range(sequence.shape[2]):
            sequence[p, t, q] = value[p, q]


__all__ += ["put_step", "take_step"]


# `out[...] = source` in njit code goes through Numba's fancy_setslice, whose shape-mismatch
# error builds its message with f-strings, str.join and str(int): compiling that string
# machinery once per process cost about 3.3 s of the MLP training step's cold compile (of
# 10 s; measured with numba.core.event).  The code generator emits `assign(out, source)`
# instead: plain loops over `out`, broadcasting `source` NumPy-style (trailing axes aligned,
# length-1 axes repeated), casting on store like NumPy's assignment.  It does not guard against
# `source` overlapping `out` (Numba's slice assignment copies then): the memory plan never
# gives an op's output a buffer that one of its inputs is in (passes/memory.py, step 3).
from numba.extending import overload  # noqa: E402


def assign(out, source):
    """out[...] = source (NumPy semantics), without Numba's slice-assignment machinery."""
    out[...] = source


_ASSIGN_IMPLS: dict = {}


def _assign_impl(n: int, m: int):
    """The loop nest for an n-D `out` and an m-D array `source` (m <= n); m = -1: scalar."""
    if (n, m) in _ASSIGN_IMPLS:
        return _ASSIGN_IMPLS[n, m]
    lines = ["def impl(out, source):"]
    if m >= 0:
        for j in range(m):
            k = n - m + j
            lines += [f"    s{j} = source.shape[{j}]",
                      f"    if s{j} != 1 and s{j} != out.shape[{k}]:",
                      "        raise ValueError('assign: source shape does not broadcast to "
                      "the output shape')",
                      f"    b{j} = 0 if s{j} == 1 else 1"]
    indent = "    "
    for k in range(n):
        lines.append(f"{indent}for i{k} in range(out.shape[{k}]):")
        indent += "    "
    target = "out[" + ", ".join(f"i{k}" for k in range(n)) + "]" if n else "out[()]"
    if m < 0:
        value = "source"
    elif m == 0:
        value = "source[()]"
    else:
        value = "source[" + ", ".join(f"i{n - m + j} * b{j}" for j in range(m)) + "]"
    lines.append(f"{indent}{target} = {value}")
    namespace: dict = {}
    exec("\n".join(lines), namespace)
    _ASSIGN_IMPLS[n, m] = namespace["impl"]
    return namespace["impl"]


@overload(assign)
def _ol_assign(out, source):
    if not isinstance(out, types.Array):
        return None
    if isinstance(source, types.Array):
        if source.ndim > out.ndim:
            return None
        return _assign_impl(out.ndim, source.ndim)
    if isinstance(source, (types.Number, types.Boolean)):
        return _assign_impl(out.ndim, -1)
    return None


__all__ += ["assign"]
