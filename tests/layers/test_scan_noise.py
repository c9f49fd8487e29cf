"""Random tensors inside a `scan` body draw new numbers at every loop step.

The body's counter is (outer counter) * T + step index (frontend/scan.py), so: no two steps of
one loop share noise, the same `__rng__` gives the same numbers on every target, a new
`__rng__` gives new numbers, nested scans are independent per (outer, inner) step, and the
gradient (a reverse scan that rebuilds the body) still agrees across targets.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import netdsl

TARGETS = ["reference", "cpu"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("scan_noise") / "walk.net"
    path.write_text(textwrap.dedent("""
        model Walk {
            in x: f32[B, 5, 2]
            in y: f32[B, 2]
            steps, h = scan x over 1 with h = zeros([B, 2]) {
                h = tanh((h + x_t) |> Dense(2) as cell) + 0.1 * normal([B, 2])
                yield normal([B, 2])
            }
            out steps
            out h
            loss mse(h, y)
        }
    """))
    return netdsl.load(path)


def draw(model, target, step):
    compiled = model.compiled_forward(target)
    arrays = {"x": np.zeros((3, 5, 2), np.float32), "__rng__": np.int64(step),
              **model.init(seed=0)}
    return compiled.run(arrays)


def _steps(outs):
    return np.asarray(outs["steps"] if isinstance(outs, dict) else outs[0])


@pytest.mark.parametrize("target", TARGETS)
def test_every_step_draws_new_noise(model, target):
    steps = _steps(draw(model, target, 0))
    flat = steps.transpose(1, 0, 2).reshape(5, -1)
    for i in range(5):
        for j in range(i + 1, 5):
            assert not np.allclose(flat[i], flat[j]), (i, j)
    assert abs(float(steps.mean())) < 1.0 and 0.3 < float(steps.std()) < 2.0


def test_same_counter_same_numbers_on_every_target(model):
    ref, cpu = (_steps(draw(model, t, 7)) for t in TARGETS)
    np.testing.assert_allclose(ref, cpu, rtol=1e-6, atol=1e-6)
    assert not np.allclose(_steps(draw(model, "cpu", 8)), cpu)


def test_gradient_through_a_noisy_scan_agrees(model):
    weights = model.init(seed=0)
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(3, 5, 2)).astype(np.float32),
            "y": np.zeros((3, 2), np.float32)}
    results = [model.loss_and_grad(weights, data, target=t) for t in TARGETS]
    (ref_loss, ref_grads), (cpu_loss, cpu_grads) = results
    assert ref_loss == pytest.approx(cpu_loss, rel=1e-5)
    for name in ref_grads:
        np.testing.assert_allclose(ref_grads[name], cpu_grads[name], rtol=1e-4, atol=1e-6)


def test_nested_scans_draw_per_inner_and_outer_step(tmp_path):
    path = tmp_path / "nested.net"
    path.write_text(textwrap.dedent("""
        model Nested {
            in x: f32[B, 3, 4]
            outer, last = scan x over 1 with h = zeros([B, 4]) {
                inner, g = scan x_t over 1 with g = zeros([B]) {
                    g = 0.5 * g + normal([B])
                    yield g
                }
                h = inner + x_t
                yield h
            }
            out outer
        }
    """))
    model = netdsl.load(path)
    outs = model.forward(model.init(seed=0), {"x": np.zeros((2, 3, 4), np.float32)},
                         target="reference")
    values = np.asarray(outs["outer"])[0].ravel()          # [3 outer, 4 inner] of example 0
    assert len(np.unique(values)) == values.size
