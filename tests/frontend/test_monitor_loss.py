"""`monitor=loss`: the keyword `loss` is read as the column's name where a keyword argument's
value is expected (early_stopping, reduce_on_plateau, and their flags); `loss` is still a
keyword everywhere else."""
from __future__ import annotations

import pytest

from netdsl.cli import main
from netdsl.errors import Error
from netdsl.frontend.train_section import read_flag_value

from frontend_helpers import load_text  # noqa: E402

MODEL = """\
model M {
    in  x: f32[B, 2]
    in  y: f32[B, 1]
    out p = x |> Dense(1)
    loss mse(p, y)
}
"""


@pytest.mark.parametrize("monitor", ["loss", "val_loss"])
def test_early_stopping_monitors_loss_and_val_loss(tmp_path, monitor):
    model = load_text(tmp_path, MODEL + f"""
train M {{
    data = xor
    early_stopping(patience=2, monitor={monitor})
}}
""")
    assert model.train_config.early_stopping == {
        "patience": 2, "monitor": monitor, "min_delta": 0.0, "mode": "min"}


def test_early_stopping_flag_monitors_loss():
    value = read_flag_value("early_stopping", "patience=4, monitor=loss")
    assert value.name == "early_stopping"
    assert value.kwargs == {"patience": 4, "monitor": "loss"}


def test_monitor_loss_checks_clean_and_a_misspelling_is_one_error(tmp_path, capsys):
    path = tmp_path / "m.net"
    path.write_text(MODEL + "\ntrain M {\n    data = xor\n"
                    "    early_stopping(monitor=loss)\n}\n")
    assert main(["check", "-q", str(path)]) == 0
    capsys.readouterr()
    path.write_text(MODEL + "\ntrain M {\n    data = xor\n"
                    "    early_stopping(monitor=losss)\n}\n")
    assert main(["check", "-q", str(path)]) == 1
    text = capsys.readouterr().err
    assert "early_stopping cannot monitor 'losss'" in text and "did you mean 'loss'?" in text


def test_loss_is_still_a_keyword_in_expressions(tmp_path):
    with pytest.raises(Error) as caught:
        load_text(tmp_path, """\
model M {
    in  x: f32[B, 2]
    y = x + loss
    out y
}
""")
    assert caught.value.diagnostics[0].span.line == 3


def test_the_value_span_is_the_word_loss(tmp_path):
    from netdsl.frontend.parser import parse
    from netdsl.frontend import ast
    module = parse("train T {\n    early_stopping(monitor = loss)\n}\n", file="t.net")
    train = next(item for item in module.items if isinstance(item, ast.Train))
    keyword = train.entries[0].value.kwargs[0]
    assert keyword.name == "monitor" and keyword.value.id == "loss"
    span = keyword.value.span
    assert (span.line, span.column, span.end_column) == (2, 30, 34)


@pytest.mark.parametrize("line", ["early_stopping(patience=5, monitor=loss)",
                                  "split = 1.0"])     # no validation: loss is the default
def test_save_best_follows_monitor_loss(tmp_path, monkeypatch, line):
    from netdsl.runtime.checkpoint import load_checkpoint
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.net").write_text(MODEL + "\ntrain M {\n    data = xor\n    epochs = 3\n"
                                    f"    {line}\n}}\n")
    assert main(["train", "m.net", "-q", "--target", "reference",
                 "--save-best", "best.npz", "--log", "run.jsonl"]) == 0
    import json
    rows = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    meta = load_checkpoint(tmp_path / "best.npz").meta
    best = min(rows, key=lambda row: row["loss"])
    assert meta["monitor"] == "loss" and meta["epoch"] == best["epoch"]
    assert meta["value"] == best["loss"]
