"""jit._plain_error_messages: Numba's errors in a process that imported netdsl's jit carry no
terminal escape codes (and cost no colorama calls to build)."""
from __future__ import annotations

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
