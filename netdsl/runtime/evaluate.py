"""Validation and test scores: the loss and metrics of the inference graph over a data set.

`fit` (runtime/train.py) makes one Evaluator per run and calls it after every epoch on the
validation split, and once at the end on the test set.
"""
from __future__ import annotations

import numpy as np

from .batcher import Batcher
from .metrics import MetricSet, make_metric


class Evaluator:
    """Validation: loss and metrics of the inference graph over a data set, batched.

    The compiled graph is bound once per evaluation to the weights (compiled.bind: on the cuda
    target they go to the device once, not per chunk), the chunks are views of the data
    (runtime/batcher.py) and the metrics share each chunk's class ids (metrics.MetricSet)."""

    def __init__(self, model, target: str, metric_names: list[str], label: str | None,
                 prediction: str | None):
        self.compiled, self.reused = model.compiled_evaluation(target)
        self.graph = self.compiled.graph
        self.metric_names, self.label, self.prediction = metric_names, label, prediction
        self.loss_names = [loss.name for loss in self.graph.losses]
        self.ignore_index = model.graph.ignored_labels.get(label)
        self._binding: tuple | None = None          # (ids of the weights bound, the step)

    def __call__(self, weights: dict[str, np.ndarray], dataset: dict[str, np.ndarray],
                 batch: int) -> dict[str, float]:
        totals = {name: 0.0 for name in self.loss_names}
        metrics = MetricSet({name: make_metric(name, ignore_index=self.ignore_index)
                             for name in self.metric_names})
        count = 0
        names = [v.name for v in self.graph.inputs if v.name != "__rng__"]
        if any(name not in dataset for name in names):      # run() says which is missing
            self.compiled.run({**weights, **{name: dataset[name] for name in names
                                             if name in dataset}, "__rng__": 0})
        rng = ["__rng__"] if len(names) < len(self.graph.inputs) else []
        step = self._bound(weights, names + rng)
        where = {name: step.output_names.index(name) for name in self.loss_names}
        predicted = step.output_names.index(self.prediction) \
            if self.label and self.prediction else None
        fed = names + ([self.label] if self.label and self.label not in names else [])
        batcher = Batcher(dataset, max(batch, 256), fed)
        for number in range(batcher.count):
            arrays = batcher.gather(None, number)
            results = step(*arrays[:len(names)], *([0] if rng else []))
            size = batcher.size(number)
            count += size
            for name, index in where.items():
                totals[name] += float(results[index]) * size
            if predicted is not None:
                metrics.update(results[predicted], arrays[fed.index(self.label)])
        out = {name: value / max(count, 1) for name, value in totals.items()}
        out.update(metrics.results())
        return out

    def _bound(self, weights: dict[str, np.ndarray], inputs: list[str]):
        """The graph bound to `weights`: kept while they are the same arrays (fit's storage,
        epoch after epoch: the arena is not laid out again), refreshed where the binding holds
        copies (the cuda target's device arrays)."""
        key = (tuple(inputs), tuple(id(weights.get(info.name)) for info in self.graph.params))
        if self._binding is None or self._binding[0] != key:
            self._binding = (key, self.compiled.bind(weights, inputs=inputs))
        else:
            upload = getattr(getattr(self._binding[1], "bound", None), "upload", None)
            if upload is not None:
                upload()
        return self._binding[1]


__all__ = ["Evaluator"]
