"""lean_passes.py: Numba's closure inlining and after-inference rewrites run wherever a function
has what they act on, and are skipped (with the same results) where it has not."""
from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from netdsl.backends.numba_cpu import lean_passes  # noqa: E402
from netdsl.backends.numba_cpu.jit import njit  # noqa: E402


@pytest.fixture
def full_runs(monkeypatch):
    """Which of the two passes ran Numba's own version, by pass name, per compile."""
    ran = []
    for lean in (lean_passes.LeanInlineClosureLikes, lean_passes.LeanNopythonRewrites):
        numba_pass = lean.__mro__[1]

        def counted(self, state, name=numba_pass.__name__, original=numba_pass.run_pass,
                    lean=lean):
            if isinstance(self, lean):          # not Numba's own compiles of its overloads
                ran.append(name)
            return original(self, state)
        monkeypatch.setattr(numba_pass, "run_pass", counted)
    return ran


def test_a_plain_loop_skips_both(full_runs):
    @njit
    def total(x):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i] * 2.0
        return s
    assert total(np.arange(5.0)) == 20.0
    assert full_runs == []


def test_closure_and_comprehension_are_inlined(full_runs):
    @njit
    def closure(x):
        offset = 3.0

        def shifted(v):
            return v + offset
        return shifted(x) * 2.0

    @njit
    def squares(n):
        return np.array([i * i for i in range(n)])

    assert closure(1.0) == 8.0
    np.testing.assert_array_equal(squares(4), [0, 1, 4, 9])
    assert full_runs.count("InlineClosureLikes") == 2


def test_array_expressions_are_rewritten(full_runs):
    @njit
    def fused(a, b):
        return a * 2.0 + np.exp(b)

    @njit
    def constants():
        return np.array([1.5, 2.5, 3.5])

    a, b = np.arange(4.0), np.linspace(0, 1, 4)
    np.testing.assert_allclose(fused(a, b), a * 2.0 + np.exp(b))
    np.testing.assert_array_equal(constants(), [1.5, 2.5, 3.5])
    assert full_runs.count("NopythonRewrites") == 2


def test_the_array_expression_is_fused():
    """The rewrite ran, not only a pass by its name: Numba's fused `arrayexpr` is in the IR."""
    @njit
    def fused(a, b):
        return a * 2.0 + b
    fused(np.arange(3.0), np.arange(3.0))
    (result,) = fused.overloads.values()
    assert any(getattr(statement, "value", None) is not None
               and getattr(statement.value, "op", None) == "arrayexpr"
               for block in result.type_annotation.blocks.values()
               for statement in block.body)
