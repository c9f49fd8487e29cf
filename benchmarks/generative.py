"""Benchmark workloads beyond one training step of a classifier: the MLP's inference forward and
the generative examples' training steps, each beside equivalent PyTorch code.

    forward    MLP 784-256-256-10 inference at batch 128: netdsl's compiled forward (the
               inference graph bound to the weights, as `Model.forward` runs it, without the
               per-call input checks) against the torch module under `torch.inference_mode()`,
               both ending with the softmax the model's `out probs` is (until 2026-12-04
               torch returned the logits, one op less)
    vae        examples/vae_digits.net: encoder 64-128-(8, 8), reparameterised z, decoder
               8-128-64 with sigmoid, loss 64 * bce + kl_normal, batch 32, Adam(2e-3)
    gan        examples/gan_ring.net: generator 16-128-128-2, critic on packs of 4 points
               8-128-128-1; one iteration = the critic's step then the generator's
               (bce_logits each, Adam(1e-3, beta1=0.5) each), batch 256
    diffusion  examples/diffusion_moons.net: DDPM noise prediction, sinusoidal time embedding
               (32) -> Dense(128) gelu, input projection, two residual gelu layers of 128, head
               to 2; mse against the drawn noise, batch 64, Adam(2e-3)

The netdsl side of a generative model is its training plan (runtime/steps.py's `build_plan`,
as `fit` builds it: one compiled step per objective, sharing storage), run for one batch; the
torch side is a plain loop written as a PyTorch user would, with the same shapes, losses and
optimisers (not the same initial weights or random numbers).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# ---------------------------------------------------------------------------------------------
# netdsl side
# ---------------------------------------------------------------------------------------------
def netdsl_forward(workload, arrays, target="cpu"):
    """One inference forward of the model's compiled inference graph, bound to its weights."""
    import netdsl
    from netdsl.compiler import compile_step
    model = netdsl.load(workload.net)
    compiled = compile_step(model.inference_graph, target=target)
    inputs = [v.name for v in compiled.graph.inputs if not v.name.startswith("__")]
    call = compiled.bind(dict(model.init(seed=0)), inputs=inputs)
    fed = [np.ascontiguousarray(arrays[name]) for name in inputs]

    def run():
        return call(*fed)
    run.loss = lambda: float(np.asarray(run()[0]).sum())
    return run, compiled.report


def netdsl_plan(workload, arrays, target="cpu"):
    """One batch of the model's training plan (every objective's step, in order)."""
    import netdsl
    from netdsl.runtime.steps import build_plan
    model = netdsl.load(workload.net, workload.model)
    plan = build_plan(model, model.init(seed=0), model.train_config, target)
    counter = [0]

    def run():
        counter[0] += 1
        out = None
        for _, step, extra in plan.due(counter[0]):
            out = step(arrays, extra)
        return out
    run.loss = lambda: float(run()[plan.steps[-1].loss_index])
    run.compiled = plan.steps[0].compiled
    return run, plan.steps[0].compiled.report


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def forward_data(rng):
    return {"image": rng.standard_normal((128, 784), dtype=np.float32)}


def vae_data(rng):
    return {"image": rng.random((32, 1, 8, 8), dtype=np.float32)}


def gan_data(rng):
    angle = rng.uniform(0, 2 * math.pi, 256)
    return {"x": np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32) * 2}


def diffusion_data(rng):
    return {"x": rng.standard_normal((64, 2), dtype=np.float32)}


# ---------------------------------------------------------------------------------------------
# PyTorch side
# ---------------------------------------------------------------------------------------------
def _adam(torch, params, lr, betas=(0.9, 0.999)):
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True), "Adam(fused=True)"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True), "Adam(foreach=True)"


def torch_forward(torch, workload, arrays):
    from workloads import mlp_torch
    torch.manual_seed(0)
    module = mlp_torch(torch).eval()
    x = torch.from_numpy(arrays["image"])

    def run():
        with torch.inference_mode():
            return torch.softmax(module(x), dim=1)      # the model's `out probs`
    run.loss = lambda: float(run().sum())
    return run, "inference_mode"


def torch_vae(torch, workload, arrays):
    nn = torch.nn
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU())
    mu, logvar = nn.Linear(128, 8), nn.Linear(128, 8)
    decoder = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Linear(128, 64), nn.Sigmoid())
    modules = nn.ModuleList([encoder, mu, logvar, decoder])
    optimizer, kind = _adam(torch, modules.parameters(), 2e-3)
    x = torch.from_numpy(arrays["image"])

    def run():
        optimizer.zero_grad(set_to_none=True)
        h = encoder(x)
        m, lv = mu(h), logvar(h)
        z = m + torch.exp(0.5 * lv) * torch.randn_like(m)
        reconstruction = decoder(z).reshape(x.shape)
        nll = 64 * nn.functional.binary_cross_entropy(reconstruction, x)
        kl = (-0.5 * (1 + lv - m * m - lv.exp()).sum(dim=1)).mean()
        loss = nll + kl
        loss.backward()
        optimizer.step()
        return loss
    run.loss = lambda: float(run().item())
    return run, kind


