"""Learning-rate schedules: closed forms, PyTorch parity, and argument checking."""
from __future__ import annotations

import math

import pytest

from netdsl.errors import Error
from netdsl.runtime.schedules import SCHEDULES, make_schedule
from netdsl.source import Span

SPAN = Span("model.net", 7, 20, 7, 35)
STEPS_PER_EPOCH = 4
EPOCHS = 12


def rates(name, args=None, steps=STEPS_PER_EPOCH * EPOCHS, base_lr=0.1, positional=()):
    schedule = make_schedule(name, args or {}, base_lr, STEPS_PER_EPOCH, EPOCHS, positional=positional)
    return [schedule(step) for step in range(steps)]


def test_constant():
    assert set(rates("constant")) == {0.1}


def test_step_closed_form():
    values = rates("step", {"every": 3, "gamma": 0.5})
    for step, value in enumerate(values):
        assert value == pytest.approx(0.1 * 0.5 ** ((step // STEPS_PER_EPOCH) // 3))


def test_step_positional_arguments():
    assert rates("step", positional=(3, 0.5)) == rates("step", {"every": 3, "gamma": 0.5})


def test_exponential_closed_form():
    for step, value in enumerate(rates("exponential", {"gamma": 0.9})):
        assert value == pytest.approx(0.1 * 0.9 ** (step // STEPS_PER_EPOCH))


def test_cosine_closed_form_defaults_to_whole_run():
    values = rates("cosine", {"min_lr": 0.01}, steps=60)
    total = STEPS_PER_EPOCH * EPOCHS
    for step, value in enumerate(values[:total + 1]):
        assert value == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * step / total)) / 2)
    assert values[total:] == [pytest.approx(0.01)] * (60 - total)  # held at min_lr afterwards


def test_warm_restarts_closed_form():
    values = rates("warm_restarts", {"period": 2, "mult": 2})
    # Cycles of 2, 4, 8 epochs start at epochs 0, 2, 6.
    for step, value in enumerate(values):
        epoch = step / STEPS_PER_EPOCH
        start, length = (0, 2) if epoch < 2 else (2, 4) if epoch < 6 else (6, 8)
        assert value == pytest.approx(0.05 * (1 + math.cos(math.pi * (epoch - start) / length)))
    assert values[2 * STEPS_PER_EPOCH] == pytest.approx(0.1)  # the restart


def test_warmup_then_cosine():
    values = rates("warmup", {"steps": 8, "then": ("cosine", {})})
    assert values[:8] == [pytest.approx(0.1 * (step + 1) / 8) for step in range(8)]
    remaining = STEPS_PER_EPOCH * EPOCHS - 8
    for step, value in enumerate(values[8:]):
        assert value == pytest.approx(0.05 * (1 + math.cos(math.pi * step / remaining)))


def test_warmup_defaults_to_constant_and_accepts_names():
    assert rates("warmup", {"steps": 2})[:4] == [pytest.approx(v) for v in (0.05, 0.1, 0.1, 0.1)]
    assert rates("warmup", {"steps": 0, "then": "cosine"}) == rates("cosine")
    with pytest.raises(Error, match="schedule 'exponential' needs argument 'gamma'"):
        rates("warmup", {"steps": 2, "then": "exponential"})


def test_unknown_schedule_did_you_mean():
    with pytest.raises(Error) as caught:
        make_schedule("cosin", {}, 0.1, 4, 2, SPAN)
    assert caught.value.message == "unknown schedule 'cosin'" and caught.value.span == SPAN
    assert caught.value.diagnostics[0].hint.startswith("did you mean 'cosine'?")
    assert set(SCHEDULES) == {"constant", "step", "exponential", "cosine", "warm_restarts", "warmup",
                              "reduce_on_plateau"}


def test_unknown_argument_named_with_accepted_ones():
    with pytest.raises(Error) as caught:
        make_schedule("step", {"every": 2, "gama": 0.5}, 0.1, 4, 2, SPAN)
    assert caught.value.message == "schedule 'step' has no argument 'gama'"
    assert caught.value.diagnostics[0].hint == "did you mean 'gamma'? it accepts: every, gamma"
    assert caught.value.span == SPAN


@pytest.mark.parametrize("name, args, message", [
    ("step", {}, "needs argument 'every'"),
    ("step", {"every": 0}, "step\\(every=...\\) must be a positive integer"),
    ("exponential", {"gamma": -1}, "must be a positive number"),
    ("cosine", {"min_lr": -0.1}, "must be a number >= 0"),
    ("warm_restarts", {"period": 2, "mult": 1.5}, "mult=...\\) must be a positive integer"),
    ("warmup", {"steps": -3}, "must be an integer >= 0"),
])
def test_bad_argument_values(name, args, message):
    with pytest.raises(Error, match=message) as caught:
        make_schedule(name, args, 0.1, 4, 2, SPAN)
    assert caught.value.span == SPAN


def test_too_many_and_duplicate_positional():
    with pytest.raises(Error, match="takes at most 2 arguments, got 3"):
        make_schedule("step", {}, 0.1, 4, 2, positional=(1, 2, 3))
    with pytest.raises(Error, match="got argument 'every' twice"):
        make_schedule("step", {"every": 1}, 0.1, 4, 2, positional=(1,))


def test_cosine_needs_total_when_epochs_unknown():
    with pytest.raises(Error, match="needs total_steps"):
        make_schedule("cosine", {}, 0.1, 4, None)
    assert make_schedule("cosine", {"total_steps": 10}, 0.1, 4, None)(10) == 0.0


# --- parity with torch.optim.lr_scheduler --------------------------------------------------------

def torch_rates(make_scheduler, calls, epoch_argument=None):
    """Learning rates a torch scheduler gives before each of `calls` updates."""
    torch = pytest.importorskip("torch")
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    scheduler = make_scheduler(torch.optim.lr_scheduler, optimizer)
    values = []
    for call in range(calls):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if epoch_argument is None:
            scheduler.step()
        else:
            scheduler.step(epoch_argument(call + 1))
    return values


def per_epoch(values):
    """Our per-step rates at the first step of each epoch."""
    return values[::STEPS_PER_EPOCH]


def test_torch_step_lr():
    expected = torch_rates(lambda s, o: s.StepLR(o, step_size=3, gamma=0.5), EPOCHS)
    assert per_epoch(rates("step", {"every": 3, "gamma": 0.5})) == pytest.approx(expected)


def test_torch_exponential_lr():
    expected = torch_rates(lambda s, o: s.ExponentialLR(o, gamma=0.8), EPOCHS)
    assert per_epoch(rates("exponential", {"gamma": 0.8})) == pytest.approx(expected)


def test_torch_cosine_annealing_lr():
    total = STEPS_PER_EPOCH * EPOCHS
    expected = torch_rates(lambda s, o: s.CosineAnnealingLR(o, T_max=total, eta_min=0.01), total + 1)
    assert rates("cosine", {"min_lr": 0.01}, steps=total + 1) == pytest.approx(expected, abs=1e-9)


def test_torch_cosine_warm_restarts():
    # PyTorch's documented per-batch use: scheduler.step(epoch + i / iters).
    steps = STEPS_PER_EPOCH * EPOCHS
    expected = torch_rates(lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.001),
                           steps, epoch_argument=lambda call: call / STEPS_PER_EPOCH)
    ours = rates("warm_restarts", {"period": 2, "mult": 2, "min_lr": 0.001}, steps=steps)
    assert ours == pytest.approx(expected, abs=1e-9)


def test_torch_warm_restarts_mult_one():
    steps = STEPS_PER_EPOCH * EPOCHS
    expected = torch_rates(lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=3),
                           steps, epoch_argument=lambda call: call / STEPS_PER_EPOCH)
    assert rates("warm_restarts", {"period": 3}, steps=steps) == pytest.approx(expected, abs=1e-9)
