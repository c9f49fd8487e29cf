"""The benchmark workloads: data, the netdsl training step and the PyTorch one, per model.

    xor      2-8-1 MLP, tanh, bce_logits, full batch of 4, Adam(lr=0.05)
    mlp      784-256-256-10 MLP, relu, cross_entropy, batch 128, Adam(lr=1e-3)
    lenet    LeNet-5 on f32[64, 1, 28, 28], cross_entropy, Adam(lr=1e-3)
    resnet   a 3x3 stem to 16 channels and two identity blocks with batch norm, global average
             pooling, Dense(10), on f32[64, 1, 28, 28], cross_entropy, Adam(lr=1e-3)
    lstm     Embedding(1000, 64) -> LSTM(128) -> Dense(10), ids [32, 32], cross_entropy, Adam
    gru      the same with GRU(128)
    transformer  Embedding(1000, 128) + PositionalEncoding -> 2 x TransformerEncoderLayer(128,
             4 heads, ff 512, dropout 0.1) -> mean over T -> Dense(10), ids [16, 64], Adam

The netdsl step is compiled through `netdsl.compiler.compile_step` with the model's train section
(`Training.from_config`), exactly as `fit` compiles it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

MODELS = Path(__file__).resolve().parent / "models"
WORKLOADS = ("xor", "mlp", "lenet", "resnet", "lstm", "gru", "transformer", "forward", "vae", "gan",
             "diffusion")


@dataclass
class Workload:
    key: str
    title: str
    net: Path
    lr: float
    data: Callable[[np.random.Generator], dict[str, np.ndarray]]   # by netdsl input name
    torch_model: Callable                                             # (torch) -> nn.Module
    torch_loss: str                                                   # "bce_logits" | "ce"
    torch_io: tuple[str, str] | None = None     # (input, target) names; None: by torch_loss
    notes: list[str] = field(default_factory=list)
    model: str | None = None                    # which model of the file (None: the last)
    # Workloads other than a classifier's training step (generative.py) bring their own
    # steppers: netdsl_step(workload, arrays, target), torch_step(torch, workload, arrays).
    netdsl_step: Callable | None = None
    torch_step: Callable | None = None


def _xor_data(rng):
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    return {"x": x, "y": np.array([[0], [1], [1], [0]], np.float32)}


def mlp_data(batch: int, features: int = 784):
    def data(rng):
        return {"image": rng.standard_normal((batch, features), dtype=np.float32),
                "label": rng.integers(0, 10, batch).astype(np.int64)}
    return data


def lenet_data(batch: int, side: int = 28):
    def data(rng):
        return {"image": rng.random((batch, 1, side, side), dtype=np.float32),
                "label": rng.integers(0, 10, batch).astype(np.int64)}
    return data


def tokens_data(batch: int, steps: int, vocabulary: int = 1000):
    def data(rng):
        return {"tokens": rng.integers(0, vocabulary, (batch, steps)).astype(np.int64),
                "label": rng.integers(0, 10, batch).astype(np.int64)}
    return data


def _xor_torch(torch):
    nn = torch.nn
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))


def mlp_torch(torch, widths=(784, 256, 256, 10)):
    nn = torch.nn
    layers = []
    for inputs, outputs in zip(widths, widths[1:]):
        layers += [nn.Linear(inputs, outputs), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def lenet_torch(torch, side=28, channels=(6, 16), hidden=(120, 84)):
    """LeNet-5 (the defaults) or a smaller one of the same form, on 1 x side x side images."""
    nn = torch.nn
    flat = channels[1] * ((side // 2 - 4) // 2) ** 2
    return nn.Sequential(nn.Conv2d(1, channels[0], 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(channels[0], channels[1], 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), mlp_torch(torch, (flat, *hidden, 10)))


def resnet_torch(torch, channels=16, blocks=2):
    """resnet.net's model: conv-BN-relu stem, identity blocks, global average pooling, Dense."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)

        def forward(self, x):
            h = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(x + h)
    return nn.Sequential(nn.Conv2d(1, channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU(),
                         *(Block() for _ in range(blocks)),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))


def _recurrent_torch(kind: str):
    def build(torch):
        nn = torch.nn

        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(1000, 64)
                self.rnn = getattr(nn, kind)(64, 128, batch_first=True)
                self.fc = nn.Linear(128, 10)

            def forward(self, tokens):
                _, state = self.rnn(self.embed(tokens))
                h = state[0] if kind == "LSTM" else state
                return self.fc(h[-1])
        return Classifier()
    return build


