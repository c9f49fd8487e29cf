"""Metrics need something to score: a model without an `out` (or without a single label input)
asked for metrics is an error at the train section's `metrics` key, not "accuracy 0.0000"."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import netdsl
from netdsl.cli import main
from netdsl.runtime.metrics import metric_sources

NO_OUT = """\
model NoOut {
    in  x: f32[B, 4]
    in  label: i64[B]
    logits = x |> Dense(3)
    loss cross_entropy(logits, label)
}

train NoOut {
    data    = "data.npz"
    epochs  = 1
    metrics = [accuracy, f1]
}
"""


@pytest.fixture
def no_out(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(20, 4)).astype(np.float32),
             label=rng.integers(0, 3, 20))
    path = tmp_path / "no_out.net"
    path.write_text(NO_OUT)
    return path


def test_metrics_without_an_out_point_at_the_metrics_key(no_out, capsys):
    assert main(["train", str(no_out)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines[0] == (f"{no_out}:11:5: error: metrics (accuracy, f1) score the model's "
                        f"first `out`, but model NoOut has no `out`")
    assert lines[1:3] == ["    metrics = [accuracy, f1]", "    ^^^^^^^"]
    assert lines[3].startswith("hint: add one, e.g. `out probs = softmax(logits)`")
    assert "accuracy" not in captured.out        # no epoch was run or scored


def test_metrics_from_the_command_line_are_checked_too(no_out, capsys):
    no_out.write_text(NO_OUT.replace("    metrics = [accuracy, f1]\n", ""))
    assert main(["train", str(no_out), "--metrics", "precision"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: metrics (precision) score the model's first `out`")


def test_fit_refuses_metrics_without_an_out(no_out):
    model = netdsl.load(no_out)
    with pytest.raises(netdsl.Error, match="has no `out`"):
        model.fit(model.init(), target="reference")


def test_without_metrics_a_model_without_out_still_trains(no_out):
    no_out.write_text(NO_OUT.replace("    metrics = [accuracy, f1]\n", ""))
    model = netdsl.load(no_out)
    result = model.fit(model.init(), target="reference")
    assert "accuracy" not in result.history[-1] and np.isfinite(result.history[-1]["loss"])


def test_metric_sources():
    assert metric_sources([], "M", [], []) == (None, None)
    assert metric_sources(["accuracy"], "M", ["probs", "z"], ["label"]) == ("label", "probs")
    with pytest.raises(netdsl.Error, match=r"it has several \(a, b\)"):
        metric_sources(["accuracy"], "M", ["probs"], ["a", "b"])
    with pytest.raises(netdsl.Error, match="every input of the model is also read"):
        metric_sources(["f1"], "M", ["probs"], [])


REGRESSION = """\
model Reg {
    in  x: f32[B, 4]
    in  y: f32[B, 1]
    pred = x |> Dense(1)
    out p = pred
    loss mse(pred, y)
}

train Reg {
    data    = "data.npz"
    epochs  = 1
    metrics = [accuracy]
}
"""


@pytest.mark.parametrize("labels, value", [
    (lambda x: x[:, :1] * 2, None),                       # a regression's targets
    (lambda x: np.abs(np.rint(x[:, :1])) + 0.5, "0.5"),    # positive, never whole
    (lambda x: -np.ones((len(x), 1)), "-1"),
])
def test_metrics_on_a_regression_target_are_an_error_before_the_compile(tmp_path, capsys,
                                                                          labels, value):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = labels(x).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    (tmp_path / "reg.net").write_text(REGRESSION)
    assert main(["train", str(tmp_path / "reg.net"), "--target", "reference"]) == 1
    captured = capsys.readouterr()
    assert "compiling" not in captured.out and "Traceback" not in captured.err
    assert captured.err.startswith(
        f"{tmp_path / 'reg.net'}:12:5: error: metrics (accuracy) compare classes, but the "
        "label 'y' in the data holds "), captured.err
    shown = float(captured.err.split(" holds ")[1].split(",")[0])
    wrong = y[(y < 0) | (y != np.rint(y))]
    assert np.isclose(wrong, shown, rtol=1e-5).any()      # one of the wrong labels
    if value is not None:
        assert f"holds {value}, not a class id" in captured.err
    assert "    metrics = [accuracy]\n    ^^^^^^^" in captured.err


def test_whole_float_labels_one_hot_and_soft_rows_still_get_metrics(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, :1] > 0).astype(np.float32))
    (tmp_path / "reg.net").write_text(REGRESSION)
    model = netdsl.load(tmp_path / "reg.net")
    history = model.fit(model.init(seed=0), target="reference").history
    assert 0.0 <= history[0]["accuracy"] <= 1.0
    from netdsl.runtime.metrics import check_metric_labels
    soft = np.full((5, 3), 0.2, np.float32)                 # label smoothing: argmax rows
    check_metric_labels(["accuracy"], "y", soft)
    check_metric_labels(["accuracy"], "y", np.eye(3, dtype=np.float32))
    check_metric_labels([], "y", np.full(3, 0.5))           # no metrics: nothing to check
