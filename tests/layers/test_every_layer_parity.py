"""Every built-in layer against its PyTorch twin, parametrised from the layer registry.

The registry is `netdsl.layers.LAYERS` (layers written in Python) plus the standard library's
blocks (`stdlib/*.net`); `test_every_layer_is_covered_or_listed` fails when a layer is added
without a case here or an entry in the reviewed table `NOT_COMPARED`.

For each case: a tiny model applies the layer (instance `L`) to its inputs, each float input
plus a zero `param` so that its gradient is the input's; netdsl's weights (perturbed so that no
weight or bias keeps its default) are copied into the torch module by name; then on each target
the forward in evaluation mode, and in training mode the loss (`mse` against a random target) and
the gradient of every parameter and every float input, are compared at 1e-4.  Layers whose
compile is slow (attention, the Transformer layers, LSTM, GRU) use, character for character, a
model their per-family test also compiles, fed inputs of the same shapes (the cpu target
specialises a scan on the batch), so the session's compile cache serves both files
(their input gradients are then not compared: those models have no zero params).  The per-family
files beside this one test more (shapes, masks, options, BatchNorm's running statistics after
SGD steps, dropout draws).  Skipped cleanly where torch is missing.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

import netdsl
from netdsl.layers import LAYERS
from netdsl.layers.stdlib import stdlib_blocks

torch = pytest.importorskip("torch")
nn = torch.nn

TARGETS = ["reference", "cpu"]


@dataclass
class Case:
    """`expr` applies the layer (named `L`) to `h0`, `h1`, ... (the inputs, plus zero params)."""

    expr: str
    inputs: list                          # (shape, dtype) per input
    twin: Callable[[], "nn.Module"]
    call: Callable = None                 # (module, *tensors) -> tensor; default module(*tensors)
    rename: Callable[[str], str] = field(default=lambda name: name)   # netdsl -> torch name
    train: bool = True                    # compare the training-mode loss and gradients
    # The whole model as a per-family test writes it (inputs x, mem, t; output `output`; the
    # layer's instance `instance`), for layers whose compile is slow: the session's compile
    # cache then serves both files.  No zero params: the input gradients are not compared.
    model: str = None
    instance: str = "L"
    output: str = "y"


class Recurrent(nn.Module):
    """torch's nn.RNN/LSTM/GRU with the last step or every step, as `return_sequences`."""

    def __init__(self, kind: str, features: int, hidden: int, sequences: bool):
        super().__init__()
        self.inner = getattr(nn, kind)(features, hidden, batch_first=True)
        self.sequences = sequences

    def forward(self, x):
        hs, _ = self.inner(x)
        return hs if self.sequences else hs[:, -1]


class Positional(nn.Module):
    """The PyTorch tutorial's sinusoidal positional encoding (no parameters)."""

    def forward(self, x):
        length, d = x.shape[1], x.shape[2]
        position = torch.arange(length).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        table = torch.zeros(length, d)
        table[:, 0::2] = torch.sin(position * div_term)
        table[:, 1::2] = torch.cos(position * div_term)
        return x + table


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def _causal(length):
    return nn.Transformer.generate_square_subsequent_mask(length)


F32 = "f32"
B, T, S, D = 3, 4, 5, 8


def attention_model(body: str, extra_inputs: str = "") -> str:
    """The model text test_attention_parity.py writes (its `load`), character for character."""
    lines = [f"in x: f32[B, T, {D}]", f"in t: f32[B, T, {D}]", *extra_inputs.splitlines(),
             *body.splitlines(), "loss mse(y, t)"]
    return "model M {\n" + "".join(f"    {line}\n" for line in lines) + "}\n"


def recurrent_model(layer: str, sequences: bool) -> str:
    """The model text test_recurrent_parity.py writes (its `build`)."""
    flag = "true" if sequences else "false"
    shape = "[B, 6, 5]" if sequences else "[B, 5]"
    return textwrap.dedent(f"""
        model M {{
            in x: f32[B, 6, 3]
            in t: f32{shape}
            out h = x |> {layer}(5, return_sequences={flag}) as rnn
            loss mse(h, t)
        }}
    """)

