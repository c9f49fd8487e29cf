"""Batch normalisation with running statistics (LANGUAGE.md sections 5 and 9).

`BatchNorm` normalises over axis 1 (the channels) of `[B, C]`, `[B, C, L]` or `[B, C, H, W]`, as
`torch.nn.BatchNorm1d/2d`: trainable `weight` (ones) and `bias` (zeros), and the non-trainable
state `running_mean` (zeros) and `running_var` (ones).  In training mode the layer uses the batch
statistics (biased variance) and registers the new running statistics as state updates, which
every training step writes back (`running = (1 - momentum) * running + momentum * batch`, the
variance term unbiased, n / (n - 1), as PyTorch).  In evaluation mode it uses the running
statistics.  The element count n is read from the input's shape at run time (`numel`), so the
batch may be symbolic.
"""
from __future__ import annotations

from .base import ArgumentError, Tensor, layer


@layer("BatchNorm")
class BatchNorm:
    """Normalise each channel (axis 1) over the batch and spatial axes; eps 1e-5, momentum 0.1."""

    def __init__(self, eps: float = 1e-5, momentum: float = 0.1):
        if not eps > 0.0:
            raise ArgumentError("eps", f"BatchNorm: eps must be positive, got {eps}")
        if not 0.0 <= momentum <= 1.0:
            raise ArgumentError("momentum", f"BatchNorm: momentum must be in [0, 1], "
                                            f"got {momentum}")
        self.eps, self.momentum = float(eps), float(momentum)

    def apply(self, ctx, x: Tensor):
        x = ctx.floating(x)
        if x.rank < 2:
            ctx.error(f"BatchNorm expects input [B, C] or [B, C, ...spatial] (rank at least 2), "
                      f"got {x.type}", hint=ctx.where_made(x))
        channels = x.shape[1]
        if not isinstance(channels, int):
            ctx.error(f"BatchNorm needs a known number of channels (axis 1) of its input "
                      f"{x.type}, but it is the symbolic dimension {channels}",
                      hint="declare that dimension as a number or a const in the input's type")
        weight = ctx.param("weight", (channels,), "ones", dtype=x.dtype)
        bias = ctx.param("bias", (channels,), "zeros", dtype=x.dtype)
        running_mean = ctx.param("running_mean", (channels,), "zeros", trainable=False,
                                 dtype=x.dtype)
        running_var = ctx.param("running_var", (channels,), "ones", trainable=False,
                                dtype=x.dtype)
        broadcast = (channels,) + (1,) * (x.rank - 2)

        def per_channel(v):
            return v if x.rank == 2 else ctx.op("reshape", v, shape=broadcast)

        if ctx.training:
            axes = (0,) + tuple(range(2, x.rank))
            mean = ctx.op("mean", x, axes=axes, keepdims=True)
            centred = ctx.op("sub", x, mean)
            variance = ctx.op("mean", ctx.op("mul", centred, centred), axes=axes, keepdims=True)
            normed = ctx.op("mul", centred,
                            ctx.op("rsqrt", ctx.op("add", variance, ctx.const(self.eps, x))))
            self._update(ctx, x, axes, running_mean, running_var,
                         ctx.op("reshape", mean, shape=(channels,)),
                         ctx.op("reshape", variance, shape=(channels,)))
        else:
            centred = ctx.op("sub", x, per_channel(running_mean))
            scale = ctx.op("rsqrt", ctx.op("add", running_var, ctx.const(self.eps, x)))
            normed = ctx.op("mul", centred, per_channel(scale))
        return ctx.op("add", ctx.op("mul", normed, per_channel(weight)), per_channel(bias))

    def _update(self, ctx, x, axes, running_mean, running_var, mean, variance) -> None:
        """running = (1 - m) running + m batch; the batch variance made unbiased (n / (n - 1))."""
        mean = ctx.op("stop_gradient", mean)
        variance = ctx.op("stop_gradient", variance)
        n = ctx.op("numel", x, axes=axes, dtype=x.dtype)
        one = ctx.const(1.0, x)
        unbiased = ctx.op("mul", variance, ctx.op("div", n, ctx.op("maximum",
                                                                    ctx.op("sub", n, one), one)))
        keep, take = ctx.const(1.0 - self.momentum, x), ctx.const(self.momentum, x)
        for state, batch in ((running_mean, mean), (running_var, unbiased)):
            current = ctx.state_value(state)
            ctx.state_update(state, ctx.op("add", ctx.op("mul", current, keep),
                                           ctx.op("mul", batch, take)))

    def describe(self) -> dict[str, str]:
        args = {}
        if self.eps != 1e-5:
            args["eps"] = str(self.eps)
        if self.momentum != 0.1:
            args["momentum"] = str(self.momentum)
        return args
