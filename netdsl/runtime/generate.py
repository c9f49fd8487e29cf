"""Autoregressive sampling from a causal language model: one compiled forward pass per token.

The model is the trained one (`gpt_tiny.net`'s TinyGPT): its one integer input [B, T] takes the
token ids so far, and its first floating output [B, T, V] (logits, or probabilities from a
softmax) gives the next token's distribution at the last position.  Each step feeds the last
`context` tokens (default: the length of the windows the model was trained on), divides the
logits by `temperature` (0: always the most likely token), keeps the `top_k` most likely, and
draws from what is left with a generator seeded by `seed`.  The inference graph is compiled
once for symbolic T, so a growing sequence does not recompile.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import Error

MAX_NEW_TOKENS = 100_000


def token_input(model) -> str:
    """The name of the model's one integer [B, T] input (the token ids), or an Error."""
    found = [value.name for value in model.inference_graph.inputs
             if value.dtype.is_int and value.rank == 2]
    if len(found) != 1:
        what = f"several ({', '.join(found)})" if found else "none"
        raise Error(f"generating text needs a model with one integer [B, T] input of token ids;"
                    f" {model.name} has {what}",
                    hint="sample from the trained language model itself (e.g. TinyGPT)")
    return found[0]


def _distribution_output(model) -> str:
    for name, value in model.inference_graph.outputs.items():
        if value.dtype.is_float and value.rank == 3:
            return name
    raise Error(f"generating text needs an output [B, T, V] of logits or probabilities; "
                f"{model.name} has none")


def training_context(model) -> int | None:
    """The window length of the `chars` data the model trains on, if its train section says."""
    data = getattr(model.train_config, "data", None)
    length = getattr(data, "kwargs", {}).get("length") if hasattr(data, "kwargs") else None
    return length if isinstance(length, int) and length > 0 else None


def check_options(length: Any, temperature: Any, top_k: Any, context: Any) -> None:
    """Every sampling option in range, or an Error naming its flag."""
    def whole(value, flag, low, high):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not low <= value <= high:
            raise Error(f"{flag} must be a whole number in [{low}, {high}], got {value!r}")
    whole(length, "--length", 1, MAX_NEW_TOKENS)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not np.isfinite(temperature) or temperature < 0:
        raise Error(f"--temperature must be a finite number >= 0, got {temperature!r}",
                    hint="1 samples the model's own distribution; 0 always takes the most "
                         "likely token")
    if top_k is not None:
        whole(top_k, "--top-k", 1, 2 ** 31 - 1)
    if context is not None:
        whole(context, "--context", 1, 2 ** 31 - 1)


def next_token(scores: np.ndarray, temperature: float, top_k: int | None,
               rng: np.random.Generator, probabilities: bool) -> np.ndarray:
    """One token id per row of `scores` [n, V] (logits, or probabilities when they are)."""
    scores = np.asarray(scores, dtype=np.float64)
    if probabilities:
        with np.errstate(divide="ignore"):
            scores = np.log(scores)
    if temperature == 0:
        return scores.argmax(axis=1)
    scores = scores / temperature
    if top_k is not None and top_k < scores.shape[1]:
        kth = np.partition(scores, -top_k, axis=1)[:, -top_k][:, None]
        scores = np.where(scores >= kth, scores, -np.inf)
    scores = scores - scores.max(axis=1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=1, keepdims=True)
    draws = rng.random((len(weights), 1))
    # The first index whose cumulative weight passes the draw (clipped for rounding at 1).
    return np.minimum((weights.cumsum(axis=1) < draws).sum(axis=1), weights.shape[1] - 1)


def generate(model, weights: Mapping[str, np.ndarray], prompt: np.ndarray, length: int = 200,
             *, temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
             context: int | None = None, target: str = "cpu") -> np.ndarray:
    """`prompt` [n, P] token ids (P >= 1) followed by `length` generated ids: [n, P + length]."""
    check_options(length, temperature, top_k, context)
    tokens = np.asarray(prompt, dtype=np.int64)
    if tokens.ndim != 2 or tokens.shape[1] < 1 or tokens.shape[0] < 1:
        raise Error(f"the prompt must be at least one token for each sample, got shape "
                    f"{list(tokens.shape)}", hint="give --prompt some text")
    name, output = token_input(model), _distribution_output(model)
    context = context or training_context(model)
    rng = np.random.default_rng(seed)
    probabilities = None
    for _ in range(length):
        window = tokens if context is None else tokens[:, -context:]
        scores = model.forward(weights, {name: window}, target=target)[output][:, -1, :]
        if probabilities is None:           # a softmax's rows are >= 0 and sum to 1
            probabilities = bool((scores >= 0).all() and
                                 np.allclose(scores.sum(axis=1), 1.0, atol=1e-3))
        chosen = next_token(scores, float(temperature), top_k, rng, probabilities)
        tokens = np.concatenate([tokens, chosen[:, None].astype(np.int64)], axis=1)
    return tokens
