"""A mistake inside a block's body is reported once, at the mistake, followed by a note at the
place the model uses the block (innermost block first), and nothing else: no "has no `out`",
no error about what the block returned."""
from __future__ import annotations

import re

from netdsl.cli import main

RES = """\
block Res(units: int) {
    in  x: f32[B, units]
    h = x |> Dense(units) |> nosuch
    out x + h
}
"""


def _check(tmp_path, capsys, text: str) -> tuple[int, str]:
    path = tmp_path / "m.net"
    path.write_text(text)
    status = main(["check", "-q", str(path)])
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    return status, captured.err


def _headlines(text: str) -> list[str]:
    """`m.net:L:C: error|note: ...` lines, without the file's folder."""
    return [line.split("m.net:", 1)[1] for line in text.splitlines()
            if re.search(r"m\.net:\d+:\d+: (error|note): ", line)]


def test_one_error_in_a_block_and_a_note_at_its_use(tmp_path, capsys):
    status, text = _check(tmp_path, capsys, RES + """
model M {
    in  x: f32[B, 8]
    in  y: i64[B]
    logits = x |> Res(8) |> Dense(3)
    out probs = softmax(logits)
    loss cross_entropy(logits, y)
}
""")
    assert status == 1
    assert _headlines(text) == ["3:30: error: unknown name 'nosuch'",
                                "10:19: note: block Res is used here"]
    assert "    logits = x |> Res(8) |> Dense(3)\n                  ^^^^^^\n" in text
    assert "errors" not in text                      # one error, no count line


def test_a_block_used_twice_reports_its_mistake_once(tmp_path, capsys):
    status, text = _check(tmp_path, capsys, RES + """
model M {
    in  x: f32[B, 8]
    out y = x |> Res(8) |> Res(8) |> Dense(3)
}
""")
    assert status == 1
    assert _headlines(text) == ["3:30: error: unknown name 'nosuch'",
                                "9:18: note: block Res is used here"]


def test_nested_blocks_note_each_use_innermost_first(tmp_path, capsys):
    status, text = _check(tmp_path, capsys, """\
block Inner(units: int) {
    in  x: f32[B, units]
    out x |> Dense(units) |> Conv2D(3, kernel=3)
}

block Outer(units: int) {
    in  x: f32[B, units]
    h = x |> Inner(units)
    out x + h
}

model M {
    in  x: f32[B, 8]
    out y = x |> Outer(8) |> Dense(3)
}
""")
    assert status == 1
    assert _headlines(text) == [
        "3:30: error: Conv2D expects input f32[B, C, H, W] (rank 4), got f32[B, 8]",
        "8:14: note: block Inner is used here",
        "14:18: note: block Outer is used here"]


def test_a_block_with_no_out_is_one_error_at_the_block_with_its_use(tmp_path, capsys):
    status, text = _check(tmp_path, capsys, """\
block Res(units: int) {
    in  x: f32[B, units]
    h = x |> Dense(units)
}

model M {
    in  x: f32[B, 8]
    out y = x |> Res(8) |> Dense(3)
}
""")
    assert status == 1
    assert _headlines(text) == ["1:7: error: block Res has no `out`",
                                "8:18: note: block Res is used here"]


def test_a_mistake_in_the_model_itself_has_no_use_note(tmp_path, capsys):
    status, text = _check(tmp_path, capsys, """\
block Res(units: int) {
    in  x: f32[B, units]
    out x + (x |> Dense(units))
}

model M {
    in  x: f32[B, 8]
    out y = x |> Res(8) |> nosuch
}
""")
    assert status == 1
    assert _headlines(text) == ["8:28: error: unknown name 'nosuch'"]
