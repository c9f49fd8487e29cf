"""runtime/sampling.py (latents, the picture for each output shape, the files written) and the
partial loading of checkpoints (runtime/checkpoint.py)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import netdsl
from netdsl.errors import Error
from netdsl.runtime import sampling
from netdsl.runtime.checkpoint import (PARTIAL_HINT, check_weights, describe_partial_load,
                                       load_weights, save_checkpoint, scope_counts)

MODELS = """\
model Noise {
    in  noise: f32[B, T]
    out y = noise * 2.0
}

model Gen {
    in  z: f32[B, 3]
    in  noise: f64[B, T]
    in  length: i64[T]
    out y = z |> Dense(2) as head
    out n = noise
    out l = length
}
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("sampling") / "gen.net"
    path.write_text(MODELS)
    return path


def test_latents_are_seeded_per_input_and_take_their_dims(source):
    graph = netdsl.load(source, "Gen").inference_graph
    given = {"length": np.zeros(5, np.int64)}
    drawn = sampling.draw_latents(graph, 4, 7, given)
    assert drawn["z"].shape == (4, 3) and drawn["z"].dtype == np.float32
    assert drawn["noise"].shape == (4, 5) and drawn["noise"].dtype == np.float64
    again = sampling.draw_latents(graph, 4, 7, {**given, "noise": np.ones((4, 5))})
    np.testing.assert_array_equal(drawn["z"], again["z"])      # noise given: z unchanged
    assert "noise" not in again
    assert not np.allclose(sampling.draw_latents(graph, 4, 8, given)["z"], drawn["z"])
    # N(0, 1): over many samples the mean and spread are those of a standard normal.
    many = sampling.draw_latents(graph, 20_000, 0, given)["z"]
    assert abs(many.mean()) < 0.02 and abs(many.std() - 1.0) < 0.02


def test_latent_errors_name_the_inputs(source):
    graph = netdsl.load(source, "Gen").inference_graph
    with pytest.raises(Error, match=r"no data for input 'length' \(i64\[T\]\)"):
        sampling.draw_latents(graph, 4, 0, {})
    noise_only = netdsl.load(source, "Noise").inference_graph
    with pytest.raises(Error, match="cannot draw latent 'noise' .*its dim T is not the batch"):
        sampling.draw_latents(noise_only, 4, 0, {})
    for n in (0, -3, sampling.MAX_SAMPLES + 1, 2.5, True):
        with pytest.raises(Error, match="number of samples"):
            sampling.draw_latents(graph, n, 0, {"length": np.zeros(5, np.int64)})
    with pytest.raises(Error, match="more than 268,435,456"):
        sampling.draw_latents(graph, 100_000, 0, {"length": np.zeros(5000, np.int64)})


@pytest.mark.parametrize("shape, dtype, kind", [
    ((4, 1, 5, 5), np.float32, "grid"), ((4, 3, 5, 5), np.float64, "grid"),
    ((4, 5, 5), np.float32, "grid"), ((4, 2), np.float32, "scatter"),
    ((4, 2, 5, 5), np.float32, None), ((4, 7), np.float32, None), ((4,), np.float32, None),
    ((4, 1, 5, 5), np.int64, None), ((4, 9), np.int64, "text"),
])
def test_the_first_output_decides_the_picture(shape, dtype, kind):
    outputs = {"first": np.zeros(shape, dtype), "second": np.zeros((4, 2), np.float32)}
    picture = sampling.choose_picture(outputs, vocab_known=True)
    assert (picture.kind, picture.output) == (kind, "first")
    assert bool(picture.reason) == (kind is None)


def test_token_ids_without_a_vocabulary_say_so():
    picture = sampling.choose_picture({"ids": np.zeros((2, 3), np.int64)})
    assert picture.kind is None and "no vocabulary" in picture.reason


