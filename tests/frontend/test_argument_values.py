"""Argument values no layer, function or initialiser can be built from are errors at the
argument, with a caret under it, instead of a NumPy exception during `init` or lowering."""
from __future__ import annotations

import textwrap

import pytest

from netdsl.cli import main

HEADER = """\
model M {
    in x: f32[B, 4]
    in img: f32[B, 3, 8, 8]
    in ids: i64[B, 5]
    in y: i64[B]
"""

# (the line after `out o = `, its message, the text the caret must start under)
CASES = [
    ("x |> Dense(0)", "Dense: units must be at least 1, got 0", "0"),
    ("x |> Dense(-1)", "Dense: units must be at least 1, got -1", "-1"),
    ("img |> Conv2D(0, kernel=3)", "Conv2D: filters must be at least 1, got 0", "0"),
    ("img |> Conv2D(4, kernel=0)", "Conv2D: kernel must be at least 1, got 0", "kernel="),
    ("img |> Conv2D(4, kernel=[3])",
     "Conv2D: kernel must be an int or a list of two ints (height, width), got [3]", "kernel="),
    ("img |> Conv2D(4, 3, [1, 2, 3])",
     "Conv2D: stride must be an int or a list of two ints (height, width), got [1, 2, 3]", "["),
    ("img |> Conv2D(4, kernel=3, stride=0)", "Conv2D: stride must be at least 1, got 0",
     "stride="),
    ("img |> Conv2D(4, kernel=3, padding=-1)", "Conv2D: padding must be at least 0, got -1",
     "padding="),
    ('img |> Conv2D(4, kernel=3, padding="full")',
     'Conv2D: padding must be a number, a pair, "same" or "valid", got "full"', "padding="),
    ("img |> MaxPool(0)", "MaxPool: size must be at least 1, got 0", "0"),
    ("img |> AvgPool(2, stride=[2])",
     "AvgPool: stride must be an int or a list of two ints (height, width), got [2]", "stride="),
    ("ids |> Embedding(0, 4)", "Embedding: vocab must be at least 1, got 0", "0"),
    ("ids |> Embedding(20, -4)", "Embedding: dim must be at least 1, got -4", "-4"),
    ("x |> Dense(4, init=uniform(1, -1))", "initialiser uniform: low (1) is above high (-1)",
     "uniform"),
    ("x |> Dense(4, init=normal(-1))",
     "initialiser normal: the standard deviation must not be negative, got -1", "normal"),
    ("x |> Dense(4, init=constant(1e40))",
     "initialiser constant: arguments must be finite numbers that fit in f32", "constant"),
    ("one_hot(y, 0)", "one_hot: the depth (number of classes) must be at least 1, got 0",
     "one_hot"),
    ('zeros([B, 4], dtype="f99")', 'zeros: unknown element type "f99"', "zeros"),
    ('normal([B, 4], dtype="f99")', 'normal: unknown element type "f99"', "normal"),
]


@pytest.mark.parametrize("expression, message, under", CASES,
                         ids=[case[0] for case in CASES])
def test_bad_argument_value_is_an_error_at_the_argument(tmp_path, capsys, expression, message,
                                                        under):
    path = tmp_path / "values.net"
    path.write_text(HEADER + f"    out o = {expression}\n}}\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first, line, caret = err.splitlines()[:3]
    assert first.startswith(f"{path}:6:") and first.endswith(f"error: {message}")
    start = line.index(under, line.index("=") + 1)
    assert caret.index("^") == start


def test_valid_padding_is_no_padding(tmp_path):
    import netdsl
    path = tmp_path / "valid.net"
    path.write_text(textwrap.dedent("""\
        model V {
            in img: f32[B, 3, 8, 8]
            out o = img |> Conv2D(4, kernel=3, padding="valid")
        }
    """))
    assert netdsl.load(path).graph.outputs["o"].type.shape[1:] == (4, 6, 6)
