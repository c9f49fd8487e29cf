"""Train-section values and their flags are checked where they are read (issue 8): an error at
the key in the file, or naming the flag or fit() keyword, instead of a quiet surprise."""
from __future__ import annotations

import numpy as np
import pytest

import netdsl
from netdsl.errors import Error
from netdsl.runtime.train_config import with_overrides

MODEL = """model M {
    in x: f32[B, 2]
    in label: i64[B]
    logits = x |> Dense(3)
    out p = softmax(logits)
    loss cross_entropy(logits, label)
}
"""


def _config(tmp_path, *lines: str):
    path = tmp_path / "m.net"
    path.write_text(MODEL + "train M {\n" + "".join(f"    {line}\n" for line in lines) + "}\n")
    return netdsl.load(path).train_config


@pytest.mark.parametrize("line, message", [
    ("clip_norm = -1", "clip_norm must be a finite number > 0, got -1.0"),
    ("clip_norm = 0", "clip_norm must be a finite number > 0, got 0.0"),
    ("clip_value = -0.5", "clip_value must be a finite number > 0, got -0.5"),
    ("weight_decay = -1", "weight_decay must be a finite number >= 0, got -1.0"),
    ("lr = 0", "lr must be a finite number > 0, got 0.0"),
    ("seed = -1", "seed must be a whole number >= 0, got -1"),
    ("seed = 1.5", "seed must be a whole number, got 1.5"),
    ("batch = -3", "batch must be at least 1, got -3"),
    ("split = 0", "split must be in (0, 1], got 0.0"),
    ("optimizer = Adam(lr=-0.001)", "adam option lr must be a finite number > 0, got -0.001"),
    ("optimizer = SGD(lr=0.1, momentum=-0.9)",
     "sgd option momentum must be a finite number >= 0, got -0.9"),
    ("optimizer = Adam(betas=[0.9, 1.5])", "adam option beta2 must be a number in [0, 1), got 1.5"),
    ("optimizer = AdamW(weight_decay=-0.01)",
     "adamw option weight_decay must be a finite number >= 0, got -0.01"),
    ("early_stopping(patience=-2)", "early_stopping patience must be a whole number >= 0, got -2"),
    ("early_stopping(min_delta=-1)",
     "early_stopping min_delta must be a finite number >= 0, got -1"),
    # Found by the front-end fuzzer once `check` read train sections: a TypeError traceback.
    ("schedule = [1, 2]", "schedule must be a name such as cosine() or step(every=5), got [1, 2]"),
    ("metrics = [[accuracy]]", "metrics must be names such as [accuracy, f1], got [['accuracy']]"),
])
def test_a_wrong_value_is_an_error_at_its_key(tmp_path, line, message):
    with pytest.raises(Error) as caught:
        _config(tmp_path, "epochs = 1", line)
    assert caught.value.message == message
    span = caught.value.span
    assert span is not None and span.line == 10
    # The value, just after `key = ` (early_stopping(...) is its own value).
    assert span.column == 5 + (line.index("=") + 2 if " = " in line else 0)


def test_early_stopping_monitor_must_be_a_column(tmp_path):
    with pytest.raises(Error) as caught:
        _config(tmp_path, "early_stopping(monitor=bogus)")
    assert caught.value.message == ("early_stopping cannot monitor 'bogus': it is not a column "
                                     "of the training table")
    assert caught.value.span.line == 9
    assert caught.value.diagnostics[0].hint == "it can monitor: loss, val_loss"
    with pytest.raises(Error, match="did you mean 'val_accuracy'"):
        _config(tmp_path, "early_stopping(monitor=val_acuracy)", "metrics = [accuracy]")
    # The metrics may come after early_stopping in the section.
    config = _config(tmp_path, "early_stopping(monitor=val_accuracy)", "metrics = [accuracy]")
    assert config.early_stopping["monitor"] == "val_accuracy"


