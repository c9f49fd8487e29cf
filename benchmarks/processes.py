"""Subprocesses: one per workload (timed there), one per compile measurement.

A child is `run.py` again with a hidden flag (--workload-child KEY or --compile-child KEY); it
prints its progress on stderr ("  phase: ..." lines say where it is) and its result as one JSON
line on stdout, so a crash is reported with the phase it happened in, not fatal.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from report import Row, machine_info, replace_section, row_line
from timing import Timing, interleaved, timed_steps
from workloads import (WORKLOAD_DEFS, bind_training_step, compile_training_step, import_torch,
                       netdsl_stepper, torch_stepper)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUN = HERE / "run.py"


def _say(message: str) -> None:
    """Progress from a child process (stderr; its stdout carries the JSON result)."""
    print(message, file=sys.stderr, flush=True)


def _threading_layer() -> str:
    try:
        import numba
        return numba.threading_layer()
    except (ImportError, ValueError):
        return "none started"


def workload_child(key: str, args) -> dict:
    """Build and time one workload (runs in its own process); the result as a dict."""
    workload = WORKLOAD_DEFS[key]
    torch = None if args.no_torch else import_torch(args.threads)
    arrays = workload.data(np.random.default_rng(0))
    result: dict = {"key": key}
    _say("  phase: netdsl build")
    started = time.perf_counter()
    nd, report = netdsl_stepper(workload, arrays, "cpu")
    result["report"] = report.format().splitlines()[0] + f"; cache hit {report.cache_hit}"
    _say(f"  netdsl built in {time.perf_counter() - started:.1f} s ({result['report']})")
    contenders = {"netdsl": nd}
    if torch is not None:
        tr, result["torch_optimizer"] = torch_stepper(torch, workload, arrays)
        contenders["torch"] = tr
    _say("  phase: timing netdsl" + (" and torch, interleaved" if torch is not None else ""))
    timings = interleaved(contenders, args.rounds, args.block_s, args.warmup_s,
                          args.budget_s)
    result.update({name: vars(t) for name, t in timings.items()})
    result["threading_layer"] = _threading_layer()
    if args.ref_steps > 0:
        _say("  phase: reference backend")
        try:
            ref, _ = netdsl_stepper(workload, arrays, "reference")
            result["reference"] = vars(timed_steps(ref, args.ref_steps, args.ref_budget_s))
        except Exception as error:       # noqa: BLE001 - report and go on
            result["reference_error"] = f"{type(error).__name__}: {error}".splitlines()[0]
    return result


def compile_child(workload_key: str, preinit: bool = False) -> dict:
    """Build and compile one training step in this fresh process, then run one step (which
    checks that what was compiled or loaded from the cache runs).

    `preinit`: initialise Numba's CPU target (its lazily imported lowering registries) before
    the clock starts, to show how much of a warm compile is that one-time cost of the process
    rather than netdsl's."""
    clock = time.perf_counter
    started = clock()
    import numba  # noqa: F401  - library imports are not compile time
    # netdsl's jit sets Numba's CPU features before its target machine exists (vector_width.py):
    # initialised before it, the target kept the default features, the cached code's key
    # missed, and the "warm" pre-initialised run compiled everything (16 LLVM compiles)
    import netdsl.backends.numba_cpu.jit  # noqa: F401
    numba_init = 0.0
    if preinit:
        from numba.core.registry import cpu_target
        before = clock()
        cpu_target.target_context.refresh()
        cpu_target.typing_context.refresh()
        numba_init = clock() - before
    import netdsl
    import netdsl.compiler  # noqa: F401
    imported = clock()
    workload = WORKLOAD_DEFS[workload_key]
    model = netdsl.load(workload.net)
    loaded = clock()
    compiled = compile_training_step(model, "cpu")
    report = compiled.report
    # compile_step builds the training graph and runs the passes, then the target's stages
    # (timed in the report): graph building is the rest.
    built = clock() - report.total
    result = {
        "import_s": imported - started, "load_s": loaded - imported,
        "graph_s": built - loaded, "report_total_s": report.total, "phases": report.phases,
        "cache_hit": bool(report.cache_hit), "llvm_compiles": report.llvm_compiles,
        "total_s": (built - imported) + report.total, "numba_init_s": numba_init,
    }
    _say("  phase: first step " + json.dumps(result))       # survives a crash of the step
    arrays = workload.data(np.random.default_rng(0))
    before = clock()
    step, batch, hyper = bind_training_step(compiled, model.init(seed=0))
    step(*(arrays[n] for n in batch), *(workload.lr, 1.0, 1)[:len(hyper)])
    result["first_step_s"] = clock() - before
    return result


