"""DDPM sampling on the cpu target: the reverse process as one compiled `scan` (the Sampler model
of examples/diffusion_moons.net) against a compiled one-step denoiser called from Python once per
time step (Model.forward, then the update in NumPy), for n samples.

    python benchmarks/diffusion_sampling.py [--n 1000] [--repeats 7]

Both use the same weights (fresh ones: the time does not depend on training) and print the
median of `repeats` interleaved runs after a warm-up call that compiles.
"""
from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import netdsl

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "diffusion_moons.net"
STEP = """
import "{example}"
model Step {{
    in x: f32[B, 2]
    in t: i64[B]
    denoiser = Denoiser(HIDDEN)
    out eps = denoiser(x, t)
}}
"""


def schedule(steps: int):
    beta = np.linspace(0.1 / steps, 20.0 / steps, steps).astype(np.float32)
    alpha = 1.0 - beta
    alpha_bar = np.cumprod(alpha)
    sigma = np.sqrt(beta * (1.0 - alpha_bar / alpha) / (1.0 - alpha_bar))
    return beta / np.sqrt(1.0 - alpha_bar), 1.0 / np.sqrt(alpha), sigma


def per_step(model, weights, x, steps: int, rng):
    eps_scale, inv_sqrt_alpha, sigma = schedule(steps)
    for t in range(steps - 1, -1, -1):
        eps = model.forward(weights, {"x": x, "t": np.full(len(x), t)}, target="cpu")["eps"]
        x = (x - eps_scale[t] * eps) * inv_sqrt_alpha[t] + \
            sigma[t] * rng.standard_normal(x.shape).astype(np.float32)
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    sampler = netdsl.load(EXAMPLE, model="Sampler")
    steps = int(re.search(r"^const T = (\d+)", EXAMPLE.read_text(), re.M).group(1))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "step.net"
        path.write_text(STEP.format(example=EXAMPLE))
        step = netdsl.load(path, model="Step")
    weights = step.init(seed=0)
    x_T = np.random.default_rng(0).standard_normal((args.n, 2)).astype(np.float32)
    rng = np.random.default_rng(1)
    sampler.forward(weights, {"x_T": x_T}, target="cpu")            # compile both first
    per_step(step, weights, x_T, steps, rng)
    scan_times, loop_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        sampler.forward(weights, {"x_T": x_T}, target="cpu")
        scan_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        per_step(step, weights, x_T, steps, rng)
        loop_times.append(time.perf_counter() - start)
    scan, loop = statistics.median(scan_times), statistics.median(loop_times)
    print(f"n={args.n}, T={steps}: compiled scan {scan * 1e3:.1f} ms, per-step forward "
          f"{loop * 1e3:.1f} ms (median of {args.repeats}); scan is {loop / scan:.2f}x faster")


if __name__ == "__main__":
    main()
