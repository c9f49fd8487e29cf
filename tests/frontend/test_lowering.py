"""Lowering: parameter names (section 9), sharing, repeat, blocks, symbolic dims, and numerics."""
from __future__ import annotations

import numpy as np
import pytest

import netdsl
from netdsl.ir.types import Sym
from frontend_helpers import load_text  # noqa: E402


def test_dense_names_and_layout_follow_pytorch(tmp_path):
    model = load_text(tmp_path, """
        model M {
            in x: f32[B, 3]
            out y = x |> Dense(4) as fc1 |> relu |> Dense(2)
        }
    """)
    shapes = model.parameter_shapes
    assert shapes == {"fc1.weight": ((4, 3), "f32"), "fc1.bias": ((4,), "f32"),
                      "dense_1.weight": ((2, 4), "f32"), "dense_1.bias": ((2,), "f32")}
    weights = model.init(seed=1)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    hidden = np.maximum(x @ weights["fc1.weight"].T + weights["fc1.bias"], 0)
    expected = hidden @ weights["dense_1.weight"].T + weights["dense_1.bias"]
    np.testing.assert_allclose(model.forward(weights, {"x": x})["y"], expected, rtol=1e-5)


def test_bound_layer_shares_weights_and_is_named_by_binding(tmp_path):
    model = load_text(tmp_path, """
        model M {
            in a: f32[B, 4]
            in b: f32[B, 4]
            enc = Dense(3)
            out y = (a |> enc) + (b |> enc)
        }
    """)
    assert set(model.parameter_shapes) == {"enc.weight", "enc.bias"}
    w = model.init(0)
    a, b = np.ones((2, 4), np.float32), np.full((2, 4), 2.0, np.float32)
    expected = a @ w["enc.weight"].T + b @ w["enc.weight"].T + 2 * w["enc.bias"]
    np.testing.assert_allclose(model.forward(w, {"a": a, "b": b})["y"], expected, rtol=1e-5)


def test_repeat_makes_fresh_copies_and_blocks_scope_their_layers(tmp_path):
    model = load_text(tmp_path, """
        block Unit(n: int) {
            in x: f32[B, D]
            out x |> Dense(n) |> tanh
        }
        model M {
            in x: f32[B, 4]
            out y = x |> repeat(3, Unit(4)) |> Unit(2) as last
        }
    """)
    names = sorted(model.parameter_shapes)
    assert names == sorted(f"{scope}.dense_1.{p}" for scope in
                           ("unit_1", "unit_2", "unit_3", "last") for p in ("weight", "bias"))
    records = {r.name: r for r in model.architecture.records}
    assert records["unit_2.dense_1"].parent == "unit_2"
    assert records["unit_1"].repeat[1:] == (0, 3)


def test_named_repeat_numbers_its_copies(tmp_path):
    model = load_text(tmp_path, """
        model M {
            in x: f32[B, 4]
            out y = x |> repeat(2, Dense(4)) as trunk
        }
    """)
    assert sorted(model.parameter_shapes) == ["trunk_1.bias", "trunk_1.weight",
                                              "trunk_2.bias", "trunk_2.weight"]


def test_symbolic_dims_flow_through_the_model(tmp_path):
    model = load_text(tmp_path, """
        block Head(units: int) {
            in h: f32[N, T, D]
            out reshape(h, [N, T * D]) |> Dense(units)
        }
        model M {
            in x: f32[B, 5, 3]
            out y = x |> Head(2)
            out flat = reshape(x, [B, -1])
        }
    """)
    y = model.graph.outputs["y"].type
    assert str(y) == "f32[B, 2]"
    assert model.graph.outputs["flat"].type.shape == (Sym.named("B"), 15)
    out = model.forward(model.init(0), {"x": np.zeros((7, 5, 3), np.float32)})
    assert out["y"].shape == (7, 2) and out["flat"].shape == (7, 15)


def test_raw_params_and_step_make_a_perceptron(tmp_path):
    model = load_text(tmp_path, """
        model P {
            in x: f32[B, 2]
            param w: f32[2, 1] = constant(1.0)
            param b: f32[1] = constant(-1.5)
            out y = step(x @ w + b)
        }
    """)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    out = model.forward(model.init(0), {"x": x})["y"]
    assert out.ravel().tolist() == [0, 0, 0, 1]


