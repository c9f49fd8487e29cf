"""The front end's resource limits (netdsl/frontend/limits.py): each is an error at the source,
never a hang, a MemoryError or a RecursionError, and programs within them still work."""
from __future__ import annotations

import textwrap
import time

import pytest

import netdsl
from netdsl.errors import MAX_REPORTED, Diagnostic, Error
from netdsl.frontend import limits
from netdsl.frontend.limits import fold
from netdsl.frontend.parser import parse
from netdsl.source import Span

MODEL = """\
model M {{
    in x: f32[B, 4]
    in y: i64[B]
{body}
}}
"""


def load(tmp_path, text: str, name: str = "model.net"):
    path = tmp_path / name
    path.write_text(text)
    return netdsl.load(path)


def error_of(tmp_path, text: str) -> str:
    with pytest.raises(Error) as caught:
        load(tmp_path, text)
    return str(caught.value)


def model(body: str) -> str:
    return MODEL.format(body=textwrap.indent(textwrap.dedent(body), "    "))


# ---- constant folding ----------------------------------------------------------------------

@pytest.mark.parametrize("op, left, right, message", [
    ("**", 10, 10 ** 10, "this integer is too large"),
    ("**", 7, 100_000_000, "this integer is too large"),
    ("**", 2, 63, "this integer is too large"),
    ("*", 2 ** 62, 4, "this integer is too large"),
    ("**", 10.0, 400, "not finite"),
    ("*", 1e308, 10.0, "not finite"),
    ("*", "ab", 10 ** 12, "this string would have 2,000,000,000,000 characters"),
    ("*", [1, 2], 6000, "this list would have 12,000 items"),
    ("+", "a" * 6000, "b" * 6000, "this string would have 12,000 characters"),
    ("/", 1, 0, "cannot compute this constant expression: division by zero"),
    ("%", 1, 0, "cannot compute this constant expression"),
    ("**", -8, 0.5, "not a real number"),
    ("@", 2, 3, "`@` is not defined on compile-time values"),
    ("-", "a", 1, "cannot compute this constant expression"),
])
def test_fold_refuses_what_cannot_be_computed(op, left, right, message):
    started = time.perf_counter()
    with pytest.raises(Error, match=message):
        fold(op, left, right, None)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("op, left, right, expected", [
    ("**", 2, 62, 2 ** 62), ("**", 2, -1, 0.5), ("**", 1, 10 ** 18, 1), ("**", 0.5, 10 ** 9, 0.0),
    ("*", "ab", 3, "ababab"), ("//", 7, 2, 3), ("<", 1, 2, True), ("-", -2 ** 62, 2 ** 62, -2 ** 63),
])
def test_fold_computes_what_fits(op, left, right, expected):
    assert fold(op, left, right, None) == expected


def test_constants_and_model_arithmetic_go_through_fold(tmp_path):
    assert "this integer is too large" in error_of(
        tmp_path, "const K = 10 ** 10 ** 10\n" + model("out z = x"))
    assert "this integer is too large" in error_of(tmp_path, model("out z = x * (7 ** 99999)"))
    assert "this string would have" in error_of(
        tmp_path, 'const S = "ab" * 10**12\n' + model("out z = x"))
    text = error_of(tmp_path, "const N = -\"a\"\n" + model("out z = x"))
    assert "model.net:1:11: error: cannot apply unary `-` to 'a'" in text


# ---- literals ------------------------------------------------------------------------------

def test_integer_literals_are_64_bit():
    parse(f"const A = {limits.MAX_INT}\n")
    for digits in (str(limits.MAX_INT + 1), "9" * 4300, "9" * 5000):
        with pytest.raises(Error, match="1:11: error: this integer is too large"):
            parse(f"const A = {digits}\n", "m.net")
    with pytest.raises(Error, match="this integer is too large"):
        parse("model M {\n    in x: f32[B, 99999999999999999999]\n}\n")


def test_float_literal_overflow_is_an_error():
    parse("const A = 1e308\nconst B = 1e-999\n")
    with pytest.raises(Error, match="1:11: error: this number is too large for a 64-bit float"):
        parse("const A = 1e999\n")


