"""Every initialiser of LANGUAGE.md section 3 as `init=` of Dense and Conv2D, bare and with
arguments: it passes `check`, and `Model.init` draws weights with the right statistics."""
from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

import netdsl
from netdsl.cli import main

# Dense(128) on 64 features: weight [128, 64], fan-in 64, fan-out 128.
# Conv2D(16, kernel=3) on 8 channels: weight [16, 8, 3, 3], fan-in 72, fan-out 144.
LAYERS = {
    "Dense": ("f32[B, 64]", "x |> Dense(128, init={init}) as layer", (64, 128)),
    "Conv2D": ("f32[B, 8, 6, 6]", "x |> Conv2D(16, kernel=3, init={init}) as layer", (72, 144)),
}
ROOT2 = math.sqrt(2.0)

# init as written -> what the drawn weight must look like, given (fan_in, fan_out):
# ("exact", value) | ("normal", mean, std) | ("uniform", low, high) | ("orthogonal", gain)
CASES = {
    "zeros": lambda fi, fo: ("exact", 0.0),
    "ones": lambda fi, fo: ("exact", 1.0),
    "constant(0.1)": lambda fi, fo: ("exact", 0.1),
    "constant(value=-2)": lambda fi, fo: ("exact", -2.0),
    "normal": lambda fi, fo: ("normal", 0.0, 0.01),
    "normal(0.5)": lambda fi, fo: ("normal", 0.0, 0.5),
    "normal(0.02, 1.0)": lambda fi, fo: ("normal", 1.0, 0.02),
    "normal(std=0.2)": lambda fi, fo: ("normal", 0.0, 0.2),
    "uniform": lambda fi, fo: ("uniform", -0.05, 0.05),
    "uniform(-0.1, 0.1)": lambda fi, fo: ("uniform", -0.1, 0.1),
    "uniform(0, 3)": lambda fi, fo: ("uniform", 0.0, 3.0),
    "xavier": lambda fi, fo: ("uniform", *_symmetric(math.sqrt(6 / (fi + fo)))),
    "xavier(2.0)": lambda fi, fo: ("uniform", *_symmetric(2 * math.sqrt(6 / (fi + fo)))),
    "xavier_uniform": lambda fi, fo: ("uniform", *_symmetric(math.sqrt(6 / (fi + fo)))),
    "xavier_normal": lambda fi, fo: ("normal", 0.0, math.sqrt(2 / (fi + fo))),
    "xavier_normal(0.5)": lambda fi, fo: ("normal", 0.0, 0.5 * math.sqrt(2 / (fi + fo))),
    "he": lambda fi, fo: ("normal", 0.0, ROOT2 / math.sqrt(fi)),
    "he(1.0)": lambda fi, fo: ("normal", 0.0, 1 / math.sqrt(fi)),
    "he_normal": lambda fi, fo: ("normal", 0.0, ROOT2 / math.sqrt(fi)),
    "he_uniform": lambda fi, fo: ("uniform", *_symmetric(ROOT2 * math.sqrt(3 / fi))),
    "he_uniform(1)": lambda fi, fo: ("uniform", *_symmetric(math.sqrt(3 / fi))),
    "orthogonal": lambda fi, fo: ("orthogonal", 1.0),
    "orthogonal(0.5)": lambda fi, fo: ("orthogonal", 0.5),
}


def _symmetric(limit: float) -> tuple[float, float]:
    return -limit, limit


def write_model(tmp_path, layer: str, init: str):
    input_type, pipeline, _ = LAYERS[layer]
    path = tmp_path / "init.net"
    path.write_text(textwrap.dedent(f"""\
        model Init {{
            in x: {input_type}
            out y = {pipeline.format(init=init)}
        }}
    """))
    return path


def assert_drawn_like(weight: np.ndarray, expected: tuple) -> None:
    kind = expected[0]
    if kind == "exact":
        np.testing.assert_allclose(weight, expected[1], rtol=1e-6)
    elif kind == "normal":
        mean, std = expected[1], expected[2]
        assert abs(weight.mean() - mean) < 4 * std / math.sqrt(weight.size) + 1e-7
        assert weight.std() == pytest.approx(std, rel=0.1)
    elif kind == "uniform":
        low, high = expected[1], expected[2]
        assert weight.min() >= low - 1e-6 and weight.max() <= high + 1e-6
        # and it fills the interval: nearly reaching both ends, with the uniform's spread
        assert weight.min() < low + 0.05 * (high - low)
        assert weight.max() > high - 0.05 * (high - low)
        assert weight.std() == pytest.approx((high - low) / math.sqrt(12), rel=0.1)
    else:
        gain = expected[1]
        flat = weight.reshape(weight.shape[0], -1).astype(np.float64)
        small = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
        np.testing.assert_allclose(small, gain ** 2 * np.eye(len(small)), atol=1e-5)


