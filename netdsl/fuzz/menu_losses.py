"""Menu entries for the objective: the library's losses and regularisers, each on values of
the program (labels and targets become new inputs with the right range)."""
from __future__ import annotations

from ..ir.types import DType, TensorType
from .generate import Generator
from .program import Loss


def _loss_square(gen: Generator) -> bool:
    var = gen.pick_float(lambda v: v.bound < 1e3)
    if var is None:
        return False
    gen.program.losses.append(Loss(f"mean(square({var.name}))", (var.name,), "loss:square"))
    return True


def _loss_mse(gen: Generator) -> bool:
    var = gen.pick_float(lambda v: v.bound < 1e3 and v.rank >= 1)
    if var is None:
        return False
    target = gen.pick_float(lambda v: v is not var and v.type == var.type)
    if target is None or gen.rng.random() < 0.5:
        target = gen.new_input(var.type, -1.0, 1.0, prefix="y")
    gen.program.losses.append(Loss(f"mse({var.name}, {target.name})", (var.name, target.name),
                                   "loss:mse"))
    return True


def _loss_cross_entropy(gen: Generator) -> bool:
    """cross_entropy over the last axis with integer (or one-hot) labels of the leading dims."""
    var = gen.pick_float(lambda v: v.rank >= 1 and v.bound < 1e3 and isinstance(v.shape[-1], int)
                         and v.shape[-1] >= 2)
    if var is None:
        return False
    classes = var.shape[-1]
    labels = gen.new_input(TensorType(DType.i64, var.shape[:-1]), 0, classes - 1, prefix="label")
    if gen.rng.random() < 0.25:
        text = f"cross_entropy({var.name}, one_hot({labels.name}, {classes}))"
    elif gen.rng.random() < 0.2:
        text = f"focal({var.name}, {labels.name})"
    elif gen.rng.random() < 0.3:
        weights = ", ".join(f"{w:.1f}" for w in gen.rng.uniform(0.5, 3.0, size=classes))
        text = f"cross_entropy({var.name}, {labels.name}, weights=[{weights}])"
    else:
        text = f"cross_entropy({var.name}, {labels.name})"
    gen.program.losses.append(Loss(text, (var.name, labels.name), "loss:cross_entropy"))
    return True


def _loss_bce(gen: Generator) -> bool:
    var = gen.pick_float(lambda v: v.rank >= 1 and v.bound < 1e3)
    if var is None:
        return False
    target = gen.new_input(var.type, 0.0, 1.0, prefix="y")
    if gen.rng.random() < 0.5:
        text = f"bce_logits({var.name}, {target.name})"
    else:
        text = f"bce(sigmoid(clip({var.name}, -8.0, 8.0)), {target.name})"
    gen.program.losses.append(Loss(text, (var.name, target.name), "loss:bce"))
    return True


def _loss_kl(gen: Generator) -> bool:
    var = gen.pick_float(lambda v: v.rank >= 1 and v.bound < 1e3)
    if var is None:
        return False
    other = gen.pick_float(lambda v: v.type == var.type and v.bound < 1e3) or var
    gen.program.losses.append(Loss(f"kl_normal({var.name}, tanh({other.name}))",
                                   (var.name, other.name), "loss:kl_normal"))
    return True


def _loss_regulariser(gen: Generator) -> bool:
    params = [v for v, _ in gen.program.params]
    if not params:
        return False
    var = params[int(gen.rng.integers(len(params)))]
    which = "l2" if gen.rng.random() < 0.5 else "l1"
    gen.program.losses.append(Loss(f"0.01 * {which}({var.name})", (var.name,), f"loss:{which}"))
    return True


LOSSES = [
    ("loss:square", 3, _loss_square),
    ("loss:mse", 3, _loss_mse),
    ("loss:cross_entropy", 3, _loss_cross_entropy),
    ("loss:bce", 2, _loss_bce),
    ("loss:kl_normal", 1, _loss_kl),
    ("loss:regulariser", 1, _loss_regulariser),
]


__all__ = ["LOSSES"]
