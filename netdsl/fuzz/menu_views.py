"""Menu entries for views: reshape, transpose, slicing and indexing, concat, and one value read
through two different views in one expression (`reshape(p, [B, 1, T]) - reshape(p, [B, T, 1])`).
"""
from __future__ import annotations

from ..ir.types import TensorType, dim_mul
from .generate import Generator, shape_list
from .program import dim_text


def _reshaped(gen: Generator, shape: tuple) -> tuple | None:
    """A random other shape with the same number of elements: insert or drop 1s, merge two
    neighbours, split an int dim into factors."""
    shape = list(shape)
    for _ in range(int(gen.rng.integers(1, 4))):
        move = int(gen.rng.integers(4))
        if move == 0:
            shape.insert(int(gen.rng.integers(len(shape) + 1)), 1)
        elif move == 1 and 1 in shape:
            shape.remove(1)
        elif move == 2 and len(shape) >= 2:
            k = int(gen.rng.integers(len(shape) - 1))
            shape[k:k + 2] = [dim_mul(shape[k], shape[k + 1])]
        elif move == 3:
            splittable = [k for k, d in enumerate(shape) if isinstance(d, int) and d in (4, 6, 8)]
            if splittable:
                k = splittable[int(gen.rng.integers(len(splittable)))]
                first = 2
                shape[k:k + 1] = [first, shape[k] // first]
    if len(shape) > gen.config.max_rank + 1 or not shape:
        return None
    return tuple(shape)


def reshape(gen: Generator) -> bool:
    var = gen.pick(lambda v: v.dtype.is_float and v.rank >= 1)
    if var is None:
        return False
    shape = _reshaped(gen, var.shape)
    if shape is None or shape == var.shape:
        return False
    spelled = [dim_text(d) for d in shape]
    ints = [k for k, d in enumerate(shape) if isinstance(d, int)]
    if ints and gen.rng.random() < 0.3:                    # let the front end infer one dim
        spelled[ints[int(gen.rng.integers(len(ints)))]] = "-1"
    type_ = gen.infer("reshape", var.type, shape=shape)
    if not gen.fits(type_):
        return False
    gen.emit(f"reshape({var.name}, [{', '.join(spelled)}])", type_, var.lo, var.hi, [var],
             "view:reshape")
    return True


def transpose(gen: Generator) -> bool:
    var = gen.pick(lambda v: v.dtype.is_float and v.rank >= 2)
    if var is None:
        return False
    perm = [int(p) for p in gen.rng.permutation(var.rank)]
    if perm == list(range(var.rank)):
        perm = perm[::-1]
    type_ = gen.infer("transpose", var.type, perm=tuple(perm))
    if type_ is None:
        return False
    text = f"transpose({var.name})" if perm == list(range(var.rank))[::-1] and \
        gen.rng.random() < 0.3 else f"transpose({var.name}, [{', '.join(map(str, perm))}])"
    gen.emit(text, type_, var.lo, var.hi, [var], "view:transpose")
    return True


def slicing(gen: Generator) -> bool:
    """x[:, 1:3], x[..., ::2], x[:, -1]: ranges, steps and single indices on int dims."""
    var = gen.pick(lambda v: v.dtype.is_float and v.rank >= 1 and
                   any(isinstance(d, int) and d >= 2 for d in v.shape))
    if var is None:
        return False
    starts, stops, steps, squeeze, parts = [], [], [], [], []
    for axis, d in enumerate(var.shape):
        if not isinstance(d, int) or d < 2 or gen.rng.random() < 0.4:
            starts.append(0), stops.append(d), steps.append(1), parts.append(":")
            continue
        if gen.rng.random() < 0.25:                          # one index: the axis goes away
            index = int(gen.rng.integers(-d, d))
            starts.append(index % d), stops.append(index % d + 1), steps.append(1)
            squeeze.append(axis)
            parts.append(str(index))
            continue
        start = int(gen.rng.integers(0, d - 1))
        stop = int(gen.rng.integers(start + 1, d + 1))
        step = int(gen.rng.choice([1, 1, 2]))
        starts.append(start), stops.append(stop), steps.append(step)
        parts.append(f"{start}:{stop}" + (f":{step}" if step != 1 else ""))
    while parts and parts[-1] == ":" and len(parts) > 1:
        parts.pop()
    if all(p == ":" for p in parts):
        return False
    type_ = gen.infer("slice", var.type, starts=tuple(starts), stops=tuple(stops),
                      steps=tuple(steps), squeeze=tuple(squeeze))
    if not gen.fits(type_):
        return False
    gen.emit(f"{var.name}[{', '.join(parts)}]", type_, var.lo, var.hi, [var], "view:slice")
    return True


def concat(gen: Generator) -> bool:
    """concat([a, b, ...], axis) of values agreeing off the axis (a view of a itself, too)."""
    a = gen.pick(lambda v: v.dtype.is_float and v.rank >= 1)
    if a is None:
        return False
    axis = int(gen.rng.integers(a.rank))

    def agrees(v) -> bool:
        return v.dtype == a.dtype and v.rank == a.rank and all(
            d == e for k, (d, e) in enumerate(zip(v.shape, a.shape)) if k != axis)
    others = gen.candidates(agrees)
    parts = [a]
    for _ in range(int(gen.rng.integers(1, 3))):
        parts.append(others[int(gen.rng.integers(len(others)))] if others else a)
    names = [p.name if gen.rng.random() < 0.7 or p is not a else f"{p.name} * 2.0" for p in parts]
    scale = 2.0 if any(n.endswith("* 2.0") for n in names) else 1.0
    type_ = gen.infer("concat", *(p.type for p in parts), axis=axis)
    if not gen.fits(type_):
        return False
    lo = min(p.lo for p in parts) * scale
    hi = max(p.hi for p in parts) * scale
    spelled_axis = axis if gen.rng.random() < 0.7 else axis - a.rank
    gen.emit(f"concat([{', '.join(names)}], axis={spelled_axis})", type_, min(lo, -abs(lo)),
             max(hi, abs(hi)), parts, "view:concat")
    return True


def two_views(gen: Generator) -> bool:
    """One value through two views in one fused expression: the outer difference
    reshape(p, [.., 1, n]) - reshape(p, [.., n, 1]), or p + transpose(p)."""
    var = gen.pick(lambda v: v.dtype.is_float and v.rank >= 1 and v.bound < 1e4)
    if var is None:
        return False
    if var.rank >= 2 and var.shape[-1] == var.shape[-2] and gen.rng.random() < 0.5:
        perm = list(range(var.rank))
        perm[-1], perm[-2] = perm[-2], perm[-1]
        gen.emit(f"{var.name} + transpose({var.name}, [{', '.join(map(str, perm))}])",
                 var.type, 2 * var.lo, 2 * var.hi, [var], "view:two_views")
        return True
    *lead, last = var.shape
    row = tuple(lead) + (1, last)
    column = tuple(lead) + (last, 1)
    type_ = gen.infer("sub", TensorType(var.dtype, row), TensorType(var.dtype, column))
    if not gen.fits(type_):
        return False
    gen.emit(f"reshape({var.name}, {shape_list(row)}) - reshape({var.name}, {shape_list(column)})",
             type_, var.lo - var.hi, var.hi - var.lo, [var], "view:two_views")
    return True


VIEW_ENTRIES = [
    ("view:reshape", 4, reshape),
    ("view:transpose", 3, transpose),
    ("view:slice", 3, slicing),
    ("view:concat", 2, concat),
    ("view:two_views", 2, two_views),
]

__all__ = ["VIEW_ENTRIES"]
