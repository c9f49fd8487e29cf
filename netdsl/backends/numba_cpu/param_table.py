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
from llvmlite import ir
from numba import types
from numba.core.imputils import impl_ret_untracked
from numba.extending import intrinsic

from .support import array_value, shape_dims


@intrinsic
def param_view(typingctx, address, shape, dtype):
    """param_view(address, shape, dtype) -> C-contiguous array of `shape` at `address`."""
    if not isinstance(address, types.Integer) or not isinstance(shape, types.BaseTuple) or \
            not isinstance(dtype, (types.NumberClass, types.DType)):
        return None
    element = dtype.instance_type if isinstance(dtype, types.NumberClass) else dtype.dtype
    result = types.Array(element, len(shape), "C")

    def codegen(context, builder, signature, args):
        address_value, shape_value, _ = args
        pointer_type = context.get_data_type(element).as_pointer()
        data = builder.inttoptr(context.cast(builder, address_value, signature.args[0],
                                             types.intp), pointer_type)
        datamodel = context.data_model_manager[result]

        def null(name):                    # no owner: the caller keeps the arrays alive
            return ir.Constant(context.get_value_type(datamodel.get_type(name)), None)
        value = array_value(context, builder, result, data,
                            shape_dims(context, builder, shape, shape_value),
                            null("meminfo"), null("parent"))
        return impl_ret_untracked(context, builder, result, value)

    return result(address, shape, dtype), codegen


def address_table(arrays) -> np.ndarray:
    """The int64 table of the arrays' data addresses (what `params` holds)."""
    return np.array([array.__array_interface__["data"][0] for array in arrays], dtype=np.int64)


__all__ = ["address_table", "param_view"]
