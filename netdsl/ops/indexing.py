"""Indexing: slice (static bounds, Python semantics), take (gather by an index tensor), one_hot,
and the scatters that are their gradients, slice_grad and take_grad.

Indices of `take` and `take_grad` lie in [0, n) for an axis of length n, as ids of an
Embedding do (torch refuses negative ids too; np.take would wrap them).  Anything else is an
IndexError on every target, never a read or write outside the array: the reference says which
index, the compiled kernels check every index in a serial loop before they gather or scatter
(two compares per index, beside the `inner` elements each index moves) and raise INDEX_ERROR, a
constant message, since that is what Numba raises cheaply.  The runtime checks the data that
feeds indices before a step and names the input, the value and its position
(runtime/input_checks.py); the guard here is what keeps memory safe when an index is computed
in the graph or an API caller skips those checks.  `one_hot` gives a row of zeros for an index
outside [0, depth) and never writes outside.

`slice(x, starts=, stops=, steps=, squeeze=())`: per axis, `x[start:stop:step]` with Python's
rules (None for an open bound, negative bounds count from the end, negative steps reverse);
the tuples may be shorter than the rank (the remaining axes are kept whole).  `squeeze` names
input axes that are sliced to length 1 and then removed, which is how an integer index is
written: `x[:, -1]` is `slice_attrs((slice(None), -1))` = starts (None, -1), stops (None, None),
steps (None, None), squeeze (1,).  Keeping bounds negative (relative to the end) instead of
`T - 1` keeps symbolic dims out of the attributes.

On a symbolic axis, Python's clamping cannot be decided at compile time: the length is computed
as if the axis were long enough for the bounds (`x[:, 0:8]` on T has length 8, `x[:, 1:]` has
T - 1, `x[:, ::2]` has the opaque (T + 1) // 2).  Non-exact strides give opaque dims.
"""
from __future__ import annotations

import numpy as np

from ..ir.types import (DType, ShapeError, TensorType, dim_add, dim_floordiv, dim_sub,
                        normalize_axis)
from .registry import op
from .shape import concrete, provably_different


def slice_attrs(key) -> dict:
    """The slice attrs for a Python subscript of ints and slices, e.g. `np.s_[:, -1]`."""
    key = key if isinstance(key, tuple) else (key,)
    starts, stops, steps, squeeze = [], [], [], []
    for axis, item in enumerate(key):
        if isinstance(item, slice):
            starts.append(item.start), stops.append(item.stop), steps.append(item.step)
        else:
            index = int(item)
            starts.append(index), stops.append(None if index == -1 else index + 1)
            steps.append(None), squeeze.append(axis)
    return {"starts": tuple(starts), "stops": tuple(stops), "steps": tuple(steps),
            "squeeze": tuple(squeeze)}


def _axes(rank: int, starts, stops, steps):
    """(start, stop, step) for every axis, open bounds None and step an int."""
    given = [tuple(x or ()) for x in (starts, stops, steps)]
    if max(map(len, given)) > rank:
        raise ShapeError(f"slice bounds for {max(map(len, given))} axes on a tensor of rank {rank}")
    padded = [list(x) + [None] * (rank - len(x)) for x in given]
    result = []
    for start, stop, step in zip(*padded):
        step = 1 if step is None else step
        if not isinstance(step, int) or step == 0:
            raise ShapeError(f"a slice step must be a non-zero int, got {step}")
        result.append((start, stop, step))
    return result


def _position(bound, dim):
    return dim_add(dim, bound) if isinstance(bound, int) and bound < 0 else bound


def slice_length(dim, start, stop, step: int):
    """The length of `range(dim)[start:stop:step]` (see the module docstring for symbolic dims)."""
    if all(isinstance(d, int) or d is None for d in (dim, start, stop)):
        return len(range(dim)[slice(start, stop, step)])
    if step > 0:
        first = 0 if start is None else _position(start, dim)
        end = dim if stop is None else _position(stop, dim)
        span = dim_sub(end, first)
    else:
        first = dim_sub(dim, 1) if start is None else _position(start, dim)
        end = -1 if stop is None else _position(stop, dim)
        span = dim_sub(first, end)
    stride = abs(step)
    length = span if stride == 1 else dim_floordiv(dim_add(span, stride - 1), stride)
    if isinstance(length, int):
        return max(length, 0)
    if any(coefficient < 0 for monomial, coefficient in length.terms if monomial):
        # e.g. x[-1:0] on T: 1 - T, which is 0 or not depending on T.
        raise ShapeError(f"slice {bounds_text(start, stop, step)} of an axis of length {dim} has "
                         f"length {length}, which cannot be decided for every {dim}",
                         hint="count both bounds from the same end of a symbolic axis")
    return length


