"""Menu entries for the built-in layers: Dense, Conv2D, pooling, Flatten, LayerNorm, BatchNorm,
Embedding and Dropout, applied with `|>` as users write them (the layer creates its own
parameters)."""
from __future__ import annotations

import dataclasses
import math

from ..ir.types import DType, Sym, TensorType
from .generate import Generator
from .program import Stmt


def _spatial(gen: Generator, minimum: int):
    return gen.pick_float(lambda v: v.rank == 4 and v.bound < 100 and
                          all(isinstance(d, int) and d >= minimum for d in v.shape[2:]) and
                          isinstance(v.shape[1], int))


def _image(gen: Generator, minimum: int):
    """A rank-4 value with spatial dims >= minimum, or a new image input."""
    var = _spatial(gen, minimum)
    if var is None and gen.parent is None and gen.rng.random() < 0.5:
        size = int(gen.rng.integers(minimum, minimum + 4))
        channels = int(gen.rng.choice([1, 2, 3]))
        var = gen.new_input(TensorType(DType.f32, (Sym.named("B"), channels, size,
                                                   int(gen.rng.integers(minimum, size + 1)))))
    return var


def dense(gen: Generator) -> bool:
    var = gen.pick_float(lambda v: v.rank >= 2 and isinstance(v.shape[-1], int) and v.bound < 100)
    if var is None or gen.parent is not None:
        return False
    units = int(gen.rng.choice([1, 2, 3, 4, 8]))
    options = ["", ", bias=false", ", init=xavier", ", init=normal(0.5)", ", init=zeros"]
    option = options[int(gen.rng.integers(len(options)))] if gen.rng.random() < 0.3 else ""
    type_ = TensorType(DType.f32, var.shape[:-1] + (units,))
    if not gen.fits(type_):
        return False
    bound = var.shape[-1] * var.bound * 4.0 * math.sqrt(2.0 / var.shape[-1]) + 1.0
    gen.emit(f"{var.name} |> Dense({units}{option})", type_, -bound, bound, [var], "layer:Dense")
    return True


def conv(gen: Generator) -> bool:
    kernel = int(gen.rng.choice([1, 2, 3]))
    var = _image(gen, kernel)
    if var is None:
        return False
    filters = int(gen.rng.choice([1, 2, 3, 4]))
    stride = int(gen.rng.choice([1, 1, 2]))
    padding = [0, 0, 1, '"same"'][int(gen.rng.integers(4))]
    if padding == '"same"':
        stride = 1
    pad = (kernel - 1) // 2 if padding == '"same"' else padding
    attrs = {"stride": (stride, stride), "padding": padding if padding == '"same"' else (pad, pad)}
    if padding == '"same"':
        attrs["padding"] = "same"
    weight = TensorType(DType.f32, (filters, var.shape[1], kernel, kernel))
    type_ = gen.infer("conv2d", var.type, weight, **attrs)
    if not gen.fits(type_) or any(not isinstance(d, int) or d < 1 for d in type_.shape[1:]):
        return False
    text = f"Conv2D({filters}, kernel={kernel}"
    text += f", stride={stride}" if stride != 1 else ""
    text += f", padding={padding}" if padding != 0 else ""
    fan = var.shape[1] * kernel * kernel
    bound = fan * var.bound * 4.0 * math.sqrt(2.0 / fan) + 1.0
    gen.emit(f"{var.name} |> {text})", type_, -bound, bound, [var], "layer:Conv2D")
    return True


def pool(gen: Generator) -> bool:
    size = int(gen.rng.choice([1, 2, 2, 3]))
    var = _image(gen, size)
    if var is None:
        return False
    kind = ["MaxPool", "AvgPool", "GlobalAvgPool"][int(gen.rng.integers(3))]
    if kind == "GlobalAvgPool":
        type_ = TensorType(var.dtype, var.shape[:2])
        gen.emit(f"{var.name} |> GlobalAvgPool", type_, var.lo, var.hi, [var],
                 "layer:GlobalAvgPool")
        return True
    stride = int(gen.rng.choice([size, 1])) if size > 1 else 1
    op_name = "max_pool2d" if kind == "MaxPool" else "avg_pool2d"
    type_ = gen.infer(op_name, var.type, size=(size, size), stride=(stride, stride),
                      padding=(0, 0))
    if not gen.fits(type_):
        return False
    text = f"{kind}({size}" + (f", stride={stride}" if stride != size else "") + ")"
    gen.emit(f"{var.name} |> {text}", type_, var.lo, var.hi, [var], f"layer:{kind}")
    return True


def flatten(gen: Generator) -> bool:
    var = gen.pick_float(lambda v: v.rank >= 3)
    if var is None:
        return False
    type_ = gen.infer("reshape", var.type, shape=(var.shape[0], -1))
    if type_ is None:
        return False
    gen.emit(f"{var.name} |> Flatten", type_, var.lo, var.hi, [var], "layer:Flatten")
    return True


