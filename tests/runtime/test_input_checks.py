"""Data checks before a step (issue 8): ids and labels within range, finite floats, examples
present, .npy headers that claim no more than the file holds; on every path that feeds a model
(train's data, forward/run, loss_and_grad, a bound compiled step)."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

import netdsl
from netdsl.errors import Error
from netdsl.runtime import input_checks
from netdsl.runtime.data import bind_inputs, load_data, split
from netdsl.runtime.input_checks import check_finite, check_index_ranges, index_ranges
from netdsl.source import Span

SPAN = Span("model.net", 4, 5, 4, 20)

MODEL = """model Tagger {
    in ids: i64[B, T]
    in label: i64[B]
    in extra: f32[B, 2]
    e = reshape(ids, [B, T]) |> Embedding(20, 4) as emb
    logits = mean(e, axis=1) |> Dense(3) as fc
    out p = softmax(logits)
    loss cross_entropy(logits, label) + mean(one_hot(label, 3)) * mean(extra)
}
"""


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.net"
    path.write_text(MODEL)
    return netdsl.load(path)


def _inputs(rng=np.random.default_rng(0)):
    return {"ids": rng.integers(0, 20, size=(6, 5)), "label": rng.integers(0, 3, size=6),
            "extra": rng.normal(size=(6, 2)).astype(np.float32)}


# --- which inputs are indices --------------------------------------------------------------------

def test_index_ranges_find_ids_labels_and_one_hot(model):
    ranges = {(r.input, r.high): r for r in index_ranges(model.training_forward)}
    assert set(ranges) == {("ids", 20), ("label", 3)}
    assert ranges[("ids", 20)].use == "ids of emb.weight (20 rows)"
    assert ranges[("ids", 20)].span.line == 5              # the Embedding, through reshape
    assert ranges[("label", 3)].use == "class labels of cross_entropy (3 classes)"


def test_a_computed_index_is_left_to_the_kernels(tmp_path):
    path = tmp_path / "m.net"
    path.write_text("model M {\n    in ids: i64[B]\n    out e = (ids + 1) |> Embedding(5, 2)\n}\n")
    assert index_ranges(netdsl.load(path).graph) == []


# --- the checks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, shown", [(20, "20"), (-1, "-1"), (10**12, "1000000000000")])
def test_out_of_range_id_names_input_value_and_index(model, bad, shown):
    arrays = _inputs()
    arrays["ids"][4, 3] = bad
    ranges = index_ranges(model.training_forward)
    with pytest.raises(Error) as caught:
        check_index_ranges(arrays, ranges, {"ids": SPAN})
    assert caught.value.message == (f"input 'ids' holds {shown} at index [4, 3], outside "
                                    f"[0, 20): its values are the ids of emb.weight (20 rows)")
    assert caught.value.span == SPAN
    assert caught.value.diagnostics[0].notes[0][1] == "used as ids here"


def test_label_equal_to_the_classes_says_so(model):
    arrays = _inputs()
    arrays["label"][2] = 3
    with pytest.raises(Error) as caught:
        check_index_ranges(arrays, index_ranges(model.training_forward))
    assert caught.value.message.startswith("input 'label' holds 3 at index [2], outside [0, 3)")
    assert "labels 1..3, subtract 1" in caught.value.diagnostics[0].hint


def test_float_values_are_checked_as_a_cast_truncates_them():
    from netdsl.runtime.input_checks import IndexRange
    ranges = [IndexRange("x", 4, "ids of t (4 rows)", None)]
    check_index_ranges({"x": np.array([0.0, 3.9, -0.5])}, ranges)      # trunc: 0, 3, 0
    with pytest.raises(Error, match=r"holds nan at index \[1\]"):
        check_index_ranges({"x": np.array([0.0, np.nan])}, ranges)


def test_check_finite_names_the_first_bad_value_and_counts_them():
    array = np.zeros((3, 4), np.float32)
    array[1, 2], array[2, 0] = np.inf, np.nan
    with pytest.raises(Error) as caught:
        check_finite("x", array, SPAN)
    assert caught.value.message == "input 'x' holds inf at index [1, 2] (2 non-finite values in all)"
    assert "allow_nonfinite = true" in caught.value.diagnostics[0].hint


def test_check_finite_is_not_fooled_by_an_overflowing_sum():
    check_finite("x", np.full(4, np.finfo(np.float64).max))      # the sum is inf, values are not
    check_finite("ids", np.array([1, 2]))                          # integers: nothing to check
    # float32 and float64 data go through a dot product with themselves, float16 through a
    # float32 sum: each overflows here (1e20 squared is past float32's range), and the exact
    # count behind it finds every value finite.
    check_finite("x", np.full(8, np.finfo(np.float32).max, np.float32))
    check_finite("x", np.full((3, 4), 1e20, np.float32).T)         # not contiguous either
    check_finite("h", np.full(100, 6e4, np.float16))
    for dtype in (np.float16, np.float32, np.float64, np.complex64):
        for value in (np.nan, np.inf, -np.inf):
            bad = np.ones(5, dtype)
            bad[3] = value
            with pytest.raises(Error, match=r"holds \(?-?(nan|inf).* at index \[3\]"):
                check_finite("x", bad)


# --- bind_inputs: train's data ---------------------------------------------------------------

SPECS = [("x", "f32", ("B", 2)), ("label", "i64", ("B",))]


def test_bind_refuses_nan_unless_allowed():
    data = {"x": np.array([[0.0, 1.0], [np.nan, 2.0]]), "label": np.array([0, 1])}
    with pytest.raises(Error, match=r"input 'x' holds nan at index \[1, 0\]") as caught:
        bind_inputs(data, SPECS, data_span=SPAN)
    assert caught.value.span == SPAN
    bound = bind_inputs(data, SPECS, data_span=SPAN, allow_nonfinite=True)
    assert np.isnan(bound["x"][1, 0])


def test_bind_refuses_a_value_that_overflows_the_declared_float():
    data = {"x": np.array([[0.0, 1e300]]), "label": np.array([0])}
    with pytest.raises(Error, match=r"input 'x' is f32 but its data has values too large for "
                                    r"it \(e.g. 1e\+300 at index \[0, 1\]\)"):
        bind_inputs(data, SPECS)


def test_bind_refuses_data_without_examples():
    data = {"x": np.zeros((0, 2)), "label": np.zeros(0, np.int64)}
    with pytest.raises(Error, match="the data has no examples"):
        bind_inputs(data, SPECS, data_span=SPAN)


def test_bind_checks_ranges():
    from netdsl.runtime.input_checks import IndexRange
    data = {"x": np.zeros((2, 2)), "label": np.array([0, 7])}
    with pytest.raises(Error, match=r"input 'label' holds 7 at index \[1\], outside \[0, 3\)"):
        bind_inputs(data, SPECS, ranges=[IndexRange("label", 3, "class labels", None)])


@pytest.mark.parametrize("total", [0, 1])
def test_split_refuses_to_leave_validation_empty(total):
    data = {"x": np.zeros((total, 2))}
    with pytest.raises(Error, match="leaves no example for validation") as caught:
        split(data, 0.8, span=SPAN)
    assert caught.value.span == SPAN
    train, validation = split({"x": np.zeros((1, 2))}, 1.0)
    assert len(train["x"]) == 1 and len(validation["x"]) == 0


# --- .npy headers ----------------------------------------------------------------------------

def _header(shape, descr="<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue()


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_npz_whose_header_claims_terabytes_is_refused_before_allocating(tmp_path, compression):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("x.npy", _header((1000000, 1000000)))
    assert path.stat().st_size < 400
    with pytest.raises(Error) as caught:
        load_data("bomb.npz", tmp_path, SPAN)
    assert caught.value.message.startswith(
        f"{path}: array 'x': its header claims a [1000000, 1000000] float32 array (3.6 TiB)")
    assert caught.value.span == SPAN


def test_npy_whose_header_claims_more_than_the_file_is_refused(tmp_path):
    (tmp_path / "x.npy").write_bytes(_header((1 << 40,), "<f8") + b"\0" * 64)
    with pytest.raises(Error, match=r"its header claims a \[1099511627776\] float64 array"):
        load_data("x.npy", tmp_path)


def test_array_larger_than_memory_is_refused(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "d.npz", x=np.zeros((1000, 100), np.float32))
    monkeypatch.setattr(input_checks, "memory_limit", lambda: 1000)
    with pytest.raises(Error, match=r"a \[1000, 100\] float32 array needs 390.6 KiB, more than "
                                    r"this machine's memory \(1000 bytes\)"):
        load_data("d.npz", tmp_path)


def test_honest_files_still_load(tmp_path):
    np.savez_compressed(tmp_path / "c.npz", x=np.zeros((300, 300)), y=np.arange(5))
    np.savez(tmp_path / "s.npz", x=np.ones((2, 3), np.float32), empty=np.zeros((0, 4)))
    np.save(tmp_path / "v.npy", np.arange(6).reshape(2, 3))
    assert load_data("c.npz", tmp_path)["x"].shape == (300, 300)
    assert load_data("s.npz", tmp_path)["empty"].shape == (0, 4)
    assert load_data("v.npy", tmp_path)["v"].shape == (2, 3)


# --- inference and gradients get the same checks -------------------------------------------

@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_forward_refuses_out_of_range_ids(model, target):
    inputs = _inputs()
    inputs["ids"][1, 1] = 20
    with pytest.raises(Error, match=r"input 'ids' holds 20 at index \[1, 1\]"):
        model.forward(model.init(), inputs, target=target)


def test_forward_refuses_fractional_ids_and_nan(model):
    inputs = _inputs()
    inputs["ids"] = inputs["ids"].astype(np.float64)
    inputs["ids"][0, 2] = 1.5
    with pytest.raises(Error, match=r"input 'ids' is i64 but its data has non-integer values "
                                    r"\(e.g. 1.5 at index \[0, 2\]\)"):
        model.forward(model.init(), inputs)
    inputs = _inputs()
    inputs["label"][0] = 5
    with pytest.raises(Error, match=r"input 'label' holds 5"):
        model.loss_and_grad(model.init(), inputs)
    inputs = _inputs()
    inputs["extra"][3, 1] = np.nan
    with pytest.raises(Error, match=r"input 'extra' holds nan at index \[3, 1\]"):
        model.loss_and_grad(model.init(), inputs)


def test_forward_takes_nan_when_the_train_section_allows_it(tmp_path):
    path = tmp_path / "m.net"
    path.write_text("model M {\n    in x: f32[B, 2]\n    out y = x * 2.0\n}\n"
                    "train M {\n    allow_nonfinite = true\n}\n")
    out = netdsl.load(path).forward({}, {"x": np.array([[np.nan, 1.0]], np.float32)})
    assert np.isnan(out["y"][0, 0]) and out["y"][0, 1] == 2.0


# --- the compiled step turns its kernels' IndexError into the same error ------------------------

@pytest.fixture
def emb_model(tmp_path):
    path = tmp_path / "emb.net"
    path.write_text("model E {\n    in ids: i64[B, 3]\n    in y: f32[B, 3, 4]\n"
                    "    out e = ids |> Embedding(20, 4) as emb\n    loss mse(e, y)\n}\n"
                    "model C {\n    in ids: i64[B]\n    out e = (ids + 18) |> Embedding(20, 4)\n}\n")
    return path


def _training_step(model):
    from netdsl.backends import compile_graph
    from netdsl.passes.pipeline import run_pipeline
    from netdsl.passes.training import build_training_graph
    graph = run_pipeline(build_training_graph(model.training_forward,
                                              model.train_config.optimizer_spec()))
    compiled = compile_graph(graph)
    weights = model.init()
    state = {info.name: np.array(weights[info.name]) if info.name in weights else
             np.zeros(tuple(info.value.shape), info.value.dtype.numpy) for info in graph.params}
    return compiled, state


@pytest.mark.parametrize("bad", [20, -1, 10**12])
def test_bound_step_and_run_name_the_input(emb_model, bad):
    compiled, state = _training_step(netdsl.load(emb_model, "E"))
    step = compiled.bind(state, inputs=["ids", "y", "__lr__", "__step__"])
    ids, y = np.zeros((4, 3), np.int64), np.zeros((4, 3, 4), np.float32)
    step(ids, y, 0.1, 1.0)
    ids[3, 0] = bad
    before = {name: array.copy() for name, array in state.items()}
    with pytest.raises(Error, match=rf"input 'ids' holds {bad} at index \[3, 0\]"):
        step(ids, y, 0.1, 2.0)
    with pytest.raises(Error, match=rf"input 'ids' holds {bad} at index \[3, 0\]"):
        compiled.run({**state, "ids": ids, "y": y, "__lr__": np.float32(0.1),
                      "__step__": np.float32(1)})
    for name, array in state.items():          # the refused step updated nothing
        np.testing.assert_array_equal(array, before[name])


@pytest.mark.parametrize("target", ["cpu", "reference"])
def test_a_computed_index_out_of_range_points_at_the_lookup(emb_model, target):
    model = netdsl.load(emb_model, "C")
    model.forward(model.init(), {"ids": np.array([0, 1])}, target=target)
    with pytest.raises(Error, match="an index computed by the model is out of range") as caught:
        model.forward(model.init(), {"ids": np.array([0, 2])}, target=target)
    assert caught.value.span.line == 9


def test_gzipped_idx_that_claims_more_than_memory_is_refused_before_inflating(tmp_path):
    import gzip

    from netdsl.runtime.datasets import read_idx
    header = bytes([0, 0, 0x08, 3]) + np.array([1 << 20, 1 << 20, 1 << 10], ">u4").tobytes()
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + bytes(1000)))
    with pytest.raises(Error, match=r"its header claims a 1048576x1048576x1024 array of "
                                    r"1125899906842624 bytes, more than this machine's memory"):
        read_idx(path)
    small = tmp_path / "small.gz"
    small.write_bytes(gzip.compress(bytes([0, 0, 0x08, 1]) + np.array([3], ">u4").tobytes()
                                    + bytes([1, 2, 3, 4])))
    with pytest.raises(Error, match="longer than its header says"):
        read_idx(small)
