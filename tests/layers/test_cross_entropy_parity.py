"""cross_entropy over the last axis with leading dims ([B, T, V] logits, [B, T] labels), with
`ignore_index` and class weights, against torch.nn.functional.cross_entropy: loss and gradient
on both targets.  Skipped cleanly where torch is not installed."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import netdsl

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("target", ["reference", "cpu"])
@pytest.mark.parametrize("options", ["", ", ignore_index=0", ", ignore_index=-100",
                                     ", weights=[1.0, 2.0, 0.5, 3.0], ignore_index=0"])
def test_sequence_cross_entropy_matches_torch(tmp_path, options, target):
    path = tmp_path / "ce.net"
    path.write_text(textwrap.dedent(f"""
        model M {{
            in x: f32[B, T, 3]
            in y: i64[B, T]
            logits = x |> Dense(4) as fc
            loss cross_entropy(logits, y{options})
        }}
    """))
    model = netdsl.load(path)
    weights = model.init(seed=1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, 3)).astype(np.float32)
    y = rng.integers(0, 4, size=(3, 5))
    if "-100" in options:
        y[0, 3:] = -100                                   # padding at the end of a sequence
    loss, grads = model.loss_and_grad(weights, {"x": x, "y": y}, target=target)

    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    logits = torch.tensor(x) @ params["fc.weight"].T + params["fc.bias"]
    kwargs = {"ignore_index": 0 if "=0" in options else -100}
    if "weights" in options:
        kwargs["weight"] = torch.tensor([1.0, 2.0, 0.5, 3.0])
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 4),
                                                 torch.tensor(y).reshape(-1), **kwargs)
    expected.backward()
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-4)
    for name, tensor in params.items():
        np.testing.assert_allclose(grads[name], tensor.grad.numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=name)