def test_inference_does_not_ask_for_labels(tmp_path):
    model = load_text(tmp_path, """
        model M {
            in x: f32[B, 2]
            in y: i64[B]
            logits = x |> Dense(3)
            out probs = softmax(logits)
            loss cross_entropy(logits, y)
        }
    """)
    probs = model.forward(model.init(0), {"x": np.ones((4, 2), np.float32)})["probs"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_slicing_and_indexing(tmp_path):
    model = load_text(tmp_path, """
        model M {
            in x: f32[B, 6, 4]
            out last = x[:, -1]
            out strided = x[:, 0:4, ::2]
            out tail = x[..., 1]
        }
    """)
    x = np.arange(2 * 6 * 4, dtype=np.float32).reshape(2, 6, 4)
    out = model.forward(model.init(0), {"x": x})
    np.testing.assert_array_equal(out["last"], x[:, -1])
    np.testing.assert_array_equal(out["strided"], x[:, 0:4, ::2])
    np.testing.assert_array_equal(out["tail"], x[..., 1])
    assert str(model.graph.outputs["strided"].type) == "f32[B, 4, 2]"


def test_functions_and_losses_agree_with_numpy(tmp_path):
    model = load_text(tmp_path, """
        model M {
            in x: f32[B, 5]
            in t: f32[B, 5]
            in y: i64[B]
            out sm = softmax(x)
            out lsm = log_softmax(x, axis=1)
            out g = gelu(x)
            out lr = x |> leaky_relu(alpha=0.2)
            out m = mean(x, axis=1, keepdims=true)
            out c = concat([x, t], axis=1)
            out w = where(x > 0, x, 0.0)
            out tr = transpose(reshape(x, [B, 5, 1]), [0, 2, 1])
            out ce = cross_entropy(x, y)
            out err = mse(x, t)
        }
    """)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    t = rng.normal(size=(4, 5)).astype(np.float32)
    y = np.array([0, 4, 2, 1])
    out = model.forward({}, {"x": x, "t": t, "y": y})
    e = np.exp(x - x.max(axis=1, keepdims=True))
    softmax = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["sm"], softmax, rtol=1e-5)
    np.testing.assert_allclose(out["lsm"], np.log(softmax), rtol=1e-5, atol=1e-6)
    from math import erf
    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2))))(x)
    np.testing.assert_allclose(out["g"], gelu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["lr"], np.where(x > 0, x, 0.2 * x), rtol=1e-6)
    np.testing.assert_allclose(out["m"], x.mean(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(out["c"], np.concatenate([x, t], axis=1))
    np.testing.assert_array_equal(out["w"], np.where(x > 0, x, 0))
    np.testing.assert_array_equal(out["tr"], x[:, None, :])
    ce = -np.log(softmax[np.arange(4), y]).mean()
    np.testing.assert_allclose(out["ce"], ce, rtol=1e-5)
    np.testing.assert_allclose(out["err"], ((x - t) ** 2).mean(), rtol=1e-5)


def test_every_node_has_a_span_and_layer_nodes_a_scope(tmp_path):
    model = load_text(tmp_path, """
        model M {
            in x: f32[B, 3]
            out y = x |> Dense(4) as fc1 |> relu
        }
    """)
    for node in model.graph.nodes:
        assert node.span is not None and node.span.file.endswith("model.net")
    scopes = {node.scope for node in model.graph.nodes}
    assert ("fc1",) in scopes


@pytest.mark.parametrize("path", ["examples/perceptron.net", "examples/xor.net",
                                  "examples/mlp_digits.net", "examples/residual_mlp.net"])
def test_issue_examples_check_and_evaluate(path):
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    model = netdsl.load(root / path)
    weights = model.init(seed=0)
    feeds = {}
    for value in model.inference_graph.inputs:
        shape = [3 if not isinstance(d, int) else d for d in value.shape]
        feeds[value.name] = np.zeros(shape, dtype=value.dtype.numpy)
    outputs = model.forward(weights, feeds)
    assert set(outputs) == set(model.graph.outputs)
    for array in outputs.values():
        assert np.all(np.isfinite(array))
