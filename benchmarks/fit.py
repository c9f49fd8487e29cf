"""Whole training runs: netdsl's `fit` against a plain PyTorch loop, and against its own step.

    python -m benchmarks.fit [--threads 2,1] [--write] [--smoke]

Runs (workloads.py's models, data shapes and optimisers; fixed random data, no validation):

    xor    2,000 epochs of one batch of 4 (the four XOR points), Adam(lr=0.05)
    mlp    3 epochs of 2,048 examples in batches of 128 (48 steps), Adam(lr=1e-3)
    lenet  2 epochs of 1,024 examples in batches of 64 (32 steps), Adam(lr=1e-3)

netdsl: `runtime.train.fit` with the model's train section (split = 1.0, shuffled, seed 0),
as `Model.fit` and `netdsl train` run it, fitting one loaded model again and again (one
untimed fit first compiles its steps, which later fits reuse).  Its `should_stop` is only a
clock: its first call marks the end of the setup (data binding, binding the step), so the
table splits the fit into setup and loop; beside it, the setup of the first fit of a freshly
loaded model (the compiler's cache-hit path).  torch: build the module and a fused Adam (as workloads.torch_stepper), then
per epoch `torch.randperm` and per batch index the tensors, zero_grad, forward, loss,
backward, step and `loss.item()` (fit reads each step's loss too).  Beside them, each side's
one training step on one batch (workloads.netdsl_stepper / torch_stepper), timed step by
step, times the number of steps: fit / (steps x step) is what the loop costs around the
steps (1.00: nothing).

Each thread count runs in its own subprocess (processes.py: N threads for torch, Numba and
OpenBLAS); in it the four contenders of a workload alternate round by round in rotating
order (medians with p10-p90 over the rounds; the steps: over every step timed; at least 3
rounds, fewer than planned once a run passes 25 s), with the load average at the start and
end.  --write replaces the "## Whole runs" section of
benchmarks/RESULTS.md and leaves the others.  --smoke: tiny runs, two rounds (the test).
About 1-2 minutes on two cores.
"""
from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
for _path in (ROOT, HERE):              # this checkout, and the benchmark's sibling modules
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402

from processes import _threading_layer, section_main  # noqa: E402
from report import _cell, _ratio_cell, load_average  # noqa: E402
from timing import Timing  # noqa: E402
from workloads import WORKLOAD_DEFS, import_torch, netdsl_stepper, torch_stepper  # noqa: E402

HEADING = "## Whole runs"
# key -> (examples, epochs, rounds); the batch is the workload's.
RUNS = {"xor": (4, 2000, 9), "mlp": (2048, 3, 7), "lenet": (1024, 2, 7)}
SMOKE_RUNS = {"xor": (4, 20, 2), "mlp": (256, 1, 2), "lenet": (128, 1, 2)}
BATCH = {"xor": 4, "mlp": 128, "lenet": 64}
FIRST_FITS = 3                          # fits of a freshly loaded model, for their setup
STEP_BLOCK_S = 0.1                      # each round's block of single steps, per side
# Idle time before each timed fit: the previous contender's threads go to sleep first.
# OpenBLAS's worker spins ~0.1 s after a threaded product (2^28 cycles), torch's OpenMP threads
# ~10 ms; a fit started meanwhile ran against them on the two cores (MLP at 2 threads, netdsl
# on OpenBLAS: torch's fit 110 against 47 ms after netdsl's steps, netdsl's 38-62 against
# 28-33 ms after torch's).
SETTLE_S = 0.2
# Rounds stop early (after at least MIN_ROUNDS) once a run has taken this long: on a busy
# machine torch's thread pool can make XOR's 2,000 epochs take seconds each.
BUDGET_S, MIN_ROUNDS = 25.0, 3


