"""`netdsl gradcheck`: symbolic gradients against central finite differences, per parameter.

Both sides run on the reference backend in float64 (the graph is promoted), so the comparison
tests the differentiator, not float32 rounding.  Random ops see the same counter in every
evaluation, so dropout masks do not change between the two sides.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends.reference import run
from ..passes.precision import to_float64
from ..passes.training import loss_and_grad_graph


@dataclass
class ParamCheck:
    """The result for one parameter."""

    name: str
    shape: tuple
    checked: int            # how many coordinates were perturbed
    max_abs_error: float
    max_rel_error: float

    def ok(self, tolerance: float) -> bool:
        return self.max_rel_error <= tolerance


def synthetic_inputs(graph, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random data for each input: normal floats, small non-negative integers."""
    arrays = {}
    for value in graph.inputs:
        if value.name.startswith("__"):
            continue
        shape = tuple(d if isinstance(d, int) else (batch if i == 0 else 3)
                      for i, d in enumerate(value.shape))
        if value.dtype.is_float:
            arrays[value.name] = rng.normal(size=shape).astype(value.dtype.numpy)
        else:
            arrays[value.name] = rng.integers(0, 2, size=shape).astype(value.dtype.numpy)
    return arrays


def gradcheck(model, weights: dict[str, np.ndarray], inputs: dict[str, np.ndarray], *,
              epsilon: float = 1e-6, samples: int = 12, seed: int = 0) -> list[ParamCheck]:
    """Compare the symbolic gradient of the model's loss with finite differences."""
    graph = to_float64(loss_and_grad_graph(model.training_forward))
    arrays = {name: np.asarray(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else a
              for name, a in model._arrays(graph, weights, inputs, step=1).items()}
    for info in graph.params:
        if info.name not in arrays:
            arrays[info.name] = np.zeros(tuple(info.value.shape), np.float64)
    results = run(graph, {k: np.array(v) for k, v in arrays.items()})
    loss_only = graph.restricted({"loss": graph.outputs["loss"]})
    rng = np.random.default_rng(seed)
    checks = []
    for info in graph.params:
        if not info.trainable:
            continue
        symbolic = results[f"grad.{info.name}"]
        base = arrays[info.name]
        count = base.size
        coordinates = range(count) if count <= samples else \
            rng.choice(count, size=samples, replace=False)
        abs_errors, rel_errors = [], []
        for flat in coordinates:
            index = np.unravel_index(int(flat), base.shape)
            numeric = _central_difference(loss_only, arrays, info.name, index, epsilon)
            exact = float(symbolic[index])
            error = abs(numeric - exact)
            abs_errors.append(error)
            rel_errors.append(error / max(abs(numeric) + abs(exact), 1e-7))
        checks.append(ParamCheck(info.name, base.shape, len(abs_errors),
                                 max(abs_errors, default=0.0), max(rel_errors, default=0.0)))
    return checks


def _central_difference(graph, arrays, name, index, epsilon) -> float:
    values = []
    for sign in (1.0, -1.0):
        trial = {k: np.array(v) for k, v in arrays.items()}
        trial[name][index] += sign * epsilon
        values.append(float(run(graph, trial)["loss"]))
    return (values[0] - values[1]) / (2 * epsilon)