def _child_command(args, threads: int, *extra: str) -> list[str]:
    command = [sys.executable, str(RUN), "--threads", str(threads)]
    if args.quick:
        command.append("--quick")
    if args.no_torch:
        command.append("--no-torch")
    if args.no_reference:
        command.append("--no-reference")
    return command + list(extra)


def run_child(command: list[str], env: dict, echo: bool = True) -> tuple[dict | None, str]:
    """Run a child; stream its progress; (its JSON result or None, the failure if any)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=str(ROOT))
    lines: list[str] = []
    repeats: dict[str, int] = {}          # library warnings can come once per step: show once
    for line in process.stderr:
        line = line.rstrip("\n")
        lines.append(line)
        if echo and not line.startswith("  phase:") and line.strip():
            repeats[line] = repeats.get(line, 0) + 1
            if repeats[line] == 1:
                print(line, flush=True)
    stdout = process.stdout.read()
    code = process.wait()
    for line, count in repeats.items():
        if echo and count > 1:
            print(f"  (printed once, came {count} times: {line[:70]})", flush=True)
    if code == 0:
        return json.loads(stdout.strip().splitlines()[-1]), ""
    phases = [line[len("  phase: "):] for line in lines if line.startswith("  phase: ")]
    where = phases[-1].split(" {")[0] if phases else "start-up"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        failure = f"process died of {name} during {where}"
    else:
        tail = [line for line in lines if line.strip() and not line.startswith("  phase:")]
        failure = f"failed during {where}: {tail[-1].strip() if tail else f'exit {code}'}"
    partial = None
    if phases and phases[-1].startswith("first step {"):
        partial = json.loads(phases[-1][len("first step "):])
    return partial, failure


def child_env(threads: int, cache: Path | None = None) -> dict:
    """The environment of a child: `threads` for Numba's pool (netdsl's kernels, and its
    products cut across threads on MKL), for OpenBLAS (NumPy's and netdsl's products) and for
    MKL (torch's) unless the caller set OPENBLAS_NUM_THREADS / MKL_NUM_THREADS; caches if given."""
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = str(threads)
    env.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    env.setdefault("MKL_NUM_THREADS", str(threads))
    if cache is not None:
        env["NETDSL_CACHE_DIR"] = str(cache / "netdsl")
        env["NUMBA_CACHE_DIR"] = str(cache / "numba")    # also Numba's library-kernel caches
    return env


def bench_compile(args) -> dict:
    """Cold: empty cache dirs, fresh process.  Warm: a fresh process on the same dirs."""
    results: dict[str, list] = {"cold": [], "warm": [], "warm, Numba pre-initialised": []}
    for i in range(args.cold_repeats):
        with tempfile.TemporaryDirectory(prefix="netdsl-bench-") as tmp:
            threads = args.thread_counts[0]
            env = child_env(threads, Path(tmp))
            kinds = ["cold"] + (["warm"] * args.warm_repeats +
                                ["warm, Numba pre-initialised"] if i == 0 else [])
            for kind in kinds:
                extra = ["--preinit"] if "pre-initialised" in kind else []
                result, failure = run_child(
                    _child_command(args, threads, "--compile-child", "mlp", *extra), env)
                if result is None:
                    print(f"  {kind}: {failure}", flush=True)
                    results.setdefault("errors", []).append(f"{kind}: {failure}")
                    continue
                result["failure"] = failure
                results[kind].append(result)
                print(f"  {kind}: {_fmt_compile(result)}", flush=True)
    return results


def _fmt_compile(r: dict) -> str:
    phases = ", ".join(f"{k} {v * 1000:.0f}" for k, v in r["phases"].items())
    step = f"first step {r['first_step_s'] * 1000:.1f} ms" if "first_step_s" in r else \
        f"first step FAILED: {r.get('failure')}"
    return (f"total {r['total_s']:.3f} s (graph {r['load_s'] + r['graph_s']:.3f} s + "
            f"compile report {r['report_total_s']:.3f} s [{phases} ms]); "
            f"cache_hit={r['cache_hit']} llvm_compiles={r['llvm_compiles']}; {step}; "
            f"imports {r['import_s']:.2f} s")


def bench_workload(key: str, args, threads: int) -> Row:
    row = Row(key, WORKLOAD_DEFS[key].title, threads)
    with tempfile.TemporaryDirectory(prefix="netdsl-bench-") as tmp:
        result, failure = run_child(_child_command(args, threads, "--workload-child", key),
                                    child_env(threads, Path(tmp) if args.fresh_cache else None))
    if result is None:
        row.error = failure
        print(f"  FAILED: {failure}", flush=True)
        return row
    for name in ("netdsl", "torch", "reference"):
        if name in result:
            setattr(row, name, Timing(**result[name]))
    row.torch_optimizer = result.get("torch_optimizer", "")
    row.threading_layer = result.get("threading_layer", "")
    row.report = result.get("report", "")
    if "reference_error" in result:
        print(f"  reference failed: {result['reference_error']}", flush=True)
    print("  " + row_line(row), flush=True)
    return row


def section_main(argv, *, description: str, module: str, label: str, what: str,
                 smoke_help: str, child, render, heading: str, results: Path) -> int:
    """The command line of a benchmark that writes one section of RESULTS.md (scaling.py,
    fit.py): `--threads 2,1` runs `child(threads, smoke)` in one subprocess per count (the
    module again with --child), `render(children, command, info, seconds)` makes the section,
    `--write` replaces it in `results` (a smoke run only writes to an --out it is given)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", default="2,1",
                        help="thread counts, one subprocess each (default 2,1)")
    parser.add_argument("--write", action="store_true",
                        help=f"replace the {what} section of benchmarks/RESULTS.md")
    parser.add_argument("--smoke", action="store_true", help=smoke_help)
    parser.add_argument("--out", type=Path, help="write the section to this file instead")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    try:
        counts = [int(t) for t in args.threads.split(",") if t.strip()]
        assert counts and min(counts) > 0
    except (ValueError, AssertionError):
        parser.error(f"--threads wants positive integers, got {args.threads!r}")
    if args.child:
        print(json.dumps(child(counts[0], args.smoke)), flush=True)
        return 0
    began = time.perf_counter()
    children = []
    for threads in counts:
        print(f"{label}, {threads} thread(s)", flush=True)
        command = [sys.executable, "-m", module, "--child", "--threads",
                   str(threads)] + (["--smoke"] if args.smoke else [])
        result, failure = run_child(command, child_env(threads), echo=True)
        if result is None:
            print(f"  FAILED: {failure}", flush=True)
            return 1
        children.append(result)
    info = machine_info(argparse.Namespace(no_torch=False))
    section = render(children, " ".join([f"python -m {module}"] + argv_list), info,
                     time.perf_counter() - began)
    print()
    print(section)
    # a smoke run's numbers mean nothing: it writes only to an --out it is given
    target = args.out or (results if args.write and not args.smoke else None)
    if target is not None:
        old = target.read_text() if target.exists() else ""
        target.write_text(replace_section(old, heading, section))
        print(f"wrote the {what} section of {target}")
    return 0