def run_data(key: str, examples: int) -> dict[str, np.ndarray]:
    """The run's data: XOR's four points, or `examples` of the workload's random data."""
    workload = WORKLOAD_DEFS[key]
    if key == "xor":
        return workload.data(np.random.default_rng(0))
    batch = BATCH[key]
    parts = [workload.data(np.random.default_rng(seed)) for seed in range(examples // batch)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def netdsl_fit(key: str, data: dict, epochs: int, fresh_model: bool = False,
               blocks: str = "always"):
    """A function running one whole netdsl fit; it returns (setup seconds, final loss).

    `blocks` is NETDSL_EPOCH_BLOCKS during the fit: `always` runs tiny epochs in compiled
    blocks (runtime/compiled_epochs.py; the untimed first fit compiles the runner, which a
    user's runs then find in the cache), `never` keeps every epoch in the Python loop.

    The model is loaded once and every run fits it again, as a notebook or a sweep does: its
    steps are compiled by the first fit and reused after (Model.compiled_training_step).
    `fresh_model`: each run loads the model anew (outside the clock), so its setup is a first
    fit's, through the compiler's cache-hit path (the pass pipeline and code generation run
    again to find the cache key)."""
    import netdsl
    from netdsl.runtime.train import fit
    from netdsl.runtime.train_config import with_overrides
    model = netdsl.load(WORKLOAD_DEFS[key].net)
    weights = model.init(seed=0)
    config = with_overrides(model.train_config, {"epochs": epochs, "split": 1.0,
                                                 "batch": BATCH[key]}, origin="benchmark")

    def run():
        nonlocal model
        if fresh_model:
            model = netdsl.load(WORKLOAD_DEFS[key].net)
        began = time.perf_counter()
        first: list[float] = []

        def clock() -> bool:
            if not first:
                first.append(time.perf_counter())
            return False
        saved = os.environ.get("NETDSL_EPOCH_BLOCKS")
        os.environ["NETDSL_EPOCH_BLOCKS"] = blocks
        try:
            result = fit(model, weights, config, data=data, verbose=False, should_stop=clock)
        finally:
            if saved is None:
                del os.environ["NETDSL_EPOCH_BLOCKS"]
            else:
                os.environ["NETDSL_EPOCH_BLOCKS"] = saved
        return first[0] - began, result.history[-1]["loss"]
    return run


def torch_fit(torch, key: str, data: dict, epochs: int):
    """A function running the same training as a plain PyTorch loop; returns (setup seconds,
    final epoch's mean loss)."""
    workload = WORKLOAD_DEFS[key]
    x_name, y_name = ("x", "y") if workload.torch_loss == "bce_logits" else ("image", "label")
    x, y = torch.from_numpy(data[x_name]), torch.from_numpy(data[y_name])
    batch, examples = BATCH[key], len(data[x_name])

    def run():
        began = time.perf_counter()
        torch.manual_seed(0)
        module = workload.torch_model(torch)
        try:
            optimizer = torch.optim.Adam(module.parameters(), lr=workload.lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            optimizer = torch.optim.Adam(module.parameters(), lr=workload.lr, foreach=True)
        loss_fn = torch.nn.CrossEntropyLoss() if workload.torch_loss == "ce" else \
            torch.nn.BCEWithLogitsLoss()
        generator = torch.Generator().manual_seed(0)
        setup = time.perf_counter() - began
        mean = 0.0
        for _ in range(epochs):
            order = torch.randperm(examples, generator=generator)
            total = 0.0
            for start in range(0, examples, batch):
                index = order[start:start + batch]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(module(x[index]), y[index])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(index)
            mean = total / examples
        return setup, mean
    return run


def time_steps(run, seconds: float, out: list[int]) -> None:
    """One untimed step, then steps timed one by one for about `seconds`."""
    run()
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    while True:
        start = clock()
        run()
        now = clock()
        out.append(now - start)
        if now >= end:
            return


def fit_child(threads: int, smoke: bool) -> dict:
    """Time every run in this process (its thread counts set by the parent's environment)."""
    torch = import_torch(threads)
    result: dict = {"threads": threads, "load_start": load_average(), "runs": []}
    for key, (examples, epochs, rounds) in (SMOKE_RUNS if smoke else RUNS).items():
        print(f"  phase: {key}", file=sys.stderr, flush=True)
        data = run_data(key, examples)
        batch = BATCH[key]
        steps = epochs * -(-examples // batch)
        one_batch = {name: np.ascontiguousarray(array[:batch]) for name, array in data.items()}
        contenders = {"netdsl fit": netdsl_fit(key, data, epochs),
                      "netdsl fit, Python loop": netdsl_fit(key, data, epochs, blocks="never"),
                      "netdsl step": netdsl_stepper(WORKLOAD_DEFS[key], one_batch)[0]}
        if torch is not None:
            contenders["torch fit"] = torch_fit(torch, key, data, epochs)
            contenders["torch step"] = torch_stepper(torch, WORKLOAD_DEFS[key], one_batch)[0]
        for name, run in contenders.items():             # compile, fill caches, warm up
            run() if "fit" in name else time_steps(run, 0.05, [])
        samples: dict[str, list[int]] = {name: [] for name in contenders}
        setups: dict[str, list[float]] = {name: [] for name in contenders if "fit" in name}
        names = list(contenders)
        gc.collect()
        began = time.perf_counter()
        for number in range(rounds):
            if number >= MIN_ROUNDS and time.perf_counter() - began > BUDGET_S:
                rounds = number
                break
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                if "step" in name:
                    time_steps(contenders[name], 0.01 if smoke else STEP_BLOCK_S,
                               samples[name])
                    continue
                time.sleep(SETTLE_S)
                started = time.perf_counter_ns()
                setup, _ = contenders[name]()
                samples[name].append(time.perf_counter_ns() - started)
                setups[name].append(setup)
        first_fits = netdsl_fit(key, data, epochs, fresh_model=True)
        run_result = {"key": key, "examples": examples, "epochs": epochs, "batch": batch,
                      "steps": steps, "rounds": rounds,
                      "first fit setup": float(np.median(
                          [first_fits()[0] for _ in range(FIRST_FITS)])) * 1e3}
        for name, values in samples.items():
            run_result[name] = vars(Timing.of(values))
        for name, values in setups.items():
            run_result[name + " setup"] = float(np.median(values)) * 1e3
        result["runs"].append(run_result)
        print(f"  {threads} thread(s) {key}: " + "; ".join(
            f"{name} {_cell(Timing(**run_result[name]))}" for name in contenders),
            file=sys.stderr, flush=True)
    result["threading_layer"] = _threading_layer()
    result["load_end"] = load_average()
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def render_section(children: list[dict], command: str, info: dict, seconds: float) -> str:
    """The "## Whole runs" section of RESULTS.md: a row per run and thread count."""
    loads = "; ".join(f"{c['threads']} thread(s): {c['load_start']} → {c['load_end']}"
                      for c in children)
    lines = [HEADING, "",
             f"Written by `{command}` on {info['date']} in {seconds:.0f} s (see README.md, "
             "*Whole runs*). Whole training runs, no validation: netdsl's `fit` (from the "
             "compile cache) against a plain PyTorch loop (randperm, indexing, fused Adam, "
             "`loss.item()` per step), and each side's single training step times the number "
             "of steps. Milliseconds, medians over the rounds with p10–p90 in brackets, "
             "measured interleaved in one process per thread count. *setup*: fit until its "
             "first step (binding the data and the step; the model's steps were compiled by an "
             "earlier fit of it); *first fit's setup*: the same for a freshly loaded model, "
             "through the compiler's cache-hit path (median of 3). *netdsl fit* runs tiny "
             "epochs in compiled blocks (`NETDSL_EPOCH_BLOCKS=always`: runtime/"
             "compiled_epochs.py; where they apply, XOR only here); *Python loop*: the same fit "
             "with every epoch in Python (`never`). "
             "*fit / steps×step*: the whole fit over the steps alone (1.00: the loop costs "
             "nothing around its steps); *loop /*: the same without the setup. *torch/netdsl*: "
             "whole runs, and single steps, > 1: netdsl is faster.", "",
             f"Load average (1/5/15 min) at the start → end of each process: {loads}.", "",
             "| run | threads | steps | rounds | netdsl fit | setup | first fit's setup "
             "| netdsl steps × step | fit / steps×step | loop / steps×step "
             "| Python loop | its fit / steps×step | torch fit "
             "| torch/netdsl fit | torch/netdsl step |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in RUNS:
        for child in children:
            for run in child["runs"]:
                if run["key"] != key:
                    continue
                fit = Timing(**run["netdsl fit"])
                step = Timing(**run["netdsl step"])
                alone = step.median * run["steps"]
                setup = run["netdsl fit setup"]
                python = Timing(**run["netdsl fit, Python loop"])
                torch_fit = Timing(**run["torch fit"]) if "torch fit" in run else None
                torch_step = Timing(**run["torch step"]) if "torch step" in run else None
                title = (f"{key}: {run['epochs']:,} epoch(s) × {run['examples']:,} ex., "
                         f"batch {run['batch']}")
                lines.append(
                    f"| {title} | {child['threads']} | {run['steps']:,} | {run['rounds']} | "
                    f"{_cell(fit)} | "
                    f"{setup:.3g} | {run.get('first fit setup', float('nan')):.3g} | "
                    f"{alone:.4g} | {_ratio_cell(_ratio(fit.median, alone))} | "
                    f"{_ratio_cell(_ratio(fit.median - setup, alone))} | {_cell(python)} | "
                    f"{_ratio_cell(_ratio(python.median, alone))} | {_cell(torch_fit)} | "
                    f"{_ratio_cell(_ratio(torch_fit and torch_fit.median, fit.median))} | "
                    f"{_ratio_cell(_ratio(torch_step and torch_step.median, step.median))} |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    return section_main(argv, description=__doc__.splitlines()[0], module="benchmarks.fit",
                        label="whole runs", what="whole-runs",
                        smoke_help="tiny runs, two rounds (checks the script; numbers mean nothing)",
                        child=fit_child, render=render_section, heading=HEADING,
                        results=RESULTS)


if __name__ == "__main__":
    sys.exit(main())
