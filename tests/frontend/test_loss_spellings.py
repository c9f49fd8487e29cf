"""Losses as users write them: weighted cross-entropy against PyTorch, and the nearby spellings
(focal, kl_normal, l1/l2 in a loss, one-hot labels) differentiate on both targets."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import netdsl
from netdsl.cli import main

HEADER = """\
model M {
    in x: f32[B, 4]
    in y: i64[B]
    in mu: f32[B, 6]
    in logvar: f32[B, 6]
"""


def load_body(tmp_path, body: str, name: str = "loss.net") -> netdsl.Model:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.indent(textwrap.dedent(body), "    ") + "}\n")
    return netdsl.load(path)


def batch(size: int = 7, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(size, 4)).astype(np.float32),
            "y": rng.integers(0, 3, size), "mu": rng.normal(size=(size, 6)).astype(np.float32),
            "logvar": rng.normal(size=(size, 6)).astype(np.float32)}


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_weighted_cross_entropy_matches_torch(tmp_path, target):
    torch = pytest.importorskip("torch")
    model = load_body(tmp_path, """\
        logits = x |> Dense(3) as fc
        loss cross_entropy(logits, y, weights=[1.0, 2.0, 8.0])
    """)
    weights = model.init(seed=1)
    data = batch()
    loss, grads = model.loss_and_grad(weights, data, target=target)
    w = torch.tensor(weights["fc.weight"], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(weights["fc.bias"], dtype=torch.float64, requires_grad=True)
    logits = torch.tensor(data["x"], dtype=torch.float64) @ w.T + b
    expected = torch.nn.functional.cross_entropy(
        logits, torch.tensor(data["y"]), weight=torch.tensor([1.0, 2.0, 8.0], dtype=torch.float64))
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    np.testing.assert_allclose(grads["fc.weight"], w.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads["fc.bias"], b.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_weighted_cross_entropy_is_the_weighted_mean(tmp_path):
    """sum(w[y_i] * nll_i) / sum(w[y_i]), and the weights may be ints."""
    model = load_body(tmp_path, """\
        logits = x |> Dense(3) as fc
        loss cross_entropy(logits, y, weights=[1, 2, 8])
    """)
    weights = model.init(seed=2)
    data = batch(seed=3)
    loss, _ = model.loss_and_grad(weights, data)
    logits = data["x"].astype(np.float64) @ weights["fc.weight"].T + weights["fc.bias"]
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    nll = -log_p[np.arange(len(data["y"])), data["y"]]
    w = np.array([1.0, 2.0, 8.0])[data["y"]]
    assert loss == pytest.approx((w * nll).sum() / w.sum(), rel=1e-5)


@pytest.mark.parametrize("weights, message", [
    ("[1, 2]", "cross_entropy: 2 weights for 3 classes"),
    ('[1, "a", 2]', "cross_entropy: weights must be a list of numbers"),
    ("3", "argument 'weights' expects a tensor or a list, got the int 3"),
])
def test_bad_class_weights_are_errors(tmp_path, capsys, weights, message):
    path = tmp_path / "bad.net"
    path.write_text(HEADER + f"    loss cross_entropy(x |> Dense(3), y, weights={weights})\n}}\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:6:") and message in err.splitlines()[0]


SPELLINGS = {
    "focal": "loss focal(x |> Dense(3), y)",
    "focal_gamma": "loss focal(x |> Dense(3), y, gamma=0.5)",
    "focal_one_hot": "loss focal(x |> Dense(3), one_hot(y, 3))",
    "kl_normal": "loss kl_normal(mu |> Dense(6), logvar)",
    "regularised": """\
        fc = Dense(3)
        loss cross_entropy(x |> fc, y) + 0.01 * l2(fc.weight) + 1e-3 * l1(fc.weight)""",
    "one_hot_labels": "loss cross_entropy(x |> Dense(3), one_hot(y, 3))",
    "one_hot_weighted": "loss cross_entropy(x |> Dense(3), one_hot(y, 3), weights=[1, 2, 3])",
    "conv_and_dense_inits": """\
        image = reshape(x, [B, 1, 2, 2])
        h = image |> Conv2D(4, kernel=1, init=he_uniform) |> relu |> Flatten
        loss cross_entropy(h |> Dense(3, bias=false, init=xavier_normal), y)""",
}


@pytest.mark.parametrize("case", sorted(SPELLINGS))
def test_loss_spellings_differentiate(tmp_path, case):
    model = load_body(tmp_path, SPELLINGS[case] + "\n")
    loss, grads = model.loss_and_grad(model.init(seed=0), batch())
    assert np.isfinite(loss)
    assert grads and all(np.isfinite(g).all() for g in grads.values())


def test_focal_with_gamma_zero_is_cross_entropy(tmp_path):
    focal = load_body(tmp_path, "loss focal(x |> Dense(3) as fc, y, gamma=0)\n", "focal.net")
    plain = load_body(tmp_path, "loss cross_entropy(x |> Dense(3) as fc, y)\n", "plain.net")
    weights, data = focal.init(seed=0), batch()
    assert focal.loss_and_grad(weights, data)[0] == \
        pytest.approx(plain.loss_and_grad(weights, data)[0], rel=1e-6)


def test_as_name_used_as_a_value_says_how_to_bind(tmp_path, capsys):
    path = tmp_path / "as.net"
    path.write_text(HEADER + "    logits = x |> Dense(3) as fc\n"
                             "    loss cross_entropy(logits, y) + l2(fc.weight)\n}\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "unknown name 'fc'" in err and "hint: `as fc` names a layer instance" in err


def test_a_function_given_as_init_is_named_as_a_function(tmp_path, capsys):
    path = tmp_path / "fn.net"
    path.write_text(HEADER + "    out p = x |> Dense(3, init=relu)\n}\n")
    assert main(["check", str(path)]) == 1
    assert "expects an initialiser, got the function relu" in capsys.readouterr().err
