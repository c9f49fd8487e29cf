"""Compile-time numbers inside blocks: `sqrt(d)`, `d / heads` and `d // heads` of block
arguments and consts are numbers; where a whole number is needed (a type, a shape, an int
argument) an exact quotient is its int.  The errors for inexact ones are golden tests
(golden_check/inexact_*.net)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from netdsl.errors import Error
from frontend_helpers import load_text  # noqa: E402


def test_quotients_of_block_arguments_are_dims_and_numbers(tmp_path):
    model = load_text(tmp_path, """
        const HALF = 16 / 2
        block Heads(d: int, heads: int) {
            in x: f32[B, T, D]
            param w: f32[d / heads, d // heads] = normal(0.02)
            out reshape(x, [B, T, heads, d / heads]) / sqrt(d) + exp(0.0) * log(1.0) + w[0, 0]
        }
        block Wide(n: int) {
            in x: f32[B, 2 * HALF]
            out x * n
        }
        model M {
            in x: f32[B, 3, 16]
            out y = x |> Heads(16, 2) as att
            out z = x[:, 0, :] |> Wide(16 / 4)
        }
    """)
    assert model.parameter_shapes == {"att.w": ((8, 8), "f32")}
    weights = model.init(seed=0)
    x = np.random.default_rng(0).normal(size=(2, 3, 16)).astype(np.float32)
    result = model.forward(weights, {"x": x}, target="reference")
    expected = x.reshape(2, 3, 2, 8) / math.sqrt(16) + weights["att.w"][0, 0]
    np.testing.assert_allclose(result["y"], expected, rtol=1e-6)
    np.testing.assert_allclose(result["z"], x[:, 0, :] * 4, rtol=1e-6)


def test_a_symbolic_dim_divides_exactly_by_its_factor(tmp_path):
    model = load_text(tmp_path, """
        model M {
            in x: f32[B, T]
            out y = reshape(x, [B, 2 * T / 2])
        }
    """)
    x = np.ones((2, 5), np.float32)
    assert model.forward(model.init(), {"x": x}, target="reference")["y"].shape == (2, 5)


@pytest.mark.parametrize("argument", ["10 / 4", "3 / 2"])
def test_an_inexact_int_argument_is_an_error(tmp_path, argument):
    with pytest.raises(Error, match=r"argument 'n' of Twice must be a whole number"):
        load_text(tmp_path, f"""
            block Twice(n: int) {{
                in x: f32[B, D]
                out x * n
            }}
            model M {{
                in x: f32[B, 4]
                out y = x |> Twice({argument})
            }}
        """)
