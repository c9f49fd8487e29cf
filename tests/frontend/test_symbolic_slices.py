"""Slicing by a symbolic dim: `x[0:B]`, `x[:, 1:T]`, `pe[0:T]`, `x[0:B - 1]`.

The slice has the symbolic length, both targets read the dim's value at run time, and the
gradient of a sliced parameter (a learned positional table `pe[0:T]`) matches PyTorch's.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import netdsl

TARGETS = ["reference", "cpu"]


def load(tmp_path, body: str) -> netdsl.Model:
    path = tmp_path / "s.net"
    path.write_text(textwrap.dedent(body))
    return netdsl.load(path)


@pytest.fixture
def slices(tmp_path):
    return load(tmp_path, """
        model S {
            in x: f32[B, T, 4]
            in pe: f32[16, 4]
            out a = x[0:B]
            out b = pe[0:T]
            out c = x[:, 1:T]
            out d = x[0:B - 1, :, 1:3]
            out e = x + pe[2:T + 2]
        }
    """)


def test_types_carry_the_symbolic_length(slices):
    types = {name: str(value.type) for name, value in slices.graph.outputs.items()}
    assert types == {"a": "f32[B, T, 4]", "b": "f32[T, 4]", "c": "f32[B, T - 1, 4]",
                     "d": "f32[B - 1, T, 2]", "e": "f32[B, T, 4]"}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("batch, steps", [(3, 5), (2, 9)])
def test_values_on_every_target(slices, target, batch, steps):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, 4)).astype(np.float32)
    pe = rng.normal(size=(16, 4)).astype(np.float32)
    outs = slices.forward({}, {"x": x, "pe": pe}, target=target)
    expected = {"a": x, "b": pe[:steps], "c": x[:, 1:], "d": x[:batch - 1, :, 1:3],
                "e": x + pe[2:steps + 2]}
    for name, value in expected.items():
        np.testing.assert_array_equal(outs[name], value, err_msg=name)


@pytest.mark.parametrize("target", TARGETS)
def test_gradient_of_a_sliced_table_matches_torch(tmp_path, target):
    torch = pytest.importorskip("torch")
    model = load(tmp_path, """
        model P {
            in x: f32[B, T, 4]
            in y: f32[B, T, 4]
            param pe: f32[16, 4] = normal(1.0)
            out h = x * pe[0:T] + pe[1:T + 1]
            loss mse(h, y)
        }
    """)
    weights = model.init(seed=2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 6, 4)).astype(np.float32)
    y = rng.normal(size=(3, 6, 4)).astype(np.float32)
    pe = torch.tensor(weights["pe"], requires_grad=True)
    torch_loss = torch.nn.functional.mse_loss(torch.tensor(x) * pe[0:6] + pe[1:7],
                                              torch.tensor(y))
    torch_loss.backward()
    loss, grads = model.loss_and_grad(weights, {"x": x, "y": y}, target=target)
    assert loss == pytest.approx(torch_loss.item(), rel=1e-5)
    np.testing.assert_allclose(grads["pe"], pe.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_a_symbolic_integer_index_is_refused_with_a_hint(tmp_path):
    with pytest.raises(netdsl.Error) as caught:
        load(tmp_path, """
            model I {
                in x: f32[B, T, 4]
                out h = x[:, T]
            }
        """)
    text = str(caught.value)
    assert "s.net:4:18: error: an index must be an int, got the symbolic dimension T" in text
    assert "hint:" in text


def test_cpu_refuses_what_it_cannot_locate_at_the_slice(tmp_path):
    """`pe[T - 2:T]` on an axis of 16: neither bound is relative to a run-time extent the
    kernel sees; the cpu target says so at the slice (the reference runs it)."""
    model = load(tmp_path, """
        model L {
            in x: f32[B, T, 4]
            in pe: f32[16, 4]
            out h = pe[T - 2:T]
        }
    """)
    x = np.zeros((2, 5, 4), np.float32)
    pe = np.arange(64, dtype=np.float32).reshape(16, 4)
    np.testing.assert_array_equal(model.forward({}, {"x": x, "pe": pe})["h"], pe[3:5])
    with pytest.raises(netdsl.Error) as caught:
        model.forward({}, {"x": x, "pe": pe}, target="cpu")
    assert "s.net:5:13: error: the cpu target cannot slice" in str(caught.value)
