"""LSTM and GRU of the `.net` standard library against torch.nn.LSTM / nn.GRU.

Weights are made by netdsl and copied into torch by name (the layouts are PyTorch's), then the
forward output and every parameter's gradient are compared at 1e-4, for both targets and with
and without `return_sequences`.  Skipped cleanly where torch is not installed.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import netdsl

torch = pytest.importorskip("torch")

NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def build(tmp_path, layer: str, sequences: bool) -> netdsl.Model:
    flag = "true" if sequences else "false"
    shape = "[B, 6, 5]" if sequences else "[B, 5]"
    path = tmp_path / "recurrent.net"
    path.write_text(textwrap.dedent(f"""
        model M {{
            in x: f32[B, 6, 3]
            in t: f32{shape}
            out h = x |> {layer}(5, return_sequences={flag}) as rnn
            loss mse(h, t)
        }}
    """))
    return netdsl.load(path)


@pytest.mark.parametrize("target", ["reference", "cpu"])
@pytest.mark.parametrize("sequences", [True, False])
@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_matches_torch(tmp_path, layer, sequences, target):
    model = build(tmp_path, layer, sequences)
    weights = model.init(seed=4)
    hidden = 5
    gates = 4 if layer == "LSTM" else 3
    assert weights["rnn.weight_ih"].shape == (gates * hidden, 3)
    assert weights["rnn.weight_hh"].shape == (gates * hidden, hidden)
    assert np.abs(weights["rnn.weight_hh"]).max() <= 1 / np.sqrt(hidden)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    t = rng.normal(size=(4, 6, 5) if sequences else (4, 5)).astype(np.float32)

    module = getattr(torch.nn, layer)(3, hidden, batch_first=True)
    with torch.no_grad():
        for name in NAMES:
            getattr(module, f"{name}_l0").copy_(torch.tensor(weights[f"rnn.{name}"]))
    hs, _ = module(torch.tensor(x))
    expected = hs if sequences else hs[:, -1]
    torch_loss = torch.nn.functional.mse_loss(expected, torch.tensor(t))
    torch_loss.backward()

    out = model.forward(weights, {"x": x}, target=target)["h"]
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    loss, grads = model.loss_and_grad(weights, {"x": x, "t": t}, target=target)
    np.testing.assert_allclose(loss, torch_loss.item(), rtol=1e-4)
    assert set(grads) == {f"rnn.{name}" for name in NAMES}
    for name in NAMES:
        np.testing.assert_allclose(grads[f"rnn.{name}"],
                                   getattr(module, f"{name}_l0").grad.numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=name)
