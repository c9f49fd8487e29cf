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