@pytest.mark.parametrize("key, value, message", [
    ("lr", float("inf"), "--lr must be a finite number > 0, got inf"),
    ("lr", float("nan"), "--lr must be a finite number > 0, got nan"),
    ("weight_decay", -1.0, "--weight-decay must be a finite number >= 0, got -1.0"),
    ("clip_norm", -1.0, "--clip-norm must be a finite number > 0, got -1.0"),
    ("batch", -3, "--batch must be at least 1, got -3"),
    ("seed", -1, "--seed must be a whole number >= 0, got -1"),
    ("epochs", 0, "--epochs must be at least 1, got 0"),
])
def test_a_wrong_flag_is_named(tmp_path, key, value, message):
    config = _config(tmp_path, "epochs = 1")
    with pytest.raises(Error) as caught:
        with_overrides(config, {key: value})
    assert caught.value.message == message and caught.value.span is None


def test_a_flag_can_make_the_monitor_wrong(tmp_path):
    config = _config(tmp_path, "early_stopping(monitor=val_f1)", "metrics = [f1]")
    with pytest.raises(Error, match="cannot monitor 'val_f1'"):
        with_overrides(config, {"metrics": "accuracy"})


def test_fit_keywords_are_named(tmp_path):
    path = tmp_path / "m.net"
    path.write_text(MODEL)
    model = netdsl.load(path)
    data = {"x": np.zeros((4, 2), np.float32), "label": np.zeros(4, np.int64)}
    with pytest.raises(Error) as caught:
        model.fit(model.init(), data, clip_norm=-1)
    assert caught.value.message == "clip_norm (in fit()) must be a finite number > 0, got -1.0"


def test_allow_nonfinite_is_a_key(tmp_path):
    assert _config(tmp_path, "allow_nonfinite = true").allow_nonfinite is True
    assert _config(tmp_path, "epochs = 1").allow_nonfinite is False


def test_a_train_section_for_no_model_is_an_error(tmp_path):
    path = tmp_path / "m.net"
    path.write_text(MODEL + "train Mm {\n    epochs = 1\n}\n")
    for load in (netdsl.load, netdsl.load_all):
        with pytest.raises(Error) as caught:
            load(path)
        assert caught.value.message.startswith("train section for 'Mm', which is not a model")
        assert (caught.value.span.line, caught.value.span.column) == (8, 7)
        assert caught.value.diagnostics[0].hint == "did you mean 'M'?"


def test_early_stopping_on_accuracy_waits_for_it_to_stop_rising(tmp_path):
    # Accuracy improves upwards: it stopped training while accuracy rose, as if it were a loss.
    path = tmp_path / "m.net"
    path.write_text(MODEL + "train M {\n    epochs = 12\n    batch = 8\n    split = 1.0\n"
                            "    optimizer = SGD(lr=0.05)\n    metrics = [accuracy]\n"
                            "    early_stopping(monitor=accuracy, patience=2)\n}\n")
    model = netdsl.load(path)
    assert model.train_config.early_stopping["mode"] == "max"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    data = {"x": x, "label": (x[:, 0] > 0).astype(np.int64)}
    result = model.fit(model.init(), data, target="reference")
    accuracy = [row["accuracy"] for row in result.history]
    assert accuracy[1] > accuracy[0]          # it learns: the old rule stopped right here
    assert len(accuracy) > 3
    if result.stopped_early:                  # then the last two epochs did not beat the best
        assert max(accuracy[-2:]) <= max(accuracy[:-2])


SEQUENCE_MODEL = """
model Tagger {
    in  x: i64[B, T]
    in  tag: i64[B, T]
    logits = x |> Embedding(6, 8) as embed |> Dense(3) as head
    out probs = softmax(logits)
    loss cross_entropy(logits, tag, ignore_index=0)
}

train Tagger {
    epochs = 2
    batch = 16
    split = 0.75
    optimizer = SGD(lr=0.1)
    metrics = [accuracy]
    seed = 0
}
"""


