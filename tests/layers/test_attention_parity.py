"""MultiHeadAttention, PositionalEncoding and the Transformer layers against PyTorch.

Weights are made by netdsl and copied into torch by name (netdsl's names, less the instance
prefix, are PyTorch's), then the forward output, the loss and every parameter's gradient are
compared at 1e-4 on both targets, with dropout 0.  Skipped cleanly where torch is missing.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import netdsl

torch = pytest.importorskip("torch")

B, T, S, D, HEADS, FF = 3, 5, 4, 8, 2, 16


def load(tmp_path, body: str, extra_inputs: str = "") -> netdsl.Model:
    lines = [f"in x: f32[B, T, {D}]", f"in t: f32[B, T, {D}]", *extra_inputs.splitlines(),
             *body.splitlines(), "loss mse(y, t)"]
    path = tmp_path / "m.net"
    path.write_text("model M {\n" + "".join(f"    {line}\n" for line in lines) + "}\n")
    return netdsl.load(path)


def compare(model, module, prefix, feeds, torch_out, target):
    """Forward, loss and every gradient of `model` against the torch module's."""
    t = np.random.default_rng(1).normal(size=torch_out.shape).astype(np.float32)
    torch_loss = torch.nn.functional.mse_loss(torch_out, torch.tensor(t))
    torch_loss.backward()
    weights = compare.weights
    out = model.forward(weights, feeds, target=target)["y"]
    np.testing.assert_allclose(out, torch_out.detach().numpy(), rtol=1e-4, atol=1e-5)
    loss, grads = model.loss_and_grad(weights, {**feeds, "t": t}, target=target)
    np.testing.assert_allclose(loss, torch_loss.item(), rtol=1e-4)
    torch_params = dict(module.named_parameters())
    assert set(grads) == {prefix + name for name in torch_params}
    for name, parameter in torch_params.items():
        np.testing.assert_allclose(grads[prefix + name], parameter.grad.numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


def copy_into(module, weights, prefix):
    """Copy netdsl's weights into the torch module by name; check they cover it exactly."""
    params = dict(module.named_parameters())
    assert {prefix + name for name in params} == set(weights)
    with torch.no_grad():
        for name, parameter in params.items():
            assert tuple(parameter.shape) == weights[prefix + name].shape, name
            parameter.copy_(torch.tensor(weights[prefix + name]))
    compare.weights = weights


def inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    memory = rng.normal(size=(B, S, D)).astype(np.float32)
    pad = np.zeros((B, S), dtype=bool)
    pad[0, -1] = pad[2, -2:] = True
    return x, memory, pad


@pytest.mark.parametrize("target", ["reference", "cpu"])
@pytest.mark.parametrize("mode", ["self", "causal", "cross_padded"])
def test_multihead_attention(tmp_path, mode, target):
    x, memory, pad = inputs()
    if mode == "cross_padded":
        model = load(tmp_path, "attn = MultiHeadAttention(2)\nout y = attn(x, mem, pad)",
                     f"in mem: f32[B, S, {D}]\nin pad: bool[B, S]")
        feeds = {"x": x, "mem": memory, "pad": pad}
    else:
        causal = "true" if mode == "causal" else "false"
        model = load(tmp_path, f"out y = x |> MultiHeadAttention(2, causal={causal}) as attn")
        feeds = {"x": x}
    weights = model.init(seed=3)
    bound = math.sqrt(6 / (4 * D))                 # xavier_uniform of [3d, d]
    assert np.abs(weights["attn.in_proj_weight"]).max() <= bound
    assert not weights["attn.in_proj_bias"].any() and not weights["attn.out_proj.bias"].any()
    module = torch.nn.MultiheadAttention(D, HEADS, batch_first=True)
    copy_into(module, weights, "attn.")
    tx = torch.tensor(x)
    if mode == "cross_padded":
        tm = torch.tensor(memory)
        out, _ = module(tx, tm, tm, key_padding_mask=torch.tensor(pad), need_weights=False)
    elif mode == "causal":
        mask = torch.nn.Transformer.generate_square_subsequent_mask(T)
        out, _ = module(tx, tx, tx, attn_mask=mask, need_weights=False)
    else:
        out, _ = module(tx, tx, tx, need_weights=False)
    compare(model, module, "attn.", feeds, out, target)


@pytest.mark.parametrize("target", ["reference", "cpu"])
@pytest.mark.parametrize("causal, norm_first, activation",
                         [(False, False, "relu"), (True, True, "gelu")])
def test_encoder_layer(tmp_path, causal, norm_first, activation, target):
    x, _, _ = inputs()
    model = load(tmp_path, f'out y = x |> TransformerEncoderLayer({D}, {HEADS}, {FF}, '
                           f'dropout=0.0, activation="{activation}", '
                           f'norm_first={str(norm_first).lower()}, '
                           f'causal={str(causal).lower()}) as enc')
    weights = model.init(seed=5)
    module = torch.nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, activation=activation,
                                              norm_first=norm_first, batch_first=True)
    copy_into(module, weights, "enc.")
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T) if causal else None
    out = module(torch.tensor(x), src_mask=mask, is_causal=causal)
    compare(model, module, "enc.", {"x": x}, out, target)


