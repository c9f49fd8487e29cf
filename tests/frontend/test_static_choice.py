"""Compile-time choice: `where` with a bool block argument evaluates only the chosen branch, and
strings compare to compile-time bools (`activation == "gelu"`)."""
from __future__ import annotations

import numpy as np

import netdsl


def load(tmp_path, text: str) -> netdsl.Model:
    path = tmp_path / "m.net"
    path.write_text(text)
    return netdsl.load(path)


PROGRAM = """
block Pick(wide: bool, activation: str = "relu") {
    in x: f32[B, 4]
    h = where(wide, x |> Dense(8) as big, x |> Dense(2) as small)
    out where(activation == "gelu", gelu(h), where(activation != "relu", tanh(h), relu(h)))
}
model M {
    in x: f32[B, 4]
    out y = x |> Pick(%s, activation="%s") as p
}
"""


def test_only_the_chosen_branch_is_applied(tmp_path):
    wide = load(tmp_path, PROGRAM % ("true", "relu")).init(seed=0)
    assert set(wide) == {"p.big.weight", "p.big.bias"}
    narrow = load(tmp_path, PROGRAM % ("false", "relu")).init(seed=0)
    assert set(narrow) == {"p.small.weight", "p.small.bias"}


def test_strings_compare_at_compile_time(tmp_path):
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    outputs = {}
    for activation in ("relu", "tanh"):
        model = load(tmp_path, PROGRAM % ("false", activation))
        weights = model.init(seed=1)
        h = x @ weights["p.small.weight"].T + weights["p.small.bias"]
        outputs[activation] = model.forward(weights, {"x": x}, target="reference")["y"]
        expected = np.maximum(h, 0) if activation == "relu" else np.tanh(h)
        np.testing.assert_allclose(outputs[activation], expected, rtol=1e-6)
