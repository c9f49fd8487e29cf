"""Where a benchmark workload's training step spends its time, by compiled function.

    python tools/kernel_profile.py resnet [--seconds 8] [--threads 1] [--top 30]

The workload is one of benchmarks/workloads.py's (xor, mlp, lenet, resnet, lstm, gru,
transformer), stepped as benchmarks/run.py steps it.  A child process compiles and warms its
step, writes /tmp/perf-<pid>.map (the address of every function Numba compiled or loaded in
it, each running to the next one's start), and steps for --seconds while `perf record -e
cpu-clock` samples it; then `perf report` prints the share of samples per shared object and
symbol: the BLAS's own (`mkl_blas_def_sgemm_kernel_0_zen`, `sgemm_kernel_HASWELL`) and netdsl's
compiled functions by module and name (`conv_kernels.im2col_unit`, `netdsl_generated_<key>.
segment` for a shared loop nest or repeated run).  Code a function took in whole (a prange's
loop body, a linked copy) counts towards the function laid out before it, usually its own,
up to CAP bytes from its start; samples past that show as bare addresses.

Needs Linux `perf`; software clock events are enough (no hardware counters in a VM).  On the
AMD EPYC (Zen 3) of 2026-12-07, ResNet at one thread: MKL's sgemm 53 % (its packing 11 %,
zeroing C for beta 0 3 %), `im2col_unit` 20 %, `unfold` 4.5 %, the generated segments ~8 %.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The most code counted towards one function: loaded code is not laid out end to end (LeNet-5's
# map had gaps of 0.4-1 MB after some kernels), and without a cap the samples of whatever lies
# in a gap counted towards the function before it.  Kernels compile to a few kB to a few tens.
CAP = 1 << 16


def child(key: str, seconds: float) -> None:
    """Compile and warm the step, write the perf map, say READY, step for `seconds`."""
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
    import numpy as np
    from workloads import WORKLOAD_DEFS, netdsl_stepper
    workload = WORKLOAD_DEFS[key]
    run, _ = netdsl_stepper(workload, workload.data(np.random.default_rng(0)))
    for _ in range(3):
        run()
    write_map(Path(f"/tmp/perf-{os.getpid()}.map"))
    print("READY", flush=True)
    steps, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        run()
        steps += 1
    print(f"{key}: {steps} steps, {(time.perf_counter() - began) / steps * 1e3:.3f} ms a step "
          f"(under perf)", flush=True)


def write_map(path: Path) -> int:
    """perf's map of JIT code: every compiled overload of every Numba dispatcher alive."""
    import gc

    from numba.core.registry import CPUDispatcher
    starts = set()
    for dispatcher in gc.get_objects():
        # type(), not isinstance: isinstance of a dead weak proxy among the objects raises
        if not issubclass(type(dispatcher), CPUDispatcher):
            continue
        function = dispatcher.py_func
        name = f"{function.__module__.rsplit('.', 1)[-1]}.{function.__name__}"
        for result in list(dispatcher.overloads.values()):
            try:
                address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
            except Exception:               # an overload without machine code of its own
                continue
            if address:
                starts.add((address, name))
    ordered = sorted(starts)
    with open(path, "w") as handle:
        for (address, name), following in zip(ordered, ordered[1:] + [(None, "")]):
            size = CAP if following[0] is None else min(following[0] - address, CAP)
            handle.write(f"{address:x} {size:x} {name}\n")
    return len(ordered)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.workload, args.seconds)
        return 0
    threads = str(args.threads)
    env = dict(os.environ, NUMBA_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               MKL_NUM_THREADS=threads)
    # The child steps a second longer than perf samples it: perf stops when its target ends.
    process = subprocess.Popen([sys.executable, __file__, args.workload, "--child",
                                "--seconds", str(args.seconds + 1)],
                               stdout=subprocess.PIPE, text=True, env=env)
    for line in process.stdout:
        if line.strip() == "READY":
            break
    else:
        return process.wait() or 1
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory) / "perf.data"
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000",
                        "-p", str(process.pid), "-o", str(data), "--", "sleep",
                        str(args.seconds)], check=True)
        print(process.stdout.read().strip())
        process.wait()
        report = subprocess.run(["perf", "report", "-i", str(data), "--no-children",
                                 "--sort", "dso,symbol", "--stdio"],
                                capture_output=True, text=True, check=True).stdout
    Path(f"/tmp/perf-{process.pid}.map").unlink(missing_ok=True)
    rows = [" ".join(line.split()) for line in report.splitlines()
            if line.strip() and not line.startswith("#")]
    print("\n".join(rows[:args.top]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
