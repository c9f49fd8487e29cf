"""Intrinsics standing in for `min`, `max`, `np.empty` and `np.zeros` in compiled code.

Numba implements those four as overloads: small functions it compiles, each on its own, once
per process for every combination of argument types it meets (`max(1, n)`, `max(n, 1)` and
`max(n, m)` are three; a literal argument makes another).  A cold LeNet-5 compile built 16
min/max and 8 allocation functions, 30-200 ms each, ~1 s of its ~11 s of compiling over two
processes.  These intrinsics emit the same code, through Numba's own code generators
(`do_minmax`, `_empty_nd_impl`), into the caller: nothing is compiled apart.

`min2(a, b)` and `max2(a, b)` are `min(a, b)` and `max(a, b)` of two numbers, with Python's
rules (`max(a, b)` is `b if b > a else a`, so a NaN in `a` wins and one in `b` loses).
`empty(shape, dtype)` and `zeros(shape, dtype)` are np.empty and np.zeros with a dtype given
(a NumPy scalar type, or an array's `.dtype`): a new C-contiguous array.
"""
from __future__ import annotations

import operator

from numba import types
from numba.core import cgutils
from numba.core.typing.npydecl import parse_dtype, parse_shape
from numba.cpython.builtins import do_minmax
from numba.extending import intrinsic


def _minmax(typingctx, a, b, comparison):
    """The signature and code generator of min2 (comparison `<`) or max2 (`>`)."""
    a, b = types.unliteral(a), types.unliteral(b)
    if not all(isinstance(t, (types.Number, types.Boolean)) for t in (a, b)):
        return None
    result = typingctx.unify_types(a, b)
    if result is None:
        return None

    def codegen(context, builder, signature, args):
        return do_minmax(context, builder, list(signature.args), list(args), comparison)
    return result(a, b), codegen


@intrinsic
def min2(typingctx, a, b):
    """min(a, b) of two numbers."""
    return _minmax(typingctx, a, b, operator.lt)


@intrinsic
def max2(typingctx, a, b):
    """max(a, b) of two numbers."""
    return _minmax(typingctx, a, b, operator.gt)


def _allocation(shape, dtype, zeroed: bool):
    """The signature and code generator of empty (or, `zeroed`, zeros)."""
    element, ndim = parse_dtype(dtype), parse_shape(shape)
    if element is None or ndim is None:
        return None
    result = types.Array(element, ndim, "C")

    def codegen(context, builder, signature, args):
        # Imported when compiling only: numba.np.arrayobj (and the string support it imports)
        # is ~30 ms of a warm start, whose functions all load from the cache.
        from numba.np.arrayobj import _empty_nd_impl, _parse_shape
        dims = _parse_shape(context, builder, signature.args[0], args[0])
        array = _empty_nd_impl(context, builder, result, dims)
        if zeroed:
            cgutils.memset(builder, array.data, builder.mul(array.itemsize, array.nitems), 0)
        return array._getvalue()
    return result(shape, dtype), codegen


@intrinsic
def empty(typingctx, shape, dtype):
    """np.empty(shape, dtype=dtype)."""
    return _allocation(shape, dtype, zeroed=False)


@intrinsic
def zeros(typingctx, shape, dtype):
    """np.zeros(shape, dtype=dtype)."""
    return _allocation(shape, dtype, zeroed=True)


__all__ = ["empty", "max2", "min2", "zeros"]