def test_the_grid_places_each_image_and_clips():
    images = np.stack([np.full((1, 2, 2), value) for value in (0.0, 0.25, 0.5, 0.75, 2.0)])
    images[0, 0, 0, 0] = np.nan
    grid = sampling.image_grid(images)
    scale = min(8, 512 // 10)                 # 2 rows x 3 columns of 2x2 with borders: 7x10
    assert grid.shape == (7 * scale, 10 * scale)
    cell = lambda row, col: grid[(1 + row * 3) * scale, (1 + col * 3) * scale]  # noqa: E731
    assert [cell(0, 0), cell(0, 1), cell(0, 2), cell(1, 0), cell(1, 1)] == \
        [0.0, 0.25, 0.5, 0.75, 1.0]           # NaN is 0, 2.0 is clipped to 1
    assert cell(1, 2) == 0.5 and grid[0, 0] == 0.5          # empty cell and border: gray
    rgb = sampling.image_grid(np.zeros((2, 3, 4, 4)))
    assert rgb.shape[-1] == 3


def test_token_text_is_one_line_per_sample():
    vocab = ["a", "b", "\n", " "]
    text = sampling.token_text(np.array([[0, 1, 3, 0], [2, 1, 9, 0]]), vocab)
    assert text == "ab a\n\\nb\ufffda\n"


def test_sample_paths():
    assert sampling.sample_paths("out/s.png") == (
        sampling.Path("out/s.npz"), sampling.Path("out/s.png"), sampling.Path("out/s.txt"))
    assert sampling.sample_paths("s.svg").picture == sampling.Path("s.svg")
    assert sampling.sample_paths("s.txt") == (sampling.Path("s.npz"), sampling.Path("s.png"),
                                              sampling.Path("s.txt"))
    assert sampling.sample_paths("s.npz") == (sampling.Path("s.npz"), None, None)
    with pytest.raises(Error, match="unsupported extension '.jpg'"):
        sampling.sample_paths("s.jpg")


def test_token_samples_are_written_as_text(tmp_path):
    ids = np.array([[0, 1]] * 12)
    paths = sampling.sample_paths(tmp_path / "s.png")
    lines = sampling.save_samples(paths, {"ids": ids}, {"z": np.zeros((12, 1))}, ["x", "y"])
    assert (tmp_path / "s.txt").read_text() == "xy\n" * 12
    assert lines[1:] == ["xy"] * 10 + ["... and 2 more",
                                       f"wrote 12 decoded samples of 'ids' to {paths.text}"]
    assert not (tmp_path / "s.png").exists()
    with np.load(paths.npz) as archive:
        assert sorted(archive.files) == ["ids", "z"]


def test_no_picture_says_why_and_keeps_the_npz(tmp_path):
    paths = sampling.sample_paths(tmp_path / "s.png")
    lines = sampling.save_samples(paths, {"v": np.zeros((3, 7), np.float32)})
    assert lines[-1].startswith("no picture: 'v' is float32[3, 7]: a picture is drawn for")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]


def test_without_matplotlib_the_npz_is_still_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # `import matplotlib` fails
    paths = sampling.sample_paths(tmp_path / "s.png")
    lines = sampling.save_samples(paths, {"img": np.zeros((2, 3, 3), np.float32)})
    assert lines[-1] == ("no picture: drawing samples needs matplotlib "
                         "(pip install 'netdsl[plot]')")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]


# -- partial loading ---------------------------------------------------------------------------
EXPECTED = {"dec.weight": ((2, 3), "f32"), "dec.bias": ((2,), "f32")}
CHECKPOINT = {"enc.weight": np.ones((3, 3), np.float32), "enc.bias": np.ones(3, np.float32),
              "dec.weight": np.ones((2, 3), np.float32), "dec.bias": np.ones(2, np.float32),
              "step": np.array(3)}


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_load_weights_partial_skips_and_lists(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    save_checkpoint(path, CHECKPOINT)
    loaded = load_weights(path, EXPECTED, partial=True, model="Dec")
    assert sorted(loaded.weights) == ["dec.bias", "dec.weight"]
    assert sorted(loaded.skipped) == ["enc.bias", "enc.weight", "step"]
    assert describe_partial_load(loaded, "Dec").startswith(
        "loaded 2 arrays for Dec; skipped 3 not in it: ")
    with pytest.raises(Error) as caught:
        load_weights(path, EXPECTED, model="Dec")
    assert caught.value.diagnostics[0].message == (
        f"{path} has 3 parameters that Dec does not have: "
        + ", ".join(f"{s} ({c})" for s, c in scope_counts(loaded.skipped)))
    assert caught.value.diagnostics[0].hint == PARTIAL_HINT


def test_partial_loading_still_refuses_missing_and_misshaped(tmp_path):
    path = tmp_path / "w.npz"
    save_checkpoint(path, {**CHECKPOINT, "dec.bias": np.ones(5, np.float32)})
    with pytest.raises(Error, match=r"'dec.bias' has shape \[5\]"):
        load_weights(path, EXPECTED, partial=True)
    save_checkpoint(path, {"enc.weight": CHECKPOINT["enc.weight"]})
    with pytest.raises(Error, match="parameter 'dec.weight' .* is missing"):
        load_weights(path, EXPECTED, partial=True)


def test_scopes_group_by_the_first_name_part():
    assert scope_counts(["enc1.weight", "enc1.bias", "mu.weight", "block_1.bn.mean", "step"]) \
        == [("enc1.*", 2), ("mu.*", 1), ("block_1.*", 1), ("step", 1)]
    extra = {f"layer{i}.w": np.zeros(1) for i in range(15)}
    with pytest.raises(Error, match=r"layer11\.\* \(1\), and 3 more"):
        check_weights(extra, {})
