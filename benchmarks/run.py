#!/usr/bin/env python
"""netdsl against PyTorch (and netdsl's NumPy reference backend) on the same training workloads.

    python benchmarks/run.py [--quick] [--only xor,mlp,lenet,lstm,gru,transformer,compile]
                             [--write]
                             [--threads 2[,1]] [--fresh-cache] [--no-torch] [--no-reference]

Workloads (random data, fixed seed; same shapes and optimiser on both sides, not the same
initial weights):

    xor      2-8-1 MLP, tanh, bce_logits, full batch of 4, Adam(lr=0.05)
    mlp      784-256-256-10 MLP, relu, cross_entropy, batch 128, Adam(lr=1e-3)
    lenet    LeNet-5 on f32[64, 1, 28, 28], cross_entropy, Adam(lr=1e-3)
    lstm     Embedding(1000, 64) -> LSTM(128) -> Dense(10) on ids [32, 32], cross_entropy, Adam
    gru      the same with GRU(128)
    transformer  Embedding(1000, 128) + PositionalEncoding -> 2 x TransformerEncoderLayer(128,
             4 heads, ff 512, dropout 0.1) -> mean over T -> Dense(10) on ids [16, 64], Adam
    compile  cold and warm compile of the MLP training step, each in a fresh subprocess

One step is one Python call of netdsl's bound training step (forward, loss, gradients and the
Adam update, in place) against one PyTorch eager step (zero_grad(set_to_none=True), forward,
loss, backward, optimizer.step with fused Adam where the CPU build supports it).  The two are
timed in interleaved blocks in the same process (A B, B A, A B, ...), every step on its own;
medians and p10/p90 are reported, and the ratio torch/netdsl of the medians (> 1: netdsl is
faster).  Each workload runs in its own subprocess (a crash is reported, not fatal), and so does
each compile measurement.  See benchmarks/README.md.

This file is the command line; workloads.py holds the models and both sides' steps (netdsl's
compiled through netdsl.compiler.compile_step, as `fit` compiles it), timing.py the interleaved
timing, processes.py the child processes, report.py the verdicts and RESULTS.md's text.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
# The sections of RESULTS.md other commands write (scaling.py, fit.py, compile_times.py; the
# start of each one's HEADING): `--write` keeps them as they are.
OTHER_SECTIONS = ("## Scaling", "## Whole runs", "## Compile times")
if str(ROOT) not in sys.path:           # benchmark this checkout, installed or not
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:           # the benchmark's own modules, however it is started
    sys.path.insert(0, str(HERE))


def _threads_from_argv() -> int:
    """--threads must take effect before Numba is imported (NUMBA_NUM_THREADS)."""
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1].split(",")[0])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1].split(",")[0])
    return 2


os.environ.setdefault("NUMBA_NUM_THREADS", str(_threads_from_argv()))

from processes import bench_compile, bench_workload, compile_child, workload_child  # noqa: E402
from report import load_average, machine_info, render_results  # noqa: E402
from report import replace_section, section  # noqa: E402
from workloads import WORKLOAD_DEFS, WORKLOADS, import_torch  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter blocks (~40 s)")
    parser.add_argument("--only", default=",".join(WORKLOADS + ("compile",)),
                        help="comma-separated subset of " + ",".join(WORKLOADS + ("compile",)))
    parser.add_argument("--write", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument("--threads", default="2",
                        help="threads per side: torch.set_num_threads, NUMBA_NUM_THREADS, "
                             "OPENBLAS_NUM_THREADS (default 2); a list such as 2,1 runs the "
                             "workloads once per count")
    parser.add_argument("--no-torch", action="store_true", help="netdsl (and reference) only")
    parser.add_argument("--no-reference", action="store_true", help="skip the NumPy reference")
    parser.add_argument("--fresh-cache", action="store_true",
                        help="each workload process compiles into its own new empty cache "
                             "(no cache reads) instead of $NETDSL_CACHE_DIR / the user cache")
    parser.add_argument("--workload-child", help=argparse.SUPPRESS)
    parser.add_argument("--compile-child", help=argparse.SUPPRESS)
    parser.add_argument("--preinit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args.thread_counts = [int(t) for t in str(args.threads).split(",") if t.strip()]
        assert args.thread_counts and min(args.thread_counts) > 0
    except (ValueError, AssertionError):
        parser.error(f"--threads wants positive integers, got {args.threads!r}")
    args.threads = args.thread_counts[0]
    if args.quick:
        args.rounds, args.block_s, args.warmup_s, args.budget_s = 6, 0.08, 0.1, 2.0
        args.ref_steps, args.ref_budget_s = 2, 1.0
        args.cold_repeats, args.warm_repeats = 1, 1
    else:
        args.rounds, args.block_s, args.warmup_s, args.budget_s = 16, 0.25, 0.5, 15.0
        args.ref_steps, args.ref_budget_s = 10, 5.0
        args.cold_repeats, args.warm_repeats = 2, 3
    if args.no_reference:
        args.ref_steps = 0
    if args.compile_child or args.workload_child:
        result = compile_child(args.compile_child, args.preinit) if args.compile_child else \
            workload_child(args.workload_child, args)
        print(json.dumps(result), flush=True)
        return 0

    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in WORKLOADS + ("compile",)]
    if unknown:
        parser.error(f"unknown workload {unknown[0]!r} (known: "
                     f"{', '.join(WORKLOADS + ('compile',))})")
    if not args.no_torch and import_torch(args.threads) is None:
        print("PyTorch is not installed: timing netdsl (and the reference) only", flush=True)
        args.no_torch = True
    args.load_at_start = load_average()
    began = time.perf_counter()
    rows = []
    for threads in args.thread_counts:
        for key in WORKLOADS:
            if key in wanted:
                print(f"{WORKLOAD_DEFS[key].title}, {threads} thread(s)", flush=True)
                rows.append(bench_workload(key, args, threads))
    compile_result = None
    if "compile" in wanted:
        print("compile time, MLP training step (fresh subprocesses)", flush=True)
        compile_result = bench_compile(args)
    info = machine_info(args)
    text = render_results(rows, compile_result, info, args)
    print()
    print(text)
    print(f"(benchmark ran {time.perf_counter() - began:.0f} s)")
    if args.write:
        old = RESULTS.read_text() if RESULTS.exists() else ""
        text += "\n"
        for heading in OTHER_SECTIONS:          # other commands' sections: kept
            kept = section(old, heading)
            if kept:
                text = replace_section(text, heading, kept)
        RESULTS.write_text(text)
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
