"""Parameter initialisers: the `.net` names, their arguments, and their NumPy implementations.

Conventions follow PyTorch where a layer has a PyTorch twin (fan-in of `Dense.weight` [out, in] is
`in`; of `Conv2D.weight` [out, in, kh, kw] is `in * kh * kw`).  A raw `param w: f32[D, H]` is used
as `x @ w`, so its fan-in is the first axis (Keras' convention for kernels).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import Error, did_you_mean
from ..source import Span


@dataclass(frozen=True)
class InitSpec:
    """An initialiser as written: `he`, `normal(0.02)`, `uniform(-0.1, 0.1)`, `constant(1)`."""

    kind: str
    args: tuple[float, ...] = ()

    def __str__(self) -> str:
        return self.kind + (f"({', '.join(f'{a:.4g}' for a in self.args)})" if self.args else "")


# name -> (positional parameter names, defaults): what a user may write after `=`.
INITIALIZERS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "zeros": ((), ()),
    "ones": ((), ()),
    "constant": (("value",), ()),
    "normal": (("std", "mean"), (0.01, 0.0)),
    "uniform": (("low", "high"), (-0.05, 0.05)),
    "xavier": (("gain",), (1.0,)),
    "xavier_uniform": (("gain",), (1.0,)),
    "xavier_normal": (("gain",), (1.0,)),
    "he": (("gain",), (2.0 ** 0.5,)),
    "he_normal": (("gain",), (2.0 ** 0.5,)),
    "he_uniform": (("gain",), (2.0 ** 0.5,)),
    "orthogonal": (("gain",), (1.0,)),
}


def make_init(name: str, args=(), kwargs=(), span: Span | None = None) -> InitSpec:
    """`name(args..., key=value...)` checked against INITIALIZERS: known name, arity, numbers.

    `kwargs` is a sequence of (name, value) pairs; they fill the named positions.  Every
    spelling a user may write (`param w = normal(0.02)`, `Dense(4, init=uniform(-0.1, 0.1))`)
    comes through here, so they all accept and refuse the same things.
    """
    if name not in INITIALIZERS:
        raise Error(f"unknown initialiser '{name}'", span,
                    did_you_mean(name, INITIALIZERS) or f"initialisers: {', '.join(INITIALIZERS)}")
    names, defaults = INITIALIZERS[name]
    required = len(names) - len(defaults)
    signature = ", ".join(names) or "no arguments"
    if len(args) > len(names):
        raise Error(f"initialiser {name} takes at most {len(names)} argument"
                    f"{'s' if len(names) != 1 else ''} ({signature}), got {len(args)}", span)
    values: dict[str, object] = dict(zip(names, args))
    for key, value in kwargs:
        if key not in names:
            raise Error(f"initialiser {name} has no argument '{key}'", span,
                        did_you_mean(key, names) or f"{name} takes: {signature}")
        if key in values:
            raise Error(f"initialiser {name} got argument '{key}' twice", span)
        values[key] = value
    for key, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise Error(f"initialiser {name}: argument '{key}' expects a number, got {value!r}",
                        span)
    missing = [key for key in names[:required] if key not in values]
    if missing:
        raise Error(f"initialiser {name} needs its argument '{missing[0]}'", span,
                    f"e.g. `{name}({', '.join('0.1' for _ in names[:required])})`")
    # Stored positionally, leaving off trailing defaults so `str(spec)` reads as written.
    filled = [values.get(key, default) for key, default in
              zip(names, (None,) * required + tuple(defaults))]
    problem = _bad_values(name, dict(zip(names, filled)))
    if problem:
        raise Error(f"initialiser {name}: {problem}", span)
    while len(filled) > required and names[len(filled) - 1] not in values:
        filled.pop()
    return InitSpec(name, tuple(float(v) for v in filled))


def _bad_values(name: str, values: dict[str, float]) -> str | None:
    """Why these arguments cannot be drawn from (NumPy would raise), or None."""
    largest = float(np.finfo(np.float32).max)
    if any(not math.isfinite(v) or abs(v) > largest for v in values.values()):
        return "arguments must be finite numbers that fit in f32"
    if values.get("std", 0.0) < 0:
        return f"the standard deviation must not be negative, got {values['std']:g}"
    if name == "uniform" and values["low"] > values["high"]:
        return f"low ({values['low']:g}) is above high ({values['high']:g})"
    return None


def init_problem(spec: InitSpec) -> str | None:
    """Why `spec` cannot be drawn (a required argument missing), or None."""
    names, defaults = INITIALIZERS.get(spec.kind, ((), ()))
    required = len(names) - len(defaults)
    if spec.kind not in INITIALIZERS:
        return f"unknown initialiser '{spec.kind}'"
    if len(spec.args) < required:
        return f"initialiser {spec.kind} needs its argument '{names[len(spec.args)]}'"
    return None


def default_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Fan-in and fan-out of a raw parameter: [in, out] matrices, [out, in, k...] kernels."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


def param_rng(seed: int, name: str) -> np.random.Generator:
    """A generator per parameter, keyed by its name: adding a layer never reshuffles the others."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def initialize(spec: InitSpec, shape: tuple[int, ...], rng: np.random.Generator,
               fans: tuple[int, int] | None = None, dtype=np.float32) -> np.ndarray:
    """Draw one parameter's initial value."""
    names, defaults = INITIALIZERS[spec.kind]
    required = len(names) - len(defaults)
    args = list(spec.args) + list(defaults[max(len(spec.args) - required, 0):])
    fan_in, fan_out = fans or default_fans(shape)
    kind = spec.kind
    if kind == "zeros":
        value = np.zeros(shape)
    elif kind == "ones":
        value = np.ones(shape)
    elif kind == "constant":
        value = np.full(shape, args[0])
    elif kind == "normal":
        std, mean = args[0], args[1]
        value = rng.normal(mean, std, shape)
    elif kind == "uniform":
        value = rng.uniform(args[0], args[1], shape)
    elif kind in ("xavier", "xavier_uniform"):
        limit = args[0] * np.sqrt(6.0 / (fan_in + fan_out))
        value = rng.uniform(-limit, limit, shape)
    elif kind == "xavier_normal":
        value = rng.normal(0.0, args[0] * np.sqrt(2.0 / (fan_in + fan_out)), shape)
    elif kind in ("he", "he_normal"):
        value = rng.normal(0.0, args[0] / np.sqrt(fan_in), shape)
    elif kind == "he_uniform":
        limit = args[0] * np.sqrt(3.0 / fan_in)
        value = rng.uniform(-limit, limit, shape)
    elif kind == "orthogonal":
        value = _orthogonal(shape, rng, args[0])
    else:                                   # validated when the .net file was lowered
        raise ValueError(f"unknown initialiser {kind}")
    # np.array, not np.ascontiguousarray: the latter turns a scalar param's 0-d value into
    # shape [1], which then fails the declared type f32[].
    return np.array(value, dtype=dtype, order="C")


def _orthogonal(shape: tuple[int, ...], rng: np.random.Generator, gain: float) -> np.ndarray:
    """Saxe et al.'s orthogonal init, as torch.nn.init.orthogonal_ (rows flattened)."""
    if len(shape) < 2:
        return rng.normal(0.0, 1.0, shape) * gain
    rows = shape[0]
    cols = int(np.prod(shape[1:]))
    flat = rng.normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q.reshape(shape)