def test_a_constant_must_fit_the_tensor_type(tmp_path):
    assert "the constant 1e+300 does not fit in f32" in error_of(tmp_path, model("out z = x * 1e300"))
    model_ = load(tmp_path, model("out z = y * 0.5\nout w = y + 2"))
    assert str(model_.graph.outputs["z"].type) == "f32[B]"          # promoted, not truncated
    assert str(model_.graph.outputs["w"].type) == "i64[B]"


# ---- nesting -------------------------------------------------------------------------------

def nested(kind: str, depth: int) -> str:
    expression = {
        "pipe": "x" + " |> relu" * depth,
        "call": "relu(" * depth + "x" + ")" * depth,
        "sum": "x" + " + x" * depth,
        "neg": "-" * depth + "x",
        "index": "x" + "[:, :]" * depth,
        "paren": "(" * depth + "x" + ")" * depth,
    }[kind]
    return model(f"out z = {expression}")


# The model's body is one level; a call counts twice (the call and its bracket), an index once
# (its bracket closes before the next).
@pytest.mark.parametrize("kind, allowed, refused", [
    ("pipe", 99, 100), ("call", 49, 50), ("sum", 99, 100), ("neg", 99, 100),
    ("index", 98, 99), ("paren", 99, 100)])
def test_nesting_is_bounded_at_the_token_that_goes_deeper(tmp_path, kind, allowed, refused):
    load(tmp_path, nested(kind, allowed))
    text = error_of(tmp_path, nested(kind, refused))
    assert f"error: this expression is nested too deeply (more than {limits.MAX_NESTING}" in text
    assert text.count("error:") == 1


@pytest.mark.parametrize("depth", [485, 5000])
def test_deep_nesting_is_an_error_not_a_recursion_error(tmp_path, depth):
    for kind in ("pipe", "call", "sum", "index"):
        assert "nested too deeply" in error_of(tmp_path, nested(kind, depth))
    text = model("s = " + "[" * depth + "1" + "]" * depth + "\nout z = x")
    assert "model.net:4:108: error: this expression is nested too deeply" in error_of(tmp_path, text)


def test_long_lists_and_long_files_are_not_nesting(tmp_path):
    items = ", ".join(str(-i) for i in range(3000))
    lines = "\n".join(f"a{i} = x |> relu |> Dense(4) |> relu" for i in range(300))
    load(tmp_path, model(f"s = [{items}]\n{lines}\nout z = a299"))


def test_nesting_error_keeps_earlier_syntax_errors():
    text = "model M {\n    in x f32[B]\n    out z = x" + " + x" * 200 + "\n}\n"
    with pytest.raises(Error) as caught:
        parse(text, "m.net")
    messages = [d.message for d in caught.value.diagnostics]
    assert messages[0] == "expected ':' after 'x'"
    assert "nested too deeply" in messages[1]
    assert caught.value.diagnostics[1].span.file == "m.net"


# ---- blocks, repeat and sizes --------------------------------------------------------------

def test_recursive_blocks_are_an_error_naming_the_cycle(tmp_path):
    text = textwrap.dedent("""\
        block A(n: int) {
            in x: f32[B, 4]
            out where(n > 0, x |> C(n - 1), x)
        }
        block C(n: int) {
            in x: f32[B, 4]
            out x |> A(n)
        }
        """) + model("out z = x |> A(3)")
    message = error_of(tmp_path, text)
    assert "model.net:7:14: error: block A applies itself (A -> C -> A)" in message
    assert "has no `out`" not in message and message.count("error:") == 1


def test_a_long_chain_of_blocks_is_a_depth_error(tmp_path):
    def chain(n: int) -> str:
        blocks = "".join(
            f"block B{i} {{\n    in x: f32[B, 4]\n    out x |> relu"
            f"{f' |> B{i + 1}' if i + 1 < n else ''}\n}}\n" for i in range(n))
        return blocks + model("out z = x |> B0")
    load(tmp_path, chain(25))
    assert "nest more than 200 levels deep" in error_of(tmp_path, chain(300))


