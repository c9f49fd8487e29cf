"""Parameter initialisers: the `.net` names, their arguments, and their NumPy implementations.

Conventions follow PyTorch where a layer has a PyTorch twin (fan-in of `Dense.weight` [out, in] is
`in`; of `Conv2D.weight` [out, in, kh, kw] is `in * kh * kw`).  A raw `param w: f32[D, H]` is used
as `x @ w`, so its fan-in is the first axis (Keras' convention for kernels).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


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
    return np.ascontiguousarray(value, dtype=dtype)


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
