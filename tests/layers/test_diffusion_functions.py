"""The pieces a diffusion model is written with: linspace and cumprod folded into constant
tables, gathering a table by an index tensor (`table[t]`), randint, and the standard library's
TimeEmbedding (the Transformer's sinusoidal table at positions t)."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import netdsl
from netdsl.errors import Error


def load(tmp_path, body: str, name: str = "m.net"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return netdsl.load(path)


def test_schedule_tables_fold_to_constants(tmp_path):
    model = load(tmp_path, """
        model Schedule {
            in t: i64[B]
            beta = linspace(1e-3, 0.2, 50)
            alpha_bar = cumprod(1.0 - beta)
            out ab = sqrt(alpha_bar)[t]
            out sums = cumsum(beta, reverse=true)[t]
        }
    """)
    compiled = model.compiled_forward("reference")
    assert not {"cumprod", "cumsum", "sqrt", "sub"} & {n.op.name for n in compiled.graph.nodes}
    t = np.array([0, 7, 49])
    outs = model.forward({}, {"t": t}, target="reference")
    beta = np.linspace(1e-3, 0.2, 50)
    np.testing.assert_allclose(outs["ab"], np.sqrt(np.cumprod(1 - beta))[t], rtol=1e-5)
    np.testing.assert_allclose(outs["sums"], np.cumsum(beta[::-1])[::-1][t], rtol=1e-5)


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_randint_and_time_embedding(tmp_path, target):
    model = load(tmp_path, """
        model Embed {
            in x: f32[B, 1]
            t = randint([B], 0, 10)
            out t_out = t + 0
            out e = TimeEmbedding(8)(t)
        }
    """)
    outs = model.forward({}, {"x": np.zeros((4000, 1), np.float32)}, target=target)
    t = outs["t_out"]
    assert t.dtype == np.int64 and t.min() == 0 and t.max() == 9
    assert np.all(np.abs(np.bincount(t) / 4000 - 0.1) < 0.03)
    frequency = 10000.0 ** (-np.arange(4) * 2 / 8)
    angle = t[:, None] * frequency
    expected = np.stack([np.sin(angle), np.cos(angle)], axis=2).reshape(-1, 8)
    np.testing.assert_allclose(outs["e"], expected, atol=2e-5)


@pytest.mark.parametrize("source, message", [
    ("out y = x[0.5 * x]", "a tensor index must be an integer tensor"),
    ("out y = linspace(0.0, 1.0, 0) + x", "linspace: n must be an int"),
    ("out y = cast(randint([B], 3, 3), \"f32\") + x", "randint: high must be greater"),
])
def test_errors_point_at_the_source(tmp_path, source, message):
    with pytest.raises(Error) as caught:
        load(tmp_path, f"""
            model Bad {{
                in x: f32[B]
                {source}
            }}
        """)
    text = str(caught.value)
    assert message in text and "m.net:4:" in text