def test_metrics_leave_out_the_positions_the_loss_ignores(tmp_path):
    # Half the tags are padding (0), which the model is never trained on: counted, they would
    # pull accuracy towards what it guesses for padding.
    path = tmp_path / "tagger.net"
    path.write_text(SEQUENCE_MODEL)
    model = netdsl.load(path)
    assert model.graph.ignored_labels == {"tag": 0}
    rng = np.random.default_rng(1)
    x = rng.integers(1, 6, size=(64, 5))
    tag = np.where(rng.random((64, 5)) < 0.5, 0, x % 2 + 1).astype(np.int64)
    result = model.fit(model.init(), {"x": x, "tag": tag}, target="reference")
    validation = np.random.default_rng(0).permutation(64)[48:]      # data.split's, seed 0
    probs = model.forward(result.weights, {"x": x[validation]}, target="reference")["probs"]
    keep = tag[validation] != 0
    expected = (probs.argmax(-1) == tag[validation])[keep].mean()
    assert result.history[-1]["val_accuracy"] == pytest.approx(expected)


def test_every_loss_of_a_summed_objective_has_a_column(tmp_path):
    path = tmp_path / "two_losses.net"
    path.write_text("""
model Two {
    in  x: f32[B, 2]
    in  y: f32[B, 1]
    p = x |> Dense(1) as fc
    out pred = p
    loss fit = mse(p, y)
    loss small = 0.1 * mean(p * p)
}
train Two {
    epochs = 2
    batch = 8
    split = 0.75
    optimizer = SGD(lr=0.05)
}
""")
    model = netdsl.load(path)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 2)).astype(np.float32)
    lines = []
    from netdsl.runtime.train import fit
    result = fit(model, model.init(), model.train_config, data={"x": x, "y": x[:, :1] * 2},
                 target="reference", verbose=True, printer=lines.append)
    row = result.history[-1]
    assert row["loss"] == pytest.approx(row["fit"] + row["small"], rel=1e-5)
    assert row["small"] > 0 and row["fit"] > 0
    assert row["val_loss"] == pytest.approx(row["val_fit"] + row["val_small"], rel=1e-5)
    assert lines[0] == "compiling Two for reference: 1 training step..."
    header = next(line for line in lines if line.startswith("epoch"))
    assert header.split()[:7] == ["epoch", "loss", "val_loss", "fit", "small", "val_fit",
                                    "val_small"]


def test_without_a_name_the_trained_model_is_chosen(tmp_path):
    # A decoder written after the VAE it shares weights with is not what `train` should pick.
    path = tmp_path / "two_models.net"
    path.write_text(MODEL + "train M {\n    epochs = 1\n}\n" +
                    "model Other {\n    in z: f32[B, 2]\n    out y = z |> Dense(1) as fc\n}\n")
    assert netdsl.load(path).name == "M"
    assert netdsl.load(path, model="Other").name == "Other"
    path.write_text(MODEL + "model Other {\n    in z: f32[B, 2]\n    out y = z\n}\n")
    assert netdsl.load(path).name == "Other"          # no train section: the last model


def test_one_learning_rate_from_fit_keywords(tmp_path):
    # lr and optimizer's lr= are the same number written twice: they must agree.
    from netdsl.runtime.train_config import CallValue, TrainConfig, with_overrides
    config = TrainConfig()
    with pytest.raises(Error, match=r"^error: lr 0.1 and optimizer SGD\(lr=0.5\) give two "
                                    r"learning rates \(fit\)"):
        with_overrides(config, {"lr": 0.1, "optimizer": CallValue("SGD", (), {"lr": 0.5})},
                       origin="fit")
    same = with_overrides(config, {"lr": 0.5, "optimizer": CallValue("SGD", (), {"lr": 0.5})})
    assert same.optimizer_spec().lr == 0.5
    other = with_overrides(config, {"lr": 0.3, "optimizer": CallValue("SGD", (), {})})
    assert other.optimizer == "SGD" and other.optimizer_spec().lr == 0.3
