"""netdsl's cuda target against PyTorch CUDA (eager and torch.compile), on a GPU.

    python -m benchmarks.cuda [--out benchmarks/RESULTS_CUDA.md] [--only mlp,lenet,transformer]
                              [--no-compile] [--smoke]

Workloads (issue 12's sizes; the models, data and torch modules of workloads.py):

    mlp          784-256-256-10 MLP, relu, cross_entropy, batch 1,024, Adam(lr=1e-3)
    lenet        LeNet-5 on f32[256, 1, 28, 28], cross_entropy, Adam(lr=1e-3)
    transformer  Embedding(1000, 128) + PositionalEncoding -> 2 x TransformerEncoderLayer(128,
                 4 heads, ff 512, dropout 0.1) -> mean over T -> Dense(10), ids [16, 64], Adam

One step is one training step: netdsl's bound step on `--target cuda` (compiled and bound as
`fit` does it, parameters and optimiser state resident on the device; the batch goes over
and the outputs come back, as in `fit`), torch eager (fused Adam) and torch with the module
through torch.compile, all on the device, the clock stopped after synchronising it.  The
three take turns in interleaved blocks (timing.py); medians, p10-p90 and the ratios of
medians torch/netdsl (> 1: netdsl is faster) go into a markdown table, printed and written
to --out.  Then the largest fused elementwise kernel of each netdsl step is timed alone and
its bandwidth compared with the device's peak (cuda_kernels.py).

--smoke runs it all at toy sizes (models/smoke/) for a step or two: netdsl in Numba's CUDA
simulator (NUMBA_ENABLE_CUDASIM=1 unless set), torch on the CPU when torch has no CUDA, so
that CI exercises the script; its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS_CUDA.md"
if str(ROOT) not in sys.path:           # benchmark this checkout, installed or not
    sys.path.insert(0, str(ROOT))
# The benchmark's own modules import each other by their bare names (run.py puts this folder
# on sys.path); here it is on the path only while they are imported, since this file's name
# would shadow the `cuda` package (cuda-python) that numba-cuda imports.
sys.path.insert(0, str(HERE))
try:
    import numpy as np

    from cuda_kernels import measure_largest, peak_bandwidth
    from report import _cell, _ratio_cell, load_average
    from timing import Timing, interleaved
    from workloads import (MODELS, WORKLOAD_DEFS, lenet_data, lenet_torch, mlp_data,
                           mlp_torch, netdsl_stepper, tokens_data, torch_stepper,
                           transformer_torch)
finally:
    sys.path.remove(str(HERE))

NO_DEVICE = "no CUDA device: this benchmark needs a GPU (--smoke runs it small in the simulator)"
KEYS = ("mlp", "lenet", "transformer")
CONTENDERS = ("netdsl", "eager", "compiled")


def workloads(smoke: bool) -> dict:
    """The three workloads at the issue's sizes, or at toy sizes for --smoke."""
    d = WORKLOAD_DEFS
    if not smoke:
        return {
            "mlp": dataclasses.replace(d["mlp"], title="MLP 784-256-256-10, batch 1,024, Adam",
                                       data=mlp_data(1024)),
            "lenet": dataclasses.replace(d["lenet"], title="LeNet-5 1x28x28, batch 256, Adam",
                                         data=lenet_data(256)),
            "transformer": d["transformer"]}
    smoke_models = MODELS / "smoke"
    return {
        "mlp": dataclasses.replace(
            d["mlp"], title="smoke: MLP 32-16-16-10, batch 4", net=smoke_models / "mlp.net",
            data=mlp_data(4, features=32),
            torch_model=functools.partial(mlp_torch, widths=(32, 16, 16, 10))),
        "lenet": dataclasses.replace(
            d["lenet"], title="smoke: LeNet 1x12x12 (2, 4 channels), batch 2",
            net=smoke_models / "lenet5.net", data=lenet_data(2, side=12),
            torch_model=functools.partial(lenet_torch, side=12, channels=(2, 4),
                                          hidden=(12,))),
        "transformer": dataclasses.replace(
            d["transformer"], title="smoke: Transformer d 16, 2 heads, 1 layer, T 4, batch 2",
            net=smoke_models / "transformer.net", data=tokens_data(2, 4, vocabulary=50),
            torch_model=functools.partial(transformer_torch, d=16, heads=2, feed_forward=32,
                                          vocabulary=50, steps=4, layers=1))}


def _first_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip().splitlines()
    return text[0][:160] if text else type(error).__name__


