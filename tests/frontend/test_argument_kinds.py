"""Layer and function arguments are checked against their declared kinds (int, bool, tensor,
initialiser, ...) and a wrong kind is an error at the argument, not a crash further on."""
from __future__ import annotations

import textwrap

import pytest

from netdsl.cli import main


@pytest.mark.parametrize("expression, message", [
    ('x |> Dense("a")', "Dense: argument 'units' expects an int, got the string \"a\""),
    ("x |> Dense(4, bias=1)", "Dense: argument 'bias' expects a bool, got the int 1"),
    ("x |> Dense(4.5)", "Dense: argument 'units' expects an int, got the float 4.5"),
    ("leaky_relu(x, alpha=true)", "leaky_relu: argument 'alpha' expects a number"),
    ("relu(3)", "relu: argument 'x' expects a tensor, got the int 3"),
])
def test_wrong_argument_kind_is_reported_at_the_argument(tmp_path, capsys, expression, message):
    path = tmp_path / "kinds.net"
    path.write_text(textwrap.dedent(f"""\
        model K {{
            in x: f32[B, 4]
            out y = {expression}
        }}
    """))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"{path}:3:") and message in err.splitlines()[0]
