"""Resuming a run (runtime/resume.py): interrupted, saved and resumed, it ends bit for bit where
an uninterrupted run ends; a checkpoint for another model or run is a clean error."""
from __future__ import annotations

import json

import numpy as np
import pytest

import netdsl
from netdsl.errors import Error
from netdsl.runtime.checkpoint import load_checkpoint, save_checkpoint
from netdsl.runtime.resume import ResumeState
from netdsl.runtime.train import fit

# Shuffling, Dropout (in-graph random ops), BatchNorm's running statistics, Adam and a cosine
# schedule: everything a resumed run must carry on, in a model that compiles in seconds.
MODEL = """model Small {
    in x: f32[B, 4]
    in y: i64[B]
    logits = x |> Dense(8) as hidden |> BatchNorm as norm |> relu |> Dropout(0.2)
        |> Dense(3) as head
    out p = softmax(logits)
    loss cross_entropy(logits, y)
}
train Small {
    batch = 8
    epochs = 4
    optimizer = Adam(lr=0.01)
    schedule = cosine()
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


def _stop_after(count: int):
    """A should_stop that says True at its (count + 1)-th question: after `count` steps."""
    asked = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) > count
    return should_stop


def _save(path, result, model):
    state = result.resume
    save_checkpoint(path, state.weights, {"model": model.name, "resume": state.meta()},
                    optimizer=state.optimizer)


@pytest.mark.parametrize("stop_after", [8, 13])   # 6 steps an epoch: at a boundary, midway
def test_an_interrupted_run_resumed_ends_where_an_uninterrupted_one_does(small, tmp_path,
                                                                        stop_after):
    model, data = small
    weights = model.init(seed=3)
    config = model.train_config
    whole = fit(model, weights, config, data=data, target="reference", verbose=False)
    part = fit(model, weights, config, data=data, target="reference", verbose=False,
               should_stop=_stop_after(stop_after))
    assert part.interrupted == (stop_after // 6 + 1, stop_after % 6)
    _save(tmp_path / "part.npz", part, model)
    resumed = fit(model, model.init(seed=99), config, data=data, target="reference",
                  verbose=False, resume=tmp_path / "part.npz")
    for name in whole.weights:                  # BatchNorm's running statistics included
        np.testing.assert_array_equal(resumed.weights[name], whole.weights[name], err_msg=name)
    for name in whole.optimizer_state:
        np.testing.assert_array_equal(resumed.optimizer_state[name],
                                      whole.optimizer_state[name], err_msg=name)
    assert len(resumed.history) == len(whole.history) == 4
    assert [row["lr"] for row in resumed.history] == [row["lr"] for row in whole.history]
    # The resumed epoch's loss sums carry over the steps before the interrupt.
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in whole.history]
    assert [row["val_loss"] for row in resumed.history] == \
        [row["val_loss"] for row in whole.history]
    # So do the gradient norms' (runtime/grad_norms.py), by layer.
    columns = [column for column in whole.history[0] if column.startswith("grad_norm")]
    assert columns == ["grad_norm", "grad_norm.hidden", "grad_norm.norm", "grad_norm.head"]
    for column in columns:
        assert [row[column] for row in resumed.history] == \
            [row[column] for row in whole.history], column


def test_a_confusion_matrix_in_the_history_is_saved_and_resumed_as_an_array(small, tmp_path):
    # The matrix is stored in the checkpoint's JSON meta as nested lists and comes back an
    # int64 array: the resumed history equals the uninterrupted one, matrices included.
    from netdsl.runtime.train_config import with_overrides
    model, data = small
    config = with_overrides(model.train_config, {"metrics": ["accuracy", "confusion"]})
    weights = model.init(seed=3)
    whole = fit(model, weights, config, data=data, target="reference", verbose=False)
    part = fit(model, weights, config, data=data, target="reference", verbose=False,
               should_stop=_stop_after(13))
    _save(tmp_path / "part.npz", part, model)
    stored = load_checkpoint(tmp_path / "part.npz").meta["resume"]["history"]
    assert stored[0]["confusion"] == part.history[0]["confusion"].tolist()
    resumed = fit(model, weights, config, data=data, target="reference", verbose=False,
                  resume=tmp_path / "part.npz")
    assert len(resumed.history) == len(whole.history) == 4
    for old, new in zip(whole.history, resumed.history):
        for column in ("confusion", "val_confusion"):
            assert isinstance(new[column], np.ndarray) and new[column].dtype == np.int64
            np.testing.assert_array_equal(new[column], old[column])
            assert new[column].shape == (3, 3) and new[column].sum() > 0
        assert new["accuracy"] == old["accuracy"]     # the partial epoch's steps count
    meta = load_checkpoint(tmp_path / "part.npz").meta
    meta["resume"]["partial"]["metrics"]["accuracy"] = [[1, -2], [0, 3]]
    save_checkpoint(tmp_path / "bad.npz", part.resume.weights, meta,
                    optimizer=part.resume.optimizer)
    with pytest.raises(Error, match="its partial-epoch metrics are not confusion matrices"):
        fit(model, weights, config, data=data, target="reference", verbose=False,
            resume=tmp_path / "bad.npz")


def test_an_objective_every_k_steps_resumes_its_own_count(tmp_path):
    path = tmp_path / "two.net"
    path.write_text("""model Two {
    in x: f32[B, 2]
    in y: f32[B, 1]
    a = x |> Dense(1) as first
    b = x |> Dense(1) as second
    out p = a
    loss la = mse(a, y) wrt first
    loss lb = mse(b, y) wrt second
}
train Two {
    batch = 4
    epochs = 3
    optimizer = Adam(lr=0.05)
    objective(lb, every=2)
    split = 1
}
""")
    model = netdsl.load(path)
    x = np.random.default_rng(1).standard_normal((20, 2)).astype(np.float32)
    data = {"x": x, "y": x[:, :1] - x[:, 1:]}
    weights = model.init(seed=0)
    whole = fit(model, weights, model.train_config, data=data, target="reference",
                verbose=False)
    part = fit(model, weights, model.train_config, data=data, target="reference",
               verbose=False, should_stop=_stop_after(7))
    resumed = fit(model, weights, model.train_config, data=data, target="reference",
                  verbose=False, resume=part.resume)
    for name in whole.weights:
        np.testing.assert_array_equal(resumed.weights[name], whole.weights[name])


def _checkpoint(small, tmp_path, edit=None, model_name=None, **save):
    model, data = small
    part = fit(model, model.init(seed=3), model.train_config, data=data, target="reference",
               verbose=False, should_stop=_stop_after(8))
    meta = {"model": model_name or model.name, "resume": part.resume.meta()}
    if edit is not None:
        edit(meta["resume"])
    path = tmp_path / "c.npz"
    save_checkpoint(path, part.resume.weights, meta, optimizer=save.get("optimizer",
                                                                        part.resume.optimizer))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(epoch="2"), "its epoch is '2', not a whole number"),
    (lambda r: r.update(global_step=10 ** 30), "its global_step is"),
    (lambda r: r.update(step=5, global_step=3), "do not agree with 6 steps per epoch"),
    (lambda r: r.update(rng={"bit_generator": "MT19937", "state": 1}), "random state"),
    (lambda r: r["rng"]["state"].update(state=-1), "random state"),
    (lambda r: r.update(history=[{"loss": "x"}]), "history"),
    (lambda r: r.update(history=[{"confusion": [[1, 2], [3]]}]), "history"),
    (lambda r: r.update(history=[{"confusion": [["a"]]}]), "history"),
    (lambda r: r.update(partial={"totals": [1.0]}), "partial-epoch"),
    (lambda r: r.update(version=7), "unknown version"),
    (lambda r: r.update(fingerprint=[]), "its fingerprint is [], not a dict"),
    (lambda r: r["fingerprint"].update(batch=16), "the batch size changed"),
    (lambda r: r["fingerprint"].update(data_crc=1), "the training data changed"),
    (lambda r: r.update(early={"best": "low"}), "its best is"),
])
def test_a_damaged_or_foreign_resume_state_is_a_clean_error(small, tmp_path, edit, message):
    model, data = small
    path = _checkpoint(small, tmp_path, edit)
    with pytest.raises(Error, match="cannot resume from") as caught:
        fit(model, model.init(seed=3), model.train_config, data=data, target="reference",
            verbose=False, resume=path)
    assert message in str(caught.value)


def test_other_model_changed_batch_no_state_and_finished_runs(small, tmp_path):
    model, data = small
    config = model.train_config
    path = _checkpoint(small, tmp_path, model_name="Other")
    with pytest.raises(Error, match="checkpoint of model Other, not Small"):
        ResumeState.from_checkpoint(str(path), model)
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))       # no meta: not netdsl's
    with pytest.raises(Error, match=r"foreign.npz: it names no model \(it was not written "
                                    r"by `netdsl train --out`\)"):
        ResumeState.from_checkpoint(str(tmp_path / "foreign.npz"), model)
    path = _checkpoint(small, tmp_path)
    from netdsl.runtime.train_config import with_overrides
    with pytest.raises(Error, match=r"the batch size changed .*\(8 then, 4 now\)"):
        fit(model, {}, with_overrides(config, {"batch": 4}), data=data, target="reference",
            verbose=False, resume=path)
    with pytest.raises(Error, match="the number of training examples changed"):
        fit(model, {}, config, data={k: v[:40] for k, v in data.items()}, target="reference",
            verbose=False, resume=path)
    state = ResumeState.from_checkpoint(str(path), model)
    state.optimizer = {k: v for k, v in state.optimizer.items() if not k.endswith(".v")}
    with pytest.raises(Error, match="optimiser state lacks"):
        fit(model, {}, config, data=data, target="reference", verbose=False, resume=state)
    weights_only = tmp_path / "w.npz"
    save_checkpoint(weights_only, load_checkpoint(path).weights, {"model": "Small"})
    with pytest.raises(Error, match="has no resume state") as caught:
        ResumeState.from_checkpoint(str(weights_only), model)
    assert "--init" in caught.value.diagnostics[0].hint
    done = fit(model, model.init(seed=3), config, data=data, target="reference", verbose=False)
    with pytest.raises(Error, match=r"its run is over \(4 of 4 epochs done\)"):
        fit(model, {}, config, data=data, target="reference", verbose=False, resume=done.resume)
    more = fit(model, {}, with_overrides(config, {"epochs": 5}), data=data,
               target="reference", verbose=False, resume=done.resume)
    assert len(more.history) == 5
    json.dumps(more.resume.meta())


def test_model_fit_takes_resume(small, tmp_path):
    model, data = small
    part = fit(model, model.init(seed=3), model.train_config, data=data, target="reference",
               verbose=False, should_stop=_stop_after(10))
    _save(tmp_path / "p.npz", part, model)
    whole = model.fit(model.init(seed=3), data=data, target="reference")
    resumed = model.fit({}, data=data, target="reference", resume=tmp_path / "p.npz")
    for name in whole.weights:
        np.testing.assert_array_equal(resumed.weights[name], whole.weights[name])


def test_a_fit_sums_its_data_only_when_a_resume_state_is_read(small):
    """The fingerprint's CRC of the training data is computed when a resume state is saved or
    checked, not by every fit; read, it is what `fingerprint` computes."""
    from netdsl.runtime.resume import LazyFingerprint, fingerprint
    from netdsl.runtime.train import objectives_of, prepare_splits
    model, data = small
    config = model.train_config
    result = fit(model, model.init(seed=3), config, data=data, target="reference",
                 verbose=False)
    lazy = result.resume.fingerprint
    assert isinstance(lazy, LazyFingerprint) and repr(lazy) == "LazyFingerprint(not read)"
    train, _, _ = prepare_splits(model, config, data)
    assert dict(lazy) == fingerprint(model, config, train, objectives_of(model))
    assert json.loads(json.dumps(result.resume.meta()))["fingerprint"] == dict(lazy)
    # The run is over: its resume state holds the run's arrays, as the result does.
    assert all(result.resume.weights[name] is result.weights[name] for name in result.weights)
