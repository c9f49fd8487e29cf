"""The cuda target's cumsum and cumprod (backends/numba_cuda/lowerings/cumulative.py) against
the ops' reference rules, bit for bit (the running value is kept in the dtype, as NumPy's
accumulate): every example compiled alone through compile_graph(target="cuda"), symbolic batch
axes (the scanned one too) run at B = 1 and B = 3, and a long f32 axis where a float64 running
sum would round differently."""
from __future__ import annotations

import numpy as np
import pytest

from cuda_helpers import needs_cuda
from netdsl.ir.types import DType, TensorType
from op_examples import B, compile_one, draw, examples, launched, reference, rng_for, run_one

pytestmark = needs_cuda

OPS = ("cumsum", "cumprod")


def _check(compiled, name, arrays, attrs):
    got, want = run_one(compiled, arrays), reference(name, arrays, attrs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name, index, types, attrs, options",
                         [pytest.param(*case, id=f"{case[0]}-{case[1]}")
                          for case in examples(*OPS)])
def test_example_matches_reference(name, index, types, attrs, options, cache_dir):
    compiled = compile_one(name, types, attrs, cache_dir)
    assert launched(compiled, "cumulative", name)
    _check(compiled, name, draw(types, options, rng_for(name, index)), attrs)


@pytest.mark.parametrize("shape, attrs", [
    ((B, 5, 2), {"axis": 1}),
    ((B, 5, 2), {"axis": -1, "reverse": True}),
    ((B, 4), {"axis": 0, "reverse": True}),        # the scanned axis is the symbolic one
    ((3, B), {"axis": 0}),
], ids=["middle", "last-reverse", "batch-axis-reverse", "batch-inner"])
@pytest.mark.parametrize("name", OPS)
def test_symbolic_batch(name, shape, attrs, cache_dir):
    types = (TensorType(DType.f32, shape),)
    compiled = compile_one(name, types, attrs, cache_dir)
    rng = rng_for(name, 300)
    for batch in (1, 3):
        _check(compiled, name, draw(types, {"low": 0.5, "high": 1.5}, rng, batch), attrs)


def test_long_axis_rounds_as_the_reference(cache_dir):
    """300 f32 terms: the f32 running sum (the reference's) differs from a float64 one."""
    types = (TensorType(DType.f32, (2, 300)),)
    attrs = {"axis": 1}
    x = draw(types, {"low": 0.0, "high": 1.0}, rng_for("cumsum", 400))[0]
    in_float64 = np.cumsum(x.astype(np.float64), axis=1).astype(np.float32)
    assert not np.array_equal(in_float64, reference("cumsum", [x], attrs))
    _check(compile_one("cumsum", types, attrs, cache_dir), "cumsum", [x], attrs)
