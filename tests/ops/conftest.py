"""Fixtures for the op tests: the registry's example-input generator and a seeded generator.

`example_inputs` implements the options of the example protocol documented in test_registry.py
(examples are `(input_types, attrs)` or `(input_types, attrs, options)`).  Test modules never
import conftest; they receive these helpers as fixtures.
"""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.ir.types import DType, TensorType

FLOAT_RANGE = (-2.0, 2.0)
AVOID_DISTANCE = 0.05          # far enough from a kink that a finite difference never crosses it


def example_inputs(types, options: dict, rng: np.random.Generator,
                   float_dtype: DType | None = None) -> list[np.ndarray]:
    """Random arrays for `types` following the example `options` (float_dtype overrides floats)."""
    def dtype_of(t: TensorType):
        return (float_dtype if float_dtype is not None and t.dtype.is_float else t.dtype).numpy

    if "inputs" in options:
        arrays = options["inputs"](rng, types)
        return [np.asarray(a, dtype=dtype_of(t)) for a, t in zip(arrays, types)]
    low, high = options.get("low", FLOAT_RANGE[0]), options.get("high", FLOAT_RANGE[1])
    arrays = []
    for t in types:
        shape = tuple(int(d) for d in t.shape)
        if t.dtype.is_float:
            x = rng.uniform(low, high, shape)
            for point in options.get("avoid", ()):
                near = np.abs(x - point) < AVOID_DISTANCE
                x = np.where(near, point + np.where(x >= point, 2, -2) * AVOID_DISTANCE, x)
            arrays.append(x.astype(dtype_of(t)))
        elif t.dtype.is_int:
            arrays.append(rng.integers(0, options.get("int_high", 3), shape).astype(dtype_of(t)))
        else:
            arrays.append(rng.random(shape) < 0.5)
    return arrays


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(name="example_inputs")
def example_inputs_fixture():
    """The input generator above, handed to tests as a fixture."""
    return example_inputs