def bench(key: str, workload, args, cuda, torch, device: str) -> dict:
    """Build and time the contenders of one workload; measure its largest elementwise kernel."""
    arrays = workload.data(np.random.default_rng(0))
    row: dict = {"key": key, "title": workload.title, "notes": []}
    started = time.perf_counter()
    netdsl, report = netdsl_stepper(workload, arrays, "cuda")
    if not args.simulated:
        netdsl()                               # kernels compile on their first launch
    print(f"  netdsl built in {time.perf_counter() - started:.1f} s "
          f"({report.format().splitlines()[0]})", flush=True)

    def netdsl_step():
        netdsl()
        cuda.synchronize()

    steps = {"netdsl": netdsl_step}
    if torch is not None:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for name, compile_module in (("eager", False), ("compiled", True)):
            if compile_module and args.no_compile:
                row["notes"].append("torch.compile: skipped (--no-compile)")
                continue
            try:
                started = time.perf_counter()
                run, row["optimizer"] = torch_stepper(torch, workload, arrays, device,
                                                      compile_module)
                if compile_module:
                    row["notes"].append(f"torch.compile: compiled in "
                                        f"{time.perf_counter() - started:.1f} s")
            except Exception as error:         # noqa: BLE001 - report it and go on
                label = "torch.compile" if compile_module else "torch eager"
                row["notes"].append(f"{label} failed, skipped: {_first_line(error)}")
                continue
            steps[name] = functools.partial(lambda run: (run(), sync()), run)
    if args.smoke:                 # one step each (a simulated one takes seconds)
        timings = {name: _one_step(fn) for name, fn in steps.items()}
    else:
        timings = interleaved(steps, args.rounds, args.block_s, args.warmup_s, args.budget_s)
    row.update(timings)
    try:
        row["kernel"] = measure_largest(key, netdsl.compiled, netdsl, cuda, args.simulated,
                                        3 if args.smoke else 200)
    except Exception as error:                 # noqa: BLE001
        row["notes"].append(f"kernel measurement failed: {_first_line(error)}")
    return row


def _one_step(fn) -> Timing:
    started = time.perf_counter_ns()
    fn()
    return Timing.of([time.perf_counter_ns() - started])


def _ratio(row: dict, name: str) -> float | None:
    if name not in row or "netdsl" not in row:
        return None
    return row[name].median / row["netdsl"].median


def render(rows: list[dict], peak, info: dict, args) -> str:
    torch_where = info["torch_device"]
    lines = ["# netdsl cuda target against PyTorch CUDA", "",
             f"Written by `python -m benchmarks.cuda {' '.join(args.argv)}` on {info['date']}"
             " (see benchmarks/README.md). Median ms per training step (forward, backward, "
             "Adam), p10–p90 in brackets, the device synchronised before each clock stops; "
             "ratios are of medians, > 1 means netdsl is faster. netdsl's step copies its "
             "outputs (loss, probabilities) back to the host every step, as `fit` does; "
             "torch's step reads nothing back.", ""]
    if args.smoke:
        lines += ["**Smoke run**: toy sizes, one or two steps, netdsl in "
                  + ("Numba's CUDA simulator" if args.simulated else "the GPU")
                  + f", torch on {torch_where}: the numbers say nothing about speed.", ""]
    lines += ["## Machine", "",
              f"- device: {peak.device if peak else info['device']}; torch ran on "
              f"{torch_where}",
              f"- Python {info['python']}, NumPy {np.__version__}, Numba {info['numba']}, "
              f"numba-cuda {info['numba_cuda']}, PyTorch {info['torch']}",
              f"- host load average at the start: {args.load_at_start}, at the end: "
              f"{load_average()}", "",
              "## Training step (ms)", "",
              f"| workload | netdsl cuda | torch eager ({torch_where}) | torch.compile | "
              "eager/netdsl | compile/netdsl |", "|---|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['title']} | failed: {row['error']} | | | | |")
            continue
        lines.append(f"| {row['title']} | " + " | ".join(_cell(row.get(n)) for n in CONTENDERS)
                     + f" | {_ratio_cell(_ratio(row, 'eager'))} | "
                     f"{_ratio_cell(_ratio(row, 'compiled'))} |")
    lines.append("")
    lines.append("Steps timed (netdsl / eager / compile): " + "; ".join(
        f"{row['key']} " + " / ".join(str(row[n].n if n in row else 0) for n in CONTENDERS)
        for row in rows if "error" not in row) + ".")
    optimizers = sorted({row["optimizer"] for row in rows if row.get("optimizer")})
    if optimizers:
        lines.append(f"PyTorch optimiser: {', '.join(optimizers)}.")
    lines += [f"- {row['key']}: {note}" for row in rows for note in row.get("notes", [])]
    lines.append("")
    lines += _kernel_section([row["kernel"] for row in rows if row.get("kernel")], peak, args)
    return "\n".join(lines)


