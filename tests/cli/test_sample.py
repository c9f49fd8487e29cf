"""`netdsl sample` and `--partial`: a decoder sampled with the weights of the VAE it belongs to.

The .net file holds two models whose decoder layers share instance names (`dec1`, `dec2`), so
the Decoder's parameters are a subset of the VAE's checkpoint.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import netdsl
from netdsl.cli import main
from netdsl.errors import Error
from netdsl.runtime.checkpoint import save_checkpoint

VAE = """\
model VAE {
    in  image: f32[B, 1, 4, 4]
    h = image |> Flatten |> Dense(8) as enc1 |> relu
    mu = h |> Dense(2) as mu
    logvar = h |> Dense(2) as logvar
    z = mu + exp(0.5 * logvar) * normal([B, 2])
    out recon = z |> Dense(8) as dec1 |> relu |> Dense(16) as dec2 |> sigmoid
        |> reshape([B, 1, 4, 4])
    loss mse(recon, image)
}

model Decoder {
    in  z: f32[B, 2]
    out image = z |> Dense(8) as dec1 |> relu |> Dense(16) as dec2 |> sigmoid
        |> reshape([B, 1, 4, 4])
    out code = z * 2.0
}

model Points {
    in  z: f32[B, 3]
    out xy = z |> Dense(2) as head
}

model Labelled {
    in  z: f32[B, 2]
    in  digit: i64[B]
    out image = z |> Dense(8) as dec1 |> relu |> Dense(16) as dec2 |> sigmoid
        |> reshape([B, 1, 4, 4])
    out label = one_hot(digit, 3)
}
"""
SKIPPED = "loaded 4 arrays for Decoder; skipped 6 not in it: enc1.* (2), mu.* (2), logvar.* (2)"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The .net file, the VAE's checkpoint (fresh weights, trained 1 epoch) and the Points
    model's, in one folder."""
    folder = tmp_path_factory.mktemp("sample")
    source = folder / "vae.net"
    source.write_text(VAE)
    vae = netdsl.load(source, "VAE")
    images = np.random.default_rng(0).uniform(0, 1, (32, 1, 4, 4)).astype(np.float32)
    weights = vae.fit(vae.init(seed=1), {"image": images}, epochs=1, batch=16, lr=1e-2,
                      split=1.0, metrics=[]).weights
    save_checkpoint(folder / "vae.npz", weights)
    save_checkpoint(folder / "points.npz", netdsl.load(source, "Points").init(seed=2))
    return folder


def sample(capsys, files, *flags: str) -> tuple[int, str, str]:
    status = main(["sample", str(files / "vae.net"), *flags])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


def decoder_flags(files, out, *more: str) -> list[str]:
    return ["--model", "Decoder", "-w", str(files / "vae.npz"), "-o", str(out), *more]


