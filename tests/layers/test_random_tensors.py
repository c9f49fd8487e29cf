"""In-graph random tensors: `normal(shape, mean, std)` and `uniform(shape, low, high)`.

They lower to random_normal / random_uniform keyed by a per-call seed and the per-step counter
input `__rng__` (the training loop feeds the global step), so: the shape follows the symbolic
dims, the moments are right over a large draw, successive steps draw new numbers, the same step
draws the same numbers, and every target draws exactly the same ones.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import netdsl
from netdsl.compiler import compile_step

TARGETS = ["reference", "cpu"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("random") / "noise.net"
    path.write_text(textwrap.dedent("""
        model Noise {
            in x: f32[B, 4]
            out n = x + normal([B, 4])
            out m = normal([B, 4], 2.0, 0.5)
            out u = uniform([B, 4])
            out w = uniform([B, 4], low=-3.0, high=1.0)
        }
    """))
    return netdsl.load(path)


def draw(model, target, batch, step):
    compiled = model.compiled_forward(target)
    arrays = {"x": np.zeros((batch, 4), np.float32), "__rng__": np.int64(step)}
    return compiled.run(arrays)


@pytest.mark.parametrize("target", TARGETS)
def test_shapes_and_moments(model, target):
    outs = draw(model, target, 20000, 0)
    for name in "nmuw":
        assert outs[name].shape == (20000, 4) and outs[name].dtype == np.float32
    assert abs(outs["n"].mean()) < 0.02 and outs["n"].std() == pytest.approx(1.0, rel=0.02)
    assert outs["m"].mean() == pytest.approx(2.0, abs=0.01)
    assert outs["m"].std() == pytest.approx(0.5, rel=0.02)
    assert 0.0 <= outs["u"].min() and outs["u"].max() < 1.0
    assert outs["u"].mean() == pytest.approx(0.5, abs=0.01)
    assert outs["u"].std() == pytest.approx(np.sqrt(1 / 12), rel=0.02)
    assert -3.0 <= outs["w"].min() and outs["w"].max() < 1.0
    assert outs["w"].mean() == pytest.approx(-1.0, abs=0.03)


@pytest.mark.parametrize("target", TARGETS)
def test_steps_draw_new_numbers_and_a_step_repeats(model, target):
    first, again, second = (draw(model, target, 16, step) for step in (3, 3, 4))
    for name in "nmuw":
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.allclose(first[name], second[name])
    # Distinct calls of the same function are distinct streams.
    assert not np.allclose(first["n"], (first["m"] - 2.0) / 0.5)


def test_targets_draw_the_same_numbers(model):
    for step in (0, 7):
        reference = draw(model, "reference", 33, step)
        cpu = draw(model, "cpu", 33, step)
        for name in "nmuw":
            np.testing.assert_allclose(cpu[name], reference[name], rtol=1e-6, atol=1e-6)


def test_training_step_advances_the_counter(tmp_path):
    """fit feeds the global step to `__rng__`: a model whose loss is pure noise sees a new
    loss every step (the same on both targets)."""
    path = tmp_path / "vae.net"
    path.write_text(textwrap.dedent("""
        model V {
            in x: f32[B, 2]
            param w: f32[2] = ones
            out z = x * w + normal([B, 2])
            loss mean(z * z)
        }
    """))
    model = netdsl.load(path)
    assert "__rng__" in {v.name for v in model.training_forward.inputs}
    x = np.zeros((8, 2), np.float32)
    losses = {}
    for target in TARGETS:
        result = model.fit(model.init(), {"x": x}, epochs=3, batch=8, split=1.0,
                           shuffle=False, optimizer="sgd", lr=1e-3, target=target)
        losses[target] = [epoch["loss"] for epoch in result.history]
        assert len(set(losses[target])) == 3
    np.testing.assert_allclose(losses["cpu"], losses["reference"], rtol=1e-5)
