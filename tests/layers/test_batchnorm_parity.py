"""BatchNorm against torch.nn.BatchNorm1d / BatchNorm2d, on every target, at 1e-4.

Evaluation mode uses the running statistics; training mode the batch statistics, with the loss
and the gradients of weight, bias and the input (a zero `param d` added to the input, so its
gradient is the input's) compared, and the running statistics after one and after two SGD
steps.  Skipped cleanly where torch is not installed.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import netdsl
from netdsl.compiler import GRADIENTS, Training, compile_step
from netdsl.passes.optimizers import OptimizerSpec

torch = pytest.importorskip("torch")

SHAPES = [(6, 3), (5, 3, 7), (4, 3, 5, 4)]
TARGETS = ["reference", "cpu"]
LR = 0.1


def build(tmp_path, shape) -> netdsl.Model:
    dims = ", ".join(map(str, shape))
    path = tmp_path / "bn.net"
    path.write_text(textwrap.dedent(f"""
        model M {{
            in x: f32[{dims}]
            in t: f32[{dims}]
            param d: f32[{dims}] = zeros
            out h = (x + d) |> BatchNorm as bn
            loss mse(h, t)
        }}
    """))
    return netdsl.load(path)


def start(model, shape, seed=0):
    """Weights with non-trivial weight, bias and running statistics, and a torch twin."""
    rng = np.random.default_rng(seed)
    weights = model.init()
    channels = shape[1]
    weights["bn.weight"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    weights["bn.bias"] = rng.normal(size=channels).astype(np.float32)
    weights["bn.running_mean"] = rng.normal(size=channels).astype(np.float32)
    weights["bn.running_var"] = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    module = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(channels)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(module, name).copy_(torch.tensor(weights[f"bn.{name}"]))
    return weights, module, rng


def test_state_is_non_trainable_and_named_as_torch(tmp_path):
    model = build(tmp_path, (6, 3))
    info = {p.name: p.trainable for p in model.graph.params}
    assert info == {"d": True, "bn.weight": True, "bn.bias": True,
                    "bn.running_mean": False, "bn.running_var": False}
    weights = model.init()
    np.testing.assert_array_equal(weights["bn.running_var"], np.ones(3, np.float32))
    np.testing.assert_array_equal(weights["bn.running_mean"], np.zeros(3, np.float32))
    assert "non-trainable 6" in model.summary()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", SHAPES)
def test_eval_forward_uses_running_statistics(tmp_path, shape, target):
    model = build(tmp_path, shape)
    weights, module, rng = start(model, shape)
    x = rng.normal(2.0, 3.0, size=shape).astype(np.float32)
    module.eval()
    expected = module(torch.tensor(x)).detach().numpy()
    got = model.forward(weights, {"x": x}, target=target)["h"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", SHAPES)
def test_training_loss_and_gradients(tmp_path, shape, target):
    model = build(tmp_path, shape)
    weights, module, rng = start(model, shape)
    x = rng.normal(2.0, 3.0, size=shape).astype(np.float32)
    t = rng.normal(size=shape).astype(np.float32)
    module.train()
    xt = torch.tensor(x, requires_grad=True)
    torch_loss = torch.nn.functional.mse_loss(module(xt), torch.tensor(t))
    torch_loss.backward()
    loss, grads = model.loss_and_grad(weights, {"x": x, "t": t}, target=target)
    assert loss == pytest.approx(torch_loss.item(), rel=1e-4, abs=1e-5)
    for name in ("weight", "bias"):
        np.testing.assert_allclose(grads[f"bn.{name}"], getattr(module, name).grad.numpy(),
                                   rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["d"], xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    assert "bn.running_mean" not in grads and "bn.running_var" not in grads


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", SHAPES)
def test_running_statistics_after_sgd_steps(tmp_path, shape, target):
    model = build(tmp_path, shape)
    weights, module, rng = start(model, shape)
    step = compile_step(model.training_forward, target, Training(OptimizerSpec("sgd", lr=LR)))
    arrays = {name: np.array(value) for name, value in weights.items()}
    delta = torch.zeros(shape, requires_grad=True)
    optimizer = torch.optim.SGD(list(module.parameters()) + [delta], lr=LR)
    module.train()
    for count in (1, 2):
        x = rng.normal(1.0, 2.0, size=shape).astype(np.float32)
        t = rng.normal(size=shape).astype(np.float32)
        arrays.update(x=x, t=t, __lr__=np.float32(LR), __step__=np.float32(count),
                      __rng__=np.int64(count))
        results = step.run(arrays)
        optimizer.zero_grad()
        torch_loss = torch.nn.functional.mse_loss(module(torch.tensor(x) + delta),
                                                  torch.tensor(t))
        torch_loss.backward()
        optimizer.step()
        assert float(results["loss"]) == pytest.approx(torch_loss.item(), rel=1e-4, abs=1e-5)
        for name in ("running_mean", "running_var", "weight", "bias"):
            np.testing.assert_allclose(arrays[f"bn.{name}"],
                                       getattr(module, name).detach().numpy(),
                                       rtol=1e-4, atol=1e-5, err_msg=f"{name} after {count}")
        np.testing.assert_allclose(arrays["d"], delta.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_fit_updates_state_and_validates_with_it(tmp_path):
    """fit returns the running statistics with the weights; a symbolic batch is fine."""
    path = tmp_path / "fit.net"
    path.write_text(textwrap.dedent("""
        model M {
            in x: f32[B, 2, 3]
            in t: f32[B, 2, 3]
            out h = x |> BatchNorm as bn
            loss mse(h, t)
        }
    """))
    model = netdsl.load(path)
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(8, 2, 3)).astype(np.float32)
    data = {"x": x, "t": np.zeros_like(x)}
    result = model.fit(model.init(), data, epochs=1, batch=8, split=1.0, shuffle=False,
                       optimizer="sgd", lr=1e-12, target="reference")
    module = torch.nn.BatchNorm1d(2)
    module.train()
    module(torch.tensor(x))
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(result.weights[f"bn.{name}"],
                                   getattr(module, name).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("target", TARGETS)
def test_a_shared_batchnorm_updates_its_statistics_once_per_use(tmp_path, target):
    """`bn = BatchNorm()` applied to two inputs: torch's running statistics after bn(a), bn(b)."""
    path = tmp_path / "shared.net"
    path.write_text(textwrap.dedent("""
        model M {
            in a: f32[B, 3]
            in b: f32[B, 3]
            in t: f32[B, 3]
            bn = BatchNorm()
            out h = (a |> bn) + (b |> bn)
            loss mse(h, t)
        }
    """))
    model = netdsl.load(path)
    rng = np.random.default_rng(3)
    a, b, t = (rng.normal(i + 1, 1.0 + i, size=(6, 3)).astype(np.float32) for i in range(3))
    weights = model.init()
    step = compile_step(model.training_forward, target, Training(OptimizerSpec("sgd", lr=LR)))
    arrays = {**{k: np.array(v) for k, v in weights.items()}, "a": a, "b": b, "t": t,
              "__lr__": np.float32(LR), "__step__": np.float32(1)}
    step.run(arrays)
    module = torch.nn.BatchNorm1d(3)
    module.train()
    module(torch.tensor(a)), module(torch.tensor(b))
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(arrays[f"bn.{name}"], getattr(module, name).numpy(),
                                   rtol=1e-4, atol=1e-5)
