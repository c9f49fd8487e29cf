"""The op menu: light-weight specifications of what the generator may write, one entry each.

An entry is `(name, weight, apply)`; `apply(gen)` picks operands and attributes, asks the op
registry's shape rule (`gen.infer`) whether they are valid, and emits one statement with its
value interval -- or returns False so the generator tries another entry.  Entries cover the
`.net` surface: elementwise functions and operators with broadcasting, reductions over every
axis set (keepdims or not, size-1 axes included), views (reshape, transpose, slicing, concat)
with one value read through several of them, matmul, the layers (Dense, Conv2D, pooling,
LayerNorm, Embedding, Dropout), softmax and log-softmax, random tensors and `scan`; LOSSES
are the library's losses and regularisers.
"""
from __future__ import annotations

import math

from ..ir.types import DType, TensorType
from .generate import Generator, shape_list
from .menu_layers import LAYER_ENTRIES
from .menu_losses import LOSSES
from .menu_views import VIEW_ENTRIES


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 60.0), -60.0)))


def _softplus(x: float) -> float:
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def _monotone(f):
    return lambda lo, hi: (f(lo), f(hi))


def _abs_range(lo, hi):
    if lo >= 0:
        return lo, hi
    if hi <= 0:
        return -hi, -lo
    return 0.0, max(-lo, hi)


def _square_range(lo, hi):
    a, b = _abs_range(lo, hi)
    return a * a, b * b


# name -> (spelling, may apply to (lo, hi), interval of the result)
UNARY = {
    "relu": ("relu({0})", None, lambda lo, hi: (max(lo, 0.0), max(hi, 0.0))),
    "sigmoid": ("sigmoid({0})", None, _monotone(_sigmoid)),
    "tanh": ("tanh({0})", None, _monotone(math.tanh)),
    "exp": ("exp({0})", lambda lo, hi: hi <= 5.0, _monotone(math.exp)),
    "log": ("log({0})", lambda lo, hi: lo >= 0.2, _monotone(math.log)),
    "sqrt": ("sqrt({0})", lambda lo, hi: lo >= 0.2, _monotone(math.sqrt)),
    "abs": ("abs({0})", None, _abs_range),
    "softplus": ("softplus({0})", None, _monotone(_softplus)),
    "sin": ("sin({0})", None, lambda lo, hi: (-1.0, 1.0)),
    "cos": ("cos({0})", None, lambda lo, hi: (-1.0, 1.0)),
    "square": ("square({0})", lambda lo, hi: max(-lo, hi) <= 30.0, _square_range),
    "sign": ("sign({0})", None, lambda lo, hi: (-1.0, 1.0)),
    "step": ("step({0})", None, lambda lo, hi: (0.0, 1.0)),
    "leaky_relu": ("leaky_relu({0}, alpha=0.2)", None,
                   lambda lo, hi: (min(lo, 0.2 * lo), max(hi, 0.2 * hi))),
    "gelu": ("gelu({0})", None, lambda lo, hi: (min(lo, -0.2), max(hi, 0.0))),
    "gelu_tanh": ('gelu({0}, approximate="tanh")', None, lambda lo, hi: (min(lo, -0.2), max(hi, 0.0))),
    "neg": ("-{0}", None, lambda lo, hi: (-hi, -lo)),
    "clip": ("clip({0}, -0.5, 0.75)", None, lambda lo, hi: (max(min(lo, 0.75), -0.5), min(max(hi, -0.5), 0.75))),
    "stop_gradient": ("stop_gradient({0})", None, lambda lo, hi: (lo, hi)),
    "scale": ("{0} * 0.5", None, lambda lo, hi: (0.5 * lo, 0.5 * hi)),
    "shift": ("1.5 - {0}", None, lambda lo, hi: (1.5 - hi, 1.5 - lo)),
    "divide_constant": ("{0} / 3.0", None, lambda lo, hi: (lo / 3.0, hi / 3.0)),
    "cube": ("{0} ** 3", lambda lo, hi: max(-lo, hi) <= 8.0,
             lambda lo, hi: (lo ** 3, hi ** 3)),
    "root": ("{0} ** 0.5", lambda lo, hi: lo >= 0.2, _monotone(math.sqrt)),
}


def unary(gen: Generator) -> bool:
    name = list(UNARY)[int(gen.rng.integers(len(UNARY)))]
    spelling, domain, interval = UNARY[name]
    var = gen.pick_float(lambda v: domain is None or domain(v.lo, v.hi))
    if var is None:
        return False
    if var.bound > 1e4 and name not in ("tanh", "sigmoid", "sin", "cos", "clip", "sign"):
        return False
    lo, hi = interval(var.lo, var.hi)
    gen.emit(spelling.format(var.name), var.type, lo, hi, [var], f"unary:{name}", [var])
    return True


