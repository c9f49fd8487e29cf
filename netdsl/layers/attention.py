"""MultiHeadAttention, computed as torch.nn.MultiheadAttention(batch_first=True) computes it.

A Python layer rather than a `.net` block because a block's inputs are fixed in number, and this
layer takes one input (self-attention), two (cross-attention on `memory`) or three (with a
key-padding mask).  The Transformer layers built on it are `.net` blocks
(layers/stdlib/transformer.net).

Parameters, PyTorch's names and layouts: `in_proj_weight` [3d, d] (rows: query, key, value
projections; Xavier-uniform), `in_proj_bias` [3d] (zeros), `out_proj.weight` [d, d] (uniform
±1/sqrt(d), nn.Linear's default), `out_proj.bias` [d] (zeros).

All heads go through one batched product: the projections are one matmul each, reshaped to
[B, heads, T, d/heads]; scores are [B, heads, T, S].  The causal mask is a [T, 1] iota compared
with a [1, S] one (a [T, S] bool, broadcast by `where`), never a tensor of future positions per
batch and head.  Masked scores are set to -1e30 rather than -inf, so a row whose every key is
masked gives uniform weights where PyTorch gives NaN.
"""
from __future__ import annotations

import math

from ..ir.types import DType
from .base import ArgumentError, Tensor, layer
from .init import InitSpec

MASKED = -1e30


def _known(ctx, x, what: str) -> int:
    size = x.shape[-1]
    if x.rank != 3 or not isinstance(size, int):
        ctx.error(f"MultiHeadAttention expects {what} f32[B, T, d] with a known d, got {x.type}",
                  hint="declare the feature size as a number or a const in the input's type")
    return size


@layer("MultiHeadAttention")
class MultiHeadAttention:
    """attn(x) self-attention, attn(x, memory) cross-attention, attn(x, memory, pad) with a
    key-padding mask pad [B, S] (true or nonzero: that key is padding and is ignored)."""

    def __init__(self, heads: int, causal: bool = False, dropout: float = 0.0):
        if heads < 1:
            raise ArgumentError("heads", f"MultiHeadAttention: heads must be at least 1, "
                                         f"got {heads}")
        if not 0.0 <= dropout < 1.0:
            raise ArgumentError("dropout", f"MultiHeadAttention: dropout must be in [0, 1), "
                                           f"got {dropout}")
        self.heads, self.causal, self.dropout = heads, causal, dropout

    def apply(self, ctx, x: Tensor, memory: Tensor = None, key_padding_mask: Tensor = None):
        x = ctx.floating(x)
        d = _known(ctx, x, "its input")
        if d % self.heads:
            ctx.error(f"MultiHeadAttention: the model size {d} does not divide into "
                      f"{self.heads} heads", hint="choose heads that divide the last axis")
        weight = ctx.param("in_proj_weight", (3 * d, d), InitSpec("xavier_uniform"),
                           fan=(d, 3 * d))
        bias = ctx.param("in_proj_bias", (3 * d,), "zeros")
        bound = 1.0 / math.sqrt(d)
        out_weight = ctx.param("out_proj.weight", (d, d), InitSpec("uniform", (-bound, bound)),
                               fan=(d, d))
        out_bias = ctx.param("out_proj.bias", (d,), "zeros")

        def project(source, w, b):
            return ctx.op("add", ctx.op("matmul", source, w, transpose_b=True), b)

        if memory is None:
            q, k, v = ctx.op("split", project(x, weight, bias), axis=2, sizes=(d, d, d))
        else:
            memory = ctx.floating(memory)
            if _known(ctx, memory, "its memory") != d or memory.shape[0] != x.shape[0]:
                ctx.error(f"MultiHeadAttention: the memory {memory.type} does not match the "
                          f"input {x.type}", hint="memory must be [B, S, d] with the input's B, d")
            w_q, w_kv = ctx.op("split", weight, axis=0, sizes=(d, 2 * d))
            b_q, b_kv = ctx.op("split", bias, axis=0, sizes=(d, 2 * d))
            q = project(x, w_q, b_q)
            k, v = ctx.op("split", project(memory, w_kv, b_kv), axis=2, sizes=(d, d))
        q, k, v = (self._heads(ctx, t, d) for t in (q, k, v))      # [B, H, T|S, d/H]
        scale = ctx.const(1.0 / math.sqrt(d // self.heads), q)
        scores = ctx.op("mul", ctx.op("matmul", q, k, transpose_b=True), scale)
        scores = self._mask(ctx, scores, key_padding_mask)
        weights = ctx.op("exp", ctx.op("log_softmax", scores, axis=3))
        if ctx.training and self.dropout > 0.0:
            mask = ctx.op("dropout_mask", ctx.rng_counter(), weights, p=self.dropout,
                          seed=ctx.fresh_seed())
            weights = ctx.op("mul", weights, mask)
        mixed = ctx.op("transpose", ctx.op("matmul", weights, v), perm=(0, 2, 1, 3))
        mixed = ctx.op("reshape", mixed, shape=(x.shape[0], x.shape[1], d))
        return project(mixed, out_weight, out_bias)

    def _heads(self, ctx, t, d: int):
        """[B, T, d] -> [B, heads, T, d/heads]."""
        split = ctx.op("reshape", t, shape=(t.shape[0], t.shape[1], self.heads, d // self.heads))
        return ctx.op("transpose", split, perm=(0, 2, 1, 3))

    def _mask(self, ctx, scores, key_padding_mask):
        """Scores with future positions (causal) and padded keys set to MASKED."""
        queries, keys = scores.shape[2], scores.shape[3]
        masked = ctx.const(MASKED, scores)
        if self.causal:
            row = ctx.op("iota", shape=(queries, 1), axis=0)
            col = ctx.op("iota", shape=(1, keys), axis=1)
            scores = ctx.op("where", ctx.op("greater_equal", row, col), scores, masked)
        if key_padding_mask is not None:
            pad = key_padding_mask
            if pad.rank != 2 or pad.shape[1] != keys:
                ctx.error(f"MultiHeadAttention: the key-padding mask must be [B, {keys}], "
                          f"got {pad.type}")
            if pad.dtype.is_float:          # PyTorch adds a float mask to the scores
                pad = ctx.op("reshape", pad, shape=(pad.shape[0], 1, 1, keys))
                return ctx.op("add", scores, pad)
            if pad.dtype != DType.bool:
                pad = ctx.op("not_equal", pad, ctx.const(0, pad))
            pad = ctx.op("reshape", pad, shape=(pad.shape[0], 1, 1, keys))
            scores = ctx.op("where", pad, masked, scores)
        return scores

    def describe(self) -> dict[str, str]:
        return {"heads": str(self.heads)} | ({"causal": "true"} if self.causal else {}) | \
            ({"dropout": str(self.dropout)} if self.dropout else {})