@pytest.mark.parametrize("init", sorted(CASES))
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_initialiser_as_init_of_a_layer(tmp_path, capsys, layer, init):
    path = write_model(tmp_path, layer, init)
    status = main(["check", "--quiet", str(path)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    model = netdsl.load(path)
    weights = model.init(seed=3)
    fan_in, fan_out = LAYERS[layer][2]
    assert_drawn_like(weights["layer.weight"], CASES[init](fan_in, fan_out))
    np.testing.assert_array_equal(weights["layer.bias"], 0.0)


def test_layer_initialisers_train(tmp_path):
    """The init= spellings that used to crash in `train` run a real training step."""
    path = tmp_path / "train.net"
    path.write_text(textwrap.dedent("""\
        model T {
            in x: f32[B, 1, 4, 4]
            in y: i64[B]
            logits = x
                |> Conv2D(2, kernel=3, init=he_uniform) |> relu
                |> Flatten
                |> Dense(4, init=zeros) |> Dense(4, init=normal(0.5))
                |> Dense(4, bias=false, init=xavier_normal) |> Dense(3, init=constant(0.1))
                |> Dense(3, init=uniform(-0.1, 0.1))
            out p = softmax(logits)
            loss cross_entropy(logits, y)
        }
    """))
    model = netdsl.load(path)
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(8, 1, 4, 4)).astype(np.float32),
            "y": rng.integers(0, 3, 8)}
    result = model.fit(model.init(seed=0), data, epochs=2, batch=4, target="reference")
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["loss"])


def test_embedding_default_init_is_standard_normal(tmp_path):
    """torch.nn.Embedding draws its table from normal(0, 1); `init=` overrides it."""
    path = tmp_path / "embed.net"
    path.write_text(textwrap.dedent("""\
        model E {
            in ids: i64[B, 5]
            a = ids |> Embedding(200, 16) as table
            out y = ids |> Embedding(200, 16, init=normal(0.02)) as small
        }
    """))
    weights = netdsl.load(path).init(seed=0)
    assert weights["table.weight"].shape == (200, 16)
    assert weights["table.weight"].std() == pytest.approx(1.0, rel=0.1)
    assert weights["small.weight"].std() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("init, message", [
    ("constant", "initialiser constant needs its argument 'value'"),
    ("constant()", "initialiser constant needs its argument 'value'"),
    ("normal(1, 2, 3)", "initialiser normal takes at most 2 arguments"),
    ("uniform(low=0, hi=1)", "initialiser uniform has no argument 'hi'"),
    ("he(true)", "argument 'gain' expects a number"),
    ("glorot", "unknown name 'glorot'"),
    ("3", "argument 'init' expects an initialiser, got the int 3"),
])
def test_bad_initialiser_is_an_error_at_its_span(tmp_path, capsys, init, message):
    path = write_model(tmp_path, "Dense", init)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first = err.splitlines()[0]
    assert first.startswith(f"{path}:3:") and ": error: " in first and message in first
    line, caret = err.splitlines()[1:3]
    start = line.index("init=")             # the caret is under `init=...` or its value
    assert caret.index("^") in (start, start + len("init="))


def test_random_tensors_still_draw(tmp_path):
    """`normal([B, D])` and `uniform([B, D])` are random tensors, not initialisers."""
    path = tmp_path / "noise.net"
    path.write_text(textwrap.dedent("""\
        model N {
            in x: f32[B, 3]
            out a = x + normal([B, 3], std=2.0)
            out b = x + uniform([B, 3], low=-1, high=1)
        }
    """))
    model = netdsl.load(path)
    x = np.zeros((2000, 3), np.float32)
    outs = model.forward(model.init(), {"x": x})
    assert outs["a"].std() == pytest.approx(2.0, rel=0.1)
    assert -1 <= outs["b"].min() and outs["b"].max() <= 1
