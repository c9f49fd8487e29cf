"""Epochs in compiled blocks (runtime/compiled_epochs.py, backends/numba_cpu/epoch_runner.py):
a fit of a tiny model gives the same history (but its timings), weights, optimiser state and
generator as the Python loop, bit for bit, with shuffling or not, a shorter last batch, a
schedule, dropout's random stream and two loss terms; an interrupt between blocks resumes to
the same run; a non-finite loss gets the watch's error; and the blocks really ran."""
from __future__ import annotations

import numpy as np
import pytest

import netdsl
from netdsl.backends.numba_cpu import epoch_runner
from netdsl.errors import Error
from netdsl.runtime import compiled_epochs
from netdsl.runtime.train import fit
from netdsl.runtime.train_config import with_overrides

TINY = """
model Tiny {
    in  x: f32[B, 3]
    in  label: i64[B]

    h = x |> Dense(6) as hidden |> tanh |> Dropout(0.25)
    logits = h |> Dense(2) as output
    out probs = softmax(logits)
    loss ce = cross_entropy(logits, label)
    loss penalty = 0.01 * mean(h * h)
}

train Tiny {
    batch     = 4
    epochs    = 40
    split     = 1.0
    optimizer = Adam(lr=0.05)
    seed      = 0
}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("compiled_epochs") / "tiny.net"
    path.write_text(TINY)
    rng = np.random.default_rng(3)
    data = {"x": rng.standard_normal((10, 3)).astype(np.float32),
            "label": rng.integers(0, 2, 10)}
    return netdsl.load(path), data


def _fit(tiny, monkeypatch, enabled: bool | str, blocks: list | None = None, **options):
    """fit's result with compiled blocks on (always), off (never) or as NETDSL_EPOCH_BLOCKS
    says, and how many blocks ran (also counted into `blocks`)."""
    model, data = tiny
    policy = enabled if isinstance(enabled, str) else "always" if enabled else "never"
    monkeypatch.setenv("NETDSL_EPOCH_BLOCKS", policy)
    blocks = blocks if blocks is not None else [0]
    run = epoch_runner.BlockRunner.run

    def counted(self, *args):
        blocks[0] += 1
        return run(self, *args)
    monkeypatch.setattr(epoch_runner.BlockRunner, "run", counted)
    stop = options.pop("should_stop", None)
    resume = options.pop("resume", None)
    config = with_overrides(model.train_config, options, origin="test")
    result = fit(model, model.init(seed=0), config, data=data, verbose=False,
                 should_stop=stop, resume=resume)
    return result, blocks[0]


def _same(a, b) -> None:
    assert len(a.history) == len(b.history)
    for row, other in zip(a.history, b.history):
        assert list(row) == list(other)                     # the same columns, in order
        for key in row:
            if key not in ("seconds", "examples_per_second"):
                assert np.array_equal(row[key], other[key]), \
                    (row["epoch"], key, row[key], other[key])
    for part in ("weights", "optimizer_state"):
        for name, array in getattr(a, part).items():
            assert np.array_equal(array, getattr(b, part)[name]), name
    assert a.resume.rng == b.resume.rng and a.resume.global_step == b.resume.global_step


@pytest.mark.parametrize("options", [
    {},                                             # batches 4, 4, 2 shuffled
    {"shuffle": False},
    {"batch": 5, "schedule": "cosine"},             # two full batches; a rate per step
    {"batch": 16},                                  # one batch of all 10
])
def test_blocks_are_the_python_loop(tiny, monkeypatch, options):
    python, none = _fit(tiny, monkeypatch, False, **dict(options))
    compiled, blocks = _fit(tiny, monkeypatch, True, **dict(options))
    assert none == 0 and blocks >= 1
    _same(python, compiled)
    row = compiled.history[-1]
    assert row["ce"] > 0 and row["penalty"] > 0 and row["grad_norm"] > 0


def test_read_only_data_runs_in_blocks(tiny, monkeypatch):
    model, data = tiny
    frozen = {name: array.copy() for name, array in data.items()}
    for array in frozen.values():
        array.flags.writeable = False
    python, _ = _fit(tiny, monkeypatch, False)
    compiled, blocks = _fit((model, frozen), monkeypatch, True)
    assert blocks >= 1
    _same(python, compiled)


def test_short_runs_stay_in_python(tiny, monkeypatch):
    shortest = compiled_epochs.MIN_EPOCHS + compiled_epochs.MEASURED_EPOCHS
    assert _fit(tiny, monkeypatch, True, epochs=shortest)[1] >= 1
    assert _fit(tiny, monkeypatch, True, epochs=shortest - 1)[1] == 0


@pytest.mark.parametrize("options", [
    {},                                             # batches 4, 4, 2 shuffled
    {"shuffle": False, "batch": 3},
])
def test_training_metrics_in_blocks_are_the_python_loop(tiny, monkeypatch, options):
    metrics = ["accuracy", "f1", "precision", "confusion"]
    python, none = _fit(tiny, monkeypatch, False, metrics=metrics, **options)
    compiled, blocks = _fit(tiny, monkeypatch, True, metrics=metrics, **options)
    assert none == 0 and blocks >= 1
    _same(python, compiled)
    last = compiled.history[-1]
    assert 0 < last["accuracy"] <= 1 and last["confusion"].sum() == 10


BINARY = """
model Binary {
    in  x: f32[B, 2]
    in  y: f32[B, 1]
    logits = x |> Dense(4) |> tanh |> Dense(1)
    out prob = sigmoid(logits)
    loss bce_logits(logits, y)
}