@pytest.mark.parametrize("target", ["reference", "cpu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer(tmp_path, norm_first, target):
    x, memory, _ = inputs()
    model = load(tmp_path, f"dec = TransformerDecoderLayer({D}, {HEADS}, {FF}, dropout=0.0, "
                           f"norm_first={str(norm_first).lower()})\nout y = dec(x, mem)",
                 f"in mem: f32[B, S, {D}]")
    weights = model.init(seed=6)
    module = torch.nn.TransformerDecoderLayer(D, HEADS, FF, dropout=0.0, norm_first=norm_first,
                                              batch_first=True)
    copy_into(module, weights, "dec.")
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T)
    out = module(torch.tensor(x), torch.tensor(memory), tgt_mask=mask, tgt_is_causal=True)
    compare(model, module, "dec.", {"x": x, "mem": memory}, out, target)


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_positional_encoding_symbolic_length(tmp_path, target):
    """The PyTorch tutorial's table, added to inputs of two lengths through one compiled T."""
    path = tmp_path / "pe.net"
    path.write_text(f"model M {{\n in x: f32[B, T, {D}]\n out y = x |> PositionalEncoding()\n}}\n")
    model = netdsl.load(path)
    for length in (3, 7):
        position = torch.arange(length).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, D, 2) * (-math.log(10000.0) / D))
        table = torch.zeros(length, D)
        table[:, 0::2] = torch.sin(position * div_term)
        table[:, 1::2] = torch.cos(position * div_term)
        x = np.random.default_rng(length).normal(size=(2, length, D)).astype(np.float32)
        out = model.forward({}, {"x": x}, target=target)["y"]
        np.testing.assert_allclose(out, x + table.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_arange_and_tril(tmp_path, target):
    path = tmp_path / "masks.net"
    path.write_text("model M {\n in x: f32[B, T, T]\n"
                    " out y = tril(x) + tril(x, k=-1)\n"
                    " out p = cast(arange(T), \"f32\") + 0.0 * sum(x)\n}\n")
    model = netdsl.load(path)
    x = np.random.default_rng(0).normal(size=(2, 4, 4)).astype(np.float32)
    out = model.forward({}, {"x": x}, target=target)
    np.testing.assert_allclose(out["y"], np.tril(x) + np.tril(x, -1), rtol=1e-6)
    np.testing.assert_allclose(out["p"], np.arange(4, dtype=np.float32) + 0 * x.sum(),
                               rtol=1e-5)


def test_dropout_is_identity_in_evaluation_and_the_same_draw_on_every_target(tmp_path):
    """With dropout 0.1 (attention weights, residual branches, feed-forward): evaluation matches
    torch's eval(); a training step's loss and gradients agree across targets (the random
    streams are the same function of seed and counter everywhere) and differ from dropout 0."""
    x, _, _ = inputs()
    model = load(tmp_path, f"out y = x |> TransformerEncoderLayer({D}, {HEADS}, {FF}, "
                           f"dropout=0.1, causal=true) as enc")
    weights = model.init(seed=7)
    module = torch.nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.1, batch_first=True)
    copy_into(module, weights, "enc.")
    module.eval()
    with torch.no_grad():
        mask = torch.nn.Transformer.generate_square_subsequent_mask(T)
        expected = module(torch.tensor(x), src_mask=mask, is_causal=True).numpy()
    t = np.random.default_rng(2).normal(size=x.shape).astype(np.float32)
    results = {}
    for target in ("reference", "cpu"):
        out = model.forward(weights, {"x": x}, target=target)["y"]
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
        results[target] = model.loss_and_grad(weights, {"x": x, "t": t}, target=target)
    (loss_r, grads_r), (loss_c, grads_c) = results["reference"], results["cpu"]
    np.testing.assert_allclose(loss_c, loss_r, rtol=1e-4)
    for name in grads_r:
        np.testing.assert_allclose(grads_c[name], grads_r[name], rtol=1e-3, atol=1e-5,
                                   err_msg=name)
    assert not np.isclose(loss_r, np.mean((expected - t) ** 2), rtol=1e-4)
