"""Hand-made fixtures for the render tests: Architectures and Graphs built without lowering."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from netdsl.ir.architecture import Architecture, LayerRecord
from netdsl.ir.graph import GraphBuilder
from netdsl.ir.types import DType, TensorType
from netdsl.ops.registry import OpDef
from render_helpers import B, T, at, f32


def _layer(arch, name, kind, inputs, out, *, line, category="layer", params=0, parent=None,
           args=None, repeat=None, file="lenet.net", shared_with=None):
    return arch.add(LayerRecord(name, kind, category, args or {}, list(inputs), [out], params,
                                params, span=at(line, file), parent=parent, repeat=repeat,
                                shared_with=shared_with))


@pytest.fixture
def lenet() -> Architecture:
    """LeNet-5 with one user block (Residual) holding two layers."""
    a = Architecture("LeNet5")
    _layer(a, "image", "input", [], f32(B, 1, 28, 28), line=2, category="input")
    _layer(a, "label", "input", [], TensorType(DType.i64, (B,)), line=3, category="input")
    _layer(a, "conv1", "Conv2D", ["image"], f32(B, 6, 28, 28), line=5, params=156,
           args={"filters": "6", "kernel": "5", "padding": "2"})
    _layer(a, "relu_1", "relu", ["conv1"], f32(B, 6, 28, 28), line=5, category="function")
    _layer(a, "maxpool_1", "MaxPool", ["relu_1"], f32(B, 6, 14, 14), line=5, args={"size": "2"})
    _layer(a, "res1", "Residual", ["maxpool_1"], f32(B, 6, 14, 14), line=6, category="block",
           args={"channels": "6"})
    _layer(a, "res1.conv2d_1", "Conv2D", ["maxpool_1"], f32(B, 6, 14, 14), line=20,
           params=330, parent="res1", args={"filters": "6", "kernel": "3", "padding": "1"})
    _layer(a, "res1.batchnorm_1", "BatchNorm", ["res1.conv2d_1"], f32(B, 6, 14, 14), line=21,
           params=12, parent="res1")
    _layer(a, "conv2", "Conv2D", ["res1"], f32(B, 16, 10, 10), line=7, params=2416,
           args={"filters": "16", "kernel": "5"})
    _layer(a, "flatten_1", "Flatten", ["conv2"], f32(B, 1600), line=8)
    _layer(a, "fc1", "Dense", ["flatten_1"], f32(B, 120), line=9, params=192120,
           args={"units": "120"})
    _layer(a, "dropout_1", "Dropout", ["fc1"], f32(B, 120), line=9, args={"p": "0.5"})
    _layer(a, "fc2", "Dense", ["dropout_1"], f32(B, 10), line=10, params=1210,
           args={"units": "10"})
    _layer(a, "probs", "output", ["fc2"], f32(B, 10), line=11, category="output")
    _layer(a, "loss", "cross_entropy", ["fc2", "label"], f32(), line=12, category="loss")
    return a


@pytest.fixture
def encoder12() -> Architecture:
    """A Transformer: repeat(12, TransformerEncoderLayer(...)), each copy a block of 5 layers.

    The first child of each copy names the copy itself as its input (the block's `in`), the
    way a lowering may record a block's parameters; the others name their siblings.
    """
    a = Architecture("Encoder12", [])
    _layer(a, "tokens", "input", [], TensorType(DType.i64, (B, T)), line=2, category="input",
           file="enc.net")
    _layer(a, "embed", "Embedding", ["tokens"], f32(B, T, 128), line=4, params=1_280_000,
           args={"vocab": "10000", "dim": "128"}, file="enc.net")
    _layer(a, "posenc", "PositionalEncoding", ["embed"], f32(B, T, 128), line=5, file="enc.net")
    previous = "posenc"
    for i in range(12):
        copy = f"encoder_{i + 1}"
        _layer(a, copy, "TransformerEncoderLayer", [previous], f32(B, T, 128), line=6,
               category="block", args={"d": "128", "heads": "4", "ff": "512"},
               repeat=("encoder", i, 12), file="enc.net")
        inner = [("attn", "MultiHeadAttention", 66048, [copy]),
                 ("norm1", "LayerNorm", 256, ["attn"]),
                 ("ff1", "Dense", 66048, ["norm1"]),
                 ("ff2", "Dense", 65664, ["ff1"]),
                 ("norm2", "LayerNorm", 256, ["ff2"])]
        for j, (name, kind, params, inputs) in enumerate(inner):
            _layer(a, f"{copy}.{name}", kind, [x if x == copy else f"{copy}.{x}" for x in inputs],
                   f32(B, T, 512 if name == "ff1" else 128), line=30 + j, params=params,
                   parent=copy, file="stdlib.net")
        previous = copy
    _layer(a, "pool", "mean", [previous], f32(B, 128), line=7, category="function",
           args={"axis": "1"}, file="enc.net")
    _layer(a, "head", "Dense", ["pool"], f32(B, 2), line=8, params=258, args={"units": "2"},
           file="enc.net")
    _layer(a, "logits", "output", ["head"], f32(B, 2), line=9, category="output", file="enc.net")
    return a


@pytest.fixture
def stacked() -> Architecture:
    """Three identical chained Residual blocks (not from repeat), then two parallel ones."""
    a = Architecture("Stacked")
    _layer(a, "x", "input", [], f32(B, 16), line=1, category="input", file="s.net")
    previous = "x"
    for i in range(3):
        name = f"residual_{i + 1}"
        _layer(a, name, "Residual", [previous], f32(B, 16), line=3 + i, category="block",
               args={"width": "16"}, file="s.net")
        _layer(a, f"{name}.dense_1", "Dense", [previous], f32(B, 16), line=20, params=272,
               parent=name, args={"units": "16"}, file="s.net")
        _layer(a, f"{name}.relu_1", "relu", [f"{name}.dense_1"], f32(B, 16), line=21,
               category="function", parent=name, file="s.net")
        previous = name
    for branch in ("left", "right"):
        _layer(a, branch, "Residual", [previous], f32(B, 16), line=8, category="block",
               args={"width": "16"}, file="s.net")
        _layer(a, f"{branch}.dense_1", "Dense", [previous], f32(B, 16), line=20, params=272,
               parent=branch, args={"units": "16"}, file="s.net")
    _layer(a, "sum", "add", ["left", "right"], f32(B, 16), line=9, category="function",
           file="s.net")
    _layer(a, "y", "output", ["sum"], f32(B, 16), line=10, category="output", file="s.net")
    return a


@pytest.fixture
def nested() -> Architecture:
    """outer (Stage) > inner (Unit) > Dense: for --depth."""
    a = Architecture("Nested")
    _layer(a, "x", "input", [], f32(B, 8), line=1, category="input", file="n.net")
    _layer(a, "stage", "Stage", ["x"], f32(B, 8), line=2, category="block", file="n.net")
    _layer(a, "stage.unit", "Unit", ["x"], f32(B, 8), line=10, category="block",
           parent="stage", file="n.net")
    _layer(a, "stage.unit.dense_1", "Dense", ["x"], f32(B, 8), line=20, params=72,
           parent="stage.unit", file="n.net")
    _layer(a, "stage.unit.tanh_1", "tanh", ["stage.unit.dense_1"], f32(B, 8), line=21,
           category="function", parent="stage.unit", file="n.net")
    _layer(a, "stage.dense_2", "Dense", ["stage.unit"], f32(B, 8), line=11, params=72,
           parent="stage", file="n.net")
    _layer(a, "y", "output", ["stage"], f32(B, 8), line=3, category="output", file="n.net")
    return a


# ---------------------------------------------------------------------------------------------
# Graphs: ops defined here (not registered) so these tests do not depend on the op library.

def _same(a, *rest, **attrs):
    return a


def _matmul(a, b, **attrs):
    return f32(*a.shape[:-1], b.shape[-1])


def _sum(a, axis=None, **attrs):
    return f32()


OPS = {name: OpDef(name, infer, lambda *xs, **k: xs[0], traits=frozenset(traits))
       for name, infer, traits in [
           ("matmul", _matmul, {"matmul"}), ("add", _same, {"elementwise"}),
           ("relu", _same, {"elementwise"}), ("mul", _same, {"elementwise"}),
           ("relu_grad", _same, {"elementwise"}), ("sum", _sum, {"reduction"}),
           ("transpose", lambda a, **k: f32(*reversed(a.shape)), {"shape"}),
           ("constant", lambda value: f32(*np.shape(value)), {"constant"})]}


@pytest.fixture
def mlp():
    """x @ w1 + b1 |> relu |> @ w2, summed to a loss; and its gradient nodes (scope "grad")."""
    b = GraphBuilder()
    b.graph.name = "MLP"
    x = b.input("x", f32(B, 4), span=at(2, "mlp.net"))
    with b.scoped("fc1"), b.at(at(4, "mlp.net")):
        w1 = b.param("fc1.weight", f32(4, 8), ("he",))
        b1 = b.param("fc1.bias", f32(8), ("zeros",))
        h = b.op(OPS["add"], b.op(OPS["matmul"], x, w1), b1)
    with b.scoped("relu_1"), b.at(at(4, "mlp.net")):
        r = b.op(OPS["relu"], h)
    with b.scoped("fc2"), b.at(at(5, "mlp.net")):
        w2 = b.param("fc2.weight", f32(8, 1), ("he",))
        y = b.op(OPS["matmul"], r, w2)
    b.graph.outputs["y"] = y
    with b.at(at(6, "mlp.net")):
        loss = b.op(OPS["sum"], y, axis=(0, 1))
    from netdsl.ir.graph import LossInfo
    b.graph.losses.append(LossInfo("loss", loss, span=at(6, "mlp.net")))
    forward_nodes = list(b.graph.nodes)

    # A training-step graph: the forward nodes, then gradient nodes under the "grad" scope.
    seed = b.op(OPS["constant"], value=np.float32(1.0))
    with b.scoped("grad"):
        with b.scoped("fc2"), b.at(at(5, "mlp.net")):
            g_y = b.op(OPS["mul"], y, seed)
            g_w2 = b.op(OPS["matmul"], b.op(OPS["transpose"], r), g_y)
            g_r = b.op(OPS["matmul"], g_y, b.op(OPS["transpose"], w2))
        with b.scoped("relu_1"), b.at(at(4, "mlp.net")):
            g_h = b.op(OPS["relu_grad"], g_r, h)
        with b.scoped("fc1"), b.at(at(4, "mlp.net")):
            g_w1 = b.op(OPS["matmul"], b.op(OPS["transpose"], x), g_h)
    train = b.graph
    from netdsl.ir.graph import Graph
    forward = Graph("MLP", list(train.inputs), list(train.params), forward_nodes,
                    dict(train.outputs), list(train.losses), input_spans=dict(train.input_spans))
    train.outputs.update({"grad:fc1.weight": g_w1, "grad:fc2.weight": g_w2})
    return SimpleNamespace(forward=forward, train=train, values=locals())


@pytest.fixture
def fused_mlp(mlp):
    """A hand-made fusion result for the forward MLP: matmul+bias+relu as one kernel."""
    nodes = mlp.forward.nodes
    matmul1, add, relu, matmul2, total = nodes
    return [SimpleNamespace(name="fc1_epilogue", kind="matmul+elementwise",
                            nodes=[matmul1, add, relu]),
            SimpleNamespace(name="fc2_matmul", kind="matmul", nodes=[matmul2]),
            SimpleNamespace(name="loss_sum", kind="reduction", nodes=[total])]


@pytest.fixture
def rep3():
    """repeat(3, Block) at both levels: Architecture records and the matching graph."""
    a = Architecture("Rep3")
    _layer(a, "x", "input", [], f32(B, 8), line=1, category="input", file="r.net")
    b = GraphBuilder()
    b.graph.name = "Rep3"
    h = b.input("x", f32(B, 8), span=at(1, "r.net"))
    previous = "x"
    for i in range(3):
        copy = f"rep_{i + 1}"
        _layer(a, copy, "Block", [previous], f32(B, 8), line=2, category="block",
               repeat=("Rep3:repeat:1", i, 3), file="r.net")
        _layer(a, f"{copy}.dense_1", "Dense", [previous], f32(B, 8), line=10, params=64,
               parent=copy, file="r.net")
        _layer(a, f"{copy}.relu_1", "relu", [f"{copy}.dense_1"], f32(B, 8), line=11,
               category="function", parent=copy, file="r.net")
        with b.scoped(copy), b.at(at(10, "r.net")):
            with b.scoped("dense_1"):
                w = b.param(f"{copy}.dense_1.weight", f32(8, 8), ("he",))
                h = b.op(OPS["matmul"], h, w)
            h = b.op(OPS["relu"], b.op(OPS["mul"], h, b.op(OPS["constant"], value=np.float32(0.5))))
        previous = copy
    _layer(a, "y", "output", [previous], f32(B, 8), line=3, category="output", file="r.net")
    b.graph.outputs["y"] = h
    return SimpleNamespace(arch=a, graph=b.graph)
