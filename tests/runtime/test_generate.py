"""Autoregressive generation (runtime/generate.py, `netdsl sample --prompt`)."""
from __future__ import annotations

import numpy as np
import pytest

import netdsl
from netdsl.cli import main
from netdsl.errors import Error
from netdsl.runtime.checkpoint import save_checkpoint
from netdsl.runtime.generate import next_token

LM = """
model Tiny {
    in  x: i64[B, T]
    in  y: i64[B, T]
    # Small to compile: the loop needs a [B, T] -> [B, T, V] model, not a transformer (the
    # GPT example trains and samples one).
    logits = x |> Embedding(6, 8) as embed |> PositionalEncoding() |> tanh |> Dense(6) as head
    out probs = softmax(logits)
    loss cross_entropy(logits, y)
}
"""


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    (folder / "lm.net").write_text(LM)
    model = netdsl.load(folder / "lm.net")
    weights = model.init(seed=3)
    save_checkpoint(folder / "w.npz", weights)
    (folder / "text.txt").write_text("abcde\n")          # vocabulary: \n a b c d e
    return folder, model, weights


def test_greedy_continuation_follows_the_model(lm):
    _, model, weights = lm
    prompt = np.array([[1, 2, 3], [4, 4, 4]])
    tokens = model.generate(weights, prompt, 5, temperature=0, target="reference")
    assert tokens.shape == (2, 8)
    np.testing.assert_array_equal(tokens[:, :3], prompt)
    for step in range(3, 8):          # each new token is the likeliest after what came before
        probs = model.forward(weights, {"x": tokens[:, :step]}, target="reference")["probs"]
        np.testing.assert_array_equal(tokens[:, step], probs[:, -1].argmax(axis=1))
    # top_k=1 is greedy at any temperature; the context window cuts what the model sees.
    again = model.generate(weights, prompt, 5, top_k=1, temperature=2.0, target="reference")
    np.testing.assert_array_equal(again, tokens)


def test_sampling_is_seeded_and_honours_top_k(lm):
    _, model, weights = lm
    prompt = np.ones((16, 1), np.int64)
    first = model.generate(weights, prompt, 12, seed=5, target="cpu")
    np.testing.assert_array_equal(first, model.generate(weights, prompt, 12, seed=5,
                                                        target="cpu"))
    assert not np.array_equal(first, model.generate(weights, prompt, 12, seed=6, target="cpu"))
    assert first.min() >= 0 and first.max() < 6
    rng = np.random.default_rng(0)
    logits = np.array([[0.0, 5.0, 4.0, -1.0, 3.0, 0.5]] * 4000)
    drawn = next_token(logits, 1.0, 2, rng, probabilities=False)
    assert set(np.unique(drawn)) == {1, 2}                       # only the two likeliest
    share = (drawn == 1).mean()                                  # e^5 / (e^5 + e^4) = 0.731
    assert abs(share - 0.731) < 0.03, share


def test_the_cli_writes_the_decoded_text(lm, tmp_path, capsys):
    folder, _, _ = lm
    out = tmp_path / "text.txt"
    assert main(["sample", str(folder / "lm.net"), "--weights", str(folder / "w.npz"),
                 "--prompt", "ab", "--length", "7", "-n", "3", "--vocab",
                 str(folder / "text.txt"), "-o", str(out), "--seed", "1"]) == 0
    lines = out.read_text().split("\n")
    assert all(line.startswith("ab") for line in lines[:1])
    ids = np.load(tmp_path / "text.npz")["tokens"]
    assert ids.shape == (3, 9)
    np.testing.assert_array_equal(ids[:, :2], [[1, 2]] * 3)


@pytest.mark.parametrize("flags, message", [
    (["--prompt", "ab"], "--prompt needs --vocab"),
    (["--prompt", "aZ", "--vocab", "TEXT"], "character 'Z' is not in the vocabulary"),
    (["--prompt", "ab", "--vocab", "TEXT", "--temperature", "-1"], "--temperature must be"),
    (["--prompt", "ab", "--vocab", "TEXT", "--top-k", "0"], "--top-k must be"),
    (["--prompt", "ab", "--vocab", "TEXT", "--length", "0"], "--length must be"),
])
def test_wrong_flags_are_errors(lm, tmp_path, capsys, flags, message):
    folder, _, _ = lm
    flags = [str(folder / "text.txt") if flag == "TEXT" else flag for flag in flags]
    assert main(["sample", str(folder / "lm.net"), "--weights", str(folder / "w.npz"),
                 "-o", str(tmp_path / "t.txt")] + flags) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_model_without_token_input_is_refused(tmp_path):
    path = tmp_path / "m.net"
    path.write_text("model M {\n    in x: f32[B, 2]\n    out y = x |> Dense(3) as fc\n}\n")
    model = netdsl.load(path)
    with pytest.raises(Error, match="one integer \\[B, T\\] input"):
        model.generate(model.init(), np.zeros((1, 1), np.int64), 3)
