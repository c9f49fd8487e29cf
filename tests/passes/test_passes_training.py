"""The training graph: one SGD step by hand, PyTorch parity of every optimiser, clipping,
naming conventions, multi-objective selection and the loss-and-gradient graph."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.backends.reference import run
from netdsl.errors import Error
from netdsl.ir.graph import Graph, GraphBuilder, LossInfo
from netdsl.ir.types import DType, TensorType
from netdsl.ir.verify import verify
from netdsl.passes.pipeline import run_pipeline
from netdsl.passes.training import (build_training_graph, build_training_graphs,
                                    loss_and_grad_graph)
from netdsl.passes.optimizers import OptimizerSpec, make_optimizer

F64 = DType.f64
N, DIN, DOUT = 6, 3, 2


def linear_model(dtype=F64) -> Graph:
    """pred = x @ w + b; loss = mean((pred - y)^2) (a tiny regression)."""
    b = GraphBuilder(Graph(name="linear"))
    x = b.input("x", TensorType(dtype, (N, DIN)))
    y = b.input("y", TensorType(dtype, (N, DOUT)))
    with b.scoped("dense"):
        w = b.param("dense.weight", TensorType(dtype, (DIN, DOUT)), ("normal",))
        bias = b.param("dense.bias", TensorType(dtype, (DOUT,)), ("zeros",))
        pred = b.op("add", b.op("matmul", x, w), bias)
    diff = b.op("sub", pred, y)
    loss = b.op("mean", b.op("mul", diff, diff), axes=None, keepdims=False)
    b.graph.outputs["pred"] = pred
    b.graph.losses.append(LossInfo("mse", loss))
    return b.graph


def data(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((N, DIN)), "y": rng.standard_normal((N, DOUT))}


def initial_params(seed=1):
    rng = np.random.default_rng(seed)
    return {"dense.weight": rng.standard_normal((DIN, DOUT)), "dense.bias": rng.standard_normal(DOUT)}


def state_arrays(graph, params):
    """Arrays for every param of a training graph: given values, zeros for optimiser state."""
    arrays = {k: v.copy() for k, v in params.items()}
    for info in graph.params:
        arrays.setdefault(info.name, np.zeros([int(d) for d in info.value.shape]))
    return arrays


def test_naming_conventions():
    graph = build_training_graph(linear_model(), make_optimizer("Adam", lr=1e-3))
    verify(graph)
    assert [v.name for v in graph.inputs] == ["x", "y", "__lr__", "__step__"]
    assert graph.input("__lr__").type == TensorType(DType.f32, ())
    names = [p.name for p in graph.params]
    assert names == ["dense.weight", "dense.bias", "opt.dense.weight.m", "opt.dense.weight.v",
                     "opt.dense.bias.m", "opt.dense.bias.v"]
    assert all(not p.trainable for p in graph.params[2:])
    assert str(graph.params[2].init) == "zeros"
    assert list(graph.outputs) == ["loss", "pred", "grad_norm", "grad_norm.dense"]
    assert set(graph.state_updates) == set(names)
    scopes = {n.scope[0] for n in graph.nodes if n.scope}
    assert {"grad", "optimizer"} <= scopes


def test_one_sgd_step_equals_manual_update():
    graph = build_training_graph(linear_model(), OptimizerSpec("sgd"))
    d, p = data(), initial_params()
    arrays = state_arrays(graph, p)
    result = run(graph, {**arrays, **d, "__lr__": np.float32(0.1), "__step__": np.float32(1)})
    pred = d["x"] @ p["dense.weight"] + p["dense.bias"]
    g_pred = 2 * (pred - d["y"]) / pred.size
    np.testing.assert_allclose(result["loss"], np.mean((pred - d["y"]) ** 2))
    np.testing.assert_allclose(arrays["dense.weight"], p["dense.weight"] - 0.1 * d["x"].T @ g_pred)
    np.testing.assert_allclose(arrays["dense.bias"], p["dense.bias"] - 0.1 * g_pred.sum(0))


OPTIMIZER_CASES = [
    ("sgd", dict(lr=0.1), {}),
    ("sgd", dict(lr=0.1, momentum=0.9), {}),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), {}),
    ("rmsprop", dict(lr=0.01), {}),
    ("rmsprop", dict(lr=0.01, momentum=0.5, weight_decay=0.1), {}),
    ("adam", dict(lr=0.01), {}),
    ("adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1), {}),
    ("adamw", dict(lr=0.01, weight_decay=0.1), {}),
    ("sgd", dict(lr=0.1, momentum=0.9), dict(clip_norm=0.5)),
    ("adam", dict(lr=0.01), dict(clip_value=0.05)),
]


@pytest.mark.parametrize("name,options,clip", OPTIMIZER_CASES)
def test_optimizer_parity_with_pytorch(name, options, clip):
    torch = pytest.importorskip("torch")
    spec = make_optimizer(name, **options)
    graph = run_pipeline(build_training_graph(linear_model(), spec, **clip))
    d, p = data(), initial_params()
    arrays = state_arrays(graph, p)

    w = torch.tensor(p["dense.weight"], requires_grad=True)
    bias = torch.tensor(p["dense.bias"], requires_grad=True)
    torch_options = dict(options)
    torch_class = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
                   "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    optimizer = torch_class([w, bias], **torch_options)
    x, y = torch.tensor(d["x"]), torch.tensor(d["y"])
    for step in range(1, 6):
        lr = options["lr"] * (0.9 ** (step - 1))        # a schedule: lr changes per step
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        loss = torch.mean((x @ w + bias - y) ** 2)
        loss.backward()
        if "clip_norm" in clip:
            torch.nn.utils.clip_grad_norm_([w, bias], clip["clip_norm"])
        if "clip_value" in clip:
            torch.nn.utils.clip_grad_value_([w, bias], clip["clip_value"])
        optimizer.step()
        result = run(graph, {**arrays, **d, "__lr__": np.float32(lr),
                             "__step__": np.float32(step)})
        np.testing.assert_allclose(result["loss"], loss.item(), rtol=1e-6)
        np.testing.assert_allclose(arrays["dense.weight"], w.detach().numpy(), rtol=1e-6,
                                   atol=1e-9, err_msg=f"step {step}")
        np.testing.assert_allclose(arrays["dense.bias"], bias.detach().numpy(), rtol=1e-6,
                                   atol=1e-9, err_msg=f"step {step}")


def test_adam_against_numpy_formula():
    spec = make_optimizer("Adam", lr=0.01)
    graph = build_training_graph(linear_model(), spec)
    d, p = data(), initial_params()
    arrays = state_arrays(graph, p)
    lg = loss_and_grad_graph(linear_model())
    w, m, v = p["dense.weight"].copy(), 0.0, 0.0
    for step in range(1, 4):
        g = run(lg, {"dense.weight": w, "dense.bias": arrays["dense.bias"], **d})
        g = g["grad.dense.weight"]
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.01 / (1 - 0.9 ** step) * m / (np.sqrt(v) / np.sqrt(1 - 0.999 ** step) + 1e-8)
        run(graph, {**arrays, **d, "__lr__": np.float32(0.01), "__step__": np.float32(step)})
        np.testing.assert_allclose(arrays["dense.weight"], w, rtol=1e-6)
        np.testing.assert_allclose(arrays["opt.dense.weight.m"], m, rtol=1e-6)


def test_loss_and_grad_graph_matches_finite_differences():
    graph = loss_and_grad_graph(linear_model())
    assert list(graph.outputs) == ["loss", "grad.dense.weight", "grad.dense.bias"]
    assert not graph.state_updates
    d, p = data(), initial_params()
    result = run(graph, {**d, **p})
    eps = 1e-6
    for name, value in p.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            losses = []
            for sign in (1, -1):
                shifted = {**p, name: value.copy()}
                shifted[name][index] += sign * eps
                losses.append(run(graph, {**d, **shifted})["loss"])
            numeric[index] = (losses[0] - losses[1]) / (2 * eps)
        np.testing.assert_allclose(result[f"grad.{name}"], numeric, rtol=1e-6, atol=1e-9)


def gan_like() -> Graph:
    """Two scalar 'networks' G and D with a loss each, declared wrt their own scope."""
    b = GraphBuilder(Graph(name="gan"))
    z = b.input("z", TensorType(F64, (3,)))
    g = b.param("G.w", TensorType(F64, (3,)), ("ones",))
    dw = b.param("D.w", TensorType(F64, (3,)), ("ones",))
    fake = b.op("mul", z, g)
    score = b.op("sum", b.op("mul", fake, dw), axes=None, keepdims=False)
    detached = b.op("sum", b.op("mul", b.op("stop_gradient", fake), dw), axes=None,
                    keepdims=False)
    b.graph.losses += [LossInfo("d_loss", b.op("mul", detached, detached), ("D",)),
                       LossInfo("g_loss", b.op("neg", score), ("G",))]
    return b.graph


def test_multi_objective_updates_only_its_scope():
    graph = gan_like()
    with pytest.raises(Error, match="several objectives"):
        build_training_graph(graph, OptimizerSpec("sgd"))
    steps = build_training_graphs(graph, {"d_loss": OptimizerSpec("sgd"),
                                          "g_loss": OptimizerSpec("adam")})
    assert set(steps["d_loss"].state_updates) == {"D.w"}
    assert set(steps["g_loss"].state_updates) == {"G.w", "opt.G.w.m", "opt.G.w.v"}
    arrays = {"G.w": np.ones(3), "D.w": np.ones(3), "z": np.arange(3.0)}
    run(steps["d_loss"], {**arrays, "__lr__": np.float32(0.1), "__step__": np.float32(1)})
    assert np.all(arrays["G.w"] == 1) and not np.all(arrays["D.w"] == 1)
    with pytest.raises(Error, match="no loss 'd_los'"):
        build_training_graph(graph, OptimizerSpec("sgd"), loss_name="d_los")


def test_make_optimizer_validates():
    assert make_optimizer("AdamW").weight_decay == 0.01
    assert make_optimizer("Adam", betas=(0.5, 0.6)).beta2 == 0.6
    with pytest.raises(Error, match="unknown optimizer 'Adma'"):
        make_optimizer("Adma")
    with pytest.raises(Error, match="SGD has no option 'momentom'"):
        make_optimizer("SGD", momentom=0.9)


@pytest.mark.parametrize("clip", [{}, dict(clip_norm=0.05)])
def test_grad_norm_outputs_are_the_norms_before_clipping(clip):
    """`grad_norm` is the global L2 norm of the gradients, `grad_norm.<layer>` each layer's
    (its parameters grouped by scope), both before clip_norm rescales them."""
    b = GraphBuilder(Graph(name="two"))
    x = b.input("x", TensorType(F64, (N, DIN)))
    y = b.input("y", TensorType(F64, (N, DOUT)))
    with b.scoped("fc1"):
        w1 = b.param("fc1.weight", TensorType(F64, (DIN, 4)), ("normal",))
        b1 = b.param("fc1.bias", TensorType(F64, (4,)), ("zeros",))
        hidden = b.op("tanh", b.op("add", b.op("matmul", x, w1), b1))
    with b.scoped("fc2"):
        w2 = b.param("fc2.weight", TensorType(F64, (4, DOUT)), ("normal",))
        pred = b.op("matmul", hidden, w2)
    diff = b.op("sub", pred, y)
    b.graph.losses.append(LossInfo("mse", b.op("mean", b.op("mul", diff, diff), axes=None,
                                                 keepdims=False)))
    rng = np.random.default_rng(3)
    params = {"fc1.weight": rng.standard_normal((DIN, 4)), "fc1.bias": rng.standard_normal(4),
              "fc2.weight": rng.standard_normal((4, DOUT))}
    grads = run(loss_and_grad_graph(b.graph), {**data(), **params})
    graph = run_pipeline(build_training_graph(b.graph, OptimizerSpec("sgd"), **clip))
    result = run(graph, {**state_arrays(graph, params), **data(), "__lr__": np.float32(0.1),
                         "__step__": np.float32(1)})
    layer = {"fc1": np.sqrt(np.sum(grads["grad.fc1.weight"] ** 2)
                            + np.sum(grads["grad.fc1.bias"] ** 2)),
             "fc2": np.linalg.norm(grads["grad.fc2.weight"])}
    assert {name for name in result if name.startswith("grad_norm")} == \
        {"grad_norm", "grad_norm.fc1", "grad_norm.fc2"}
    np.testing.assert_allclose(result["grad_norm.fc1"], layer["fc1"], rtol=1e-12)
    np.testing.assert_allclose(result["grad_norm.fc2"], layer["fc2"], rtol=1e-12)
    np.testing.assert_allclose(result["grad_norm"], np.hypot(layer["fc1"], layer["fc2"]),
                               rtol=1e-12)
    assert result["grad_norm"] > 0.05               # so clipping did rescale the step