def test_sample_writes_a_grid_and_every_output_with_partial_weights(files, tmp_path, capsys):
    status, out, err = sample(capsys, files, *decoder_flags(files, tmp_path / "s.png",
                                                            "-n", "10", "--partial"))
    assert status == 0, err
    assert SKIPPED in err
    with np.load(tmp_path / "s.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    assert set(arrays) == {"z", "image", "code"}              # the latents and every output
    assert arrays["image"].shape == (10, 1, 4, 4) and arrays["z"].shape == (10, 2)
    np.testing.assert_allclose(arrays["code"], arrays["z"] * 2.0, rtol=1e-6)
    from matplotlib.image import imread
    picture = imread(tmp_path / "s.png")
    # 10 images of 4x4: 4 columns, 3 rows, 1-pixel borders, each pixel drawn 8x8.
    assert picture.shape[:2] == ((3 * 5 + 1) * 8, (4 * 5 + 1) * 8)
    assert f"wrote a grid of 10 images of 'image' to {tmp_path / 's.png'}" in out


def test_the_decoder_output_is_forward_on_the_saved_latents(files, tmp_path, capsys):
    assert sample(capsys, files, *decoder_flags(files, tmp_path / "s.npz", "--partial",
                                                "-n", "7", "--seed", "5"))[0] == 0
    decoder = netdsl.load(files / "vae.net", "Decoder")
    loaded = decoder.load_weights(files / "vae.npz", partial=True)
    assert loaded.skipped == ["enc1.weight", "enc1.bias", "mu.weight", "mu.bias",
                              "logvar.weight", "logvar.bias"]
    with np.load(tmp_path / "s.npz") as archive:
        expected = decoder.forward(loaded.weights, {"z": archive["z"]}, target="reference")
        np.testing.assert_allclose(archive["image"], expected["image"], rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "s.png").exists()                   # -o x.npz: the arrays only


def test_the_seed_decides_the_samples(files, tmp_path, capsys):
    def drawn(seed: str, name: str) -> np.ndarray:
        flags = decoder_flags(files, tmp_path / name, "--partial", "-n", "6", "--seed", seed)
        assert sample(capsys, files, *flags)[0] == 0
        with np.load(tmp_path / name) as archive:
            return archive["image"]

    first, again, other = drawn("1", "a.npz"), drawn("1", "b.npz"), drawn("2", "c.npz")
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_a_scatter_plot_for_two_dimensional_points(files, tmp_path, capsys):
    status, out, err = sample(capsys, files, "--model", "Points", "-w", str(files / "points.npz"),
                              "-n", "50", "-o", str(tmp_path / "p.png"))
    assert status == 0, err
    assert f"wrote a scatter plot of 50 points of 'xy' to {tmp_path / 'p.png'}" in out
    from matplotlib.image import imread
    assert imread(tmp_path / "p.png").shape[:2] == (500, 500)      # a 5x5-inch figure
    with np.load(tmp_path / "p.npz") as archive:
        assert archive["xy"].shape == (50, 2) and archive["z"].shape == (50, 3)


def test_extra_names_without_partial_are_an_error_that_mentions_it(files, tmp_path, capsys):
    status, out, err = sample(capsys, files, *decoder_flags(files, tmp_path / "s.png"))
    assert status == 1
    assert "has 6 parameters that Decoder does not have: enc1.* (2), mu.* (2), logvar.* (2)" \
        in err
    assert "--partial" in err
    assert list(tmp_path.iterdir()) == []


def test_missing_names_are_an_error_even_with_partial(files, tmp_path, capsys):
    status, _, err = sample(capsys, files, "--model", "Decoder", "-w", str(files / "points.npz"),
                            "--partial", "-o", str(tmp_path / "s.png"))
    assert status == 1
    assert "parameter 'dec1.weight' (f32[8, 2]) is missing" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags, message", [
    (["-n", "0"], "error: the number of samples must be in [1, 100,000], got 0"),
    (["-n", "100001"], "error: the number of samples must be in [1, 100,000], got 100001"),
    (["--seed", "-1"], "error: the seed must be a whole number >= 0, got -1"),
    (["--model", "Decodr"], "hint: did you mean 'Decoder'?"),
    (["-w", "nothing.npz"], "error: checkpoint not found: nothing.npz"),
    (["-o", "s.jpg"], "error: cannot write samples to s.jpg: unsupported extension '.jpg'"),
])
def test_bad_flags_are_clean_errors(files, tmp_path, capsys, monkeypatch, flags, message):
    monkeypatch.chdir(tmp_path)
    defaults = {"--model": "Decoder", "-w": str(files / "vae.npz"), "-o": "s.png"}
    for flag, value in defaults.items():
        if flag not in flags:
            flags = [*flags, flag, value]
    status, _, err = sample(capsys, files, "--partial", *flags)
    assert status == 1
    assert message in err
    assert list(tmp_path.iterdir()) == []


def test_an_integer_input_must_be_given(files, tmp_path, capsys):
    flags = ["--model", "Labelled", "-w", str(files / "vae.npz"), "--partial", "-n", "4",
             "-o", str(tmp_path / "s.npz")]
    status, _, err = sample(capsys, files, *flags)
    assert status == 1
    assert "no data for input 'digit' (i64[B]): sampling draws only float inputs" in err
    np.savez(tmp_path / "given.npz", digit=np.array([0, 1, 2, 1]))
    status, _, err = sample(capsys, files, *flags, "--input", str(tmp_path / "given.npz"))
    assert status == 0, err
    with np.load(tmp_path / "s.npz") as archive:
        np.testing.assert_array_equal(archive["label"].argmax(axis=1), [0, 1, 2, 1])
        assert archive["z"].shape == (4, 2)


