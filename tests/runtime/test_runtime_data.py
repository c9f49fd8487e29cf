"""Data loading, binding to model inputs, splitting and batching."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from netdsl.errors import Error
from netdsl.runtime.data import batches, bind_inputs, load_data, num_batches, split
from netdsl.source import Span

SPAN = Span("model.net", 4, 5, 4, 20)


# --- load_data: files ---------------------------------------------------------------------------

def test_npz_keys_become_inputs(tmp_path):
    np.savez(tmp_path / "d.npz", image=np.ones((3, 2), np.float32), label=np.arange(3))
    data = load_data("d.npz", tmp_path)
    assert sorted(data) == ["image", "label"]
    np.testing.assert_array_equal(data["label"], [0, 1, 2])


def test_npy_named_by_stem_and_absolute_path(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 3)))
    data = load_data(str(tmp_path / "x.npy"), "/nonexistent")
    assert list(data) == ["x"] and data["x"].shape == (4, 3)


def test_missing_file_names_resolved_path(tmp_path):
    with pytest.raises(Error) as caught:
        load_data("sub/train.npz", tmp_path, SPAN)
    assert caught.value.message == f"data file not found: {tmp_path / 'sub' / 'train.npz'}"
    assert caught.value.span == SPAN


def test_unknown_name_suggests_builtin(tmp_path):
    with pytest.raises(Error) as caught:
        load_data("spiral", tmp_path, SPAN)
    assert caught.value.message == "unknown data set 'spiral'"
    assert "did you mean 'spirals'?" in caught.value.diagnostics[0].hint


def test_builtin_by_name(tmp_path):
    assert load_data("xor", tmp_path)["x"].shape == (4, 2)


@pytest.mark.parametrize("name, content", [
    ("bad.npz", b"not a zip file at all"),
    ("bad.npy", b"\x93NUMPY garbage"),
])
def test_corrupt_numpy_files(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(Error, match=f"cannot read .*{name}"):
        load_data(name, tmp_path)


def test_pickled_npz_refused(tmp_path):
    np.savez(tmp_path / "p.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(Error, match="cannot read"):
        load_data("p.npz", tmp_path)


def test_unsupported_extension(tmp_path):
    (tmp_path / "d.txt").write_text("1 2 3")
    with pytest.raises(Error, match="unsupported data file type '.txt'"):
        load_data("d.txt", tmp_path)


# --- CSV ----------------------------------------------------------------------------------------

def write(tmp_path, text, name="d.csv"):
    (tmp_path / name).write_text(text)
    return name


def test_csv_groups_and_dtypes(tmp_path):
    name = write(tmp_path, "x0,x1,x2,label,weight\n1,2.5,3,0,1.5\n4,5,6,2,2\n")
    data = load_data(name, tmp_path)
    assert sorted(data) == ["label", "weight", "x"]
    assert data["x"].dtype == np.float32 and data["x"].shape == (2, 3)
    np.testing.assert_array_equal(data["x"], [[1, 2.5, 3], [4, 5, 6]])
    assert data["label"].dtype == np.int64 and data["label"].shape == (2,)
    assert data["weight"].dtype == np.float32


def test_csv_dotted_groups_sorted_by_index_and_int(tmp_path):
    name = write(tmp_path, "f.1,f.0,y\n10,20,1\n30,40,0\n")
    data = load_data(name, tmp_path)
    assert data["f"].dtype == np.int64
    np.testing.assert_array_equal(data["f"], [[20, 10], [40, 30]])


def test_csv_single_dotted_groups_single_plain_does_not(tmp_path):
    data = load_data(write(tmp_path, "x.0,y1\n1,2\n3,4\n"), tmp_path)
    assert data["x"].shape == (2, 1) and data["y1"].shape == (2,)


def test_csv_quoted_cells_blank_lines_and_bom(tmp_path):
    (tmp_path / "d.csv").write_bytes("\ufeffa, b\n\"1\", 2\n\n3,4\n\n".encode("utf-8"))
    data = load_data("d.csv", tmp_path)
    np.testing.assert_array_equal(data["a"], [1, 3])
    np.testing.assert_array_equal(data["b"], [2, 4])


def test_csv_empty(tmp_path):
    with pytest.raises(Error, match="is empty"):
        load_data(write(tmp_path, ""), tmp_path, SPAN)


def test_csv_header_only(tmp_path):
    with pytest.raises(Error, match="has a header but no rows"):
        load_data(write(tmp_path, "x,y\n"), tmp_path)


def test_csv_ragged_row_names_line(tmp_path):
    name = write(tmp_path, "x,y\n1,2\n3,4\n5\n")
    with pytest.raises(Error) as caught:
        load_data(name, tmp_path, SPAN)
    assert caught.value.message.endswith("d.csv:4: row has 1 value but the header has 2 columns")
    assert caught.value.span == SPAN


def test_csv_ragged_line_number_counts_blank_lines(tmp_path):
    with pytest.raises(Error, match=r"d\.csv:5: row has 3 values"):
        load_data(write(tmp_path, "x,y\n1,2\n\n\n1,2,3\n"), tmp_path)


def test_csv_non_numeric_names_line_and_column(tmp_path):
    name = write(tmp_path, "x0,x1,label\n1,2,0\n3,abc,1\n")
    with pytest.raises(Error) as caught:
        load_data(name, tmp_path)
    assert caught.value.message.endswith("d.csv:3: column 2 ('x1'): 'abc' is not a number")


def test_csv_empty_cell(tmp_path):
    with pytest.raises(Error, match=r"d\.csv:2: column 1 \('x'\): an empty cell is not a number"):
        load_data(write(tmp_path, "x,y\n,1\n"), tmp_path)


def test_csv_duplicate_and_clashing_columns(tmp_path):
    with pytest.raises(Error, match="'x' appears twice"):
        load_data(write(tmp_path, "x,x\n1,2\n"), tmp_path)
    with pytest.raises(Error, match="clashes with the column group"):
        load_data(write(tmp_path, "x,x0,x1\n1,2,3\n", "c.csv"), tmp_path)
    with pytest.raises(Error, match="repeats an index"):
        load_data(write(tmp_path, "x1,x.1\n1,2\n", "r.csv"), tmp_path)


# --- folders ------------------------------------------------------------------------------------

def test_folder_of_npy(tmp_path):
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "image.npy", np.zeros((2, 3)))
    np.save(folder / "label.npy", np.array([0, 1]))
    assert sorted(load_data("arrays", tmp_path)) == ["image", "label"]


def test_folder_of_idx(mnist_folder):
    folder, raw = mnist_folder
    data = load_data(str(folder), "/")
    assert data["image"].shape == (5, 1, 28, 28)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Error, match="neither MNIST IDX files nor .npy files"):
        load_data("empty", tmp_path)


def test_dict_passes_through():
    data = load_data({"x": [[1.0, 2.0]]}, ".")
    assert isinstance(data["x"], np.ndarray)


# --- bind_inputs --------------------------------------------------------------------------------

IMAGE = ("image", "f32", ("B", 1, 2, 2), Span("m.net", 2, 5, 2, 30))
LABEL = ("label", "i64", ("B",), Span("m.net", 3, 5, 3, 20))


def test_bind_casts_and_selects():
    data = {"image": np.zeros((3, 1, 2, 2), np.float64), "label": np.array([0.0, 1.0, 2.0]), "extra": np.ones(7)}
    bound = bind_inputs(data, [IMAGE, LABEL])
    assert list(bound) == ["image", "label"]
    assert bound["image"].dtype == np.float32 and bound["label"].dtype == np.int64


def test_bind_missing_input_lists_keys_and_suggests():
    data = {"images": np.zeros((3, 1, 2, 2)), "labels": np.zeros(3)}
    with pytest.raises(Error) as caught:
        bind_inputs(data, [IMAGE, LABEL])
    diagnostics = caught.value.diagnostics
    assert [d.message for d in diagnostics] == ["no data for input 'image'", "no data for input 'label'"]
    assert diagnostics[0].span == IMAGE[3]
    assert diagnostics[0].hint == "did you mean 'images'? the data has: images, labels"


def test_bind_fractional_labels_refused():
    data = {"image": np.zeros((2, 1, 2, 2)), "label": np.array([0.0, 0.5])}
    with pytest.raises(Error) as caught:
        bind_inputs(data, [IMAGE, LABEL])
    assert "non-integer values (e.g. 0.5 at index [1])" in caught.value.message
    assert caught.value.span == LABEL[3]


def test_bind_fixed_dim_mismatch():
    with pytest.raises(Error, match=r"axis 2 is 3, not 2"):
        bind_inputs({"image": np.zeros((2, 1, 3, 2)), "label": np.zeros(2)}, [IMAGE, LABEL])


def test_bind_rank_mismatch():
    with pytest.raises(Error, match=r"declared f32\[B, 1, 2, 2\] \(rank 4\) but its data has shape \[2, 4\]"):
        bind_inputs({"image": np.zeros((2, 4)), "label": np.zeros(2)}, [IMAGE, LABEL])


def test_bind_example_counts_disagree():
    span = Span("m.net", 9, 5, 9, 20)
    with pytest.raises(Error) as caught:
        bind_inputs({"image": np.zeros((3, 1, 2, 2)), "label": np.zeros(2)}, [IMAGE, LABEL], data_span=span)
    assert "'image' has 3, 'label' has 2" in caught.value.message and caught.value.span == span


def test_bind_symbolic_dims_unify():
    specs = [("tokens", "i64", ("B", "T")), ("targets", "i64", ("B", "T"))]
    bind_inputs({"tokens": np.zeros((2, 5), np.int64), "targets": np.zeros((2, 5), np.int64)}, specs)
    with pytest.raises(Error, match="dimension T is 5 in input 'tokens' .* but 4 in input 'targets'"):
        bind_inputs({"tokens": np.zeros((2, 5), np.int64), "targets": np.zeros((2, 4), np.int64)}, specs)


def test_bind_trailing_unit_axis():
    bound = bind_inputs({"y": np.zeros(4, np.int64)}, [("y", "f32", ("B", 1))])
    assert bound["y"].shape == (4, 1) and bound["y"].dtype == np.float32
    bound = bind_inputs({"y": np.zeros((4, 1))}, [("y", "i64", ("B",))])
    assert bound["y"].shape == (4,)


def test_bind_bool_and_range_checks():
    assert bind_inputs({"m": np.array([0, 1, 1])}, [("m", "bool", ("B",))])["m"].dtype == np.bool_
    with pytest.raises(Error, match="values other than 0 and 1"):
        bind_inputs({"m": np.array([0, 2])}, [("m", "bool", ("B",))])
    with pytest.raises(Error, match="outside"):
        bind_inputs({"m": np.array([2**40])}, [("m", "i32", ("B",))])
    with pytest.raises(Error, match="unsupported element type 'f8'"):
        bind_inputs({"m": np.array([1.0])}, [("m", "f8", ("B",))])


# --- split and batches --------------------------------------------------------------------------

def make(count):
    return {"x": np.arange(count * 2).reshape(count, 2), "y": np.arange(count)}


def test_split_sizes_determinism_and_pairing():
    train, validation = split(make(10), 0.8, seed=1)
    assert len(train["y"]) == 8 and len(validation["y"]) == 2
    np.testing.assert_array_equal(train["x"][:, 0] // 2, train["y"])  # rows stay paired
    assert sorted(np.concatenate([train["y"], validation["y"]]).tolist()) == list(range(10))
    again, _ = split(make(10), 0.8, seed=1)
    np.testing.assert_array_equal(train["y"], again["y"])
    other, _ = split(make(10), 0.8, seed=2)
    assert not np.array_equal(train["y"], other["y"])


def test_split_edges():
    train, validation = split(make(4), 0.99, seed=0)
    assert len(train["y"]) == 3 and len(validation["y"]) == 1
    train, validation = split(make(4), 1.0, seed=0)
    assert len(train["y"]) == 4 and len(validation["y"]) == 0
    for bad in (0, 1.5, -0.2):
        with pytest.raises(Error, match="split must be a fraction"):
            split(make(4), bad, 0)


def test_batches_short_last_batch():
    sizes = [len(batch["y"]) for batch in batches(make(10), 4, shuffle=False)]
    assert sizes == [4, 4, 2] and num_batches(make(10), 4) == 3
    first = next(batches(make(10), 4, shuffle=False))
    np.testing.assert_array_equal(first["y"], [0, 1, 2, 3])


def test_batches_shuffle_determinism():
    one = [b["y"].tolist() for b in batches(make(9), 4, True, np.random.default_rng(5))]
    two = [b["y"].tolist() for b in batches(make(9), 4, True, 5)]
    three = [b["y"].tolist() for b in batches(make(9), 4, True, 6)]
    assert one == two and one != three


def test_batches_rejects_bad_size():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(Error, match="batch size must be a positive integer"):
            list(batches(make(3), bad))


@settings(max_examples=60, deadline=None)
@given(count=st.integers(0, 50), batch_size=st.integers(1, 17), seed=st.integers(0, 2**16), shuffle=st.booleans())
def test_batches_visit_every_example_once(count, batch_size, seed, shuffle):
    sizes, seen = [], []
    for batch in batches(make(count), batch_size, shuffle, seed):
        sizes.append(len(batch["y"]))
        seen.extend(batch["y"].tolist())
        np.testing.assert_array_equal(batch["x"][:, 0] // 2, batch["y"])
    assert sorted(seen) == list(range(count))
    assert all(size == batch_size for size in sizes[:-1])
    assert len(sizes) == -(-count // batch_size)
    if sizes:
        assert sizes[-1] == count - batch_size * (len(sizes) - 1)