def transformer_torch(torch, d=128, heads=4, feed_forward=512, vocabulary=1000, steps=64,
                      layers=2):
    nn = torch.nn
    position = torch.arange(steps, dtype=torch.float32)[:, None]
    rate = torch.pow(10000.0, -torch.arange(0, d, 2, dtype=torch.float32) / d)
    table = torch.zeros(steps, d)
    table[:, 0::2], table[:, 1::2] = torch.sin(position * rate), torch.cos(position * rate)

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocabulary, d)
            self.register_buffer("pe", table)
            layer = nn.TransformerEncoderLayer(d, heads, feed_forward, dropout=0.1,
                                               batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.fc = nn.Linear(d, 10)

        def forward(self, tokens):
            h = self.embed(tokens) + self.pe[:tokens.shape[1]]
            return self.fc(self.encoder(h).mean(dim=1))
    return Classifier()


WORKLOAD_DEFS = {
    "xor": Workload("xor", "XOR 2-8-1, batch 4, Adam", MODELS / "xor.net", 0.05,
                    _xor_data, _xor_torch, "bce_logits"),
    "mlp": Workload("mlp", "MLP 784-256-256-10, batch 128, Adam", MODELS / "mlp.net", 1e-3,
                    mlp_data(128), mlp_torch, "ce"),
    "lenet": Workload("lenet", "LeNet-5 1x28x28, batch 64, Adam", MODELS / "lenet5.net", 1e-3,
                      lenet_data(64), lenet_torch, "ce"),
    "resnet": Workload("resnet", "ResNet (batch norm) 16 ch, 2 blocks, 1x28x28, batch 64, Adam",
                       MODELS / "resnet.net", 1e-3, lenet_data(64), resnet_torch, "ce"),
    "lstm": Workload("lstm", "LSTM emb 64, hidden 128, T 32, batch 32, Adam",
                     MODELS / "lstm.net", 1e-3, tokens_data(32, 32), _recurrent_torch("LSTM"),
                     "ce", ("tokens", "label")),
    "gru": Workload("gru", "GRU emb 64, hidden 128, T 32, batch 32, Adam",
                    MODELS / "gru.net", 1e-3, tokens_data(32, 32), _recurrent_torch("GRU"),
                    "ce", ("tokens", "label")),
    "transformer": Workload("transformer", "Transformer d 128, 4 heads, 2 layers, T 64, "
                            "batch 16, Adam", MODELS / "transformer.net", 1e-3,
                            tokens_data(16, 64), transformer_torch, "ce",
                            ("tokens", "label")),
}


def _generative() -> dict:
    from generative import workloads
    return workloads(Workload, MODELS)


WORKLOAD_DEFS.update(_generative())


# ---------------------------------------------------------------------------------------------
# netdsl side
# ---------------------------------------------------------------------------------------------
def compile_training_step(model, target: str = "cpu"):
    """The training step `fit` compiles for `model` (its train section's optimiser, weight
    decay and clipping), through the one compiler entry point."""
    from netdsl.compiler import Training, compile_step
    return compile_step(model.training_forward, target, Training.from_config(model.train_config))


def bind_training_step(compiled, weights: dict[str, np.ndarray]):
    """(step, batch input names, hyper input names): `compiled` bound to fresh storage holding
    `weights` and zeros for the optimiser state, called as fit calls it."""
    from netdsl.runtime.steps import HYPER_INPUTS
    graph = compiled.graph
    state = {info.name: np.array(weights[info.name], dtype=info.value.dtype.numpy, order="C")
             if info.name in weights else
             np.zeros(tuple(info.value.shape), info.value.dtype.numpy)
             for info in graph.params}
    names = {v.name for v in graph.inputs}
    batch_inputs = [v.name for v in graph.inputs if v.name not in HYPER_INPUTS]
    hyper = [name for name in HYPER_INPUTS if name in names]
    return compiled.bind(state, inputs=batch_inputs + hyper), batch_inputs, hyper


def netdsl_stepper(workload: Workload, arrays: dict[str, np.ndarray], target: str = "cpu"):
    """A zero-argument function running one training step; plus the CompileReport."""
    import netdsl
    if workload.netdsl_step is not None:
        return workload.netdsl_step(workload, arrays, target)

    model = netdsl.load(workload.net)
    compiled = compile_training_step(model, target)
    step, batch_inputs, hyper = bind_training_step(compiled, model.init(seed=0))
    fed = [np.ascontiguousarray(arrays[name]) for name in batch_inputs]
    lr = float(workload.lr)
    counter = [0]
    has_rng = "__rng__" in hyper

    if has_rng:
        def run():
            counter[0] += 1
            return step(*fed, lr, float(counter[0]), counter[0])
    else:
        def run():
            counter[0] += 1
            return step(*fed, lr, float(counter[0]))
    loss_index = step.output_names.index("loss") if "loss" in step.output_names else 0
    run.loss = lambda: float(run()[loss_index])
    run.compiled = compiled                 # for benchmarks that look inside (cuda.py)
    return run, compiled.report


# ---------------------------------------------------------------------------------------------
# PyTorch side
# ---------------------------------------------------------------------------------------------
def import_torch(threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def torch_stepper(torch, workload: Workload, arrays: dict[str, np.ndarray],
                  device: str = "cpu", compile_module: bool = False):
    """One PyTorch training step on `device`, eager or with the module through
    `torch.compile` (forward and backward; the optimiser step stays eager); returns (run,
    description of the optimiser).  On a GPU the step is asynchronous: the caller
    synchronises before it stops a clock."""
    if workload.torch_step is not None:
        return workload.torch_step(torch, workload, arrays)
    torch.manual_seed(0)
    module = workload.torch_model(torch).to(device)
    forward = torch.compile(module) if compile_module else module
    params = list(module.parameters())
    try:
        optimizer = torch.optim.Adam(params, lr=workload.lr, fused=True)
        kind = "Adam(fused=True)"
    except (RuntimeError, TypeError, ValueError):
        optimizer = torch.optim.Adam(params, lr=workload.lr, foreach=True)
        kind = "Adam(foreach=True)"
    if workload.torch_loss == "ce":
        loss_fn = torch.nn.CrossEntropyLoss()
        x_name, y_name = workload.torch_io or ("image", "label")
    else:
        loss_fn = torch.nn.BCEWithLogitsLoss()
        x_name, y_name = workload.torch_io or ("x", "y")
    x = torch.from_numpy(arrays[x_name]).to(device)
    y = torch.from_numpy(arrays[y_name]).to(device)

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(forward(x), y)
        loss.backward()
        optimizer.step()
        return loss

    run.loss = lambda: float(run().item())
    try:                                    # a fused step that fails at run time: foreach
        run()
    except RuntimeError:
        optimizer = torch.optim.Adam(params, lr=workload.lr, foreach=True)
        kind = "Adam(foreach=True)"
        run()
    return run, kind


