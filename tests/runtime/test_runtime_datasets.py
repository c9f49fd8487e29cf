"""Built-in data sets and the IDX reader."""
from __future__ import annotations

import gzip
import sys

import numpy as np
import pytest

from netdsl.errors import Error
from netdsl.runtime import datasets
from netdsl.runtime.datasets import BUILTIN_DATASETS, load_builtin, load_mnist, read_idx
from netdsl.source import Span


def test_xor_shapes_and_values():
    data = load_builtin("xor")
    assert data["x"].dtype == np.float32 and data["x"].shape == (4, 2)
    assert data["y"].dtype == np.float32 and data["y"].shape == (4, 1)
    expected = np.logical_xor(data["x"][:, 0], data["x"][:, 1]).astype(np.float32)
    np.testing.assert_array_equal(data["y"][:, 0], expected)


def test_spirals_classes_and_determinism():
    first = datasets.spirals(n=301, seed=3)
    again = datasets.spirals(n=301, seed=3)
    other = datasets.spirals(n=301, seed=4)
    assert first["x"].shape == (301, 2) and first["x"].dtype == np.float32
    assert first["y"].dtype == np.int64
    assert sorted(np.bincount(first["y"]).tolist()) == [100, 100, 101]
    np.testing.assert_array_equal(first["x"], again["x"])
    assert not np.array_equal(first["x"], other["x"])
    # Radii grow linearly to 1 along each arm (plus nothing: the noise is angular).
    assert np.abs(first["x"]).max() <= 1.0 + 1e-6


def test_spirals_options_through_load_builtin():
    assert load_builtin("spirals", options={"n": 30})["x"].shape == (30, 2)
    with pytest.raises(Error) as caught:
        load_builtin("spirals", options={"count": 30})
    assert "no option 'count'" in str(caught.value) and "n, seed" in str(caught.value)


def test_digits_shape_dtype_range():
    pytest.importorskip("sklearn")
    data = load_builtin("digits")
    assert data["image"].shape == (1797, 1, 8, 8) and data["image"].dtype == np.float32
    assert data["label"].shape == (1797,) and data["label"].dtype == np.int64
    assert data["image"].min() == 0.0 and data["image"].max() == 1.0
    assert set(np.unique(data["label"])) == set(range(10))


def test_digits_without_sklearn(monkeypatch):
    # A None entry in sys.modules makes `import sklearn.datasets` raise ImportError.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(Error) as caught:
        load_builtin("digits")
    assert caught.value.message == "the 'digits' data set needs scikit-learn"
    assert caught.value.diagnostics[0].hint == "pip install 'netdsl[datasets]'"


def test_unknown_builtin_did_you_mean_and_span():
    span = Span("model.net", 3, 12, 3, 18)
    with pytest.raises(Error) as caught:
        load_builtin("digts", span)
    error = caught.value
    assert error.message == "unknown data set 'digts'"
    assert error.span == span
    assert "did you mean 'digits'?" in error.diagnostics[0].hint
    assert set(BUILTIN_DATASETS) == {"xor", "spirals", "digits", "mnist", "sequences", "tokens",
                                     "lookup", "chars", "ring", "moons"}


