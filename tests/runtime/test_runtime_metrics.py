"""Metrics against hand-computed values and scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.errors import Error
from netdsl.runtime import metrics
from netdsl.runtime.metrics import METRICS, Metric, accuracy, confusion, f1, iou, make_metric, precision, recall

# Three classes; true [0, 0, 1, 1, 2, 2], predicted [0, 1, 1, 1, 2, 0].
LABELS = np.array([0, 0, 1, 1, 2, 2])
PREDICTED = np.array([0, 1, 1, 1, 2, 0])
LOGITS = np.eye(3)[PREDICTED] * 3.0 - 1.0


def test_confusion_by_hand():
    expected = [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    np.testing.assert_array_equal(confusion(LOGITS, LABELS), expected)
    np.testing.assert_array_equal(confusion(PREDICTED, LABELS), expected)
    np.testing.assert_array_equal(confusion(LOGITS, np.eye(3)[LABELS]), expected)  # one-hot labels


def test_multiclass_by_hand():
    assert accuracy(LOGITS, LABELS) == pytest.approx(4 / 6)
    # Per class precision: 1/2, 2/3, 1/1; recall: 1/2, 2/2, 1/2.
    assert precision(LOGITS, LABELS) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert recall(LOGITS, LABELS) == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    f1_per_class = [2 * p * r / (p + r) for p, r in ((1 / 2, 1 / 2), (2 / 3, 1), (1, 1 / 2))]
    assert f1(LOGITS, LABELS) == pytest.approx(np.mean(f1_per_class))
    # IoU per class: 1/(1+1+1), 2/(2+1+0), 1/(1+0+1).
    assert iou(LOGITS, LABELS) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_binary_probabilities_threshold():
    probabilities = np.array([[0.9], [0.4], [0.6], [0.1], [0.5]])
    labels = np.array([[1.0], [1.0], [0.0], [0.0], [1.0]])
    # Predicted [1, 0, 1, 0, 1] (0.5 counts as positive); TP=2, FP=1, FN=1.
    assert accuracy(probabilities, labels) == pytest.approx(3 / 5)
    assert precision(probabilities, labels) == pytest.approx(2 / 3)
    assert recall(probabilities[:, 0], labels[:, 0]) == pytest.approx(2 / 3)
    assert f1(probabilities, labels.astype(np.int64)) == pytest.approx(2 / 3)
    assert metrics.accuracy(probabilities, labels, threshold=0.95) == pytest.approx(2 / 5)


def test_segmentation_class_axis():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 3, 3))
    labels = rng.integers(0, 4, size=(2, 3, 3))
    predicted = logits.argmax(axis=1)
    assert accuracy(logits, labels) == pytest.approx((predicted == labels).mean())
    assert confusion(logits, labels).sum() == 18


def test_streaming_equals_whole():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(103, 5))
    labels = rng.integers(0, 5, size=103)
    for name in METRICS:
        metric = make_metric(name)
        for start in range(0, 103, 10):
            metric.update(logits[start:start + 10], labels[start:start + 10])
        whole = metrics.compute(name, logits, labels)
        np.testing.assert_allclose(metric.result(), whole)
        metric.reset()
        metric.update(logits[:3], labels[:3])
        np.testing.assert_allclose(metric.result(), metrics.compute(name, logits[:3], labels[:3]))


def test_streaming_grows_when_new_classes_appear():
    metric = Metric("confusion")
    metric.update(np.array([0, 1]), np.array([0, 1]))
    metric.update(np.array([3]), np.array([2]))
    assert metric.result().shape == (4, 4) and metric.result().sum() == 3


def test_unknown_metric_did_you_mean():
    with pytest.raises(Error) as caught:
        make_metric("acuracy")
    assert caught.value.message == "unknown metric 'acuracy'"
    assert caught.value.diagnostics[0].hint.startswith("did you mean 'accuracy'?")


def test_mismatched_shapes():
    with pytest.raises(Error, match="do not line up"):
        accuracy(np.zeros((4, 3)), np.zeros(5, np.int64))
    with pytest.raises(Error, match="expects 2 classes"):
        confusion(np.zeros((4, 3)), np.zeros(4, np.int64), num_classes=2)


def test_empty_and_zero_division():
    assert accuracy(np.zeros((0, 3)), np.zeros(0, np.int64)) == 0.0
    # Nothing predicted positive: precision 0 (sklearn zero_division=0).
    assert precision(np.array([0.1, 0.2]), np.array([1, 0])) == 0.0


@pytest.mark.parametrize("classes", [2, 3, 7])
def test_against_sklearn(classes):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(classes)
    logits = rng.normal(size=(200, classes))
    labels = rng.integers(0, classes, size=200)
    predicted = logits.argmax(axis=1)
    average = "binary" if classes == 2 else "macro"
    assert accuracy(logits, labels) == pytest.approx(sklearn_metrics.accuracy_score(labels, predicted))
    assert precision(logits, labels) == pytest.approx(
        sklearn_metrics.precision_score(labels, predicted, average=average, zero_division=0))
    assert recall(logits, labels) == pytest.approx(
        sklearn_metrics.recall_score(labels, predicted, average=average, zero_division=0))
    assert f1(logits, labels) == pytest.approx(
        sklearn_metrics.f1_score(labels, predicted, average=average, zero_division=0))
    assert iou(logits, labels) == pytest.approx(
        sklearn_metrics.jaccard_score(labels, predicted, average="macro", zero_division=0))
    np.testing.assert_array_equal(confusion(logits, labels),
                                  sklearn_metrics.confusion_matrix(labels, predicted, labels=range(classes)))


def test_against_sklearn_with_absent_class():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    # Class 3 never occurs, class 2 is only predicted: macro averages over {0, 1, 2}.
    labels = np.array([0, 0, 1, 1, 1, 0])
    predicted = np.array([0, 2, 1, 0, 1, 0])
    logits = np.eye(4)[predicted]
    for name, function in (("precision", sklearn_metrics.precision_score),
                           ("recall", sklearn_metrics.recall_score), ("f1", sklearn_metrics.f1_score)):
        assert metrics.compute(name, logits, labels) == pytest.approx(
            function(labels, predicted, average="macro", zero_division=0))
    assert iou(logits, labels) == pytest.approx(
        sklearn_metrics.jaccard_score(labels, predicted, average="macro", zero_division=0))


def test_sequence_predictions_take_the_class_axis_last_and_ignore_padding():
    from netdsl.runtime import metrics
    scores = np.zeros((2, 3, 4))
    predicted = np.array([[1, 2, 3], [0, 0, 1]])
    np.put_along_axis(scores, predicted[..., None], 1.0, axis=-1)
    labels = np.array([[1, 2, 0], [0, -100, -100]])
    assert metrics.accuracy(scores, labels, ignore_index=-100) == pytest.approx(3 / 4)
    assert metrics.accuracy(scores, np.array([[1, 2, 3], [0, 0, 1]])) == 1.0
    streaming = metrics.make_metric("accuracy", ignore_index=0)
    streaming.update(scores, np.array([[1, 2, 0], [0, 1, 1]]))      # 0 is padding here
    assert streaming.result() == pytest.approx(3 / 4)
