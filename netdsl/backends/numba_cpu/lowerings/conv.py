"""CPU lowerings of conv2d and its gradients (netdsl/ops/conv.py): calls of conv_kernels.py.

The kernels unfold a chunk of images into columns (im2col) and multiply with one gemm
per chunk: on LeNet shapes 20x faster than direct loops in Numba.  The `_parallel` variants run
the chunks on Numba's threads, for convolutions of at least EmitContext.large_product's
multiply-adds (LeNet-5's at batch 64 among them).
"""
from __future__ import annotations

from ....ops.conv import geometry
from . import lowering
from .conv_kernels import (conv2d_backward_weight, conv2d_backward_weight_parallel,
                           conv2d_kernel, conv2d_kernel_parallel)


def _kernel_args(attrs, kernel) -> tuple[str, str]:
    """The geometry as arguments of the compiled kernels, typed int64 rather than literal
    (`np.int64(2)`, not `2`): one compiled kernel then serves every convolution of a dtype,
    where literals compiled a specialisation per geometry (~5 s each for the weight gradient).
    And the kernels' `strided` argument: None for unit stride and dilation (conv_kernels.py)."""
    (sh, sw), (pt, _, pl, _), (dh, dw) = geometry(
        tuple(kernel), attrs.get("stride", 1), attrs.get("padding", 0), attrs.get("dilation", 1))
    args = ", ".join(f"np.int64({v})" for v in (sh, sw, pt, pl, dh, dw, attrs.get("groups", 1)))
    return args, "None" if (sh, sw, dh, dw) == (1, 1, 1, 1) else "np.bool_(True)"


def _parallel(ctx, planes, weights) -> bool:
    """Whether the convolution's multiply-adds (the planes' elements times C/groups * kh * kw,
    at the size hint) pay for the kernel's parallel variant."""
    return ctx.large_product(ctx.elements(planes.shape) * ctx.elements(weights.shape[1:]))


@lowering('conv2d')
def lower_conv2d(ctx, node, ins, outs):
    args, strided = _kernel_args(node.attrs, node.inputs[1].shape[2:])
    parallel = _parallel(ctx, node.outputs[0].type, node.inputs[1].type)
    kernel = conv2d_kernel_parallel if parallel else conv2d_kernel
    return [(f"{ctx.use(kernel)}({ins[0]}, {ins[1]}, {outs[0]}, {args}, np.bool_(False), "
             f"{strided})")]


@lowering('conv2d_grad_input')
def lower_conv2d_grad_input(ctx, node, ins, outs):
    args, strided = _kernel_args(node.attrs, node.inputs[1].shape[2:])
    parallel = _parallel(ctx, node.inputs[0].type, node.inputs[1].type)
    kernel = conv2d_kernel_parallel if parallel else conv2d_kernel
    return [(f"{ctx.use(kernel)}({outs[0]}, {ins[1]}, {ins[0]}, {args}, np.bool_(True), "
             f"{strided})")]


@lowering('conv2d_grad_weight')
def lower_conv2d_grad_weight(ctx, node, ins, outs):
    args, strided = _kernel_args(node.attrs, node.attrs["kernel_size"])
    parallel = _parallel(ctx, node.inputs[1].type, node.outputs[0].type)
    kernel = conv2d_backward_weight_parallel if parallel else conv2d_backward_weight
    return [f"{ctx.use(kernel)}({ins[0]}, {ins[1]}, {outs[0]}, {args}, {strided})"]