def test_tokens_label_is_the_first_token():
    data = load_builtin("tokens")
    x, label = data["x"], data["label"]
    assert x.dtype == label.dtype == np.int64 and x.shape == (2000, 12)
    assert x.min() >= 1 and x.max() <= 9 and set(np.unique(label)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(label, x[:, 0] - 1)
    assert set(np.unique(x[:, 1:])) == set(range(1, 10))     # later tokens: the whole vocabulary


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_round_trip(tmp_path, idx_tools, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = idx_tools.write_idx_file(tmp_path / "a-idx3", array)
    result = read_idx(path)
    assert result.dtype == np.dtype(dtype) and result.dtype.isnative
    np.testing.assert_array_equal(result, array)


def test_read_idx_gz(tmp_path, idx_tools):
    array = np.arange(10, dtype=np.uint8)
    path = idx_tools.write_idx_file(tmp_path / "labels", array, compress=True)
    assert path.name.endswith(".gz")
    np.testing.assert_array_equal(read_idx(path), array)


def test_read_idx_truncated(tmp_path, idx_tools):
    data = idx_tools.idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    path = tmp_path / "images"
    path.write_bytes(data[:-100])
    with pytest.raises(Error) as caught:
        read_idx(path)
    assert "truncated" in caught.value.message and "3x28x28" in caught.value.message
    assert "2352 bytes" in caught.value.message


def test_read_idx_trailing_bytes(tmp_path, idx_tools):
    path = tmp_path / "labels"
    path.write_bytes(idx_tools.idx_bytes(np.zeros(4, dtype=np.uint8)) + b"junk")
    with pytest.raises(Error, match="longer than its header says"):
        read_idx(path)


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00", "only 2 bytes"),
    (b"PK\x03\x04rest", "bad magic number"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01x", "bad magic number"),
    (b"\x00\x00\x08\x03\x00\x00", "header is truncated"),
])
def test_read_idx_corrupt_header(tmp_path, content, message):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(Error, match=message):
        read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path, idx_tools):
    compressed = gzip.compress(idx_tools.idx_bytes(np.zeros(100, dtype=np.uint8)))
    path = tmp_path / "labels.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(Error, match="cannot read IDX file"):
        read_idx(path)


def test_read_idx_missing(tmp_path):
    with pytest.raises(Error, match="IDX file not found"):
        read_idx(tmp_path / "nothing")


def test_load_mnist_parts(mnist_folder):
    folder, raw = mnist_folder
    train = load_mnist(folder)
    assert train["image"].shape == (5, 1, 28, 28) and train["image"].dtype == np.float32
    assert train["label"].dtype == np.int64
    np.testing.assert_allclose(train["image"][:, 0], raw["train_images"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(train["label"], raw["train_labels"])
    assert load_mnist(folder, "test")["image"].shape == (3, 1, 28, 28)
    everything = load_mnist(folder, "all")
    assert everything["label"].shape == (8,)
    assert 0.0 <= everything["image"].min() and everything["image"].max() <= 1.0


def test_load_mnist_gz_and_kaggle_names(tmp_path, idx_tools):
    folder = tmp_path / "m"
    raw = idx_tools.write_mnist_folder(folder, train=4, test=0, compress=True)
    np.testing.assert_array_equal(load_mnist(folder)["label"], raw["train_labels"])
    kaggle = tmp_path / "k"
    kaggle.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (kaggle / name.replace("-idx", ".idx")).write_bytes((folder / name).read_bytes())
    assert load_mnist(kaggle)["image"].shape == (4, 1, 28, 28)


def test_load_mnist_only_test_files_used_for_training(tmp_path, idx_tools):
    folder = tmp_path / "m"
    idx_tools.write_mnist_folder(folder, train=0, test=2)
    assert load_mnist(folder)["label"].shape == (2,)
    with pytest.raises(Error, match="has no train-images-idx3-ubyte"):
        load_mnist(folder, "all")


def test_load_mnist_count_mismatch(tmp_path, idx_tools):
    folder = tmp_path / "m"
    folder.mkdir()
    idx_tools.write_idx_file(folder / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    idx_tools.write_idx_file(folder / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(Error, match="has 3 images but train-labels-idx1-ubyte has 2 labels"):
        load_mnist(folder)


def test_builtin_mnist_searches_base_dir(mnist_folder, tmp_path, monkeypatch):
    monkeypatch.delenv("NETDSL_DATA", raising=False)
    assert load_builtin("mnist", base_dir=tmp_path)["image"].shape == (5, 1, 28, 28)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    span = Span("m.net", 2, 5, 2, 10)
    with pytest.raises(Error) as caught:
        load_builtin("mnist", span, base_dir=tmp_path / "elsewhere")
    assert "MNIST IDX files" in caught.value.message and caught.value.span == span
    assert str(tmp_path / "elsewhere" / "mnist") in caught.value.diagnostics[0].hint