def bounds_text(start, stop, step) -> str:
    text = f"{'' if start is None else start}:{'' if stop is None else stop}"
    return text if step is None else f"{text}:{step}"


def _sliced_type(a: TensorType, starts, stops, steps, squeeze) -> TensorType:
    axes = _axes(a.rank, starts, stops, steps)
    lengths = [slice_length(d, *bounds) for d, bounds in zip(a.shape, axes)]
    dropped = {normalize_axis(axis, a.rank) for axis in squeeze}
    for axis in dropped:
        if lengths[axis] != 1:
            raise ShapeError(f"slice of {a} squeezes axis {axis}, but its slice has length "
                             f"{lengths[axis]}, not 1")
    return TensorType(a.dtype, tuple(n for axis, n in enumerate(lengths) if axis not in dropped))


def slice_key(rank: int, starts, stops, steps, squeeze, bound=None) -> tuple:
    """The NumPy subscript: slices, and an int for each squeezed axis (which drops it).

    `bound(value, axis)` renders a bound; by default bounds must be concrete ints (the
    reference evaluator binds symbolic dims in attributes before calling the reference).
    """
    if bound is None:
        def bound(value, axis):
            return value if value is None else concrete([value], "slice")[0]
    dropped = {axis % rank for axis in squeeze}
    key = []
    for axis, (start, stop, step) in enumerate(_axes(rank, starts, stops, steps)):
        start, stop = bound(start, axis), bound(stop, axis)
        if axis in dropped:
            key.append(start if start is not None else (0 if step > 0 else -1))
        else:
            key.append(slice(start, stop, step))
    return tuple(key)


@op("slice")
class Slice:
    """x[start:stop:step] per axis with Python semantics; `squeeze` drops length-1 axes."""
    traits = {"shape", "pure"}

    def infer(a, starts=(), stops=(), steps=(), squeeze=()):
        return _sliced_type(a, starts, stops, steps, squeeze)

    def reference(a, starts=(), stops=(), steps=(), squeeze=()):
        return np.array(a[slice_key(a.ndim, starts, stops, steps, squeeze)])

    def vjp(b, grads, inputs, outputs, starts=(), stops=(), steps=(), squeeze=()):
        return (b.op("slice_grad", grads[0], inputs[0], starts=starts, stops=stops, steps=steps,
                     squeeze=squeeze),)

    def window(a, starts=(), stops=(), steps=(), squeeze=()):
        """The start of the box per axis, for unit steps and no squeeze (else None).  A
        symbolic axis must be taken whole: `x[:, 0:8]` on T has length 8 whatever T is, and a
        loop reading 8 elements of a shorter axis would read past its end."""
        if squeeze:
            return None
        offsets = []
        for dim, (start, stop, step) in zip(a.shape, _axes(a.rank, starts, stops, steps)):
            if step != 1 or not (start is None or isinstance(start, int)):
                return None
            if not isinstance(dim, int):
                if start not in (None, 0) or stop is not None:
                    return None
                start = 0
            elif start is None:
                start = 0
            else:
                start = min(max(dim + start, 0) if start < 0 else start, dim)
            offsets.append(start)
        return tuple(offsets)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (4, 6, 5)),), slice_attrs(np.s_[:, 1:-1:2, -2])),
                ((TensorType(f32, (3, 5)),), slice_attrs(np.s_[::-1, 2:])),
                ((TensorType(f32, (3, 4)),), slice_attrs(np.s_[1, -1])),
                ((TensorType(f32, (2, 10, 6)),), slice_attrs(np.s_[:, 0:8, ::2])),
                ((TensorType(f32, (7,)),), slice_attrs(np.s_[5:1:-2])),
                ((TensorType(f32, (4, 3)),), {"starts": (1,), "stops": (-1,)})]


@op("slice_grad")
class SliceGrad:
    """The gradient of slice: zeros of x's shape with g written where slice read (x: shape only)."""
    traits = {"shape", "pure"}

    def infer(g, x, starts=(), stops=(), steps=(), squeeze=()):
        sliced = _sliced_type(x, starts, stops, steps, squeeze)
        if sliced.rank != g.rank or any(provably_different(d, e)
                                        for d, e in zip(sliced.shape, g.shape)):
            raise ShapeError(f"slice_grad: {g} does not match the slice of {x}, {sliced}")
        return x.with_dtype(g.dtype)

    def reference(g, x, starts=(), stops=(), steps=(), squeeze=()):
        out = np.zeros(x.shape, dtype=g.dtype)
        out[slice_key(x.ndim, starts, stops, steps, squeeze)] = g
        return out

    def vjp(b, grads, inputs, outputs, starts=(), stops=(), steps=(), squeeze=()):
        return (b.op("slice", grads[0], starts=starts, stops=stops, steps=steps,
                     squeeze=squeeze), None)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (4, 2, 5)), TensorType(f32, (4, 6, 5))),
                 slice_attrs(np.s_[:, 1:-1:2])),
                ((TensorType(f32, ()), TensorType(f32, (3, 4))), slice_attrs(np.s_[1, -1]))]


