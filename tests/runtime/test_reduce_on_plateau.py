"""reduce_on_plateau: the rate drops exactly when torch.optim.lr_scheduler.ReduceLROnPlateau's
does, in training as on fixed sequences; --resume carries its state on; warmup(then=...) takes a
schedule call as written in a train section."""
from __future__ import annotations

import math

import numpy as np
import pytest

import netdsl
from netdsl.errors import Error
from netdsl.runtime.checkpoint import save_checkpoint
from netdsl.runtime.schedules import make_schedule
from netdsl.runtime.train import fit
from netdsl.frontend.train_section import read_flag_value
from netdsl.runtime.train_config import CallValue, with_overrides

torch = pytest.importorskip("torch")


def torch_plateau_rates(values, base_lr=0.1, **options):
    """The lr ReduceLROnPlateau leaves after each `step(value)`."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base_lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **options)
    rates = []
    for value in values:
        scheduler.step(value)
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def our_plateau_rates(values, base_lr=0.1, **args):
    schedule = make_schedule("reduce_on_plateau", args, base_lr, 4, 10)
    rates = []
    for value in values:
        schedule.plateau.step(value)
        rates.append(schedule(123))              # any step: the rate follows the epochs
    return rates


# Falls, plateaus within the threshold, rises and falls again; values equal to the best.
LOSSES = [1.0, 0.9, 0.9, 0.89995, 0.95, 0.7, 0.7, 0.7, 0.7, 0.69, 0.69, 0.69, 0.5, 0.6,
          0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.1, 0.1, 0.1, 0.1]
SCORES = [0.1, 0.3, 0.3, 0.30002, 0.2, 0.5, 0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.9]


@pytest.mark.parametrize("ours, theirs", [
    ({}, {}),
    ({"patience": 0}, {"patience": 0}),
    ({"patience": 1, "factor": 0.5}, {"patience": 1, "factor": 0.5}),
    ({"patience": 2, "threshold": 0.05}, {"patience": 2, "threshold": 0.05}),
    ({"patience": 1, "cooldown": 2, "factor": 0.3}, {"patience": 1, "cooldown": 2, "factor": 0.3}),
    ({"patience": 0, "factor": 0.5, "min_lr": 0.02}, {"patience": 0, "factor": 0.5,
                                                      "min_lr": 0.02}),
    ({"patience": 0, "threshold": 0}, {"patience": 0, "threshold": 0}),
])
def test_the_rate_drops_when_pytorchs_does(ours, theirs):
    expected = torch_plateau_rates(LOSSES, patience=theirs.pop("patience", 10), **theirs)
    got = our_plateau_rates(LOSSES, monitor="loss", **ours)
    assert got == expected
    assert len(set(expected)) > 1 or ours == {}          # the sequence makes it drop


@pytest.mark.parametrize("patience", [0, 1, 2])
def test_accuracy_is_watched_upwards(patience):
    expected = torch_plateau_rates(SCORES, mode="max", patience=patience, factor=0.5)
    assert our_plateau_rates(SCORES, monitor="val_accuracy", patience=patience,
                             factor=0.5) == expected
    assert len(set(expected)) > 1
    # The same numbers as a loss would drop elsewhere: the mode matters.
    assert our_plateau_rates(SCORES, monitor="val_loss", patience=patience,
                             factor=0.5) != expected


MODEL = """model Small {
    in x: f32[B, 4]
    in y: i64[B]
    logits = x |> Dense(8) as hidden |> relu |> Dense(3) as head
    out p = softmax(logits)
    loss cross_entropy(logits, y)
}
train Small {
    batch = 8
    epochs = 12
    optimizer = SGD(lr=0.5, momentum=0.9)
    schedule = reduce_on_plateau(factor=0.5, patience=1, monitor=val_loss)
    metrics = [accuracy]
    split = 0.75
    seed = 3
}
"""


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.net"
    path.write_text(MODEL)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    return netdsl.load(path), {"x": x, "y": (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)}


@pytest.mark.parametrize("schedule, mode", [
    ("reduce_on_plateau(factor=0.5, patience=1, monitor=val_loss)", "min"),
    ("reduce_on_plateau(factor=0.5, patience=1, monitor=loss, threshold=0.05)", "min"),
    ("reduce_on_plateau(factor=0.5, patience=0, monitor=val_accuracy)", "max"),
])
def test_training_drops_the_rate_when_pytorch_would_on_the_same_column(small, schedule, mode):
    model, data = small
    monitor = schedule.split("monitor=")[1].split(",")[0].split(")")[0]
    config = with_overrides(model.train_config,
                            {"schedule": read_flag_value("schedule", schedule)})
    result = fit(model, model.init(seed=3), config, data=data, target="reference",
                 verbose=False)
    column = [row[monitor] for row in result.history]
    options = dict(mode=mode, factor=0.5, patience=0 if "patience=0" in schedule else 1,
                   threshold=0.05 if "threshold" in schedule else 1e-4)
    # Epoch e trains at the rate set by the rows before it.
    expected = [0.5] + torch_plateau_rates(column, base_lr=0.5, **options)[:-1]
    assert [row["lr"] for row in result.history] == expected
    assert len(set(expected)) > 1, "the run should reach a plateau"


def _save(path, state, model):
    save_checkpoint(path, state.weights, {"model": model.name, "resume": state.meta()},
                    optimizer=state.optimizer)


def test_a_resumed_run_keeps_the_plateau_state(small, tmp_path):
    model, data = small
    config = model.train_config
    whole = fit(model, model.init(seed=3), config, data=data, target="reference",
                verbose=False)
    rates = [row["lr"] for row in whole.history]
    # Stop where the rate has already dropped and it may drop again soon after.
    drop = next(epoch for epoch in range(1, len(rates)) if rates[epoch] < rates[0])
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > (drop + 1) * 6         # 45 examples in batches of 8: 6 a epoch

    part = fit(model, model.init(seed=3), config, data=data, target="reference",
               verbose=False, should_stop=stop)
    saved = part.resume.meta()["schedules"][0]
    assert saved["lr"] == rates[drop] < 0.5
    _save(tmp_path / "part.npz", part.resume, model)
    resumed = fit(model, model.init(seed=99), config, data=data, target="reference",
                  verbose=False, resume=tmp_path / "part.npz")
    assert [row["lr"] for row in resumed.history] == rates
    for name in whole.weights:
        np.testing.assert_array_equal(resumed.weights[name], whole.weights[name], err_msg=name)


def test_a_damaged_plateau_state_is_one_error(small, tmp_path):
    model, data = small
    config = model.train_config
    asked = []
    part = fit(model, model.init(seed=3), config, data=data, target="reference",
               verbose=False, should_stop=lambda: asked.append(1) or len(asked) > 12)
    part.resume.schedules = [{"lr": "fast", "best": 1.0, "bad_epochs": 0, "cooldown_left": 0}]
    _save(tmp_path / "bad.npz", part.resume, model)
    with pytest.raises(Error, match="its reduce_on_plateau state has lr 'fast'"):
        fit(model, model.init(seed=3), config, data=data, target="reference", verbose=False,
            resume=tmp_path / "bad.npz")


def _config_error(tmp_path, schedule: str, **options) -> Error:
    path = tmp_path / "m.net"
    path.write_text(MODEL.replace(
        "schedule = reduce_on_plateau(factor=0.5, patience=1, monitor=val_loss)",
        f"schedule = {schedule}"))
    with pytest.raises(Error) as caught:
        model = netdsl.load(path)
        model.fit(model.init(), {"x": np.zeros((8, 4), np.float32),
                                 "y": np.zeros(8, np.int64)}, verbose=False, epochs=1,
                  **options)
    return caught.value


def test_monitor_names_a_column_at_the_schedule(tmp_path):
    error = _config_error(tmp_path, "reduce_on_plateau(monitor=val_acuracy)")
    assert error.message == ("reduce_on_plateau cannot monitor 'val_acuracy': it is not a "
                             "column of the training table")
    assert error.diagnostics[0].hint == "did you mean 'val_accuracy'?"
    assert error.span.line == 12 and error.span.column == 16


def test_monitor_loss_is_read_as_the_column(tmp_path):
    path = tmp_path / "m.net"
    path.write_text(MODEL.replace("monitor=val_loss", "monitor=loss"))
    config = netdsl.load(path).train_config
    assert config.schedule_args["monitor"] == "loss"


def test_a_val_monitor_without_validation_data_is_an_error(tmp_path):
    error = _config_error(tmp_path, "reduce_on_plateau(monitor=val_loss)", split=1.0)
    assert error.message == ("reduce_on_plateau monitors val_loss, but there is no "
                             "validation data (split = 1)")


@pytest.mark.parametrize("args, message", [
    ({"factor": 1.0}, "factor=...\\) must be a number in \\(0, 1\\)"),
    ({"patience": -1}, "patience=...\\) must be a whole number >= 0"),
    ({"min_lr": -1.0}, "min_lr=...\\) must be a number >= 0"),
    ({"cooldown": 0.5}, "cooldown=...\\) must be a whole number >= 0"),
    ({"monitor": 3}, "monitor=...\\) must be a column"),
])
def test_bad_arguments(args, message):
    with pytest.raises(Error, match=message):
        make_schedule("reduce_on_plateau", args, 0.1, 4, 2)


def test_warmup_takes_a_call_as_written_and_refuses_plateau():
    written = make_schedule("warmup", {"steps": 8,
                                       "then": CallValue("cosine", (), {"min_lr": 0.01})},
                            0.1, 4, 12)
    direct = make_schedule("warmup", {"steps": 8, "then": ("cosine", {"min_lr": 0.01})},
                           0.1, 4, 12)
    assert [written(step) for step in range(48)] == [direct(step) for step in range(48)]
    assert written(47) == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * 39 / 40)) / 2)
    with pytest.raises(Error, match="warmup\\(then=reduce_on_plateau\\(\\)\\) is not supported"):
        make_schedule("warmup", {"steps": 2, "then": CallValue("reduce_on_plateau", (), {})},
                      0.1, 4, 12)


WARMUP = """model Tiny {
    in x: f32[B, 2]
    in y: f32[B, 1]
    out p = x |> Dense(4) |> tanh |> Dense(1)
    loss mse(p, y)
}
train Tiny {
    data = xor
    split = 1.0
    batch = 1
    epochs = 4
    optimizer = SGD(lr=0.1)
    schedule = warmup(steps=4, then=cosine(min_lr=0.01))
}
"""


def test_warmup_then_cosine_trains_end_to_end(tmp_path):
    path = tmp_path / "w.net"
    path.write_text(WARMUP)
    model = netdsl.load(path)
    result = model.fit(model.init(), verbose=False, target="reference")
    # 4 batches an epoch: the row's rate is the last batch's; 4 warm-up steps, then cosine over
    # the 12 that remain.
    rates = [row["lr"] for row in result.history]
    cosine = [0.01 + 0.09 * (1 + math.cos(math.pi * step / 12)) / 2 for step in (3, 7, 11)]
    assert rates == pytest.approx([0.1] + cosine)
