"""Symbolic dimensions: floor division cancels common factors; opaque dims evaluate and compile."""
from __future__ import annotations

import numpy as np
import pytest

import netdsl
from netdsl.ir.types import (Sym, dim_add, dim_floordiv, dim_mul, evaluate_dim,
                             opaque_source, opaque_symbols)

B = Sym.named("B")


def test_floor_division_cancels_a_common_factor():
    assert dim_floordiv(dim_mul(2, B), 8) == dim_floordiv(B, 4)       # reshape(x, [-1, 8])
    assert dim_floordiv(dim_mul(4, B), 2) == dim_mul(2, B)
    assert str(dim_floordiv(dim_add(dim_mul(2, B), 4), 6)) == "((B + 2) // 3)"


@pytest.mark.parametrize("b", [1, 2, 5, 7, 12])
def test_an_opaque_dimension_evaluates_as_written(b):
    d = dim_floordiv(dim_add(dim_mul(2, B), 4), 6)
    assert evaluate_dim(d, {"B": b}) == (2 * b + 4) // 6
    assert evaluate_dim(dim_mul(3, dim_floordiv(B, 4)), {"B": b}) == 3 * (b // 4)
    name = d.terms[0][0][0]
    assert opaque_symbols(name) == {"B"}
    assert eval(opaque_source(name, {"B": "d"}), {"d": b}) == (2 * b + 4) // 6
    with pytest.raises(KeyError):
        evaluate_dim(d, {})


def test_a_model_with_a_floor_divided_batch_runs_on_both_targets(tmp_path):
    # PacGAN's critic sees samples in groups of four: [B, 2] -> [B // 4, 8], labels ones([B // 4, 1]).
    path = tmp_path / "pack.net"
    path.write_text("""
model Pack {
    in  x: f32[B, 2]
    logit = reshape(x, [-1, 8]) |> Dense(1) as critic
    out p = logit
    loss bce_logits(logit, ones([B // 4, 1]))
}
""")
    model = netdsl.load(path)
    weights = model.init(seed=0)
    x = np.random.default_rng(0).standard_normal((12, 2)).astype(np.float32)
    results = {t: model.loss_and_grad(weights, {"x": x}, target=t) for t in ("reference", "cpu")}
    (ref_loss, ref_grads), (cpu_loss, cpu_grads) = results["reference"], results["cpu"]
    assert cpu_loss == pytest.approx(ref_loss, rel=1e-5)
    for name in ref_grads:
        np.testing.assert_allclose(cpu_grads[name], ref_grads[name], rtol=1e-4, atol=1e-6)
    logits = x.reshape(3, 8) @ weights["critic.weight"].T + weights["critic.bias"]
    expected = np.mean(np.log1p(np.exp(-logits)))
    assert ref_loss == pytest.approx(float(expected), rel=1e-5)
