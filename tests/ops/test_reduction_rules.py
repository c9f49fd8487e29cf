"""Reduction rules (`OpDef.reduction`): folding values from the identity with the combine
template, then the finish template, agrees with the op's NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.ir.types import DType
from netdsl.ops import all_ops

RULED = sorted(name for name, definition in all_ops().items() if definition.reduction)


def test_the_loop_reductions_have_rules():
    assert {"sum", "mean", "max", "min"} <= set(RULED)


@pytest.mark.parametrize("name", RULED)
@pytest.mark.parametrize("dtype", [DType.f32, DType.i64])
def test_rule_folds_like_reference(name, dtype):
    definition = all_ops()[name]
    rule = definition.reduction
    values = np.random.default_rng(0).integers(-9, 9, 7).astype(dtype.numpy)
    if name == "mean" and not dtype.is_float:
        pytest.skip("mean is float-only")
    accumulator = rule.identity(dtype)
    for value in values:
        accumulator = eval(rule.combine.format("accumulator", "value"))
    if rule.finish:
        accumulator = eval(rule.finish.format("accumulator", count=len(values)))
    assert np.isclose(accumulator, definition.reference(values))
    # The identity is neutral: folding it into any value leaves the value.
    identity = rule.identity(dtype)
    for value in values:
        assert eval(rule.combine.format("identity", "value")) == value
