"""numba_speedups.py: Numba's errors carry no terminal escape codes, and typing an intrinsic's
call does not refresh the target context, while what the intrinsic registers still lowers."""
from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from netdsl.backends.numba_cpu.jit import njit  # noqa: E402


def test_a_typing_error_is_plain_text():
    @njit
    def attribute(x):
        return x.no_such_attribute

    with pytest.raises(numba.core.errors.TypingError) as raised:
        attribute(1)
    message = str(raised.value)
    assert "no_such_attribute" in message
    assert "\x1b[" not in message


def test_numba_errors_built_during_typing_are_plain():
    from numba.core import errors
    assert "\x1b[" not in str(errors.NumbaError("a message"))
    assert "\x1b[" not in errors.termcolor().errmsg("a message")


def _doubled_intrinsic():
    from numba.extending import intrinsic

    @intrinsic
    def doubled(typingctx, value):
        def codegen(context, builder, signature, arguments):
            return builder.fadd(arguments[0], arguments[0])
        return value(value), codegen
    return doubled


def test_intrinsic_calls_type_without_refreshes(monkeypatch):
    from numba.core.base import BaseContext
    refreshes = []
    refresh = BaseContext.refresh
    monkeypatch.setattr(BaseContext, "refresh",
                        lambda self: (refreshes.append(1), refresh(self))[1])
    doubled = _doubled_intrinsic()
    # Thirty-one call sites, each typed on its own.
    source = "def many(x):\n" + "".join("    x = doubled(x) * 0.5\n" for _ in range(30)) + \
        "    return doubled(x)\n"
    scope = {"doubled": doubled}
    exec(source, scope)
    many = njit(scope["many"])
    assert many(1.5) == 3.0             # the lowering registered at typing was installed
    assert len(refreshes) < 10          # Numba's own lookup: 63 (twice at each call)


def test_the_array_paths_still_lower():
    @njit
    def total(x):
        return x.sum() + x[0]
    assert total(np.arange(4.0, dtype=np.float32)) == 6.0
