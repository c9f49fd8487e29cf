"""Optimisers as graph ops: each writes one parameter's update with primitives (add, mul, sqrt...).

The update is part of the training graph, so it is simplified, fused (one kernel per parameter)
and compiled with the rest of the step.  The formulas follow PyTorch's `torch.optim` exactly
(with `dampening=0`, `centered=False`, `amsgrad=False`, `maximize=False`):

    SGD      g += wd*p;  b = mu*b + g;  g = g + mu*b (nesterov) or b;  p -= lr*g
    RMSprop  g += wd*p;  s = alpha*s + (1-alpha)*g^2;  d = sqrt(s) + eps;
             b = mu*b + g/d,  p -= lr*b  (momentum > 0)   or   p -= lr*g/d
    Adam     g += wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
             p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
    AdamW    p *= 1 - lr*wd  (decoupled, before the Adam step, which then has no L2 term)

PyTorch initialises the SGD momentum buffer with the first gradient; with `dampening=0` that is
exactly `mu*0 + g`, so a zero-initialised buffer gives the same numbers.  `lr` and the 1-based
step count `t` are graph inputs (scalars), so schedules change them without recompiling.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

from ..errors import Error, did_you_mean
from ..ir.graph import GraphBuilder, Value


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimiser and its hyper-parameters (the `optimizer = Adam(lr=1e-3)` of a train section).

    `lr` is only the initial value fed to `__lr__`; the graph reads the learning rate per step.
    """

    name: str                       # "sgd" | "rmsprop" | "adam" | "adamw"
    lr: float = 1e-3
    momentum: float = 0.0
    nesterov: bool = False
    alpha: float = 0.99
    eps: float = 1e-8
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0


# PyTorch's defaults where they differ from the dataclass's.
_DEFAULTS = {"sgd": {"lr": 0.01}, "rmsprop": {"lr": 0.01}, "adam": {},
             "adamw": {"weight_decay": 0.01}}
_OPTIONS = {"sgd": {"lr", "momentum", "nesterov", "weight_decay"},
            "rmsprop": {"lr", "alpha", "eps", "momentum", "weight_decay"},
            "adam": {"lr", "beta1", "beta2", "betas", "eps", "weight_decay"},
            "adamw": {"lr", "beta1", "beta2", "betas", "eps", "weight_decay"}}


def make_optimizer(name: str, **options) -> OptimizerSpec:
    """An OptimizerSpec from a name as written (`Adam`, `SGD`...) and keyword options."""
    key = name.lower()
    if key not in _OPTIONS:
        spelled = {"SGD": "sgd", "RMSprop": "rmsprop", "Adam": "adam", "AdamW": "adamw"}
        hint = did_you_mean(name, spelled)
        raise Error(f"unknown optimizer '{name}' (known: {', '.join(spelled)})", hint=hint)
    unknown = set(options) - _OPTIONS[key]
    if unknown:
        bad = sorted(unknown)[0]
        raise Error(f"{name} has no option '{bad}'", hint=did_you_mean(bad, _OPTIONS[key]) or
                    f"its options are: {', '.join(sorted(_OPTIONS[key]))}")
    values = dict(_DEFAULTS[key])
    values.update(options)
    if "betas" in values:
        values["beta1"], values["beta2"] = values.pop("betas")
    if key == "sgd" and values.get("nesterov") and not values.get("momentum"):
        raise Error("SGD with nesterov=true needs a momentum > 0")
    allowed = {f.name for f in fields(OptimizerSpec)}
    return OptimizerSpec(key, **{k: v for k, v in values.items() if k in allowed})


def state_slots(spec: OptimizerSpec) -> tuple[str, ...]:
    """The per-parameter state buffers the optimiser keeps (named `opt.<param>.<slot>`)."""
    return {"sgd": ("momentum",) if spec.momentum else (),
            "rmsprop": ("square_avg",) + (("momentum",) if spec.momentum else ()),
            "adam": ("m", "v"), "adamw": ("m", "v")}[spec.name]


class _Math:
    """Shorthand for the update formulas: constants in the parameter's element type."""

    def __init__(self, b: GraphBuilder, like: Value):
        self.b, self.dtype = b, like.dtype

    def c(self, number: float) -> Value:
        return self.b.constant(number, self.dtype)

    def scalar(self, value: Value) -> Value:
        return value if value.dtype == self.dtype else self.b.op("cast", value, dtype=self.dtype)

    def __getattr__(self, op_name: str) -> Callable[..., Value]:
        return lambda *args, **attrs: self.b.op(op_name, *args, **attrs)

    def axpby(self, a: float, x: Value, c: float, y: Value) -> Value:
        """a*x + c*y."""
        return self.add(self.mul(self.c(a), x), self.mul(self.c(c), y))


def apply_update(b: GraphBuilder, spec: OptimizerSpec, param: Value, grad: Value,
                 state: dict[str, Value], lr: Value, step: Value,
                 weight_decay: float) -> tuple[Value, dict[str, Value]]:
    """Emit one parameter's update; returns its new value and the new state buffers."""
    m = _Math(b, param)
    lr, step = m.scalar(lr), m.scalar(step)
    if weight_decay and spec.name != "adamw":           # L2: PyTorch's `weight_decay`
        grad = m.add(grad, m.mul(m.c(weight_decay), param))
    if spec.name == "sgd":
        return _sgd(m, spec, param, grad, state, lr)
    if spec.name == "rmsprop":
        return _rmsprop(m, spec, param, grad, state, lr)
    if spec.name == "adamw" and weight_decay:           # decoupled decay
        param = m.mul(param, m.sub(m.c(1.0), m.mul(lr, m.c(weight_decay))))
    return _adam(m, spec, param, grad, state, lr, step)


def _sgd(m, spec, param, grad, state, lr):
    new_state = {}
    if spec.momentum:
        buffer = m.add(m.mul(m.c(spec.momentum), state["momentum"]), grad)
        new_state["momentum"] = buffer
        grad = m.add(grad, m.mul(m.c(spec.momentum), buffer)) if spec.nesterov else buffer
    return m.sub(param, m.mul(lr, grad)), new_state


def _rmsprop(m, spec, param, grad, state, lr):
    square_avg = m.axpby(spec.alpha, state["square_avg"], 1.0 - spec.alpha, m.mul(grad, grad))
    new_state = {"square_avg": square_avg}
    scaled = m.div(grad, m.add(m.sqrt(square_avg), m.c(spec.eps)))
    if spec.momentum:
        scaled = m.add(m.mul(m.c(spec.momentum), state["momentum"]), scaled)
        new_state["momentum"] = scaled
    return m.sub(param, m.mul(lr, scaled)), new_state


def _adam(m, spec, param, grad, state, lr, step):
    first = m.axpby(spec.beta1, state["m"], 1.0 - spec.beta1, grad)
    second = m.axpby(spec.beta2, state["v"], 1.0 - spec.beta2, m.mul(grad, grad))
    correction1 = m.sub(m.c(1.0), m.pow(m.c(spec.beta1), step))      # scalars: cheap
    correction2 = m.sub(m.c(1.0), m.pow(m.c(spec.beta2), step))
    step_size = m.div(lr, correction1)
    denominator = m.add(m.div(m.sqrt(second), m.sqrt(correction2)), m.c(spec.eps))
    new_param = m.sub(param, m.mul(step_size, m.div(first, denominator)))
    return new_param, {"m": first, "v": second}
