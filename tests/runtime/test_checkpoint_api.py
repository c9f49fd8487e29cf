"""The public checkpoint API (netdsl.load_weights / save_weights), a checkpoint of another
model named as such, and .safetensors read through the package's own reader."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import netdsl
from netdsl.runtime.checkpoint import load_checkpoint, load_optimizer_state, save_checkpoint

MODELS = """\
model DigitsMLP {
    in  x: f32[B, 4]
    out y = x |> Dense(3) as fc1 |> relu |> Dense(2) as fc2
}

model LeNetDigits {
    in  x: f32[B, 4]
    out y = x |> Dense(5) as conv1 |> relu |> Dense(2) as head
}

model Head {
    in  x: f32[B, 4]
    out y = x |> Dense(3) as fc1
}
"""

needs_safetensors = pytest.mark.skipif(importlib.util.find_spec("safetensors") is None,
                                       reason="safetensors not installed")


@pytest.fixture
def path(tmp_path):
    file = tmp_path / "m.net"
    file.write_text(MODELS)
    return file


@pytest.mark.parametrize("suffix", [".npz", pytest.param(".safetensors", marks=needs_safetensors)])
def test_load_weights_feeds_forward(tmp_path, path, suffix):
    model = netdsl.load(path, "DigitsMLP")
    weights = model.init(seed=1)
    checkpoint = tmp_path / f"w{suffix}"
    netdsl.save_weights(checkpoint, weights, meta={"model": "DigitsMLP", "epoch": 3})
    save_checkpoint(checkpoint, weights, {"model": "DigitsMLP"},
                    optimizer={"opt.fc1.weight.m": np.ones((4, 3), np.float32)})
    loaded = netdsl.load_weights(checkpoint)
    assert sorted(loaded) == sorted(weights)          # no meta entry, no optimiser state
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(model.forward(loaded, {"x": x})["y"],
                               model.forward(weights, {"x": x})["y"])


def test_save_weights_keeps_meta(tmp_path):
    checkpoint = tmp_path / "w.npz"
    netdsl.save_weights(checkpoint, {"w": np.ones(2, np.float32)}, meta={"epoch": 3})
    assert load_checkpoint(checkpoint).meta == {"epoch": 3}
    assert "__netdsl_meta__" in np.load(checkpoint).files     # what load_weights leaves out


def test_package_exports():
    assert {"load_weights", "save_weights"} <= set(netdsl.__all__)
    assert netdsl.load_weights.__doc__ and netdsl.save_weights.__doc__


@pytest.mark.parametrize("suffix", [".npz", pytest.param(".safetensors", marks=needs_safetensors)])
def test_checkpoint_of_another_model_is_one_error(tmp_path, path, suffix):
    checkpoint = tmp_path / f"w{suffix}"
    digits = netdsl.load(path, "DigitsMLP")
    netdsl.save_weights(checkpoint, digits.init(), meta={"model": "DigitsMLP"})
    lenet = netdsl.load(path, "LeNetDigits")
    with pytest.raises(netdsl.Error) as caught:
        lenet.load_weights(checkpoint)
    error = caught.value
    assert len(error.diagnostics) == 1
    assert error.message == (f"checkpoint {checkpoint} is for model DigitsMLP, not LeNetDigits "
                             f"(4 of LeNetDigits's parameters missing, 4 that LeNetDigits does "
                             f"not have)")
    assert "load it with model DigitsMLP" in error.diagnostics[0].hint
    # The same through check_weights with the meta (train --init, resume).
    loaded = load_checkpoint(checkpoint)
    with pytest.raises(netdsl.Error, match="is for model DigitsMLP, not LeNetDigits"):
        lenet.check_weights(loaded.weights, source=str(checkpoint), meta=loaded.meta)


def test_without_meta_every_parameter_is_named(tmp_path, path):
    checkpoint = tmp_path / "w.npz"
    netdsl.save_weights(checkpoint, netdsl.load(path, "DigitsMLP").init())
    with pytest.raises(netdsl.Error) as caught:
        netdsl.load(path, "LeNetDigits").load_weights(checkpoint)
    assert len(caught.value.diagnostics) == 8
    assert "for model" not in str(caught.value)


def test_larger_model_checkpoint_still_hints_partial(tmp_path, path):
    checkpoint = tmp_path / "w.npz"
    netdsl.save_weights(checkpoint, netdsl.load(path, "DigitsMLP").init(),
                        meta={"model": "DigitsMLP"})
    head = netdsl.load(path, "Head")
    with pytest.raises(netdsl.Error) as caught:
        head.load_weights(checkpoint)
    assert "--partial" in caught.value.diagnostics[0].hint
    assert head.load_weights(checkpoint, partial=True).skipped == ["fc2.weight", "fc2.bias"]


@needs_safetensors
def test_safetensors_through_the_package_reader(tmp_path, monkeypatch):
    checkpoint = tmp_path / "w.safetensors"
    save_checkpoint(checkpoint, {"a": np.ones(2, np.float32), "b": np.zeros(3, np.float32)},
                    {"model": "M"}, optimizer={"opt.a.m": np.ones(2, np.float32)})
    import safetensors
    opened = []
    real = safetensors.safe_open

    def spy(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)
    monkeypatch.setattr(safetensors, "safe_open", spy)
    assert load_checkpoint(checkpoint).meta == {"model": "M"}
    assert sorted(load_checkpoint(checkpoint).weights) == ["a", "b"]
    assert list(load_optimizer_state(checkpoint)) == ["opt.a.m"]
    assert opened and opened[0] == str(checkpoint)
