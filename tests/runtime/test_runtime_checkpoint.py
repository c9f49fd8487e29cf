"""Checkpoints: round trips, atomic writes, and the missing/extra/mis-shaped report."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from netdsl.errors import Error
from netdsl.runtime import checkpoint
from netdsl.runtime.checkpoint import check_weights, load_checkpoint, save_checkpoint

WEIGHTS = {
    "fc1.weight": np.arange(6, dtype=np.float32).reshape(3, 2),
    "fc1.bias": np.zeros(3, np.float32),
    "block_1.bn.running_var": np.ones(3, np.float32),
    "steps": np.array(7, np.int64),
}
EXPECTED = {name: (array.shape, array.dtype) for name, array in WEIGHTS.items()}


def test_npz_round_trip_with_meta(tmp_path):
    path = tmp_path / "w.npz"
    save_checkpoint(path, WEIGHTS, {"model": "Net", "epoch": 3})
    loaded = load_checkpoint(path)
    assert loaded.meta == {"model": "Net", "epoch": 3}
    assert sorted(loaded.weights) == sorted(WEIGHTS)
    for name, array in WEIGHTS.items():
        assert loaded.weights[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded.weights[name], array)
    weights, meta = loaded  # also unpacks as a pair
    assert check_weights(weights, EXPECTED).keys() == WEIGHTS.keys()


def test_plain_npz_without_meta(tmp_path):
    np.savez(tmp_path / "torch_export.npz", **WEIGHTS)
    assert load_checkpoint(tmp_path / "torch_export.npz").meta == {}


def test_overwrite_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    save_checkpoint(path, WEIGHTS)
    before = path.read_bytes()

    def disk_full(handle, arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "write_npz", disk_full)
    with pytest.raises(Error, match="cannot write checkpoint .*No space left"):
        save_checkpoint(path, {"other": np.ones(2)})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]  # no temporary left behind


def test_save_errors(tmp_path):
    with pytest.raises(Error, match="must end in .npz or .safetensors"):
        save_checkpoint(tmp_path / "w.pt", WEIGHTS)
    with pytest.raises(Error, match="folder .* does not exist"):
        save_checkpoint(tmp_path / "missing" / "w.npz", WEIGHTS)
    with pytest.raises(Error, match="meta must be JSON data"):
        save_checkpoint(tmp_path / "w.npz", WEIGHTS, {"bad": object()})
    assert not (tmp_path / "w.npz").exists()


def test_load_errors(tmp_path):
    with pytest.raises(Error, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nothing.npz")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(Error, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "bad.npz")
    # Not a zip: a .npy, an empty file, a truncated archive (numpy would try .npy or pickle
    # and say "pickled (object) data" or "context manager protocol").
    np.save(tmp_path / "array.npy", np.zeros(3))
    save_checkpoint(tmp_path / "whole.npz", WEIGHTS)
    whole = (tmp_path / "whole.npz").read_bytes()
    for name, data in (("npy.npz", (tmp_path / "array.npy").read_bytes()), ("empty.npz", b""),
                       ("json.npz", b"{}"), ("cut.npz", whole[:len(whole) // 2])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(Error, match=f"cannot read checkpoint .*{name}: it is not an .npz "
                                        r"archive \(a zip file\)\n"):
            load_checkpoint(tmp_path / name)


def test_safetensors_missing_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(Error) as caught:
        save_checkpoint(tmp_path / "w.safetensors", WEIGHTS)
    assert "needs the safetensors package" in caught.value.message
    assert caught.value.diagnostics[0].hint == "pip install 'netdsl[safetensors]'"
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(importlib.util.find_spec("safetensors") is None, reason="safetensors not installed")
def test_safetensors_round_trip(tmp_path):
    path = tmp_path / "w.safetensors"
    save_checkpoint(path, WEIGHTS, {"epoch": 1})
    loaded = load_checkpoint(path)
    assert loaded.meta == {"epoch": 1}
    np.testing.assert_array_equal(loaded.weights["fc1.weight"], WEIGHTS["fc1.weight"])


def test_check_weights_reports_every_problem_once():
    loaded = {
        "fc1.weights": WEIGHTS["fc1.weight"],          # near miss of fc1.weight
        "fc1.bias": np.zeros(4, np.float32),           # wrong shape
        "block_1.bn.running_var": np.ones(3, np.float64),  # wider float: cast silently
        "steps": np.array(7.0),                        # float where an int is expected
        "head.bias": np.zeros(2, np.float32),          # unrelated extra
    }
    with pytest.raises(Error) as caught:
        check_weights(loaded, EXPECTED, source="w.npz")
    messages = [d.message for d in caught.value.diagnostics]
    assert messages == [
        "parameter 'fc1.weight' (f32[3, 2]) is missing in w.npz",
        "unexpected parameter 'fc1.weights' (f32[3, 2]) in w.npz: the model has no such parameter",
        "unexpected parameter 'head.bias' (f32[2]) in w.npz: the model has no such parameter",
        "parameter 'fc1.bias' has shape [4] in w.npz but the model expects [3]",
        "parameter 'steps' is f64[] in w.npz but the model expects i64[]",
    ]
    hints = [d.hint for d in caught.value.diagnostics]
    assert hints[:3] == ["did you mean 'fc1.weights'?", "did you mean 'fc1.weight'?", None]
    assert str(caught.value).endswith("5 errors")


def test_check_weights_casts_float_width_and_accepts_dtype_names():
    loaded = {"w": np.ones((2, 2), np.float64)}
    result = check_weights(loaded, {"w": ((2, 2), "f32")})
    assert result["w"].dtype == np.float32


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_optimizer_state_is_kept_beside_the_weights(tmp_path, suffix):
    if suffix == ".safetensors" and importlib.util.find_spec("safetensors") is None:
        pytest.skip("safetensors is not installed")
    path = tmp_path / f"w{suffix}"
    state = {"opt.fc1.weight.m": np.full((3, 2), 0.5, np.float32),
             "opt.fc1.weight.v": np.ones((3, 2), np.float32)}
    save_checkpoint(path, WEIGHTS, {"epochs": 2}, optimizer=state)
    loaded = load_checkpoint(path)
    assert sorted(loaded.weights) == sorted(WEIGHTS)         # the weights alone, as before
    restored = checkpoint.load_optimizer_state(path)
    assert sorted(restored) == sorted(state)
    for name, array in state.items():
        np.testing.assert_array_equal(restored[name], array)
    # A model loads them without --partial: the optimiser's arrays are not extra parameters.
    assert checkpoint.load_weights(path, EXPECTED).weights.keys() == WEIGHTS.keys()
    assert checkpoint.load_weights(path, EXPECTED, partial=True).skipped == []