def test_repeat_counts_and_operations_are_bounded(tmp_path):
    assert "repeat: 1,000,000,000 copies is more than the limit of 1,000" in error_of(
        tmp_path, model("out z = x |> repeat(1000000000, Dense(4))"))
    block = "block U {\n    in x: f32[B, 4]\n    out x |> repeat(1000, Dense(4))\n}\n"
    started = time.perf_counter()
    text = error_of(tmp_path, block + model("out z = x |> repeat(1000, U)"))
    assert "needs more than 10,000 primitive operations" in text
    assert time.perf_counter() - started < 20           # refused after the first copy
    load(tmp_path, model("out z = x |> repeat(100, Dense(4))"))


def test_parameter_and_tensor_sizes_are_bounded(tmp_path):
    assert "has 4,398,046,511,104 elements, and a model may have at most 2,147,483,647" in \
        error_of(tmp_path, model("out z = x |> Dense(2**40)"))
    assert "a model may have at most" in error_of(
        tmp_path, model("out z = x |> Dense(2**28) |> Dense(4)"))
    assert "with a dimension larger than 2,147,483,647" in error_of(
        tmp_path, model("out z = one_hot(y, 2**35)"))
    assert "this makes an empty tensor f32[B, 0]" in error_of(tmp_path, model("out z = x[:, 3:1]"))
    assert "makes an empty tensor" in error_of(tmp_path, model("out z = zeros([B, 0])"))


# ---- error reports -------------------------------------------------------------------------

def test_many_errors_are_capped_and_linear(tmp_path):
    def program(n: int) -> str:
        return model("\n".join(f"a{i} = unknown{i}" for i in range(n)) + "\nout z = x")
    started = time.perf_counter()
    text = error_of(tmp_path, program(4000))
    seconds = time.perf_counter() - started
    assert text.count("error: unknown name") == MAX_REPORTED
    assert text.endswith(f"... and {4000 - MAX_REPORTED:,} more errors\n\n4,000 errors")
    assert seconds < 15, seconds
    consts = "".join(f"const C{i} = U{i}\n" for i in range(3000))
    assert "... and 2,980 more errors" in error_of(tmp_path, consts + model("out z = x"))


def test_error_format_counts_only_errors_past_the_cap():
    span = Span("m.net", 1, 1, 1, 2)
    one = Error([Diagnostic("only", span)])
    assert "more error" not in one.format() and "errors" not in one.format()
    many = Error([Diagnostic(f"e{i}", span) for i in range(MAX_REPORTED + 1)])
    assert many.format().endswith(f"... and 1 more error\n\n{MAX_REPORTED + 1} errors")


def test_a_huge_quoted_line_is_cut_around_the_caret(tmp_path):
    text = error_of(tmp_path, model("s = [" + "1, " * 100 + "nope" + ", 1" * 5000 + "]\nout z = x"))
    quoted = text.split("\n")[1]
    assert len(quoted) < 200 and "nope" in quoted and quoted.strip().startswith("...")
    caret = text.split("\n")[2]
    assert quoted[caret.index("^"):caret.index("^") + 4] == "nope"


def test_declared_types_are_bounded(tmp_path):
    def declared(type_: str) -> str:
        return model(f"in a: {type_}\nout z = a")
    load(tmp_path, declared("f32[B, 2147483647]"))
    assert "model.net:4:18: error: dimension 0 would make an empty tensor" in \
        error_of(tmp_path, declared("f32[B, 0]"))
    assert "dimension 4,294,967,296 is larger than 2,147,483,647" in \
        error_of(tmp_path, declared("f32[B, 4294967296]"))
    assert "this type has 4,398,046,511,104 elements" in \
        error_of(tmp_path, declared("f32[2097152, 2097152]"))
    assert "even when its symbols are 1" in error_of(tmp_path, declared("f32[B * 99999999999]"))
    assert "even when its symbols are 1" in error_of(
        tmp_path, model("out z = reshape(x, [B * 99999999999, -1])"))
