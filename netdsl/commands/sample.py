"""`netdsl sample FILE --weights W [-n 64] [-o samples.png]`: samples of a generative model.

The sampling model is a model of the file (`--model`, default the last) whose inputs not given
by `--input` are latents drawn from N(0, 1); its layer instances share names with the trained
model's, so `--partial` loads its weights from the trained model's checkpoint.
"""
from __future__ import annotations

import argparse

from ..errors import Error
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
    text = parser.add_argument_group("a language model (with --prompt)")
    text.add_argument("--prompt", help="generate text after this prompt, one token at a time "
                                       "(needs --vocab; n samples of it)")
    text.add_argument("--length", type=int, default=200,
                      help="tokens to generate after the prompt (default 200)")
    text.add_argument("--temperature", type=float, default=1.0,
                      help="divide the logits by this (default 1; 0 takes the likeliest)")
    text.add_argument("--top-k", type=int, help="draw from the k likeliest tokens only")
    text.add_argument("--context", type=int,
                      help="tokens the model sees (default: its training windows' length)")
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
    if args.prompt is not None:
        from ..runtime.generate import check_options, token_input
        check_options(args.length, args.temperature, args.top_k, args.context)
        if vocab is None:
            raise Error("--prompt needs --vocab: the text file whose characters the model's "
                        "ids stand for", hint="e.g. --vocab examples/data/tiny_shakespeare.txt")
        token_input(model)
    weights = load_model_weights(model, args.weights, args.partial)
    if args.prompt is not None:
        outputs, latents = _continue(model, weights, n, args, vocab), {}
    else:
        given = load_data(args.input, ".") if args.input else {}
        outputs, latents = _generate(model, weights, n, args.seed, args.target, given)
    for line in save_samples(paths, outputs, latents, vocab,
                             title=f"{model.name}: {n} samples"):
        print(line)
    return 0


def _generate(model, weights, n: int, seed: int, target: str, given: dict) -> tuple[dict, dict]:
    """(outputs, drawn latents) of one forward pass of the sampling model on n latents.

    A language model's autoregressive loop (--prompt: one forward pass per new token) is
    `_continue`, giving `save_samples` the same kind of outputs.
    """
    latents = model.latents(n, seed, given)
    outputs = model.sample(weights, n, seed, target=target, inputs={**given, **latents})
    return outputs, latents


def _continue(model, weights, n: int, args: argparse.Namespace, vocab: list[str]) -> dict:
    """n continuations of the prompt, generated token by token (runtime/generate.py)."""
    import numpy as np
    from ..runtime.generate import generate
    from ..runtime.text_data import encode
    prompt = encode(args.prompt, vocab) if args.prompt else np.zeros(1, np.int64)
    tokens = generate(model, weights, np.tile(prompt, (n, 1)), args.length,
                      temperature=args.temperature, top_k=args.top_k, seed=args.seed,
                      context=args.context, target=args.target)
    return {"tokens": tokens}


def _vocabulary(path: str) -> list[str]:
    """The `chars` data set's vocabulary of a text file (the path as given, from the cwd)."""
    # The text data set owns how a vocabulary is made; the autoregressive sampling path
    # (prompt, temperature, top-k) will read it the same way.
    from ..runtime.text_data import char_vocabulary
    return char_vocabulary(path)
