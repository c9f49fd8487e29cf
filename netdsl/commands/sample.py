"""`netdsl sample FILE --weights W [-n 64] [-o samples.png]`: samples of a generative model.

The sampling model is a model of the file (`--model`, default the last) whose inputs not given
by `--input` are latents drawn from N(0, 1); its layer instances share names with the trained
model's, so `--partial` loads its weights from the trained model's checkpoint.
"""
from __future__ import annotations

import argparse

from .base import add_target_argument, command
from .run import add_partial_argument, load_model_weights


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .net file")
    parser.add_argument("--model", help="the sampling model (default: the last one)")
    parser.add_argument("--weights", "-w", required=True, help="a checkpoint (.npz)")
    parser.add_argument("-n", type=int, default=64, help="how many samples (default 64)")
    parser.add_argument("--output", "-o", default="samples.png",
                        help="where to write: the .npz of every output always goes beside it "
                             "(x.png -> x.npz); .png, .svg or .pdf for a picture, .txt for "
                             "text, .npz for the arrays only (default samples.png)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latents (default 0)")
    parser.add_argument("--input", "-i",
                        help="inputs to give instead of drawing them: an .npz by input name "
                             "(needed for integer inputs)")
    parser.add_argument("--vocab", metavar="TEXT_FILE",
                        help="decode [N, T] token ids with the vocabulary the `chars` data set "
                             "makes of this text file (its distinct characters, sorted)")
    add_partial_argument(parser)
    add_target_argument(parser)


@command("sample", "draw samples from a generative model and write them (.npz and a picture)",
         _setup)
def sample(args: argparse.Namespace) -> int:
    from ..model import load
    from ..runtime.data import load_data
    from ..runtime.sampling import check_count, check_sample_paths, sample_paths, save_samples
    # Every mistake in the flags fails before the model is compiled or anything is drawn.
    n = check_count(args.n, "-n")
    paths = sample_paths(args.output)
    check_sample_paths(paths)
    model = load(args.file, args.model)
    vocab = _vocabulary(args.vocab) if args.vocab else None
    weights = load_model_weights(model, args.weights, args.partial)
    given = load_data(args.input, ".") if args.input else {}
    outputs, latents = _generate(model, weights, n, args.seed, args.target, given)
    for line in save_samples(paths, outputs, latents, vocab,
                             title=f"{model.name}: {n} samples"):
        print(line)
    return 0


def _generate(model, weights, n: int, seed: int, target: str, given: dict) -> tuple[dict, dict]:
    """(outputs, drawn latents) of one forward pass of the sampling model on n latents.

    The one way of sampling so far.  A language model's autoregressive loop (a prompt,
    temperature, top-k: one forward pass per new token) will be a second function chosen here,
    giving the same (outputs, inputs) pair to `save_samples`.
    """
    latents = model.latents(n, seed, given)
    outputs = model.sample(weights, n, seed, target=target, inputs={**given, **latents})
    return outputs, latents


def _vocabulary(path: str) -> list[str]:
    """The `chars` data set's vocabulary of a text file (the path as given, from the cwd)."""
    # The text data set owns how a vocabulary is made; the autoregressive sampling path
    # (prompt, temperature, top-k) will read it the same way.
    from ..runtime.text_data import char_vocabulary
    return char_vocabulary(path)
