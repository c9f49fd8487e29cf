"""jit._type_arrays_without_numpy_ma: netdsl's typeof of NumPy arrays gives Numba's types, and
masked arrays are still refused once numpy.ma exists."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from netdsl.backends.numba_cpu import jit  # noqa: F401  (installs the typeof)


def _arrays():
    base = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    readonly = np.ones((3, 3), np.float64)
    readonly.flags.writeable = False
    return [base, base.astype(np.float64), base.astype(np.int64), base.astype(np.int32),
            base.astype(np.bool_), base.astype(np.complex64), np.asfortranarray(base),
            base[:, ::2], base[0], np.float32(3) * np.ones(()), readonly,
            np.zeros((0, 5), np.float32), base.astype(np.uint8)]


@pytest.mark.parametrize("index", range(13))
def test_arrays_get_numbas_own_types(index):
    from numba.core.typing.typeof import Purpose, typeof_impl
    array = _arrays()[index]
    ours = typeof_impl.dispatch(np.ndarray)
    assert ours.__name__ == "typeof_array"
    context = type("Context", (), {"purpose": Purpose.argument})()
    assert ours(array, context) == ours.numba_typeof(array, context)


def test_an_unsupported_dtype_raises_numbas_error():
    from numba.core import errors
    from numba.core.typing.typeof import Purpose, typeof_impl
    context = type("Context", (), {"purpose": Purpose.argument})()
    with pytest.raises(errors.NumbaValueError, match="Unsupported array dtype"):
        typeof_impl.dispatch(np.ndarray)(np.zeros(2, "V3"), context)


MASKED = """
import sys
import numpy as np
from netdsl.backends.numba_cpu.jit import njit
from numba.core import errors
add = njit(lambda a: a.sum())
assert add(np.ones(3, np.float32)) == 3
print("numpy.ma" in sys.modules)                  # the first call typed without it
try:
    add(np.ma.masked_array(np.ones(3), mask=[0, 1, 0]))
except errors.NumbaTypeError as error:
    print("refused", "MaskedArray" in str(error))
"""


def test_the_first_call_does_not_import_numpy_ma_and_masked_arrays_are_refused():
    result = subprocess.run([sys.executable, "-c", MASKED], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["False", "refused", "True"]
