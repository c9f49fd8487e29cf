"""The `test` train key: a share of the data held out of training and validation (or separate
test data), scored once after training with the loss and every metric, printed as a `test` line
and returned as `FitResult.test`."""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

import netdsl
from netdsl.cli import main
from netdsl.errors import Error
from netdsl.runtime.train import fit, prepare_splits

MODEL = """model Small {
    in x: f32[B, 4]
    in y: i64[B]
    logits = x |> Dense(8) as hidden |> relu |> Dense(3) as head
    out p = softmax(logits)
    loss cross_entropy(logits, y)
}
train Small {
    batch = 8
    epochs = 3
    optimizer = Adam(lr=0.01)
    metrics = [accuracy, f1]
    split = 0.75
    test = 0.2
    seed = 5
}
"""


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.net"
    path.write_text(MODEL)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 4)).astype(np.float32)
    x[:, 3] = np.arange(100)                  # each example's id, to tell them apart
    return netdsl.load(path), {"x": x, "y": (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)}


def _ids(part: dict | None) -> list[int]:
    return [] if part is None else [int(v) for v in part["x"][:, 3]]


def test_the_test_examples_are_held_out_of_training_and_validation(small):
    model, data = small
    train, validation, test = prepare_splits(model, model.train_config, data)
    ids = [_ids(train), _ids(validation), _ids(test)]
    assert [len(part) for part in ids] == [60, 20, 20]       # 20% test, then 75% of the rest
    assert sorted(sum(ids, [])) == list(range(100))           # disjoint, and every example
    # Training runs on exactly those 60 (the resume fingerprint counts what it trained on).
    result = fit(model, model.init(), model.train_config, data=data, target="reference",
                 verbose=False)
    assert result.resume.fingerprint["examples"] == 60


def test_the_printed_test_scores_are_those_of_model_forward_on_the_test_examples(small):
    model, data = small
    lines: list[str] = []
    result = fit(model, model.init(), model.train_config, data=data, target="reference",
                 printer=lines.append)
    _, _, test = prepare_splits(model, model.train_config, data)
    probs = model.forward(result.weights, {"x": test["x"]})["p"]
    accuracy = float(np.mean(np.argmax(probs, axis=1) == test["y"]))
    loss = float(np.mean(-np.log(probs[np.arange(len(test["y"])), test["y"]])))
    assert result.test["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert result.test["loss"] == pytest.approx(loss, rel=1e-4)
    assert set(result.test) == {"loss", "accuracy", "f1"}
    # The test line comes after the table, with every score and the number of examples.
    assert lines[-1].startswith("test: ") and lines[-2].startswith("3/3")
    printed = dict(re.findall(r"(\w+) ([-\d.e+]+)", lines[-1].split(": ", 1)[1]))
    assert float(printed["accuracy"]) == pytest.approx(accuracy, abs=5e-5)
    assert float(printed["loss"]) == pytest.approx(loss, abs=5e-5)
    assert lines[-1].endswith("(20 examples)")
    # The history has only the epochs; without `test` there is no test set and no line.
    assert len(result.history) == 3
    config = replace(model.train_config, test=None)
    lines.clear()
    none = fit(model, model.init(), config, data=data, target="reference", printer=lines.append)
    assert none.test is None and not any(line.startswith("test") for line in lines)


def test_separate_test_data(small):
    model, data = small
    held = {"x": data["x"][:10], "y": data["y"][:10]}
    result = model.fit(model.init(), data, target="reference", test=held, split=1.0)
    probs = model.forward(result.weights, {"x": held["x"]})["p"]
    assert result.test["accuracy"] == pytest.approx(
        float(np.mean(np.argmax(probs, axis=1) == held["y"])), abs=1e-12)
    assert result.resume.fingerprint["examples"] == 100       # all of `data` trains


@pytest.mark.parametrize("value, message", [
    (1.5, "test (in fit()) must be a fraction in (0, 1) of the data, got 1.5"),
    (0, "test (in fit()) must be a fraction in (0, 1) of the data, got 0"),
    (True, "test (in fit()) must be a fraction of the data such as 0.1, or test data"),
])
def test_bad_values(small, value, message):
    model, data = small
    with pytest.raises(Error) as caught:
        model.fit(model.init(), data, target="reference", test=value)
    assert caught.value.message.startswith(message)


def test_check_reads_the_key(tmp_path, capsys):
    path = tmp_path / "m.net"
    path.write_text(MODEL.replace("test = 0.2", 'test = "missing.npz"'))
    assert main(["check", "-q", str(path)]) == 1
    assert "data file not found" in capsys.readouterr().err
    path.write_text(MODEL.replace("test = 0.2", "test = 2"))
    assert main(["check", "-q", str(path)]) == 1
    text = capsys.readouterr().err
    assert "m.net:14:12: error: test must be a fraction in (0, 1) of the data, got 2" in text
    path.write_text(MODEL.replace("    test = 0.2\n", "    test = 0.2\n    data = xor\n"))
    assert main(["check", "-q", str(path)]) == 0


def test_a_built_in_data_sets_own_test_part(mnist_folder, tmp_path):
    _, arrays = mnist_folder                 # tmp_path/mnist: 5 training and 3 test examples
    path = tmp_path / "m.net"
    path.write_text("""model Digits {
    in image: f32[B, 1, 28, 28]
    in label: i64[B]
    logits = image |> flatten |> Dense(10)
    out p = softmax(logits)
    loss cross_entropy(logits, label)
}
train Digits {
    data = mnist
    test = mnist(part="test")
    split = 1.0
    metrics = [accuracy]
}
""")
    model = netdsl.load(path)
    train, validation, test = prepare_splits(model, model.train_config, None)
    assert validation is None
    np.testing.assert_array_equal(test["label"], arrays["t10k_labels"])
    np.testing.assert_array_equal(train["label"], arrays["train_labels"])
    result = model.fit(model.init(), target="reference", epochs=1)
    assert set(result.test) == {"loss", "accuracy"}