def layer_norm(gen: Generator) -> bool:
    var = gen.pick_float(lambda v: v.rank >= 1 and isinstance(v.shape[-1], int) and
                         v.shape[-1] >= 2 and v.bound < 1e3)
    if var is None or gen.parent is not None:
        return False
    n = var.shape[-1]
    bound = math.sqrt(n) + 1.0
    gen.emit(f"{var.name} |> LayerNorm", var.type, -bound, bound, [var], "layer:LayerNorm")
    return True


def batch_norm(gen: Generator) -> bool:
    """BatchNorm of an image (rank 4): its backward pass sums three per-channel statistics of
    maps a convolution's input gradient makes, which the cpu target sums in that kernel
    (passes/fusion.py, tails).  Each channel holds at least two values at any batch size
    (H * W >= 2), as LayerNorm's rows do: one value normalises to 0 / sqrt(eps)."""
    var = _spatial(gen, 1)
    if var is None or gen.parent is not None or var.bound >= 1e3:
        return False
    per_example = var.shape[2] * var.shape[3]
    if per_example < 2:
        return False
    bound = math.sqrt(4 * per_example) + 1.0           # |x_hat| <= sqrt(count), B <= 4
    gen.emit(f"{var.name} |> BatchNorm", var.type, -bound, bound, [var], "layer:BatchNorm")
    return True


def embedding(gen: Generator) -> bool:
    if gen.parent is not None:
        return False
    vocab, dim = int(gen.rng.choice([2, 5, 11])), int(gen.rng.choice([1, 3, 4]))
    shape = gen.random_shape(int(gen.rng.choice([1, 2])))
    ids = gen.new_input(TensorType(DType.i64, shape), 0, vocab - 1, prefix="ids")
    type_ = TensorType(DType.f32, shape + (dim,))
    gen.emit(f"{ids.name} |> Embedding({vocab}, {dim})", type_, -5.0, 5.0, [ids],
             "layer:Embedding")
    return True


def dropout(gen: Generator) -> bool:
    var = gen.pick_float(lambda v: v.bound < 1e4)
    if var is None or gen.parent is not None:
        return False
    p = float(gen.rng.choice([0.1, 0.5]))
    scale = 1.0 / (1.0 - p)
    gen.emit(f"{var.name} |> Dropout({p})", var.type, min(var.lo * scale, 0.0),
             max(var.hi * scale, 0.0), [var], "layer:Dropout")
    return True


def shared(gen: Generator) -> bool:
    """One bound layer applied twice: `enc = Dense(3)`, then `enc(a)` and `enc(b)` share its
    weights, so their gradients add up."""
    a = gen.pick_float(lambda v: v.rank >= 2 and isinstance(v.shape[-1], int) and v.bound < 100)
    if a is None or gen.parent is not None:
        return False
    b = gen.pick_float(lambda v: v is not a and v.rank >= 1 and v.shape[-1] == a.shape[-1] and
                       v.bound < 100) or a
    units = int(gen.rng.choice([1, 2, 3, 5]))
    layer = gen.fresh("shared")
    gen.stmts.append(Stmt((layer,), f"Dense({units})", (), tag="layer:shared"))
    bound = a.shape[-1] * max(a.bound, b.bound) * 4.0 * math.sqrt(2.0 / a.shape[-1]) + 1.0
    for x in (a, b):
        gen.emit(f"{layer}({x.name})", TensorType(DType.f32, x.shape[:-1] + (units,)), -bound,
                 bound, [x], "layer:shared")
        gen.stmts[-1] = dataclasses.replace(gen.stmts[-1], reads=gen.stmts[-1].reads + (layer,))
    return True


def block(gen: Generator) -> bool:
    """A user block, applied once or through `repeat`: a residual MLP step whose `in` binds
    its dims from what it is applied to."""
    var = gen.pick_float(lambda v: 2 <= v.rank <= 4 and isinstance(v.shape[-1], int) and
                         v.bound < 10)
    if var is None or gen.parent is not None:
        return False
    name = f"Res{var.rank}"
    dims = ", ".join([f"D{k}" for k in range(var.rank - 1)] + ["K"])
    gen.program.blocks[name] = (
        f"block {name}(units: int, scale: float = 0.5) {{\n"
        f"    in h: f32[{dims}]\n"
        f"    out h + (h |> Dense(units) |> tanh) * scale\n}}")
    k = var.shape[-1]
    if gen.rng.random() < 0.5:
        text, times = f"{var.name} |> {name}({k})", 1
    else:
        times = int(gen.rng.integers(2, 4))
        text = f"{var.name} |> repeat({times}, {name}({k}, scale=0.25))"
    gen.emit(text, var.type, var.lo - times, var.hi + times, [var], "layer:block")
    return True


LAYER_ENTRIES = [
    ("layer:Dense", 4, dense),
    ("layer:Conv2D", 2, conv),
    ("layer:pool", 2, pool),
    ("layer:Flatten", 1, flatten),
    ("layer:LayerNorm", 2, layer_norm),
    ("layer:BatchNorm", 1, batch_norm),
    ("layer:Embedding", 1, embedding),
    ("layer:Dropout", 1, dropout),
    ("layer:shared", 1, shared),
    ("layer:block", 1, block),
]

__all__ = ["LAYER_ENTRIES"]
