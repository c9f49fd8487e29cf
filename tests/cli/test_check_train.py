"""`netdsl check` checks the train section as training would, without training: every problem
at once, each at its key or value, and exit 1."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.cli import main

MODEL = """\
model M {
    in  x: f32[B, 4]
    in  y: i64[B]
    logits = x |> Dense(3) as fc
    out probs = softmax(logits)
    loss cross_entropy(logits, y)
}
"""

NO_OUT = """\
model M {
    in  x: f32[B, 4]
    in  y: i64[B]
    logits = x |> Dense(3) as fc
    loss cross_entropy(logits, y)
}
"""

GAN = """\
block Critic {
    in  p: f32[B, 2]
    out logit = p |> Dense(1)
}

model G {
    in  x: f32[B, 2]
    fake = normal([B, 2]) |> Dense(2) as gen
    disc = Critic()
    real_score = disc(x)
    fake_score = disc(fake)
    out sample = fake
    loss d_loss = bce_logits(real_score, ones([B, 1])) wrt disc
    loss g_loss = bce_logits(fake_score, ones([B, 1])) wrt gen
}
"""


def _check(tmp_path, capsys, model: str, train: str) -> tuple[int, str]:
    path = tmp_path / "m.net"
    path.write_text(model + "\n" + train)
    status = main(["check", "-q", str(path)])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_every_problem_of_the_section_at_once(tmp_path, capsys):
    status, text = _check(tmp_path, capsys, NO_OUT, """\
train M {
    data = "missing.npz"
    bacth = 32
    optimizer = Adamm(lr=1e-3)
    epochs = 0
    metrics = [accuracy]
    objective(g_loss, every=2)
}
""")
    assert status == 1
    assert "Traceback" not in text
    assert f"m.net:9:12: error: data file not found: {tmp_path / 'missing.npz'}" in text
    assert "m.net:10:5: error: unknown train key 'bacth'" in text
    assert "did you mean 'batch'?" in text
    assert "m.net:11:17: error: unknown optimizer 'Adamm'" in text
    assert "did you mean 'Adam'?" in text
    assert "m.net:12:14: error: epochs must be at least 1, got 0" in text
    assert "m.net:13:5: error: metrics (accuracy) score the model's first `out`" in text
    assert "m.net:14:5: error: objective(g_loss): model M has one objective" in text
    assert "6 errors" in text
    # In the order of the file.
    assert text.index("missing.npz") < text.index("bacth") < text.index("objective(g_loss)")


def test_a_correct_section_passes(tmp_path, capsys):
    np.savez(tmp_path / "train.npz", x=np.zeros((4, 4), np.float32), y=np.zeros(4, np.int64))
    status, text = _check(tmp_path, capsys, MODEL, """\
train M {
    data = "train.npz"
    validation = digits
    batch = 2
    metrics = [accuracy]
}
""")
    assert (status, text) == (0, "")


@pytest.mark.parametrize("value, message, hint", [
    ("digts", "unknown data set 'digts'", "did you mean 'digits'?"),
    ("spirals(m=3)", "data set 'spirals' has no option 'm'", "options:"),
    ('"notes.txt"', "unsupported data file type '.txt'", ".npz, .npy, .csv"),
])
def test_data_values(tmp_path, capsys, value, message, hint):
    (tmp_path / "notes.txt").write_text("x")
    status, text = _check(tmp_path, capsys, MODEL, f"train M {{\n    data = {value}\n}}\n")
    assert status == 1
    assert "m.net:10:12: error: " + message in text
    assert hint in text


def test_metrics_need_a_label(tmp_path, capsys):
    status, text = _check(tmp_path, capsys, """\
model M {
    in  x: f32[B, 4]
    out y = x |> Dense(4) as fc
    loss mse(y, x)
}
""", "train M {\n    metrics = [accuracy]\n}\n")
    assert status == 1
    assert "m.net:8:5: error: metrics (accuracy) compare `out y` with the label" in text


def test_objective_lines_name_losses_declared_wrt(tmp_path, capsys):
    status, text = _check(tmp_path, capsys, GAN, """\
train G {
    objective(d_los, every=1)
    objective(g_loss, every=2)
    objective(h_loss, every=3)
}
""")
    assert status == 1
    assert "objective(d_los): model G has no objective 'd_los'" in text
    assert "did you mean 'd_loss'?" in text
    assert "objective(h_loss): model G has no objective 'h_loss'" in text
    assert "objective(g_loss)" not in text
    assert "2 errors" in text


def test_model_and_section_errors_together(tmp_path, capsys):
    status, text = _check(tmp_path, capsys, MODEL.replace("Dense(3)", "Dens(3)"),
                          "train M {\n    bacth = 3\n}\n")
    assert status == 1
    assert "Dens" in text and "unknown train key 'bacth'" in text


def test_schedule_arguments_are_checked_as_training_builds_them(tmp_path, capsys):
    status, text = _check(tmp_path, capsys, MODEL, """\
train M {
    schedule = reduce_on_plateau(factor=2, monitor=loss)
}
""")
    assert status == 1
    assert "m.net:10:16: error: reduce_on_plateau(factor=...) must be a number in (0, 1), " \
           "got 2" in text
    status, text = _check(tmp_path, capsys, GAN, """\
train G {
    schedule = step(evry=2)
    objective(d_loss, schedule=warmup(2, then=cosine(min=0.1)))
    objective(g_loss, schedule=reduce_on_plateau(patience=2, monitor=loss))
}
""")
    assert status == 1
    assert "error: schedule 'step' has no argument 'evry'" in text
    assert "error: schedule 'cosine' has no argument 'min'" in text
    assert "2 errors" in text