def _product_range(a, b):
    corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
    return min(corners), max(corners)


BINARY = {
    "add": ("{0} + {1}", lambda a, b: (a.lo + b.lo, a.hi + b.hi)),
    "sub": ("{0} - {1}", lambda a, b: (a.lo - b.hi, a.hi - b.lo)),
    "mul": ("{0} * {1}", _product_range),
    "maximum": ("maximum({0}, {1})", lambda a, b: (max(a.lo, b.lo), max(a.hi, b.hi))),
    "minimum": ("minimum({0}, {1})", lambda a, b: (min(a.lo, b.lo), min(a.hi, b.hi))),
}


def binary(gen: Generator) -> bool:
    """a (op) b with broadcasting; b an existing value or a new param/input."""
    a = gen.pick_float(lambda v: v.bound < 1e4)
    if a is None:
        return False
    b = gen.partner(a)
    if gen.rng.random() < 0.5:
        a, b = b, a
    name = list(BINARY)[int(gen.rng.integers(len(BINARY)))]
    if name == "mul" and a.bound * b.bound > 1e4:
        name = "add"
    spelling, interval = BINARY[name]
    type_ = gen.infer("add", a.type, b.type)
    if not gen.fits(type_):
        return False
    lo, hi = interval(a, b)
    gen.emit(spelling.format(a.name, b.name), type_, lo, hi, [a, b], f"binary:{name}", [a, b])
    return True


def divide(gen: Generator) -> bool:
    """a / b where b is bounded away from 0 (or made so: square(b) + 1)."""
    a = gen.pick_float(lambda v: v.bound < 1e4)
    if a is None:
        return False
    b = gen.partner(a)
    type_ = gen.infer("div", a.type, b.type)
    if not gen.fits(type_):
        return False
    if b.lo >= 0.25 or b.hi <= -0.25:
        denominator, (dlo, dhi) = b.name, (b.lo, b.hi)
    elif b.bound <= 30:
        denominator, (dlo, dhi) = f"(square({b.name}) + 1.0)", (1.0, b.bound ** 2 + 1.0)
    else:
        return False
    small = min(abs(dlo), abs(dhi)) if dlo * dhi > 0 else 1.0
    lo, hi = -a.bound / small, a.bound / small
    gen.emit(f"{a.name} / {denominator}", type_, lo, hi, [a, b], "binary:div", [a])
    return True


def select(gen: Generator) -> bool:
    """where(a > b, a, c): comparisons make bool masks; a mask can also become a float."""
    a = gen.pick_float()
    if a is None:
        return False
    b, c = gen.partner(a), gen.partner(a)
    type_ = gen.infer("where", TensorType(DType.bool, gen.infer("add", a.type, b.type).shape)
                      if gen.infer("add", a.type, b.type) else a.type, a.type, c.type)
    if not gen.fits(type_) or not gen.fits(gen.infer("add", a.type, b.type)):
        return False
    operator = [">", "<", ">=", "<=", "!="][int(gen.rng.integers(5))]
    if gen.rng.random() < 0.3:
        mask = gen.infer("add", a.type, b.type)
        gen.emit(f'cast({a.name} {operator} {b.name}, "f32")', mask, 0.0, 1.0, [a, b],
                 "compare:cast")
        return True
    gen.emit(f"where({a.name} {operator} {b.name}, {a.name}, {c.name})", type_,
             min(a.lo, c.lo), max(a.hi, c.hi), [a, b, c], "compare:where", [a, c])
    return True


def reduce(gen: Generator) -> bool:
    """sum/mean/max/min over all axes, one axis or an axis list, keepdims or not."""
    var = gen.pick_float(lambda v: v.rank >= 1)
    if var is None:
        return False
    name = ["sum", "mean", "mean", "max", "min"][int(gen.rng.integers(5))]
    choice = gen.rng.random()
    if choice < 0.2:
        axes, text = None, ""
    elif choice < 0.5:
        axis = int(gen.rng.integers(var.rank))
        axes = (axis,)
        text = f", axis={axis if gen.rng.random() < 0.7 else axis - var.rank}"
    else:
        axes = tuple(sorted(int(a) for a in gen.rng.choice(
            var.rank, size=int(gen.rng.integers(1, var.rank + 1)), replace=False)))
        text = f", axis=[{', '.join(map(str, axes))}]"
    keepdims = gen.rng.random() < 0.5
    if keepdims:
        text += ", keepdims=true"
    type_ = gen.infer(name, var.type, axes=axes, keepdims=keepdims)
    if type_ is None:
        return False
    count = gen.size(var.shape) // max(gen.size(type_.shape), 1)
    lo, hi = (var.lo * count, var.hi * count) if name == "sum" else (var.lo, var.hi)
    if name == "sum":
        lo, hi = min(lo, var.lo), max(hi, var.hi)
    gen.emit(f"{name}({var.name}{text})", type_, lo, hi, [var], f"reduce:{name}")
    return True


