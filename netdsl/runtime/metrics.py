"""Classification metrics (accuracy, precision, recall, f1, iou, confusion), batch by batch.

Every metric is computed from one confusion matrix (rows: true class, columns: predicted), so a
`Metric` accumulates that matrix over batches and `result()` reads the metric off it; the value
is exactly what one call on the whole data set would give.

Predictions may be logits or probabilities [N, C] (argmax over axis 1; [N, C, H, W] for
segmentation works the same), one probability column [N, 1] or [N] (class 1 when >= threshold,
0.5 by default), or integer class ids [N].  Labels may be integer ids [N], one-hot [N, C], or
float [N, 1] / [N] holding class ids (0.0 / 1.0 for binary).  Sequence predictions [B, T, C]
with integer labels [B, T] take the class axis last (as cross_entropy does; when both readings
fit, this one wins), and `ignore_index` leaves out the positions whose label is that value
(padding), as cross_entropy's `ignore_index` does.

Averaging follows scikit-learn: with two classes, precision, recall and f1 are those of class 1
(sklearn's average="binary"); with more, they are the unweighted mean over the classes that occur
in labels or predictions (average="macro"; a class with an empty denominator scores 0).  `iou`
is the mean intersection-over-union over the classes that occur (sklearn's jaccard_score with
average="macro"), the usual mean IoU of segmentation.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import Error, did_you_mean
from ..source import Span


def to_class_ids(predictions, labels, threshold: float = 0.5, ignore_index: int | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """Flatten predictions and labels to integer class ids; also return the class count seen."""
    predicted, truth, classes = _class_ids(predictions, labels, threshold)
    if ignore_index is not None:
        keep = truth != ignore_index
        truth, predicted = truth[keep], predicted[keep]
    _check_non_negative(truth, predicted)
    seen = int(max(truth.max(initial=-1), predicted.max(initial=-1))) + 1
    return predicted.reshape(-1), truth.reshape(-1), max(classes, seen)


def _check_non_negative(truth: np.ndarray, predicted: np.ndarray) -> None:
    if truth.size and (truth.min() < 0 or predicted.min() < 0):
        raise Error("metric labels and predicted classes must be non-negative class ids")


def _check_classes(classes: int, num_classes: int | None) -> None:
    """An Error when the predictions or labels have more classes than the metric expects."""
    if num_classes is not None and classes > num_classes:
        raise Error(f"the metric expects {num_classes} classes but the predictions or "
                    f"labels have {classes}")


def _class_ids(predictions, labels, threshold: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Predicted and true class ids, of one shape (not yet flattened or filtered), and the
    class count the predictions' or labels' shape says (0 when neither does)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.ndim == 0 or labels.ndim == 0:
        raise Error("metrics need arrays with one entry per example, got a scalar")
    if predictions.ndim >= 3 and labels.dtype.kind in "iu" \
            and labels.shape == predictions.shape[:-1]:
        predictions = np.moveaxis(predictions, -1, 1)       # [B, T, C] scores: class axis last
    classes = 0
    # A class axis of size > 1 in position 1 of the predictions means scores per class.
    if predictions.ndim >= 2 and predictions.shape[1] > 1:
        classes = predictions.shape[1]
        predicted = np.argmax(predictions, axis=1)
    else:
        if predictions.ndim >= 2:
            predictions = predictions.reshape(predictions.shape[:1] + predictions.shape[2:])
        if predictions.dtype.kind == "f":
            predicted = (predictions >= threshold).astype(np.int64)
            classes = 2
        else:
            predicted = predictions.astype(np.int64)
    if labels.ndim == predicted.ndim + 1 and labels.shape[1] > 1:
        classes = max(classes, labels.shape[1])
        truth = np.argmax(labels, axis=1)
    else:
        if labels.ndim == predicted.ndim + 1 and labels.shape[1] == 1:
            labels = labels.reshape(labels.shape[:1] + labels.shape[2:])
        if labels.dtype.kind == "f":
            truth = np.rint(labels).astype(np.int64)
        else:
            truth = labels.astype(np.int64)
    if truth.shape != predicted.shape:
        raise Error(f"metric predictions and labels do not line up: predictions give classes of "
                    f"shape {list(predicted.shape)}, labels {list(truth.shape)}",
                    hint="predictions are [N, C] scores, [N, 1] / [N] probabilities or [N] class ids; "
                         "labels [N] ids or [N, C] one-hot")
    return predicted, truth, classes


def epoch_confusions(predictions, labels, threshold: float = 0.5,
                     ignore_index: int | None = None,
                     num_classes: int | None = None) -> list[np.ndarray]:
    """Per epoch, the confusion matrix that a MetricSet fed the epoch's batches would count,
    for `predictions` and `labels` of shape [epochs, examples, ...] (an epoch's rows in the
    order they ran): the same counts and the same size (the classes the shapes say, or seen
    in that epoch, or `num_classes`), from one pass over all the epochs (compiled epochs,
    runtime/compiled_epochs.py)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    epochs, examples = predictions.shape[:2]
    predicted, truth, classes = _class_ids(
        predictions.reshape((epochs * examples,) + predictions.shape[2:]),
        labels.reshape((epochs * examples,) + labels.shape[2:]), threshold)
    epoch = np.repeat(np.arange(epochs), predicted.size // max(epochs, 1))
    predicted, truth = predicted.reshape(-1), truth.reshape(-1)
    if ignore_index is not None:
        keep = truth != ignore_index
        truth, predicted, epoch = truth[keep], predicted[keep], epoch[keep]
    _check_non_negative(truth, predicted)
    seen = np.full(epochs, -1, np.int64)
    np.maximum.at(seen, epoch, np.maximum(truth, predicted))
    sizes = np.maximum(seen + 1, classes)
    _check_classes(int(sizes.max(initial=0)), num_classes)
    if num_classes is not None:
        sizes[:] = num_classes
    size = int(sizes.max(initial=0))
    counts = np.bincount((epoch * size + truth) * size + predicted,
                         minlength=epochs * size * size).reshape(epochs, size, size)
    return [counts[e, :sizes[e], :sizes[e]].copy() for e in range(epochs)]


def confusion(predictions, labels, num_classes: int | None = None, threshold: float = 0.5,
              ignore_index: int | None = None) -> np.ndarray:
    """The confusion matrix [C, C]: entry [t, p] counts examples of class t predicted as p."""
    predicted, truth, classes = to_class_ids(predictions, labels, threshold, ignore_index)
    _check_classes(classes, num_classes)
    if num_classes is not None:
        classes = num_classes
    flat = np.bincount(truth * classes + predicted, minlength=classes * classes)
    return flat.reshape(classes, classes).astype(np.int64)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise division that gives 0 where the denominator is 0 (sklearn's zero_division=0)."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """True positives, predicted counts, true counts, and which classes occur at all."""
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    actual = matrix.sum(axis=1).astype(np.float64)
    return true_positive, predicted, actual, (predicted + actual) > 0


def _average(per_class: np.ndarray, present: np.ndarray) -> float:
    """Class 1 for binary problems, else the mean over classes that occur."""
    if len(per_class) == 2:
        return float(per_class[1])
    return float(per_class[present].mean()) if present.any() else 0.0


def accuracy_from_confusion(matrix: np.ndarray) -> float:
    """Fraction of examples on the diagonal."""
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else 0.0


def precision_from_confusion(matrix: np.ndarray) -> float:
    """Binary precision of class 1, or macro precision."""
    true_positive, predicted, _, present = _per_class(matrix)
    return _average(_safe_divide(true_positive, predicted), present)


def recall_from_confusion(matrix: np.ndarray) -> float:
    """Binary recall of class 1, or macro recall."""
    true_positive, _, actual, present = _per_class(matrix)
    return _average(_safe_divide(true_positive, actual), present)


def f1_from_confusion(matrix: np.ndarray) -> float:
    """Binary F1 of class 1, or macro F1 (mean of per-class F1, as sklearn computes it)."""
    true_positive, predicted, actual, present = _per_class(matrix)
    return _average(_safe_divide(2 * true_positive, predicted + actual), present)


def iou_from_confusion(matrix: np.ndarray) -> float:
    """Mean intersection over union across the classes that occur."""
    true_positive, predicted, actual, present = _per_class(matrix)
    per_class = _safe_divide(true_positive, predicted + actual - true_positive)
    return float(per_class[present].mean()) if present.any() else 0.0


# The metrics whose value is a matrix, not a score: no table column, curve or monitor.
MATRICES = ("confusion",)
# Each metric's reading of a confusion matrix; `confusion` returns the matrix itself.
METRICS: dict[str, Callable[[np.ndarray], float | np.ndarray]] = {
    "accuracy": accuracy_from_confusion,
    "precision": precision_from_confusion,
    "recall": recall_from_confusion,
    "f1": f1_from_confusion,
    "iou": iou_from_confusion,
    "confusion": lambda matrix: matrix.copy(),
}


class Metric:
    """A streaming metric: `update(predictions, labels)` per batch, then `result()`."""

    def __init__(self, name: str, num_classes: int | None = None, threshold: float = 0.5,
                 span: Span | None = None, ignore_index: int | None = None):
        self.name = name
        self.ignore_index = ignore_index
        self.summary = _lookup(name, span)
        self.num_classes = num_classes
        self.threshold = threshold
        self.matrix = np.zeros((num_classes or 0, num_classes or 0), dtype=np.int64)

    def update(self, predictions, labels) -> None:
        """Add one batch to the running confusion matrix."""
        batch = confusion(predictions, labels, self.num_classes, self.threshold,
                          self.ignore_index)
        # Batches may see different class counts (e.g. class 9 first appears late): grow to fit.
        size = max(len(batch), len(self.matrix))
        self.matrix = _pad(self.matrix, size) + _pad(batch, size)

    def result(self) -> float | np.ndarray:
        """The metric over every example seen since construction or `reset()`."""
        return self.summary(self.matrix)

    def reset(self) -> None:
        """Forget every batch seen so far."""
        size = self.num_classes or 0
        self.matrix = np.zeros((size, size), dtype=np.int64)


class MetricSet:
    """Several metrics of one prediction and label, fed batch by batch as training feeds them:
    each batch's class ids are found once for all of them (`to_class_ids`, which also raises
    for predictions and labels that do not line up, at that batch), and the confusion matrix
    is counted from the ids of many batches at once (`flush`, before anything reads the
    metrics' matrices).  Every metric must share the threshold, class count and ignore_index
    (make_metric's defaults with one ignore_index, as fit makes them)."""

    # Ids kept before a flush counts them, bounding the memory (8 bytes each, twice).
    FLUSH_IDS = 1 << 20

    def __init__(self, metrics: dict[str, Metric]):
        self.metrics = metrics
        first = next(iter(metrics.values()), None)
        self.threshold = first.threshold if first is not None else 0.5
        self.ignore_index = first.ignore_index if first is not None else None
        self.num_classes = first.num_classes if first is not None else None
        self._predicted: list[np.ndarray] = []
        self._truth: list[np.ndarray] = []
        self._classes = 0
        self._kept = 0

    def update(self, predictions, labels) -> None:
        """Add one batch (as `Metric.update` does to each metric)."""
        if not self.metrics:
            return
        predicted, truth, classes = to_class_ids(predictions, labels, self.threshold,
                                                 self.ignore_index)
        _check_classes(classes, self.num_classes)
        self._predicted.append(predicted)
        self._truth.append(truth)
        self._classes = max(self._classes, classes)
        self._kept += predicted.size
        if self._kept >= self.FLUSH_IDS:
            self.flush()

    def flush(self) -> None:
        """Count the batches kept so far into every metric's confusion matrix."""
        if not self._predicted:
            return
        classes = self.num_classes if self.num_classes is not None else self._classes
        predicted = np.concatenate(self._predicted)
        truth = np.concatenate(self._truth)
        counted = np.bincount(truth * classes + predicted, minlength=classes * classes)
        batch = counted.reshape(classes, classes).astype(np.int64)
        for metric in self.metrics.values():
            size = max(len(batch), len(metric.matrix))
            metric.matrix = _pad(metric.matrix, size) + _pad(batch, size)
        self._predicted, self._truth, self._classes, self._kept = [], [], 0, 0

    def results(self) -> dict[str, float | np.ndarray]:
        """Every metric's value over the batches seen."""
        self.flush()
        return {name: metric.result() for name, metric in self.metrics.items()}


def _pad(matrix: np.ndarray, size: int) -> np.ndarray:
    """`matrix` grown with zeros to [size, size] (itself when it has that size already)."""
    if len(matrix) == size:
        return matrix
    grown = np.zeros((size, size), dtype=np.int64)      # not np.pad: ~30 us a call of the
    grown[:len(matrix), :len(matrix)] = matrix          # ~90 an epoch of XOR's metrics
    return grown


def _lookup(name: str, span: Span | None):
    summary = METRICS.get(name)
    if summary is None:
        suggestion = did_you_mean(name, METRICS)
        known = ", ".join(METRICS)
        raise Error(f"unknown metric '{name}'", span,
                    hint=(suggestion + " " if suggestion else "") + f"metrics: {known}")
    return summary


def metric_sources(metrics: list[str], model: str, outputs: list[str], labels: list[str],
                   span: Span | None = None) -> tuple[str | None, str | None]:
    """(label input, prediction output) that metrics compare: the first `out`, and the one input
    that only the loss reads.  When metrics are asked for and either is missing or ambiguous,
    an Error at `span` (the train section's `metrics` key) instead of scores of 0."""
    prediction = outputs[0] if outputs else None
    label = labels[0] if len(labels) == 1 else None
    if not metrics:
        return label, prediction
    asked = ", ".join(metrics)
    if prediction is None:
        raise Error(f"metrics ({asked}) score the model's first `out`, but model {model} has "
                    f"no `out`", span,
                    hint="add one, e.g. `out probs = softmax(logits)`, or remove `metrics`")
    if label is None:
        found = (f"it has several ({', '.join(labels)})" if labels
                 else "every input of the model is also read by its `out`s")
        raise Error(f"metrics ({asked}) compare `out {prediction}` with the label, the one "
                    f"input only the loss reads, but {found}", span,
                    hint="remove `metrics`, or make the label the only input used by the loss "
                         "alone")
    return label, prediction


def check_metric_labels(metrics: list[str], label: str, labels, span: Span | None = None,
                        where: str = "the data") -> None:
    """Float labels of one per example ([N] or [N, 1]) that metrics read as class ids must be
    whole numbers from 0: other values are a regression's targets, which `to_class_ids` would
    round into meaningless classes (or reject mid-training).  Integer labels are checked by
    the data's range checks; [N, C] rows (one-hot or soft) are read by their argmax."""
    labels = np.asarray(labels)
    if not metrics or labels.dtype.kind != "f" or labels.size == 0 or \
            not (labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1)):
        return
    finite = labels[np.isfinite(labels)]
    bad = finite[(finite < 0) | (finite != np.rint(finite))]
    if bad.size:
        raise Error(f"metrics ({', '.join(metrics)}) compare classes, but the label '{label}' "
                    f"in {where} holds {float(bad[0]):.6g}, not a class id: classification "
                    "metrics do not apply to a regression target", span,
                    hint="remove `metrics`, or give class ids (0, 1, ...) as labels")


def make_metric(name: str, span: Span | None = None, num_classes: int | None = None,
                threshold: float = 0.5, ignore_index: int | None = None) -> Metric:
    """A fresh streaming metric by name; unknown names raise Error with did-you-mean."""
    return Metric(name, num_classes, threshold, span, ignore_index)


def compute(name: str, predictions, labels, span: Span | None = None, **options) -> float | np.ndarray:
    """One metric by name over one set of predictions and labels."""
    metric = make_metric(name, span, **options)
    metric.update(predictions, labels)
    return metric.result()


def accuracy(predictions, labels, threshold: float = 0.5, ignore_index: int | None = None) -> float:
    """Fraction of examples whose predicted class is the label."""
    return compute("accuracy", predictions, labels, threshold=threshold, ignore_index=ignore_index)


def precision(predictions, labels, threshold: float = 0.5, ignore_index: int | None = None) -> float:
    """Precision: of class 1 for binary problems, macro-averaged otherwise."""
    return compute("precision", predictions, labels, threshold=threshold, ignore_index=ignore_index)


def recall(predictions, labels, threshold: float = 0.5, ignore_index: int | None = None) -> float:
    """Recall: of class 1 for binary problems, macro-averaged otherwise."""
    return compute("recall", predictions, labels, threshold=threshold, ignore_index=ignore_index)


def f1(predictions, labels, threshold: float = 0.5, ignore_index: int | None = None) -> float:
    """F1 score: of class 1 for binary problems, macro-averaged otherwise."""
    return compute("f1", predictions, labels, threshold=threshold, ignore_index=ignore_index)


def iou(predictions, labels, threshold: float = 0.5, ignore_index: int | None = None) -> float:
    """Mean intersection over union across the classes that occur."""
    return compute("iou", predictions, labels, threshold=threshold, ignore_index=ignore_index)
