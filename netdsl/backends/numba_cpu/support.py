"""Numba helpers the generated modules import: cheap array views over preallocated memory.

`view(array, offset, shape)` is a C-contiguous array of `shape` whose data starts `offset`
elements into `array` (which must be C-contiguous and large enough: the memory plan guarantees
it).  It replaces `array[offset:offset + n].reshape(shape)`, whose generic implementation
(slice bounds, reshape validation loops) made Numba produce about twelve times more LLVM IR per
buffer and dominated the driver's compile time (measured: 45 buffers, 5.4 s -> 1.8 s).  The
view shares the array's memory owner, so it keeps the arena alive like any NumPy view.

`unowned_view(array, offset, shape)` is the same view without an owner (no meminfo, no parent):
for an array the function takes as an argument, or makes from one (an arena, which its caller
keeps alive for the call), and never returns.  Numba still counts references to it, but LLVM
folds the counting of a null owner away (three views passed to calls: 4 increments and 6
decrements left in the optimised IR, against none and 3).
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils, ir_utils
from numba.core.imputils import impl_ret_borrowed, impl_ret_untracked
from numba.extending import intrinsic


def array_value(context, builder, array_type, data, dims, meminfo, parent):
    """The LLVM value of a C-contiguous array of `array_type` over `data` (a pointer to its
    first element) with `dims` (intp values), built field by field in registers.

    Numba's own helpers (`make_array(...)`, `populate_array`) keep the struct in a stack slot
    and store each field into it: four more instructions per field, and LLVM's SROA pass then
    takes time superlinear in the slots of a function.  A driver with 80 views compiled in
    0.74 s so, 0.52 s this way (120 views: 1.57 -> 0.83 s)."""
    datamodel = context.data_model_manager[array_type]
    intp = context.get_value_type(types.intp)
    itemsize = context.get_constant(
        types.intp, context.get_abi_sizeof(context.get_data_type(array_type.dtype)))
    strides, stride = [], itemsize
    for d in reversed(dims):
        strides.append(stride)
        stride = builder.mul(stride, d)
    strides.reverse()
    nitems = context.get_constant(types.intp, 1)
    for d in dims:
        nitems = builder.mul(nitems, d, flags=["nsw"])
    fields = {"meminfo": meminfo, "parent": parent, "nitems": nitems, "itemsize": itemsize,
              "data": data, "shape": cgutils.pack_array(builder, dims, intp),
              "strides": cgutils.pack_array(builder, strides, intp)}
    value = ir.Constant(datamodel.get_value_type(), ir.Undefined)
    for name, field in fields.items():
        value = builder.insert_value(value, field, datamodel.get_field_position(name))
    return value


def shape_dims(context, builder, shape_type, shape_value) -> list:
    """The values of a shape tuple as intp."""
    return [context.cast(builder, v, t, types.intp) for v, t in
            zip(cgutils.unpack_tuple(builder, shape_value, len(shape_type)), shape_type.types)]


def _view_typer(array, offset, shape, owned: bool):
    """The signature and code generation of `view` (`owned`) or `unowned_view`."""
    if not isinstance(array, types.Array) or not isinstance(shape, types.BaseTuple) or \
            not isinstance(offset, types.Integer) or array.layout != "C":
        return None
    result = types.Array(array.dtype, len(shape), "C")

    def codegen(context, builder, signature, args):
        array_value_, offset_value, shape_value = args
        source = context.data_model_manager[array]

        def field(name):
            if owned:
                return builder.extract_value(array_value_, source.get_field_position(name))
            model = context.data_model_manager[result]
            return ir.Constant(context.get_value_type(model.get_type(name)), None)
        start = context.cast(builder, offset_value, signature.args[1], types.intp)
        data = builder.gep(builder.extract_value(array_value_, source.get_field_position("data")),
                           [start])
        value = array_value(context, builder, result, data,
                            shape_dims(context, builder, shape, shape_value),
                            field("meminfo"), field("parent"))
        if owned:
            return impl_ret_borrowed(context, builder, result, value)
        return impl_ret_untracked(context, builder, result, value)

    return result(array, offset, shape), codegen


@intrinsic
def view(typingctx, array, offset, shape):
    """view(array, offset, shape) -> C-contiguous array of `shape` at element `offset`."""
    return _view_typer(array, offset, shape, owned=True)


@intrinsic
def unowned_view(typingctx, array, offset, shape):
    """view(array, offset, shape) without an owner (see the module docstring): what a step
    driver carves from its arena arguments or views of its own arrays and does not return
    (FunctionWriter._carve, _owned), and the views a loop nest makes of its arguments
    (render.render_nest; a scan body's inline nests excepted).  The LLVM IR Numba
    builds for LeNet-5's step (its drivers and segments) went from 30,462 lines to 28,758
    (the MLP's 19,675 -> 18,883, deep_residual's 55,480 -> 53,184); on the Zen 3 of
    2026-12-07 the compile's own time moved by less than that host's noise resolves (pairs
    from -0.57 to +0.33 s, medians of 10)."""
    return _view_typer(array, offset, shape, owned=False)


def _view_aliases(lhs, args, alias_map, arg_aliases) -> None:
    """Tell Numba's alias analysis that a view aliases its array: without this, parfors saw
    writes through a view as dead stores to a fresh array and dropped them."""
    ir_utils._add_alias(lhs, args[0].name, alias_map, arg_aliases)


ir_utils.alias_func_extensions[("view", __name__)] = _view_aliases
ir_utils.alias_func_extensions[("unowned_view", __name__)] = _view_aliases


__all__ = ["unowned_view", "view"]


# Scan helpers: a sequence is viewed as (P, T, Q) -- the axes before the time axis, time, the
# axes after -- so one compiled specialisation per dtype serves every rank and time axis.
from .jit import kernel  # noqa: E402


@kernel(cache=True)
def take_step(sequence, t, out):
    """out[p, q] = sequence[p, t, q]: one time step of a (P, T, Q) sequence."""
    for p in range(sequence.shape[0]):
        for q in range(sequence.shape[2]):
            out[p, q] = sequence[p, t, q]


@kernel(cache=True)
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
#
# An intrinsic, writing the loops straight into its caller's IR: as an `@overload` (a Python
# loop nest per rank pair) it was compiled once per process as a function of its own, typed,
# lowered and finalised, 0.3-0.6 s of every cold compile; the MLP step's driver compiled in
# 2.9-3.6 s against 3.9-4.5 s with the same loops written inline (three runs each).


@intrinsic
def assign(typingctx, out, source):
    """assign(out, source): out[...] = source (NumPy semantics), as loops in the caller."""
    if not isinstance(out, types.Array):
        return None
    if isinstance(source, types.Array):
        if source.ndim > out.ndim:
            return None
    elif not isinstance(source, (types.Number, types.Boolean)):
        return None

    def codegen(context, builder, signature, args):
        # Imported when compiling only (builtins_inline.py says why).
        from numba.np.arrayobj import load_item, make_array, store_item
        intp = context.get_value_type(types.intp)
        target = make_array(out)(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, target.shape, out.ndim)
        strides = cgutils.unpack_tuple(builder, target.strides, out.ndim)
        one, zero = context.get_constant(types.intp, 1), context.get_constant(types.intp, 0)
        if isinstance(source, types.Array):
            array = make_array(source)(context, builder, args[1])
            source_shape = cgutils.unpack_tuple(builder, array.shape, source.ndim)
            source_strides = cgutils.unpack_tuple(builder, array.strides, source.ndim)
            lead = out.ndim - source.ndim
            for j, extent in enumerate(source_shape):     # trailing axes aligned
                fits = builder.or_(builder.icmp_signed("==", extent, one),
                                   builder.icmp_signed("==", extent, shape[lead + j]))
                with builder.if_then(builder.not_(fits), likely=False):
                    context.call_conv.return_user_exc(
                        builder, ValueError,
                        ("assign: source shape does not broadcast to the output shape",))
        with cgutils.loop_nest(builder, shape, intp) as indices:
            if isinstance(source, types.Array):
                at = [builder.select(builder.icmp_signed("==", extent, one), zero,
                                     indices[lead + j])
                      for j, extent in enumerate(source_shape)]
                pointer = cgutils.get_item_pointer2(context, builder, array.data, source_shape,
                                                    source_strides, source.layout, at)
                value = load_item(context, builder, source, pointer)
                value = context.cast(builder, value, source.dtype, out.dtype)
            else:
                value = context.cast(builder, args[1], source, out.dtype)
            pointer = cgutils.get_item_pointer2(context, builder, target.data, shape, strides,
                                                out.layout, indices)
            store_item(context, builder, out, value, pointer)
        return context.get_dummy_value()

    return types.none(out, source), codegen


__all__ += ["assign"]