def _kernel_section(kernels, peak, args) -> list[str]:
    if not kernels:
        return []
    if peak is None:
        peaks = "Peak bandwidth: not measured (see the run's output)."
    else:
        theoretical = f"{peak.theoretical_gbps:.0f} GB/s" if peak.theoretical_gbps else \
            "n/a (" + ("simulator" if args.simulated else "the device does not report it") + ")"
        peaks = (f"Peak bandwidth: theoretical {theoretical} (memory clock × 2 × bus width, "
                 f"from the device's attributes); practical {peak.copy_gbps:.0f} GB/s, "
                 f"measured as a {peak.copy_bytes / 2**20:.0f} MiB device-to-device copy "
                 "(read + write). The percentages are of the practical peak.")
    of_copy = (lambda k: f"{100 * k.gbps / peak.copy_gbps:.1f}%") if peak else (lambda k: "—")
    lines = ["## Largest fused elementwise kernel", "",
             "Each workload's elementwise launch moving the most bytes (loads read once, stores "
             "written once, at the sizes launched), relaunched alone with the step's arguments: "
             "device time per launch from CUDA events over launches queued behind a sleeping "
             "kernel, and the host's launch-and-synchronise time beside it. " + peaks, "",
             "| workload | kernel | fused ops | elements | arrays | bytes | device µs | "
             "host µs | GB/s | % of copy peak |", "|---|---|---|---|---|---|---|---|---|---|"]
    for k in kernels:
        lines.append(f"| {k.workload} | {k.kernel} | {k.groups[:80]} | {k.elements:,} | "
                     f"{k.arrays} | {k.bytes:,} | {k.device_us:.2f} | {k.host_us:.1f} | "
                     f"{k.gbps:.1f} | {of_copy(k)} |")
    largest = max(kernels, key=lambda k: k.bytes)
    shares = []
    if peak is not None and peak.theoretical_gbps:
        shares.append(f"{100 * largest.gbps / peak.theoretical_gbps:.1f}% of the theoretical "
                      "peak")
    if peak is not None:
        shares.append(f"{of_copy(largest)} of the measured copy")
    lines += ["", f"Largest: {largest.workload} {largest.kernel}, {largest.bytes / 1e6:.2f} MB "
              f"in {largest.device_us:.2f} µs = {largest.gbps:.1f} GB/s"
              + (f" ({', '.join(shares)})." if shares else ".")]
    lines += [f"- {k.workload}: {k.note}" for k in kernels if k.note]
    lines.append("")
    return lines


def _versions(torch) -> dict:
    import datetime
    import platform

    import numba
    try:
        import numba_cuda
        numba_cuda_version = getattr(numba_cuda, "__version__", "?")
    except ImportError:
        numba_cuda_version = "not installed (numba's built-in cuda)"
    return {"python": platform.python_version(), "numba": numba.__version__,
            "numba_cuda": numba_cuda_version,
            "torch": torch.__version__ if torch is not None else "not installed",
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="markdown file for the results (default "
                        "benchmarks/RESULTS_CUDA.md; with --smoke none: printed only)")
    parser.add_argument("--only", default=",".join(KEYS), help="subset of " + ",".join(KEYS))
    parser.add_argument("--smoke", action="store_true",
                        help="toy sizes, a step or two, without a GPU (the simulator): for CI")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    wanted = [k.strip() for k in args.only.split(",") if k.strip()]
    if any(k not in KEYS for k in wanted):
        parser.error(f"--only takes a subset of {','.join(KEYS)}")
    args.rounds, args.block_s, args.warmup_s, args.budget_s = 12, 0.25, 0.5, 20.0
    if args.smoke:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    from netdsl.backends.numba_cuda.device import simulating
    args.simulated = simulating()
    if args.simulated and not args.smoke:
        print(NO_DEVICE + " (NUMBA_ENABLE_CUDASIM is set)", flush=True)
        return 1
    from numba import cuda
    try:
        available = cuda.is_available()
    except Exception:                                  # noqa: BLE001 - a broken driver
        available = False
    if not available:
        print(NO_DEVICE, flush=True)
        return 1
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed: timing netdsl only", flush=True)
    device = "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    if torch is not None and device == "cpu":
        if not args.smoke:
            print("PyTorch has no CUDA here: install a CUDA build of torch", flush=True)
            return 1
        torch.set_num_threads(2)
    args.load_at_start = load_average()
    info = {**_versions(torch), "torch_device": "GPU" if device == "cuda" else "CPU",
            "device": "simulator" if args.simulated else "GPU"}
    began = time.perf_counter()
    rows = []
    for key, workload in workloads(args.smoke).items():
        if key not in wanted:
            continue
        print(workload.title, flush=True)
        try:
            rows.append(bench(key, workload, args, cuda, torch, device))
        except Exception as error:                     # noqa: BLE001 - one row fails
            rows.append({"key": key, "title": workload.title, "error": _first_line(error)})
        row = rows[-1]
        print("  " + ("FAILED: " + row["error"] if "error" in row else "; ".join(
            f"{n} {row[n].median:.4g} ms" for n in CONTENDERS if n in row)), flush=True)
    try:
        peak = peak_bandwidth(cuda, args.simulated, 2**20 if args.smoke else 2**30)
    except Exception as error:                         # noqa: BLE001 - the table still stands
        print(f"peak bandwidth not measured: {_first_line(error)}", flush=True)
        peak = None
    text = render(rows, peak, info, args)
    print()
    print(text)
    print(f"(benchmark ran {time.perf_counter() - began:.0f} s)")
    out = args.out or (None if args.smoke else RESULTS)
    if out is not None:
        Path(out).write_text(text + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
