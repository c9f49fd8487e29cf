"""The front end's resource limits, and the checked compile-time arithmetic that enforces them.

A `.net` file is untrusted input: every size it can ask for is bounded here, so that each
mistake (or attack) is a `file:line:col: error: ...` within a second instead of a hang, a
MemoryError or a RecursionError.  The limits (README, "The language", Limits):

    source file            MAX_SOURCE_BYTES   256 KiB of UTF-8 text, a regular file ending in .net
    imports                MAX_IMPORT_DEPTH   64 files deep, MAX_FILES 1,000 files in all
    expression nesting     MAX_NESTING        100 levels (brackets and operators), checked by
                                              the parser at the token that goes deeper
    lowering depth         MAX_LOWERING_DEPTH 200 levels of expressions nested through block
                                              applications (a block applying a block ...)
    integer values         MAX_INT            |n| < 2**63, literals and compile-time results
    float values           finite             1e999 and 1e308 * 10 are errors, not inf
    strings and lists      MAX_SEQUENCE       10,000 characters or items made by `*` and `+`
    dimensions             MAX_DIM            2**31 - 1 per known dimension, at least 1
    tensor size            MAX_ELEMENTS       2**40 elements (known dimensions)
    parameters             MAX_PARAMETERS     2**31 - 1 elements in one model
    repeat counts          MAX_REPEAT         1,000 copies
    graph size             MAX_OPERATIONS     10,000 primitive operations in one model
    errors reported        MAX_REPORTED       20 shown, then "... and N more errors"
"""
from __future__ import annotations

import math
from typing import Any

from ..errors import MAX_REPORTED, Error
from ..source import MAX_SOURCE_BYTES, Span

MAX_IMPORT_DEPTH = 64
MAX_FILES = 1_000
MAX_NESTING = 100
MAX_LOWERING_DEPTH = 200
MAX_INT = 2 ** 63 - 1
MAX_SEQUENCE = 10_000
MAX_DIM = 2 ** 31 - 1
MAX_ELEMENTS = 2 ** 40
MAX_PARAMETERS = 2 ** 31 - 1
MAX_REPEAT = 1_000
MAX_OPERATIONS = 10_000

__all__ = ["MAX_SOURCE_BYTES", "MAX_REPORTED", "MAX_IMPORT_DEPTH", "MAX_FILES", "MAX_NESTING",
           "MAX_LOWERING_DEPTH", "MAX_INT", "MAX_SEQUENCE", "MAX_DIM", "MAX_ELEMENTS",
           "MAX_PARAMETERS", "MAX_REPEAT", "MAX_OPERATIONS", "fold", "negate", "check_value",
           "count", "Quotient", "whole"]


class Quotient(float):
    """`a / b` of two compile-time ints: a float that remembers both operands, so that where a
    whole number is needed (a shape, a dimension, an int argument) `d / heads` is accepted when
    exact and an inexact one is an error that names both numbers.  Arithmetic on it gives a
    plain float; it pickles as one (it may reach op attributes and the compile cache)."""

    numerator: int
    denominator: int

    def __new__(cls, numerator: int, denominator: int):
        value = super().__new__(cls, numerator / denominator)
        value.numerator, value.denominator = numerator, denominator
        return value

    def __reduce__(self):
        return (float, (float(self),))


def whole(value: Any, span: Span | None, what: str = "a dimension") -> Any:
    """`value`, with an exact Quotient turned into its int; an inexact one is an Error."""
    if not isinstance(value, Quotient):
        return value
    if value.numerator % value.denominator:
        raise Error(f"{what} must be a whole number, but {value.numerator} / "
                    f"{value.denominator} is {float(value)!r}", span,
                    f"{value.numerator} is not divisible by {value.denominator}; use `//` to "
                    f"round down")
    return value.numerator // value.denominator


def count(n: int) -> str:
    """`1,000,000`: how the messages write large numbers."""
    return f"{n:,}"


def _too_large_int(span: Span | None) -> Error:
    return Error(f"this integer is too large (the limit is {count(MAX_INT)}, 2**63 - 1)", span,
                 "netdsl's integers are 64-bit")


def check_value(value: Any, span: Span | None) -> Any:
    """`value` if it is within the limits for a compile-time value, else an Error at `span`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -MAX_INT - 1 <= value <= MAX_INT:
            return value
        raise _too_large_int(span)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise Error("this number is not finite (it overflows a 64-bit float)", span)
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_SEQUENCE:
        what = "string" if isinstance(value, str) else "list"
        raise Error(f"this {what} would have {count(len(value))} "
                    f"{'characters' if what == 'string' else 'items'}, more than the limit of "
                    f"{count(MAX_SEQUENCE)}", span)
    return value


def _int_bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) and not isinstance(value, bool) \
        else 0


def _precheck(op: str, left: Any, right: Any, span: Span | None) -> None:
    """Refuse, before computing it, an operation whose result is too large to compute."""
    if op == "**":
        if isinstance(left, (int, float)) and isinstance(right, int) \
                and not isinstance(right, bool) and abs(left) > 1 and right > 0:
            if isinstance(left, int):
                if right * math.log2(abs(left)) > 64:
                    raise _too_large_int(span)
            elif right * math.log2(abs(left)) > 1100:
                raise Error("this number is not finite (it overflows a 64-bit float)", span)
        return
    if op in ("*", "+"):
        sequence, times = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
        if isinstance(sequence, (str, list, tuple)):
            if op == "*" and isinstance(times, int) and not isinstance(times, bool):
                size = len(sequence) * max(times, 0)
            elif op == "+" and isinstance(times, (str, list, tuple)):
                size = len(sequence) + len(times)
            else:
                return
            if size > MAX_SEQUENCE:
                what = "string" if isinstance(sequence, str) else "list"
                raise Error(f"this {what} would have {count(size)} "
                            f"{'characters' if what == 'string' else 'items'}, more than the "
                            f"limit of {count(MAX_SEQUENCE)}", span)
    if _int_bits(left) > 64 or _int_bits(right) > 64:      # never made by checked values
        raise _too_large_int(span)


_OPERATORS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "//": lambda a, b: a // b, "%": lambda a, b: a % b,
    "**": lambda a, b: a ** b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
OPERATORS = frozenset(_OPERATORS)


def fold(op: str, left: Any, right: Any, span: Span | None) -> Any:
    """`left op right` on compile-time values, within the limits; an Error at `span` for a
    result too large, not finite, or not defined (types, division by zero)."""
    if op not in _OPERATORS:                    # `@` on numbers
        raise Error(f"`{op}` is not defined on compile-time values such as {left!r}", span,
                    "`@` multiplies matrices: both operands must be tensors")
    _precheck(op, left, right, span)
    if op == "/" and all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right)) \
            and right != 0:
        return Quotient(left, right)
    try:
        result = _OPERATORS[op](left, right)
    except (TypeError, ZeroDivisionError, OverflowError, ValueError) as problem:
        raise Error(f"cannot compute this constant expression: {problem}", span) from None
    if isinstance(result, complex):             # (-8) ** 0.5
        raise Error("cannot compute this constant expression: the result is not a real number",
                    span)
    return check_value(result, span)


def negate(value: Any, span: Span | None) -> Any:
    """`-value` on a compile-time value."""
    try:
        return check_value(-value, span)
    except TypeError:
        raise Error(f"cannot negate {value!r}", span) from None