CASES: dict[str, Case] = {
    "Dense": Case("h0 |> Dense(4) as L", [((B, 6), F32)], lambda: nn.Linear(6, 4)),
    "Flatten": Case("h0 |> Flatten as L", [((B, 2, 3, 2), F32)], lambda: nn.Flatten()),
    "Dropout": Case("h0 |> Dropout(0.5) as L", [((B, 6), F32)], lambda: nn.Dropout(0.5),
                    train=False),
    "Conv2D": Case("h0 |> Conv2D(4, kernel=3, stride=2, padding=1) as L", [((2, 3, 6, 5), F32)],
                   lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1)),
    "MaxPool": Case("h0 |> MaxPool(2) as L", [((2, 3, 6, 4), F32)], lambda: nn.MaxPool2d(2)),
    "AvgPool": Case("h0 |> AvgPool(3, stride=2, padding=1) as L", [((2, 3, 6, 5), F32)],
                    lambda: nn.AvgPool2d(3, stride=2, padding=1)),
    "GlobalAvgPool": Case("h0 |> GlobalAvgPool as L", [((2, 3, 4, 5), F32)],
                          lambda: Lambda(lambda x: x.mean(dim=(2, 3)))),
    "LayerNorm": Case("h0 |> LayerNorm as L", [((B, T, 6), F32)], lambda: nn.LayerNorm(6)),
    "BatchNorm": Case("h0 |> BatchNorm as L", [((5, 3, 4), F32)], lambda: nn.BatchNorm1d(3)),
    "Embedding": Case("h0 |> Embedding(7, 4) as L", [((B, T), "i64")],
                      lambda: nn.Embedding(7, 4)),
    "MultiHeadAttention": Case(
        "", [((3, 5, D), F32)], lambda: nn.MultiheadAttention(D, 2, batch_first=True),
        call=lambda m, x: m(x, x, x, need_weights=False)[0], instance="attn",
        model=attention_model("out y = x |> MultiHeadAttention(2, causal=false) as attn")),
    "RNN": Case("h0 |> RNN(5, return_sequences=false) as L", [((B, T, 3), F32)],
                lambda: Recurrent("RNN", 3, 5, False), rename=lambda n: f"inner.{n}_l0"),
    "LSTM": Case("", [((4, 6, 3), F32)], lambda: Recurrent("LSTM", 3, 5, True),
                 rename=lambda n: f"inner.{n}_l0", model=recurrent_model("LSTM", True),
                 instance="rnn", output="h"),
    "GRU": Case("", [((4, 6, 3), F32)], lambda: Recurrent("GRU", 3, 5, False),
                rename=lambda n: f"inner.{n}_l0", model=recurrent_model("GRU", False),
                instance="rnn", output="h"),
    "PositionalEncoding": Case("h0 |> PositionalEncoding() as L", [((2, T, D), F32)],
                               lambda: Positional()),
    "TransformerEncoderLayer": Case(
        "", [((3, 5, D), F32)],
        lambda: nn.TransformerEncoderLayer(D, 2, 16, dropout=0.0, batch_first=True),
        instance="enc",
        model=attention_model(f'out y = x |> TransformerEncoderLayer({D}, 2, 16, dropout=0.0, '
                              f'activation="relu", norm_first=false, causal=false) as enc')),
    "TransformerDecoderLayer": Case(
        "", [((3, 5, D), F32), ((3, 4, D), F32)],
        lambda: nn.TransformerDecoderLayer(D, 2, 16, dropout=0.0, batch_first=True),
        call=lambda m, x, mem: m(x, mem, tgt_mask=_causal(x.shape[1]), tgt_is_causal=True),
        instance="dec",
        model=attention_model(f"dec = TransformerDecoderLayer({D}, 2, 16, dropout=0.0, "
                              f"norm_first=false)\nout y = dec(x, mem)",
                              f"in mem: f32[B, S, {D}]")),
}

# Reviewed: layers, or parts of a comparison, that this file cannot make against torch, and why.
NOT_COMPARED: dict[str, str] = {
    "Dropout": "training mode is compared for evaluation only: a training step's mask is "
               "netdsl's own counter-based draw, not torch's generator; the same draw on every "
               "target is tested in test_attention_parity.py (dropout test) and "
               "test_random_tensors.py",
    "TimeEmbedding": "torch has no such layer (DDPM's is hand-written); it has no parameters and "
                     "is checked against the sin/cos formula on both targets in "
                     "test_diffusion_functions.py",
}


def registered_layers() -> set[str]:
    return set(LAYERS) | set(stdlib_blocks())


def test_every_layer_is_covered_or_listed():
    registered = registered_layers()
    missing = registered - set(CASES) - set(NOT_COMPARED)
    assert not missing, f"layers with no parity case and no reviewed entry: {sorted(missing)}"
    stale = (set(CASES) | set(NOT_COMPARED)) - registered
    assert not stale, f"cases for layers that are not registered: {sorted(stale)}"
    for name in NOT_COMPARED:
        assert name not in CASES or not CASES[name].train, name