def normalise(gen: Generator) -> bool:
    """softmax / log_softmax over an axis; x - mean(x) standardisation."""
    var = gen.pick_float(lambda v: v.rank >= 1 and v.bound < 1e3)
    if var is None:
        return False
    axis = int(gen.rng.integers(var.rank))
    spelled = "" if axis == var.rank - 1 and gen.rng.random() < 0.5 else f", axis={axis}"
    kind = int(gen.rng.integers(3))
    if kind == 0:
        gen.emit(f"softmax({var.name}{spelled})", var.type, 0.0, 1.0, [var], "softmax")
    elif kind == 1:
        n = gen.size(var.shape[axis:axis + 1])
        gen.emit(f"log_softmax({var.name}{spelled})", var.type,
                 -(var.hi - var.lo) - math.log(max(n, 1)) - 1.0, 0.0, [var], "log_softmax")
    else:
        gen.emit(f"{var.name} - mean({var.name}, axis={axis}, keepdims=true)", var.type,
                 var.lo - var.hi, var.hi - var.lo, [var], "centre")
    return True


def matmul(gen: Generator) -> bool:
    """a @ b with b a param [k, n] (or a batched value); transposed operands sometimes."""
    a = gen.pick_float(lambda v: v.rank >= 2 and v.bound < 100)
    if a is None:
        return False
    k = a.shape[-1]
    other = gen.pick_float(lambda v: v is not a and v.rank >= 2 and v.bound < 100 and
                           gen.fits(gen.infer("matmul", a.type, v.type)))
    if other is not None and gen.rng.random() < 0.4:
        b, text = other, other.name
    elif isinstance(k, int):
        n = int(gen.rng.choice([1, 2, 3, 4, 6]))
        if gen.rng.random() < 0.4:
            b = gen.new_param((n, k), 0.5)
            text = f"transpose({b.name})"
            b_type = TensorType(DType.f32, (k, n))
        else:
            b = gen.new_param((k, n), 0.5)
            text, b_type = b.name, b.type
        type_ = gen.infer("matmul", a.type, b_type)
        if not gen.fits(type_):
            return False
        bound = gen.size((k,)) * a.bound * b.bound
        gen.emit(f"{a.name} @ {text}", type_, -bound, bound, [a, b], "matmul")
        return True
    else:
        return False
    type_ = gen.infer("matmul", a.type, b.type)
    if not gen.fits(type_):
        return False
    bound = gen.size((k,)) * a.bound * b.bound
    gen.emit(f"{a.name} @ {text}", type_, -bound, bound, [a, b], "matmul:batched")
    return True


def random_tensor(gen: Generator) -> bool:
    """normal([..]) or uniform([..]) of a value's shape, combined with it."""
    var = gen.pick_float(lambda v: v.bound < 1e3)
    if var is None or gen.parent is not None:
        return False
    if gen.rng.random() < 0.5:
        draw, lo, hi = f"normal({shape_list(var.shape)}, std=0.5)", -3.0, 3.0
    else:
        draw, lo, hi = f"uniform({shape_list(var.shape)}, low=-1.0, high=1.0)", -1.0, 1.0
    gen.emit(f"{var.name} + {draw}", var.type, var.lo + lo, var.hi + hi, [var], "random",
             [var])
    return True


def cast_round_trip(gen: Generator) -> bool:
    """cast to f64, compute, cast back: mixed element types in one kernel."""
    var = gen.pick_float(lambda v: v.dtype == DType.f32 and v.bound < 1e3)
    if var is None:
        return False
    gen.emit(f'cast(cast({var.name}, "f64") * 2.0, "f32")', var.type, 2 * var.lo, 2 * var.hi,
             [var], "cast")
    return True


def scan(gen: Generator) -> bool:
    """hs, h_last = scan x over 1 with h = <init> { body; h = tanh(.. @ w + h ..); yield h }."""
    from .menu_scan import scan_statement
    return scan_statement(gen)


MENU = [
    ("unary", 10, unary),
    ("binary", 10, binary),
    ("divide", 2, divide),
    ("select", 2, select),
    ("reduce", 6, reduce),
    ("normalise", 3, normalise),
    ("matmul", 4, matmul),
    ("random", 1, random_tensor),
    ("cast", 1, cast_round_trip),
    ("scan", 1, scan),
    *VIEW_ENTRIES,
    *LAYER_ENTRIES,
]


def weighted(entries, overrides) -> list:
    """The entries with weights replaced from `overrides` (name -> weight)."""
    if not overrides:
        return list(entries)
    return [(name, overrides.get(name, weight), apply) for name, weight, apply in entries]


__all__ = ["LOSSES", "MENU", "weighted"]
