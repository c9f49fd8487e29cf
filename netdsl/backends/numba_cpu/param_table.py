"""The parameters of a step driver as one table of addresses, viewed inside generated code.

A driver that took every parameter (weights, optimiser state) as an array argument compiled
more slowly than linearly with their number: Numba's Python entry point unboxes each array
argument with its own error path (200 array arguments alone: ~3.7 s of LLVM; 50: ~0.35 s), and
a deep model has hundreds (deep_residual: 236).  Instead the driver takes `params`, an int64
array of the parameters' data addresses in the order of the graph's params, and generated code
views one where it is used: `p_3 = _param_view(params[3], (64, 256), np.float32)`, a
C-contiguous array over that memory (no owner: the caller keeps the arrays alive for the call,
as `CompiledGraph.run` and `BoundStep` do).  Shared runs of groups (segments.py) take the table
and the index like an arena slot, so they also stay the same text across models.

A driver uses the table once it has `CodegenOptions.param_table_min` parameters (below that,
one argument each compiles as fast or faster) and only when every parameter's shape is static
(a symbolic dim could only be read from the array itself); every parameter must be
C-contiguous, as both calling conventions ensure.
"""
from __future__ import annotations

import numpy as np
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_untracked
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def param_view(typingctx, address, shape, dtype):
    """param_view(address, shape, dtype) -> C-contiguous array of `shape` at `address`."""
    if not isinstance(address, types.Integer) or not isinstance(shape, types.BaseTuple) or \
            not isinstance(dtype, (types.NumberClass, types.DType)):
        return None
    element = dtype.instance_type if isinstance(dtype, types.NumberClass) else dtype.dtype
    ndim = len(shape)
    result = types.Array(element, ndim, "C")

    def codegen(context, builder, signature, args):
        address_value, shape_value, _ = args
        target = make_array(result)(context, builder)
        dims = [context.cast(builder, v, t, types.intp) for v, t in
                zip(cgutils.unpack_tuple(builder, shape_value, ndim), shape.types)]
        itemsize = context.get_constant(
            types.intp, context.get_abi_sizeof(context.get_data_type(element)))
        strides, stride = [], itemsize
        for d in reversed(dims):
            strides.append(stride)
            stride = builder.mul(stride, d)
        strides.reverse()
        pointer_type = context.get_data_type(element).as_pointer()
        data = builder.inttoptr(context.cast(builder, address_value, signature.args[0],
                                             types.intp), pointer_type)
        populate_array(target, data=data, shape=dims, strides=strides, itemsize=itemsize,
                       meminfo=None)
        return impl_ret_untracked(context, builder, result, target._getvalue())

    return result(address, shape, dtype), codegen


def address_table(arrays) -> np.ndarray:
    """The int64 table of the arrays' data addresses (what `params` holds)."""
    return np.array([array.__array_interface__["data"][0] for array in arrays], dtype=np.int64)


__all__ = ["address_table", "param_view"]
