"""A bound user block applied twice shares its parameters (LANGUAGE.md section 4), like a bound
built-in layer: one set of weights, and the gradient of each is the sum over both uses."""
from __future__ import annotations

import textwrap

import numpy as np

import netdsl

BLOCK = """
    block Two {
        in x: f32[B, D]
        param scale: f32[4] = ones
        out (x |> Dense(4) |> relu |> Dense(4)) * scale
    }
"""


def load_text(tmp_path, name: str, text: str) -> netdsl.Model:
    path = tmp_path / f"{name}.net"
    path.write_text(textwrap.dedent(BLOCK) + textwrap.dedent(text))
    return netdsl.load(path)


def test_shared_block_gradient_is_the_sum_of_both_uses(tmp_path):
    shared = load_text(tmp_path, "shared", """
        model M {
            in a: f32[B, 3]
            in b: f32[B, 3]
            t = Two()
            out y = t(a) + t(b)
            loss sum(y * y)
        }
    """)
    apart = load_text(tmp_path, "apart", """
        model M {
            in a: f32[B, 3]
            in b: f32[B, 3]
            out y = (a |> Two() as p) + (b |> Two() as q)
            loss sum(y * y)
        }
    """)
    weights = shared.init(seed=3)
    assert sorted(weights) == ["t.dense_1.bias", "t.dense_1.weight", "t.dense_2.bias",
                               "t.dense_2.weight", "t.scale"]
    rng = np.random.default_rng(3)
    data = {"a": rng.normal(size=(5, 3)).astype(np.float32),
            "b": rng.normal(size=(5, 3)).astype(np.float32)}
    loss, grads = shared.loss_and_grad(weights, data, target="reference")
    copies = {f"{copy}.{name[2:]}": value for name, value in weights.items() for copy in "pq"}
    loss_apart, grads_apart = apart.loss_and_grad(copies, data, target="reference")
    np.testing.assert_allclose(loss, loss_apart, rtol=1e-6)
    for name in weights:
        np.testing.assert_allclose(grads[name], grads_apart[f"p.{name[2:]}"] +
                                   grads_apart[f"q.{name[2:]}"], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
