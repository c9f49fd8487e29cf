"""`netdsl gradcheck`: symbolic gradients against central finite differences, per parameter.

Both sides run on the reference backend in float64 (the graph is promoted), so the comparison
tests the differentiator, not float32 rounding.  Random ops see the same counter in every
evaluation, so dropout masks do not change between the two sides.

A coordinate passes when |numeric - symbolic| <= max(rtol * (|numeric| + |symbolic|), floor):
the absolute floor (at least `atol`, and at least the rounding error of a difference quotient
of this loss) keeps true gradients of 0 from failing on noise.  A coordinate that fails is
looked at again before it is called wrong: where the left and right one-sided differences
disagree, and still disagree as much with a step ten times smaller, the loss has a kink there
(a ReLU or max exactly at its switch, e.g. a conv bias of 0 on an image with exact zeros), no
gradient exists to compare, and the coordinate is skipped as a non-differentiable point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends.reference import run
from ..compiler import GRADIENTS, compile_step
from ..errors import Error
from ..passes.precision import to_float64

# The rounding error of one float64 loss evaluation, in units of eps * |loss|: generous, since
# a loss sums many terms.
_ROUNDING = 100.0


@dataclass
class ParamCheck:
    """The result for one parameter."""

    name: str
    shape: tuple
    checked: int            # how many coordinates were perturbed
    max_abs_error: float    # over the coordinates compared (not the skipped ones)
    max_rel_error: float    # error / max(|numeric| + |symbolic|, floor / rtol): <= rtol passes
    failed: int = 0         # coordinates where the gradient is wrong
    skipped: int = 0        # non-differentiable points: no gradient to compare

    def ok(self, tolerance: float | None = None) -> bool:
        """Whether every compared coordinate passed (the tolerance was applied per coordinate)."""
        return self.failed == 0

    @property
    def verdict(self) -> str:
        if self.failed:
            return "FAIL"
        if self.skipped == self.checked and self.checked:
            return "skipped: non-differentiable point"
        if self.skipped:
            return f"ok ({self.skipped} skipped: non-differentiable point)"
        return "ok"


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
              epsilon: float = 1e-6, samples: int = 12, seed: int = 0, rtol: float = 1e-5,
              atol: float = 1e-8, target: str = "reference") -> list[ParamCheck]:
    """Compare the symbolic gradient of the model's loss with finite differences.

    The symbolic gradients are computed by `target` (the reference interpreter, or a compiled
    target running the float64 graph: a check of its generated code too); the finite
    differences always by the reference."""
    # The gradient graph as built, promoted to float64: no pass pipeline, so the check is of
    # the symbolic gradients themselves.
    graph = to_float64(compile_step(model.training_forward, "reference", GRADIENTS,
                                    stop_after="training"))
    arrays = {name: np.asarray(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else a
              for name, a in model._arrays(graph, weights, inputs, step=1).items()}
    for info in graph.params:
        if info.name not in arrays:
            arrays[info.name] = np.zeros(tuple(info.value.shape), np.float64)
    if target == "reference":
        results = run(graph, {k: np.array(v) for k, v in arrays.items()})
    else:
        from ..backends import compile_graph
        results = compile_graph(graph, target).run({k: np.array(v) for k, v in arrays.items()})
    loss = _Loss(graph.restricted({"loss": graph.outputs["loss"]}), arrays)
    if not np.isfinite(loss.base):
        raise Error(f"the loss of model {model.name} is {loss.base} at the initial weights, so "
                    f"there is no gradient to check",
                    hint="check the data (an empty batch, or NaN in it) and the initialisers")
    floor = max(atol, _ROUNDING * np.finfo(np.float64).eps * max(1.0, abs(loss.base)) / epsilon)
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
        check = ParamCheck(info.name, base.shape, 0, 0.0, 0.0)
        for flat in coordinates:
            index = np.unravel_index(int(flat), base.shape)
            verdict, error, relative = _compare(loss, info.name, index, float(symbolic[index]),
                                                epsilon, rtol, floor)
            check.checked += 1
            if verdict == "skipped":
                check.skipped += 1
                continue
            check.failed += verdict == "fail"
            check.max_abs_error = max(check.max_abs_error, error)
            check.max_rel_error = max(check.max_rel_error, relative)
        checks.append(check)
    return checks


class _Loss:
    """The loss as a function of one coordinate of one parameter, the others held fixed."""

    def __init__(self, graph, arrays):
        self.graph, self.arrays = graph, arrays
        self.base = float(run(graph, {k: np.array(v) for k, v in arrays.items()})["loss"])

    def at(self, name: str, index: tuple, delta: float) -> float:
        trial = {k: np.array(v) for k, v in self.arrays.items()}
        trial[name][index] += delta
        return float(run(self.graph, trial)["loss"])


def _compare(loss: _Loss, name: str, index: tuple, exact: float, epsilon: float, rtol: float,
             floor: float) -> tuple[str, float, float]:
    """("ok" | "fail" | "skipped", absolute error, relative error) for one coordinate."""
    step = epsilon
    plus, minus = loss.at(name, index, step), loss.at(name, index, -step)
    error, relative = _errors((plus - minus) / (2 * step), exact, rtol, floor)
    if relative <= rtol:
        return "ok", error, relative
    jump = _one_sided_gap(loss.base, plus, minus, step)
    if jump <= floor:
        return "fail", error, relative      # a smooth point: the symbolic gradient is wrong
    # The one-sided differences disagree: either a kink within `step` of the point, or plain
    # curvature (the gap is then ~ step * |f''| and shrinks with the step).  Look closer.
    step = epsilon / 10
    plus, minus = loss.at(name, index, step), loss.at(name, index, -step)
    error, relative = _errors((plus - minus) / (2 * step), exact, rtol, floor * 10)
    if relative <= rtol:
        return "ok", error, relative        # the kink was near, not at, the point
    if _one_sided_gap(loss.base, plus, minus, step) >= 0.5 * jump:
        return "skipped", error, relative   # the derivative jumps right at the point
    return "fail", error, relative


def _one_sided_gap(base: float, plus: float, minus: float, step: float) -> float:
    """|right difference - left difference|: ~0 where the loss is smooth, the jump at a kink."""
    return abs((plus - base) / step - (base - minus) / step)


def _errors(numeric: float, exact: float, rtol: float, floor: float) -> tuple[float, float]:
    error = abs(numeric - exact)
    # Relative to the gradients' size, but never to less than floor / rtol: an error under the
    # absolute floor always passes, however small the true gradient.
    return error, error / max(abs(numeric) + abs(exact), floor / rtol)
