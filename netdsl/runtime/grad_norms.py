"""The gradient-norm columns of the training history: `grad_norm` and `grad_norm.<layer>`.

Every training step outputs the global L2 norm of its gradients before clipping and each
layer's (passes/training.py: scalars summed inside the compiled step, so no gradient is copied
out).  An epoch's row holds their mean over the steps of the epoch (each step counts once,
whatever its batch size).  With several objectives (a GAN's), each has its own gradients:
`grad_norm.<objective>` and `grad_norm.<objective>.<layer>`.  The epoch table leaves them out
(progress.is_diagnostic); the history, `--log` files and TensorBoard have them.
"""
from __future__ import annotations

from typing import Any

from ..passes.training import GRAD_NORM_OUTPUT, GRAD_NORM_PREFIX


def norm_outputs(output_names: list[str]) -> dict[str, int]:
    """The gradient-norm outputs of a step: name (`grad_norm`, `grad_norm.<layer>`) -> index."""
    return {name: index for index, name in enumerate(output_names)
            if name == GRAD_NORM_OUTPUT or name.startswith(GRAD_NORM_PREFIX)}


class GradNorms:
    """Sums of the norms over an epoch's steps, and their means as history columns."""

    def __init__(self, steps: list):
        # (column, step index, output index) of every norm of every step.
        self.columns: list[tuple[str, int, int]] = []
        for number, step in enumerate(steps):
            for name, output in step.grad_norms.items():
                if len(steps) > 1:
                    name = GRAD_NORM_PREFIX + step.objective + name[len(GRAD_NORM_OUTPUT):]
                self.columns.append((name, number, output))
        self.step_count = len(steps)
        # Per step, (column number, output index) of its norms: `add` runs on every batch.
        self._by_step = [[(number, output) for number, (_, index, output)
                          in enumerate(self.columns) if index == step_index]
                         for step_index in range(len(steps))]
        self.start()

    def start(self, partial: dict | None = None) -> None:
        """A new epoch: zero sums, or a resumed partial epoch's (when they fit)."""
        self.sums = [0.0] * len(self.columns)
        self.updates = [0] * self.step_count
        if isinstance(partial, dict):
            sums, updates = partial.get("sums"), partial.get("updates")
            if _numbers(sums, len(self.columns)) and _numbers(updates, self.step_count):
                self.sums, self.updates = [float(v) for v in sums], [int(v) for v in updates]

    def add(self, step_index: int, outputs: Any) -> None:
        """Count one run of step `step_index` with its `outputs`."""
        self.updates[step_index] += 1
        sums = self.sums
        for number, output in self._by_step[step_index]:
            sums[number] += float(outputs[output])

    def outputs_of(self, step_index: int) -> list[tuple[int, int]]:
        """(column number into `sums`, output index) of each norm of step `step_index`: what
        the training loop adds per run when it keeps the sums itself (runtime/epoch.py)."""
        return self._by_step[step_index]

    def row(self) -> dict[str, float]:
        """The epoch's mean of every norm (steps that never ran are left out)."""
        return {column: total / self.updates[index]
                for (column, index, _), total in zip(self.columns, self.sums)
                if self.updates[index]}

    def partial(self) -> dict:
        """The sums so far, for a resume state saved mid-epoch."""
        return {"sums": list(self.sums), "updates": list(self.updates)}


def _numbers(values: Any, length: int) -> bool:
    return isinstance(values, list) and len(values) == length and \
        all(type(value) in (int, float) for value in values)
