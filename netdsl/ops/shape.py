"""Data movement: constant, full, reshape, expand_dims, squeeze, transpose, broadcast_to.
(concat, split and pad live in concat.py; slice, take and one_hot in indexing.py.)

Target shapes.  An op that makes a shape (reshape, broadcast_to, full, split) takes it either
from an attribute (`shape=`, ints and symbolic dims) or from an extra `like` input whose shape,
never its values, is read.  VJPs always use the `like` form, so gradient graphs carry no symbolic
dims in attributes and need no binding of `B` to run.  (The reference evaluator binds symbolic
dims in attributes before calling `reference`; a reference that still sees one raises.)

"""
from __future__ import annotations

import numpy as np

from ..ir.types import (DType, ShapeError, Sym, TensorType, broadcast_shapes, dim_floordiv,
                        dim_prod, dim_sub, normalize_axis)
from ._common import unbroadcast
from .registry import op


def concrete(shape, name: str) -> tuple[int, ...]:
    """`shape` as ints for a reference implementation, or a clear internal error."""
    if any(not isinstance(d, (int, np.integer)) for d in shape):
        raise ValueError(f"{name}: the reference needs concrete dims, got "
                         f"[{', '.join(map(str, shape))}]; bind the symbolic dims first")
    return tuple(int(d) for d in shape)


def target(name: str, like: TensorType | None, shape) -> tuple:
    """The target shape of a shape-making op: exactly one of attr `shape` and input `like`."""
    if (like is None) == (shape is None):
        raise ShapeError(f"{name} takes its target shape from either the attribute `shape` or "
                         f"a second input, not {'both' if like is not None else 'neither'}")
    return tuple(like.shape) if like is not None else tuple(shape)


def _opaque(d) -> bool:
    """Opaque dims (a non-exact division) are named by an expression, not an identifier."""
    return isinstance(d, Sym) and any(not name.isidentifier() for name in d.symbols)


def provably_different(a, b) -> bool:
    """Sizes differ for some binding of the named dims (opaque dims: unknown, so not provable)."""
    difference = dim_sub(a, b)
    return difference != 0 and not _opaque(difference)


def _divide(total, divisors):
    """total // prod(divisors), one factor at a time, so 8*B*T // (B, 2, 4) stays the exact T."""
    for d in divisors:
        if isinstance(d, Sym) and len(d.terms) == 1:        # a monomial: c * X * Y ...
            monomial, coefficient = d.terms[0]
            total = dim_floordiv(total, coefficient)
            for name in monomial:
                total = dim_floordiv(total, Sym.named(name))
        else:
            total = dim_floordiv(total, d)
    return total