train Binary {
    batch     = 3
    epochs    = 40
    split     = 1.0
    optimizer = Adam(lr=0.05)
    metrics   = [accuracy, recall]
    seed      = 0
}
"""


def test_a_binary_prediction_of_one_column_in_blocks_is_the_python_loop(tmp_path, monkeypatch):
    # A probability per example against float labels (XOR's kind): thresholded at 0.5.
    path = tmp_path / "binary.net"
    path.write_text(BINARY)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 2)).astype(np.float32)
    binary = (netdsl.load(path), {"x": x, "y": (x[:, :1] * x[:, 1:] > 0).astype(np.float32)})
    python, _ = _fit(binary, monkeypatch, False)
    compiled, blocks = _fit(binary, monkeypatch, True)
    assert blocks >= 1
    _same(python, compiled)
    assert {"accuracy", "recall"} <= set(compiled.history[-1])


def test_epoch_confusions_count_as_a_metric_set_fed_batch_by_batch():
    from netdsl.runtime.metrics import MetricSet, epoch_confusions, make_metric
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((3, 8, 4))
    labels = rng.integers(0, 3, (3, 8))
    labels[1, 2] = -1                               # ignored
    scores[2, :, 3] = -10                           # class 3 never predicted in epoch 2 ...
    matrices = epoch_confusions(scores, labels, ignore_index=-1)
    for epoch in range(3):
        metrics = {"confusion": make_metric("confusion", ignore_index=-1)}
        fed = MetricSet(metrics)
        for start in range(0, 8, 3):
            fed.update(scores[epoch, start:start + 3], labels[epoch, start:start + 3])
        want = fed.results()["confusion"]
        assert matrices[epoch].shape == want.shape == (4, 4)    # ... but the scores say 4
        assert np.array_equal(matrices[epoch], want)
    with pytest.raises(Error, match="non-negative class ids"):
        epoch_confusions(scores, labels)
    with pytest.raises(Error, match="expects 2 classes"):
        epoch_confusions(scores, labels, ignore_index=-1, num_classes=2)


def test_auto_compiles_the_runner_only_where_it_pays(tiny, monkeypatch, tmp_path):
    # Another step (7 hidden units), so that no runner of it is compiled yet.
    monkeypatch.setenv("NETDSL_CACHE_DIR", str(tmp_path))
    path = tmp_path / "other.net"
    path.write_text(TINY.replace("Dense(6)", "Dense(7)"))
    other = (netdsl.load(path), tiny[1])
    assert _fit(other, monkeypatch, "auto")[1] == 0     # 37 epochs of ~20 us: not worth ~0.7 s
    monkeypatch.setattr(epoch_runner.BlockRunner, "compile_seconds", 1e9)
    assert _fit(other, monkeypatch, "auto", epochs=2000)[1] == 0
    assert not list(tmp_path.glob("__pycache__/*run*"))
    assert _fit(other, monkeypatch, "always")[1] >= 1
    assert _fit(other, monkeypatch, "auto")[1] >= 1     # loaded now: it costs nothing


def test_a_runner_that_fails_to_load_leaves_the_epochs_to_python(tiny, monkeypatch, capsys):
    python, _ = _fit(tiny, monkeypatch, False)

    def unwritable(*args):
        raise OSError("cannot write to the compile cache directory")
    monkeypatch.setattr(epoch_runner, "_load", unwritable)     # each fit's runner loads anew
    loaded, blocks = _fit(tiny, monkeypatch, True)
    assert blocks == 0
    _same(python, loaded)
    assert "compiled epochs are unavailable (OSError" in capsys.readouterr().err


def test_a_step_the_runner_cannot_take_stays_in_python(tiny, monkeypatch):
    def refuse(*args, **kwargs):
        raise ValueError("output probs is not a scalar")
    python, _ = _fit(tiny, monkeypatch, False)
    monkeypatch.setattr(epoch_runner.BlockRunner, "__init__", refuse)
    refused, blocks = _fit(tiny, monkeypatch, True)
    assert blocks == 0
    _same(python, refused)


def test_a_malformed_policy_is_an_error(tiny, monkeypatch):
    with pytest.raises(Error, match="NETDSL_EPOCH_BLOCKS must be auto, always or never"):
        _fit(tiny, monkeypatch, "sometimes")


def test_rows_of_permuted_are_successive_permutations():
    # The runner's orders: one rng.permuted over the rows of a block, the stream of
    # rng.permutation epoch after epoch (NumPy shuffles the rows in order).
    for examples, epochs in ((4, 7), (10, 3), (1, 2), (257, 2)):
        one, other = np.random.default_rng(9), np.random.default_rng(9)
        rows = one.permuted(np.tile(np.arange(examples), (epochs, 1)), axis=1)
        assert np.array_equal(rows, [other.permutation(examples) for _ in range(epochs)])
        assert one.bit_generator.state == other.bit_generator.state


def test_an_interrupt_between_blocks_resumes_to_the_same_run(tiny, monkeypatch):
    monkeypatch.setattr(compiled_epochs, "BLOCK_SECONDS", 1e-9)     # blocks of one epoch
    whole, _ = _fit(tiny, monkeypatch, True)
    calls = [0]

    def stop():
        calls[0] += 1
        return calls[0] == 12               # 3 epochs of 3 batches in Python, 2 blocks

    stopped, blocks = _fit(tiny, monkeypatch, True, should_stop=stop)
    assert blocks == 2 and stopped.interrupted == (6, 0) and len(stopped.history) == 5
    resumed, blocks = _fit(tiny, monkeypatch, True, resume=stopped.resume)
    assert blocks >= 1
    _same(whole, resumed)
    # stopped mid-epoch by the Python loop (epoch 1 after its first batch), resumed into blocks
    calls[0] = 0
    stopped, _ = _fit(tiny, monkeypatch, True, should_stop=lambda: (
        calls.__setitem__(0, calls[0] + 1) or calls[0] == 2))
    assert stopped.interrupted == (1, 1)
    resumed, blocks = _fit(tiny, monkeypatch, True, resume=stopped.resume)
    assert blocks >= 1
    _same(whole, resumed)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_a_non_finite_loss_in_a_block_is_explained(tmp_path, monkeypatch):
    # The rate grows 100x an epoch: it overflows float32 in epoch 21, inside a block.
    path = tmp_path / "growing.net"
    path.write_text(TINY.replace("seed      = 0", "seed      = 0\n    schedule  = "
                                 "exponential(gamma=100)"))
    rng = np.random.default_rng(3)
    data = {"x": rng.standard_normal((10, 3)).astype(np.float32),
            "label": rng.integers(0, 2, 10)}
    messages, blocks = [], [0]
    for enabled in (False, True):
        with pytest.raises(Error) as caught:
            _fit((netdsl.load(path), data), monkeypatch, enabled, blocks)
        messages.append(str(caught.value))
        assert (blocks[0] >= 1) == enabled
    assert "the loss became nan at epoch 2" in messages[0], messages[0]
    assert messages[1] == messages[0]


def test_the_runner_source_calls_the_step_with_its_arguments():
    params = [("input", "x"), ("input", "__lr__"), ("param", "w"), ("arena", "f32"),
              ("offsets", None)]
    source = epoch_runner.runner_source("abc", params, ["x"], {0: (0, True), 1: (2, False)})
    assert "from netdsl_generated_abc import step as _step" in source
    assert "outputs = _step(x_0, lr, f_0, f_1, offsets)" in source
    assert "sums[epoch, 1] += np.float64(outputs[2][()])\n" in source
    compile(source, "runner", "exec")
    rows = epoch_runner.runner_source("abc", params, ["x"], {0: (0, True)}, prediction=(1, 2))
    assert "def run(" in rows and ", sums, predictions):" in rows
    assert "predictions[epoch, start + row, column] = predicted[row, column]" in rows
    compile(rows, "runner", "exec")