def torch_gan(torch, workload, arrays):
    nn = torch.nn
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                              nn.Linear(128, 2))
    critic = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                           nn.Linear(128, 1))
    g_optimizer, kind = _adam(torch, generator.parameters(), 1e-3, (0.5, 0.999))
    d_optimizer, _ = _adam(torch, critic.parameters(), 1e-3, (0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    x = torch.from_numpy(arrays["x"])
    ones, zeros = torch.ones(x.shape[0] // 4, 1), torch.zeros(x.shape[0] // 4, 1)

    def run():
        fake = generator(torch.randn(x.shape[0], 16))
        d_optimizer.zero_grad(set_to_none=True)
        d_loss = bce(critic(x.reshape(-1, 8)), ones) + \
            bce(critic(fake.detach().reshape(-1, 8)), zeros)
        d_loss.backward()
        d_optimizer.step()
        g_optimizer.zero_grad(set_to_none=True)
        g_loss = bce(critic(fake.reshape(-1, 8)), ones)
        g_loss.backward()
        g_optimizer.step()
        return g_loss
    run.loss = lambda: float(run().item())
    return run, kind


def torch_diffusion(torch, workload, arrays, steps=100, hidden=128):
    nn = torch.nn
    torch.manual_seed(0)
    beta = torch.linspace(0.1 / steps, 20.0 / steps, steps)
    alpha_bar = torch.cumprod(1 - beta, 0)
    frequency = torch.exp(torch.arange(16, dtype=torch.float32) * 2.0 * (-math.log(10000.0) / 32))

    class Denoiser(nn.Module):
        def __init__(self):
            super().__init__()
            self.time_proj, self.input_proj = nn.Linear(32, hidden), nn.Linear(2, hidden)
            self.fc1, self.fc2 = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
            self.head = nn.Linear(hidden, 2)

        def forward(self, x, t):
            angle = (t.float()[:, None] * (1000.0 / steps)) * frequency
            embedding = torch.stack([angle.sin(), angle.cos()], dim=2).reshape(len(t), 32)
            gelu = nn.functional.gelu
            h0 = gelu(self.input_proj(x) + gelu(self.time_proj(embedding)))
            h1 = gelu(self.fc1(h0)) + h0
            h2 = gelu(self.fc2(h1)) + h1
            return self.head(h2)

    model = Denoiser()
    optimizer, kind = _adam(torch, model.parameters(), 2e-3)
    x = torch.from_numpy(arrays["x"])

    def run():
        optimizer.zero_grad(set_to_none=True)
        t = torch.randint(0, steps, (x.shape[0],))
        eps = torch.randn_like(x)
        ab = alpha_bar[t][:, None]
        loss = nn.functional.mse_loss(model(ab.sqrt() * x + (1 - ab).sqrt() * eps, t), eps)
        loss.backward()
        optimizer.step()
        return loss
    run.loss = lambda: float(run().item())
    return run, kind


def workloads(Workload, models: Path) -> dict:
    """The workloads of this module, as workloads.py's Workload records."""
    return {
        "forward": Workload("forward", "MLP 784-256-256-10 inference forward, batch 128",
                            models / "mlp.net", 1e-3, forward_data, None, "",
                            netdsl_step=netdsl_forward, torch_step=torch_forward),
        "vae": Workload("vae", "VAE 64-128-8 (vae_digits.net), batch 32, Adam",
                        EXAMPLES / "vae_digits.net", 2e-3, vae_data, None, "",
                        netdsl_step=netdsl_plan, torch_step=torch_vae),
        "gan": Workload("gan", "GAN ring (gan_ring.net), critic + generator step, batch 256",
                        EXAMPLES / "gan_ring.net", 1e-3, gan_data, None, "",
                        netdsl_step=netdsl_plan, torch_step=torch_gan),
        "diffusion": Workload("diffusion", "DDPM denoiser (diffusion_moons.net), batch 64, Adam",
                              EXAMPLES / "diffusion_moons.net", 2e-3, diffusion_data, None, "",
                              model="Diffusion", netdsl_step=netdsl_plan,
                              torch_step=torch_diffusion),
    }