def format_shape(shape) -> str:
    """A shape as `[B, 16]` for messages."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


@op("constant")
class Constant:
    """A compile-time tensor (attr value: ndarray); the emitter writes it as an array literal."""
    traits = {"constant", "pure", "no_grad"}
    vjp = None

    def infer(value: np.ndarray):
        return TensorType(DType.from_numpy(value.dtype), tuple(value.shape))

    def reference(value: np.ndarray):
        return value

    def examples():
        return [((), {"value": np.arange(6, dtype=np.float32).reshape(2, 3) / 7}),
                ((), {"value": np.array(2.5, dtype=np.float32)}),
                ((), {"value": np.array([[1, -2], [3, 4]], dtype=np.int64)}),
                ((), {"value": np.array([True, False])}),
                ((), {"value": np.array([np.inf, -np.inf, 1.0], dtype=np.float32)})]


@op("full")
class Full:
    """A tensor filled with `value`: `full(shape=S, value=v, dtype=d)` or `full(like, value=v)`.

    The `like` form reads only like's shape (and its dtype unless `dtype` is given).
    """
    traits = {"pure", "no_grad"}
    fusion_kernel = ("{value}", ())
    shape_inputs = (0,)
    vjp = None

    def infer(like=None, shape=None, value=0.0, dtype: DType | None = None):
        dims = target("full", like, shape)
        return TensorType(dtype or (like.dtype if like is not None else DType.f32), dims)

    def reference(like=None, shape=None, value=0.0, dtype: DType | None = None):
        dims = like.shape if like is not None else concrete(shape, "full")
        numpy_dtype = dtype.numpy if dtype is not None else \
            (like.dtype if like is not None else np.float32)
        return np.full(dims, value, dtype=numpy_dtype)

    def examples():
        f32 = DType.f32
        return [((), {"shape": (2, 3), "value": 1.5, "dtype": f32}),
                ((), {"shape": (4,), "value": 7, "dtype": DType.i64}),
                ((TensorType(f32, (3, 2)),), {"value": -np.inf}),
                ((TensorType(f32, (3, 2)),), {"value": 0, "dtype": DType.bool})]


@op("reshape")
class Reshape:
    """Same elements, new shape: `reshape(x, shape=S)` (one -1 allowed) or `reshape(x, like)`.

    Sizes must be equal as polynomials in the named dims, i.e. for every binding: reshaping
    f32[B, 4] to [16] is an error even though it would work when B = 4.
    """
    traits = {"shape", "view", "pure"}
    shape_inputs = (1,)

    def infer(a, like=None, shape=None):
        dims = list(target("reshape", like, shape))
        total = dim_prod(a.shape)
        if sum(1 for d in dims if d == -1) > 1:
            raise ShapeError(f"cannot reshape {a} to {format_shape(dims)}: only one dimension "
                             f"may be -1")
        if any(isinstance(d, int) and d < -1 for d in dims):
            raise ShapeError(f"cannot reshape {a} to {format_shape(dims)}: dimensions cannot be "
                             f"negative")
        if -1 in dims:
            rest = dim_prod(d for d in dims if d != -1)
            if rest == 0 or (isinstance(total, int) and isinstance(rest, int) and total % rest):
                raise ShapeError(f"cannot reshape {a} ({total} elements) to {format_shape(dims)}: "
                                 f"{total} is not a multiple of {rest}")
            dims[dims.index(-1)] = _divide(total, [d for d in dims if d != -1])
        if provably_different(total, dim_prod(dims)):
            raise ShapeError(f"cannot reshape {a} to {format_shape(dims)}: {total} elements "
                             f"become {dim_prod(dims)}",
                             hint="a reshape keeps the number of elements; use -1 for one "
                                  "dimension to have it computed")
        return TensorType(a.dtype, tuple(dims))

    def reference(a, like=None, shape=None):
        return a.reshape(like.shape if like is not None else concrete(shape, "reshape"))

    def vjp(b, grads, inputs, outputs, shape=None):
        dims = tuple(inputs[0].shape)
        if all(isinstance(d, int) for d in dims):
            # A static shape goes in the attribute, so that the gradient does not read the
            # forward value for its shape only (see concat's gradient).
            back = b.op("reshape", grads[0], shape=dims)
        else:
            back = b.op("reshape", grads[0], inputs[0])
        return (back,) + (None,) * (len(inputs) - 1)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (2, 3, 4)),), {"shape": (6, -1)}),
                ((TensorType(f32, (2, 6)),), {"shape": (3, 2, 2)}),
                ((TensorType(f32, (1, 1)),), {"shape": ()}),
                ((TensorType(f32, (4, 3)), TensorType(f32, (2, 6))), {})]


def _expanded_axes(rank: int, axes) -> tuple[int, ...]:
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    result = sorted(normalize_axis(axis, rank) for axis in axes)
    if len(set(result)) != len(result):
        raise ShapeError(f"repeated axis in {axes}")
    return tuple(result)


@op("expand_dims")
class ExpandDims:
    """Insert length-1 axes at `axes` (positions in the result)."""
    traits = {"shape", "pure"}     # could be a "view" like reshape; today a copy

    def infer(a, axes):
        rank = a.rank + (1 if isinstance(axes, int) else len(axes))
        chosen = _expanded_axes(rank, axes)
        dims = iter(a.shape)
        return TensorType(a.dtype, tuple(1 if i in chosen else next(dims) for i in range(rank)))

    def reference(a, axes):
        return np.expand_dims(a, axes)

    def vjp(b, grads, inputs, outputs, axes):
        return (b.op("squeeze", grads[0], axes=_expanded_axes(outputs[0].rank, axes)),)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (3, 4)),), {"axes": (0, -1)}),
                ((TensorType(f32, ()),), {"axes": (0,)})]


def _squeezed_axes(a: TensorType, axes) -> tuple[int, ...]:
    chosen = _expanded_axes(a.rank, axes)
    for axis in chosen:
        if a.shape[axis] != 1:
            raise ShapeError(f"cannot squeeze axis {axis} of {a}: its length is "
                             f"{a.shape[axis]}, not 1")
    return chosen


@op("squeeze")
class Squeeze:
    """Remove the length-1 axes `axes` (named explicitly: a symbolic dim may be 1 at run time,
    and the result type must not depend on that)."""
    traits = {"shape", "pure"}     # could be a "view" like reshape; today a copy

    def infer(a, axes):
        chosen = _squeezed_axes(a, axes)
        return TensorType(a.dtype, tuple(d for i, d in enumerate(a.shape) if i not in chosen))

    def reference(a, axes):
        return np.squeeze(a, axis=axes)

    def vjp(b, grads, inputs, outputs, axes):
        return (b.op("expand_dims", grads[0], axes=_squeezed_axes(inputs[0].type, axes)),)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (3, 1, 4, 1)),), {"axes": (1,)}),
                ((TensorType(f32, (1, 3, 1)),), {"axes": (0, -1)})]


@op("transpose")
class Transpose:
    """Permute axes: result axis i is input axis perm[i] (perm None: reverse the axes)."""
    traits = {"shape", "pure"}

    def infer(a, perm=None):
        perm = tuple(reversed(range(a.rank))) if perm is None else tuple(perm)
        if sorted(p % a.rank if a.rank else p for p in perm) != list(range(a.rank)) or \
                len(perm) != a.rank:
            raise ShapeError(f"transpose of {a}: {perm} is not a permutation of its "
                             f"{a.rank} axes")
        return TensorType(a.dtype, tuple(a.shape[p] for p in perm))

    def reference(a, perm=None):
        return np.transpose(a, perm)

    def vjp(b, grads, inputs, outputs, perm=None):
        rank = inputs[0].rank
        perm = tuple(reversed(range(rank))) if perm is None else tuple(p % rank for p in perm)
        return (b.op("transpose", grads[0], perm=tuple(int(i) for i in np.argsort(perm))),)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (2, 3, 4)),), {"perm": (2, 0, 1)}),
                ((TensorType(f32, (3, 5)),), {}),
                ((TensorType(f32, (2, 3, 4)),), {"perm": (0, -1, 1)})]


@op("broadcast_to")
class BroadcastTo:
    """Broadcast x, NumPy-style, to `shape` (attr) or to the shape of a second input `like`."""
    traits = {"shape", "pure"}
    fusion_kernel = ("{0}", (0,))
    shape_inputs = (1,)

    def infer(a, like=None, shape=None):
        dims = target("broadcast_to", like, shape)
        try:
            ok = len(dims) >= a.rank and broadcast_shapes(a.shape, dims) == tuple(dims)
        except ShapeError:
            ok = False
        if not ok:
            raise ShapeError(f"cannot broadcast {a} to {format_shape(dims)}",
                             hint="each dimension must equal the target's or be 1")
        return TensorType(a.dtype, tuple(dims))

    def reference(a, like=None, shape=None):
        dims = like.shape if like is not None else concrete(shape, "broadcast_to")
        return np.array(np.broadcast_to(a, dims))

    def vjp(b, grads, inputs, outputs, shape=None):
        return (unbroadcast(b, grads[0], inputs[0].type),) + (None,) * (len(inputs) - 1)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (3, 1)),), {"shape": (2, 3, 4)}),
                ((TensorType(f32, ()),), {"shape": (2, 2)}),
                ((TensorType(f32, (1, 4)), TensorType(f32, (5, 4))), {})]


@op("iota")
class Iota:
    """Each element's index along `axis`: `iota(shape=S, axis=k)` or `iota(like, axis=k)`.

    The positions and masks of sequence models are made from it: `arange(T)` is
    iota(shape=[T], axis=0), and a causal mask compares a [T, 1] iota with a [1, S] one, so
    no [B, H, T, S] tensor of positions is ever built.  dtype defaults to i64.
    """
    traits = {"pure", "no_grad"}
    shape_inputs = (0,)
    vjp = None

    def infer(like=None, shape=None, axis=0, dtype: DType | None = None):
        dims = target("iota", like, shape)
        if not 0 <= axis < max(len(dims), 1) or not dims:
            raise ShapeError(f"iota: axis {axis} is out of range for the shape "
                             f"{format_shape(dims)}", hint="iota needs a shape of rank >= 1")
        return TensorType(dtype or DType.i64, dims)

    def reference(like=None, shape=None, axis=0, dtype: DType | None = None):
        dims = like.shape if like is not None else concrete(shape, "iota")
        along = [1] * len(dims)
        along[axis] = dims[axis]
        positions = np.arange(dims[axis]).reshape(along)
        return np.array(np.broadcast_to(positions, dims), dtype=(dtype or DType.i64).numpy)

    def examples():
        f32, i64 = DType.f32, DType.i64
        return [((), {"shape": (5,), "axis": 0}),
                ((), {"shape": (3, 4), "axis": 1, "dtype": f32}),
                ((TensorType(f32, (2, 3, 4)),), {"axis": 1, "dtype": i64})]
