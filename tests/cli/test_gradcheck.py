"""`netdsl gradcheck` does not cry wolf (true gradients of 0, ReLU kinks) and still catches a
wrong gradient rule."""
from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from netdsl.cli import main
from netdsl.ops import get_op
from netdsl.runtime import gradcheck as gc

LENET = """\
model LeNet {
    in  image: f32[B, 1, 8, 8]
    in  label: i64[B]
    logits = image
        |> Conv2D(6, kernel=3, padding=1) as conv1 |> relu |> MaxPool(2)
        |> Conv2D(16, kernel=3, padding=1) as conv2 |> relu |> MaxPool(2)
        |> Flatten |> Dense(32) as fc1 |> relu |> Dense(10) as fc2
    loss cross_entropy(logits, label)
}
train LeNet { data = digits }
"""

MLP = """\
model DigitsMLP {
    in  image: f32[B, 1, 8, 8]
    in  label: i64[B]
    logits = image |> Flatten |> Dense(128) as fc1 |> relu |> Dropout(0.1)
        |> Dense(128) as fc2 |> relu |> Dense(10) as classifier
    out probs = softmax(logits)
    loss cross_entropy(logits, label)
}
train DigitsMLP { data = digits }
"""

SMOOTH = """\
model Smooth {
    in  x: f32[B, 5]
    in  y: f32[B, 1]
    p = x |> Dense(6) as hidden |> sigmoid |> Dense(1) as output
    loss mse(p, y)
}
"""


def gradcheck_cli(tmp_path, capsys, source: str, *flags: str) -> tuple[int, dict[str, str]]:
    path = tmp_path / "model.net"
    path.write_text(textwrap.dedent(source))
    status = main(["gradcheck", str(path), *flags])
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    return status, rows


def test_conv_bias_at_a_relu_kink_is_skipped_not_failed(tmp_path, capsys):
    """Digits have exact zeros, so a conv bias of 0 puts ReLU exactly at its kink."""
    status, rows = gradcheck_cli(tmp_path, capsys, LENET)
    assert status == 0, rows
    assert rows["conv1.bias"].endswith("skipped: non-differentiable point")
    assert all(row.split()[-1] == "ok" for name, row in rows.items() if name != "conv1.bias")


def test_tiny_true_gradients_pass_on_the_absolute_floor(tmp_path, capsys):
    """Dropout zeroes units, so some of fc2's weight gradients are 0 or nearly: their rounding
    noise is large relative to them but far below any real error."""
    status, rows = gradcheck_cli(tmp_path, capsys, MLP)
    assert status == 0, rows
    assert all(row.endswith(" ok") for row in rows.values())


def test_a_wrong_vjp_is_still_reported(tmp_path, capsys, monkeypatch):
    """sigmoid's gradient without its (1 - y) factor: FAIL, exit status 1."""
    sigmoid = get_op("sigmoid")

    def wrong(b, grads, inputs, outputs):
        return (b.op("mul", grads[0], outputs[0]),)
    monkeypatch.setattr(sigmoid, "vjp", wrong)
    status, rows = gradcheck_cli(tmp_path, capsys, SMOOTH, "--synthetic")
    assert status == 1
    assert rows["hidden.weight"].endswith("FAIL") and rows["hidden.bias"].endswith("FAIL")
    assert rows["output.bias"].endswith(" ok")     # after the sigmoid: unaffected


def test_a_wrong_relu_vjp_is_not_excused_as_a_kink(tmp_path, capsys, monkeypatch):
    """Doubling relu's gradient is wrong everywhere, not only at kinks."""
    relu = get_op("relu")
    right = relu.vjp

    def doubled(b, grads, inputs, outputs):
        (grad,) = right(b, grads, inputs, outputs)
        return (b.op("add", grad, grad),)
    monkeypatch.setattr(relu, "vjp", doubled)
    status, rows = gradcheck_cli(tmp_path, capsys, LENET)
    assert status == 1
    assert rows["fc1.weight"].endswith("FAIL") and rows["conv1.weight"].endswith("FAIL")


@pytest.mark.parametrize("flags, message", [
    (["--batch", "0"], "error: --batch must be at least 1, got 0"),
    (["--samples", "0"], "error: --samples must be at least 1, got 0"),
    (["--epsilon", "0"], "error: --epsilon must be a positive number, got 0"),
    (["--tolerance", "nan"], "error: --tolerance must be a positive number, got nan"),
    (["--atol", "-1"], "error: --atol must be a number >= 0, got -1"),
])
def test_bad_flags_are_errors(tmp_path, capsys, flags, message):
    path = tmp_path / "model.net"
    path.write_text(SMOOTH)
    assert main(["gradcheck", str(path), *flags]) == 1
    assert capsys.readouterr().err.splitlines()[0] == message


def test_a_loss_that_is_not_finite_is_an_error(tmp_path, capsys):
    path = tmp_path / "model.net"
    path.write_text(SMOOTH.replace("loss mse(p, y)", "loss mse(p, y) / 0 * 0"))     # inf * 0
    with np.errstate(invalid="ignore", divide="ignore"):
        assert main(["gradcheck", str(path), "--synthetic"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the loss of model Smooth is nan at the initial weights")


class _Function:
    """A loss of one coordinate, shaped like gradcheck's _Loss."""

    def __init__(self, f, x: float):
        self.f, self.x = f, x
        self.base = f(x)

    def at(self, name, index, delta):
        return self.f(self.x + delta)


@pytest.mark.parametrize("f, x, symbolic, verdict", [
    (lambda x: 1e3 + 1e-12 * x, 0.3, 1e-12, "ok"),                 # noise >> true gradient
    (lambda x: 1e3 + 0.0 * x, 0.3, 0.0, "ok"),                     # a true 0
    (lambda x: max(x, 0.0), 0.0, 0.0, "skipped"),                  # relu at its kink
    (lambda x: max(x, 0.0), 0.0, 1.0, "skipped"),                  # either side's slope
    (lambda x: abs(x - 3e-7), 0.0, -1.0, "ok"),                    # a kink near, not at, x
    (lambda x: x * x, 0.7, 2.1, "fail"),                           # smooth and wrong
    (lambda x: math.sin(1000 * x), 0.1, 1000 * math.cos(100.0), "ok"),    # high curvature
    (lambda x: math.sin(1000 * x), 0.1, 1100 * math.cos(100.0), "fail"),  # ... and wrong
    (lambda x: 1e5 * x * x, 0.0, 0.5, "fail"),                     # a large second derivative
])
def test_one_coordinate_verdicts(f, x, symbolic, verdict):
    floor = max(1e-8, 100 * 2.2e-16 * max(1.0, abs(f(x))) / 1e-6)
    got, _, _ = gc._compare(_Function(f, x), "p", (0,), symbolic, 1e-6, 1e-5, floor)
    assert got == verdict