def _index_type(t: TensorType, name: str) -> None:
    if not t.dtype.is_int:
        raise ShapeError(f"{name} expects integer indices, got {t}",
                         hint="indices are i64 (cast(x, i64) converts)")


def _taken_type(a: TensorType, indices: TensorType, axis: int) -> TensorType:
    _index_type(indices, "take")
    axis = normalize_axis(axis, a.rank)
    return a.with_shape(a.shape[:axis] + indices.shape + a.shape[axis + 1:])


INDEX_ERROR = "netdsl: an index of take is out of range"


def _check_indices(indices: np.ndarray, n: int, op_name: str) -> None:
    """IndexError naming the first index outside [0, n) (the reference's bounds check)."""
    if indices.size == 0:
        return
    bad = (indices < 0) | (indices >= n)
    if bad.any():
        where = [int(i) for i in np.argwhere(bad)[0]]
        raise IndexError(f"{INDEX_ERROR}: {op_name} index {int(indices[tuple(where)])} at "
                         f"position {where} of an axis of length {n}")


@op("take")
class Take:
    """Gather along `axis` by an integer index tensor (np.take with indices in [0, n))."""
    traits = {"pure"}

    def infer(a, indices, axis: int = 0):
        return _taken_type(a, indices, axis)

    def reference(a, indices, axis: int = 0):
        _check_indices(indices, a.shape[axis], "take")
        return np.take(a, indices, axis=axis)

    def vjp(b, grads, inputs, outputs, axis: int = 0):
        x, indices = inputs
        return (b.op("take_grad", grads[0], indices, x, axis=axis), None)

    def examples():
        f32, i64 = DType.f32, DType.i64
        return [((TensorType(f32, (5, 4)), TensorType(i64, (2, 3))), {"axis": 0}, {"int_high": 5}),
                ((TensorType(f32, (2, 4, 3)), TensorType(i64, (5,))), {"axis": 1}, {"int_high": 4}),
                ((TensorType(f32, (3, 4)), TensorType(i64, ())), {"axis": -1}, {"int_high": 4})]


@op("take_grad")
class TakeGrad:
    """The gradient of take: g scatter-added into zeros of x's shape (x: shape only)."""
    traits = {"pure"}

    def infer(g, indices, x, axis: int = 0):
        taken = _taken_type(x, indices, axis)
        if taken.rank != g.rank or any(provably_different(d, e)
                                       for d, e in zip(taken.shape, g.shape)):
            raise ShapeError(f"take_grad: {g} does not match take from {x} by {indices}")
        return x.with_dtype(g.dtype)

    def reference(g, indices, x, axis: int = 0):
        axis = axis % x.ndim
        _check_indices(indices, x.shape[axis], "take_grad")
        out = np.zeros(x.shape, dtype=g.dtype)
        outer, inner = int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis + 1:]))
        rows = out.reshape(outer, x.shape[axis], inner)
        np.add.at(rows, (slice(None), indices.reshape(-1)), g.reshape(outer, indices.size, inner))
        return out

    def vjp(b, grads, inputs, outputs, axis: int = 0):
        return (b.op("take", grads[0], inputs[1], axis=axis), None, None)

    def examples():
        f32, i64 = DType.f32, DType.i64
        return [((TensorType(f32, (2, 3, 4)), TensorType(i64, (2, 3)), TensorType(f32, (3, 4))),
                 {"axis": 0}, {"int_high": 3}),
                ((TensorType(f32, (2, 6, 3)), TensorType(i64, (6,)), TensorType(f32, (2, 4, 3))),
                 {"axis": 1}, {"int_high": 4})]


@op("one_hot")
class OneHot:
    """indices (int) to a [..., depth] tensor of `dtype` (f32): 1 at the index, 0 elsewhere;
    an index outside [0, depth) gives a row of zeros."""
    traits = {"pure", "no_grad"}
    vjp = None

    def infer(indices, depth: int, dtype: DType = DType.f32):
        _index_type(indices, "one_hot")
        return TensorType(dtype, indices.shape + (depth,))

    def reference(indices, depth: int, dtype: DType = DType.f32):
        return (indices[..., None] == np.arange(depth)).astype(dtype.numpy)

    def examples():
        i64 = DType.i64
        return [((TensorType(i64, (2, 3)),), {"depth": 4}, {"int_high": 5}),
                ((TensorType(i64, (6,)),), {"depth": 3, "dtype": DType.f64}, {"int_high": 3})]