def write_model(tmp_path, case: Case, out_shape) -> netdsl.Model:
    lines = []
    for i, (shape, dtype) in enumerate(case.inputs):
        dims = ", ".join(map(str, shape))
        lines.append(f"in x{i}: {dtype}[{dims}]")
        if dtype == F32:
            lines.append(f"param d{i}: f32[{dims}] = zeros")
            lines.append(f"h{i} = x{i} + d{i}")
        else:
            lines.append(f"h{i} = x{i}")
    lines.append(f"in t: f32[{', '.join(map(str, out_shape))}]")
    lines.append(case.expr if "out y" in case.expr else f"out y = {case.expr}")
    lines.append("loss mse(y, t)")
    path = tmp_path / "layer.net"
    path.write_text("model M {\n" + "".join(f"    {line}\n" for line in lines) + "}\n")
    return netdsl.load(path)


def perturbed(weights: dict, rng) -> dict:
    """Every weight moved off its initial value (running variances kept positive)."""
    out = {}
    for name, value in weights.items():
        if name.endswith("running_var"):
            out[name] = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
        else:
            out[name] = (value + rng.normal(0.0, 0.2, value.shape)).astype(np.float32)
    return out


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("layer", sorted(CASES))
def test_layer_matches_torch(tmp_path, layer, target):
    case = CASES[layer]
    rng = np.random.default_rng(sorted(CASES).index(layer))
    feeds = {}
    names = ["x", "mem"] if case.model else [f"x{i}" for i in range(len(case.inputs))]
    for name, (shape, dtype) in zip(names, case.inputs):
        feeds[name] = (rng.integers(0, 7, shape) if dtype == "i64"
                          else rng.normal(1.0, 2.0, shape).astype(np.float32))
    torch.manual_seed(0)
    module = case.twin()
    call = case.call or (lambda m, *xs: m(*xs))
    module.eval()
    with torch.no_grad():
        shape = tuple(call(module, *(torch.tensor(v) for v in feeds.values())).shape)
    if case.model:
        (tmp_path / "layer.net").write_text(case.model)
        model = netdsl.load(tmp_path / "layer.net")
    else:
        model = write_model(tmp_path, case, shape)
    weights = model.init(seed=1)
    prefix = case.instance + "."
    layer_weights = {k: v for k, v in weights.items() if k.startswith(prefix)}
    weights.update(perturbed(layer_weights, rng))

    # Copy by name: netdsl's names, less the instance prefix, are torch's (after `rename`).
    torch_state = {**dict(module.named_parameters()),
                   **{k: v for k, v in module.named_buffers() if "num_batches" not in k}}
    assert {case.rename(k[len(prefix):]) for k in layer_weights} == set(torch_state), layer
    with torch.no_grad():
        for name in layer_weights:
            target_tensor = torch_state[case.rename(name[len(prefix):])]
            assert tuple(target_tensor.shape) == weights[name].shape, name
            target_tensor.copy_(torch.tensor(weights[name]))

    # Evaluation mode.
    with torch.no_grad():
        expected = call(module, *(torch.tensor(v) for v in feeds.values())).numpy()
    got = model.forward(weights, feeds, target=target)[case.output]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg="eval forward")
    if not case.train:
        return

    # Training mode: the loss, every parameter's gradient and every float input's.
    module.train()
    tensors = [torch.tensor(v, requires_grad=v.dtype == np.float32) for v in feeds.values()]
    t = rng.normal(size=shape).astype(np.float32)
    torch_loss = nn.functional.mse_loss(call(module, *tensors), torch.tensor(t))
    torch_loss.backward()
    loss, grads = model.loss_and_grad(weights, {**feeds, "t": t}, target=target)
    np.testing.assert_allclose(loss, torch_loss.item(), rtol=1e-4, err_msg="loss")
    trainable = dict(module.named_parameters())
    expected_grads = set() if case.model else {
        f"d{i}" for i, (_, dtype) in enumerate(case.inputs) if dtype == F32}
    expected_grads |= {k for k in layer_weights if case.rename(k[len(prefix):]) in trainable}
    assert set(grads) == expected_grads
    for name in layer_weights:
        if name in grads:
            twin = trainable[case.rename(name[len(prefix):])]
            np.testing.assert_allclose(grads[name], twin.grad.numpy(), rtol=1e-4, atol=1e-5,
                                       err_msg=name)
    for i, tensor in enumerate(tensors):
        if f"d{i}" in grads:
            np.testing.assert_allclose(grads[f"d{i}"], tensor.grad.numpy(), rtol=1e-4,
                                       atol=1e-5, err_msg=f"input {i}")
