"""Counter-based random ops: shapes, determinism in (seed, counter), identical streams in the
reference and compiled backends, and the distributions' statistics."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.backends.numba_cpu.emit import run_single_node
from netdsl.ir.graph import GraphBuilder
from netdsl.ir.types import DType, ShapeError, Sym, TensorType
from netdsl.ops import get_op

B = Sym.named("B")
f32, f64, i64 = DType.f32, DType.f64, DType.i64
COUNTER = TensorType(i64, ())


def counter(value: int) -> np.ndarray:
    return np.array(value, dtype=np.int64)


def draw(name, step=0, like=None, **attrs):
    arrays = [counter(step)] + ([like] if like is not None else [])
    return get_op(name).reference(*arrays, **attrs)


def compiled(name, step=0, like=None, **attrs):
    b = GraphBuilder()
    arrays = [counter(step)] + ([like] if like is not None else [])
    inputs = [b.input(f"x{i}", TensorType(DType.from_numpy(a.dtype), a.shape))
              for i, a in enumerate(arrays)]
    out = b.op(name, *inputs, **attrs)
    return run_single_node(out.producer, arrays)[0]


# -- types ---------------------------------------------------------------------------------------

def test_infer_takes_the_shape_from_the_attr_or_from_like():
    uniform = get_op("random_uniform").infer
    assert uniform(COUNTER, shape=(3, 4)) == TensorType(f32, (3, 4))
    assert uniform(COUNTER, shape=(2,), dtype=f64) == TensorType(f64, (2,))
    assert get_op("random_normal").infer(COUNTER, TensorType(f64, (B, 16))) == \
        TensorType(f64, (B, 16))
    assert get_op("dropout_mask").infer(COUNTER, TensorType(f32, (B, 8)), p=0.2) == \
        TensorType(f32, (B, 8))


@pytest.mark.parametrize("name, inputs, attrs, words", [
    ("random_uniform", (TensorType(f32, ()),), {"shape": (2,)}, "integer scalar counter"),
    ("random_normal", (TensorType(i64, (3,)),), {"shape": (2,)}, "integer scalar counter"),
    ("random_normal", (COUNTER,), {}, "either the attribute `shape`"),
    ("random_uniform", (COUNTER,), {"shape": (2,), "dtype": i64}, "f32 or f64"),
    ("dropout_mask", (COUNTER, TensorType(f32, (3,))), {"p": 1.0}, "p must be in [0, 1)"),
])
def test_errors(name, inputs, attrs, words):
    with pytest.raises(ShapeError) as error:
        get_op(name).infer(*inputs, **attrs)
    assert words in error.value.message


# -- determinism and backends --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["random_uniform", "random_normal"])
def test_streams_depend_only_on_seed_counter_and_index(name):
    first = draw(name, 5, shape=(4, 25), seed=1)
    np.testing.assert_array_equal(first, draw(name, 5, shape=(4, 25), seed=1))
    assert not np.any(first == draw(name, 6, shape=(4, 25), seed=1))
    assert not np.any(first == draw(name, 5, shape=(4, 25), seed=2))
    # Element i does not depend on the shape it is drawn in.
    np.testing.assert_array_equal(first.ravel()[:30], draw(name, 5, shape=(30,), seed=1))


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("step, seed", [(0, 0), (12345, 7), (-1, -99), (2 ** 40, 2 ** 62)])
def test_compiled_uniform_and_dropout_are_bit_identical(dtype, step, seed):
    np.testing.assert_array_equal(
        compiled("random_uniform", step, shape=(3, 50), seed=seed, dtype=dtype),
        draw("random_uniform", step, shape=(3, 50), seed=seed, dtype=dtype))
    like = np.zeros((7, 30), dtype=dtype.numpy)
    np.testing.assert_array_equal(compiled("dropout_mask", step, like, p=0.3, seed=seed),
                                  draw("dropout_mask", step, like, p=0.3, seed=seed))


@pytest.mark.parametrize("dtype", [f32, f64])
def test_compiled_normal_matches_the_reference(dtype):
    like = np.zeros((4, 64), dtype=dtype.numpy)
    np.testing.assert_allclose(compiled("random_normal", 3, like, seed=9),
                               draw("random_normal", 3, like, seed=9), rtol=1e-12, atol=1e-12)


# -- distributions -------------------------------------------------------------------------------

def test_uniform_statistics():
    u = draw("random_uniform", 1, shape=(200_000,), dtype=f64, seed=3)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.std() - np.sqrt(1 / 12)) < 0.005
    histogram = np.histogram(u, bins=20, range=(0, 1))[0]
    assert histogram.min() > 0.95 * len(u) / 20


def test_normal_statistics():
    z = draw("random_normal", 1, shape=(200_000,), seed=3).astype(np.float64)
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(z ** 3)) < 0.03 and abs(np.mean(z ** 4) - 3.0) < 0.1
    stats = pytest.importorskip("scipy.stats")
    assert stats.kstest(z[:20_000], "norm").pvalue > 1e-3


def test_consecutive_counters_are_uncorrelated():
    a = draw("random_normal", 10, shape=(50_000,), dtype=f64)
    b = draw("random_normal", 11, shape=(50_000,), dtype=f64)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.02
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.02


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_dropout_mask_keeps_1_minus_p_scaled(p):
    mask = draw("dropout_mask", 4, np.zeros((100_000,), np.float32), p=p, seed=2)
    assert mask.dtype == np.float32
    kept = mask != 0
    assert set(np.unique(mask)) <= {0.0, np.float32(1 / (1 - p))}
    assert abs(kept.mean() - (1 - p)) < 0.01
    assert abs(mask.mean() - 1.0) < 0.03        # expectation preserved