def test_a_corrupt_checkpoint_is_a_clean_error_in_a_real_process(files, tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    result = subprocess.run(
        [sys.executable, "-m", "netdsl.cli", "sample", str(files / "vae.net"), "--model",
         "Decoder", "-w", str(tmp_path / "bad.npz"), "--partial", "-o", str(tmp_path / "s.png")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"error: cannot read checkpoint {tmp_path / 'bad.npz'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.npz"]


def test_run_loads_part_of_a_checkpoint_with_partial(files, tmp_path, capsys):
    np.savez(tmp_path / "z.npz", z=np.zeros((3, 2), np.float32))
    flags = ["run", str(files / "vae.net"), "--model", "Decoder", "-w", str(files / "vae.npz"),
             "-i", str(tmp_path / "z.npz"), "-o", str(tmp_path / "y.npz")]
    assert main(flags) == 1
    assert "--partial" in capsys.readouterr().err
    assert main([*flags, "--partial"]) == 0
    assert SKIPPED in capsys.readouterr().err
    with np.load(tmp_path / "y.npz") as archive:
        assert archive["image"].shape == (3, 1, 4, 4)


def test_the_python_api(files):
    decoder = netdsl.load(files / "vae.net", "Decoder")
    with pytest.raises(Error, match="--partial"):
        decoder.load_weights(files / "vae.npz")
    weights = decoder.load_weights(files / "vae.npz", partial=True).weights
    assert sorted(weights) == ["dec1.bias", "dec1.weight", "dec2.bias", "dec2.weight"]
    samples = decoder.sample(weights, n=5, seed=3, target="reference")
    assert list(samples) == ["image", "code"] and samples["image"].shape == (5, 1, 4, 4)
    latents = decoder.latents(5, seed=3)
    np.testing.assert_allclose(samples["code"], latents["z"] * 2.0, rtol=1e-6)
    given = decoder.sample(weights, n=2, inputs={"z": np.zeros((2, 2), np.float32)},
                           target="reference")
    assert np.all(given["code"] == 0.0)
    labelled = netdsl.load(files / "vae.net", "Labelled")
    with pytest.raises(Error, match="3 samples asked for, but the given inputs make the batch "
                                    "dim B of 'z' 2"):
        labelled.latents(3, inputs={"digit": np.zeros(2, np.int64)})
    with pytest.raises(Error, match="number of samples"):
        decoder.sample(weights, n=0)


def test_token_ids_are_decoded_with_the_vocabulary_of_a_text_file(tmp_path, capsys):
    source = tmp_path / "tokens.net"
    source.write_text("model Tokens {\n    in  z: f32[B, 6, 3]\n"
                      "    out ids = argmax(z |> Dense(4) as head, axis=2)\n}\n")
    save_checkpoint(tmp_path / "w.npz", netdsl.load(source).init(seed=0))
    (tmp_path / "text.txt").write_text("dcba")                  # ids 0..3 are a, b, c, d
    flags = ["sample", str(source), "-w", str(tmp_path / "w.npz"), "-n", "12", "-o",
             str(tmp_path / "s.png")]
    assert main([*flags, "--vocab", str(tmp_path / "text.txt")]) == 0
    out = capsys.readouterr().out
    with np.load(tmp_path / "s.npz") as archive:
        ids = archive["ids"]
    expected = ["".join("abcd"[i] for i in row) for row in ids]
    assert (tmp_path / "s.txt").read_text() == "".join(line + "\n" for line in expected)
    assert expected[:10] == out.splitlines()[1:11] and "... and 2 more" in out
    assert not (tmp_path / "s.png").exists()
    (tmp_path / "s.txt").unlink()
    assert main(flags) == 0                                     # no vocabulary: no text
    assert "no vocabulary was given to decode them (--vocab)" in capsys.readouterr().out
    assert not (tmp_path / "s.txt").exists()
