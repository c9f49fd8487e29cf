#!/usr/bin/env python
"""netdsl against PyTorch (and netdsl's NumPy reference backend) on the same training workloads.

    python benchmarks/run.py [--quick] [--only xor,mlp,lenet,compile] [--write]
                             [--threads 2[,1]] [--fresh-cache] [--no-torch] [--no-reference]

Workloads (random data, fixed seed; same shapes and optimiser on both sides, not the same
initial weights):

    xor      2-8-1 MLP, tanh, bce_logits, full batch of 4, Adam(lr=0.05)
    mlp      784-256-256-10 MLP, relu, cross_entropy, batch 128, Adam(lr=1e-3)
    lenet    LeNet-5 on f32[64, 1, 28, 28], cross_entropy, Adam(lr=1e-3)
    compile  cold and warm compile of the MLP training step, each in a fresh subprocess

One step is one Python call of netdsl's bound training step (forward, loss, gradients and the
Adam update, in place) against one PyTorch eager step (zero_grad(set_to_none=True), forward,
loss, backward, optimizer.step with fused Adam where the CPU build supports it).  The two are
timed in interleaved blocks in the same process (A B, B A, A B, ...), every step on its own;
medians and p10/p90 are reported, and the ratio torch/netdsl of the medians (> 1: netdsl is
faster).  Each workload runs in its own subprocess (a crash is reported, not fatal), and so does
each compile measurement.  See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = HERE / "models"
RESULTS = HERE / "RESULTS.md"
if str(ROOT) not in sys.path:           # benchmark this checkout, installed or not
    sys.path.insert(0, str(ROOT))

# Targets of the issue: ratio torch/netdsl at least this much; compile seconds at most this.
TARGETS = {"xor": 20.0, "mlp": 1.0, "lenet": 1.0, "cold": 5.0, "warm": 0.3}
WORKLOADS = ("xor", "mlp", "lenet")


def _threads_from_argv() -> int:
    """--threads must take effect before Numba is imported (NUMBA_NUM_THREADS)."""
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1].split(",")[0])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1].split(",")[0])
    return 2


os.environ.setdefault("NUMBA_NUM_THREADS", str(_threads_from_argv()))

import numpy as np  # noqa: E402


# ---------------------------------------------------------------------------------------------
# workloads
# ---------------------------------------------------------------------------------------------
@dataclass
class Workload:
    key: str
    title: str
    net: Path
    lr: float
    data: Callable[[np.random.Generator], dict[str, np.ndarray]]   # by netdsl input name
    torch_model: Callable                                             # (torch) -> nn.Module
    torch_loss: str                                                   # "bce_logits" | "ce"
    notes: list[str] = field(default_factory=list)


def _xor_data(rng):
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    return {"x": x, "y": np.array([[0], [1], [1], [0]], np.float32)}


def _mlp_data(rng):
    return {"image": rng.standard_normal((128, 784), dtype=np.float32),
            "label": rng.integers(0, 10, 128).astype(np.int64)}


def _lenet_data(rng):
    return {"image": rng.random((64, 1, 28, 28), dtype=np.float32),
            "label": rng.integers(0, 10, 64).astype(np.int64)}


def _xor_torch(torch):
    nn = torch.nn
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))


def _mlp_torch(torch):
    nn = torch.nn
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def _lenet_torch(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


WORKLOAD_DEFS = {
    "xor": Workload("xor", "XOR 2-8-1, batch 4, Adam", MODELS / "xor.net", 0.05,
                    _xor_data, _xor_torch, "bce_logits"),
    "mlp": Workload("mlp", "MLP 784-256-256-10, batch 128, Adam", MODELS / "mlp.net", 1e-3,
                    _mlp_data, _mlp_torch, "ce"),
    "lenet": Workload("lenet", "LeNet-5 1x28x28, batch 64, Adam", MODELS / "lenet5.net", 1e-3,
                      _lenet_data, _lenet_torch, "ce"),
}


# ---------------------------------------------------------------------------------------------
# netdsl side
# ---------------------------------------------------------------------------------------------
def build_training_step(net: Path, lr: float, target: str = "cpu"):
    """(compiled, state, graph) for the Adam training step of the model in `net`.

    Exactly what `fit` builds: training graph, simplification pipeline, compile_graph."""
    import netdsl
    from netdsl.backends import compile_graph
    from netdsl.passes.pipeline import run_pipeline
    from netdsl.passes.training import build_training_graph
    from netdsl.passes.optimizers import make_optimizer

    model = netdsl.load(net)
    weights = model.init(seed=0)
    spec = make_optimizer("adam", lr=lr)
    graph = run_pipeline(build_training_graph(model.training_forward, spec))
    compiled = compile_graph(graph, target=target)
    state = {info.name: np.array(weights[info.name], dtype=info.value.dtype.numpy, order="C")
             if info.name in weights else
             np.zeros(tuple(info.value.shape), info.value.dtype.numpy)
             for info in graph.params}
    return compiled, state, graph


def netdsl_stepper(workload: Workload, arrays: dict[str, np.ndarray], target: str = "cpu"):
    """A zero-argument function running one training step; plus the CompileReport."""
    from netdsl.runtime.train import HYPER_INPUTS

    compiled, state, graph = build_training_step(workload.net, workload.lr, target)
    names = {v.name for v in graph.inputs}
    batch_inputs = [v.name for v in graph.inputs if v.name not in HYPER_INPUTS]
    hyper = [name for name in HYPER_INPUTS if name in names]
    step = compiled.bind(state, inputs=batch_inputs + hyper)
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


def torch_stepper(torch, workload: Workload, arrays: dict[str, np.ndarray]):
    """One eager PyTorch training step; returns (run, description of the optimiser)."""
    torch.manual_seed(0)
    module = workload.torch_model(torch)
    params = list(module.parameters())
    try:
        optimizer = torch.optim.Adam(params, lr=workload.lr, fused=True)
        kind = "Adam(fused=True)"
    except (RuntimeError, TypeError, ValueError):
        optimizer = torch.optim.Adam(params, lr=workload.lr, foreach=True)
        kind = "Adam(foreach=True)"
    if workload.torch_loss == "ce":
        loss_fn = torch.nn.CrossEntropyLoss()
        x = torch.from_numpy(arrays["image"])
        y = torch.from_numpy(arrays["label"])
    else:
        loss_fn = torch.nn.BCEWithLogitsLoss()
        x = torch.from_numpy(arrays["x"])
        y = torch.from_numpy(arrays["y"])

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(module(x), y)
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


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Per-step milliseconds: median, 10th and 90th percentiles, number of steps timed."""

    median: float
    p10: float
    p90: float
    n: int

    @staticmethod
    def of(samples_ns: list[int]) -> "Timing":
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        return Timing(float(np.median(ms)), float(np.percentile(ms, 10)),
                      float(np.percentile(ms, 90)), len(ms))


def _warm_up(fn, seconds: float, minimum: int = 3) -> float:
    """Run fn for `seconds` (at least `minimum` calls); the median seconds per call (robust
    to the stalls of a loaded machine, which would make the blocks too short)."""
    clock = time.perf_counter
    times: list[float] = []
    start = clock()
    while len(times) < minimum or clock() - start < seconds:
        before = clock()
        fn()
        times.append(clock() - before)
    return float(np.median(times))


def interleaved(contenders: dict[str, Callable], rounds: int, block_s: float,
                warmup_s: float, budget_s: float) -> dict[str, Timing]:
    """Time every contender step by step in blocks of ~block_s, alternating A B | B A | ...

    Each block first runs one untimed step (so that whatever the previous block left behind,
    e.g. spinning thread pools or cold caches, is paid outside the measurement).  `rounds`
    rounds, fewer (at least 4) when they would take longer than `budget_s`, as slow steps on a
    loaded machine do.  The garbage collector is off while timing."""
    estimate = {name: _warm_up(fn, warmup_s) for name, fn in contenders.items()}
    block = {name: int(min(20000, max(1, round(block_s / max(estimate[name], 1e-7)))))
             for name in contenders}
    per_round = sum((block[name] + 1) * estimate[name] for name in contenders)
    rounds = max(min(4, rounds), min(rounds, int(budget_s / max(per_round, 1e-9))))
    samples: dict[str, list[int]] = {name: [] for name in contenders}
    names = list(contenders)
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                fn, out = contenders[name], samples[name]
                fn()
                for _ in range(block[name]):
                    start = clock()
                    fn()
                    out.append(clock() - start)
    finally:
        gc.enable()
    return {name: Timing.of(values) for name, values in samples.items()}


def timed_steps(fn, steps: int, budget_s: float) -> Timing:
    """A few steps of a slow contender (the NumPy reference): at most `steps`, or until the
    budget is spent.  The first step is a warm-up, kept only when it alone ran past the budget."""
    clock = time.perf_counter_ns
    start = clock()
    fn()
    first = clock() - start
    if first > budget_s * 1e9:
        return Timing.of([first])
    samples: list[int] = []
    begin = clock()
    while len(samples) < steps and (not samples or clock() - begin < budget_s * 1e9):
        start = clock()
        fn()
        samples.append(clock() - start)
    return Timing.of(samples)


# ---------------------------------------------------------------------------------------------
# subprocesses: one per workload, one per compile measurement
# ---------------------------------------------------------------------------------------------
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

    `preinit`: initialise Numba's CPU target (its lazily imported lowering registries, which
    pull in scipy.linalg for BLAS) before the clock starts, to show how much of a warm compile
    is that one-time cost of the process rather than netdsl's."""
    clock = time.perf_counter
    started = clock()
    import numba  # noqa: F401  - library imports are not compile time
    numba_init = 0.0
    if preinit:
        from numba.core.registry import cpu_target
        before = clock()
        cpu_target.target_context.refresh()
        cpu_target.typing_context.refresh()
        numba_init = clock() - before
    import netdsl
    from netdsl.backends import compile_graph
    from netdsl.passes.pipeline import run_pipeline
    from netdsl.passes.training import build_training_graph
    from netdsl.passes.optimizers import make_optimizer
    from netdsl.runtime.train import HYPER_INPUTS
    imported = clock()
    workload = WORKLOAD_DEFS[workload_key]
    model = netdsl.load(workload.net)
    loaded = clock()
    graph = run_pipeline(build_training_graph(model.training_forward,
                                              make_optimizer("adam", lr=workload.lr)))
    built = clock()
    compiled = compile_graph(graph, target="cpu")
    report = compiled.report
    result = {
        "import_s": imported - started, "load_s": loaded - imported,
        "graph_s": built - loaded, "report_total_s": report.total, "phases": report.phases,
        "cache_hit": bool(report.cache_hit), "llvm_compiles": report.llvm_compiles,
        "total_s": (built - imported) + report.total, "numba_init_s": numba_init,
    }
    _say("  phase: first step " + json.dumps(result))       # survives a crash of the step
    weights = model.init(seed=0)
    state = {info.name: np.array(weights[info.name], dtype=info.value.dtype.numpy, order="C")
             if info.name in weights else
             np.zeros(tuple(info.value.shape), info.value.dtype.numpy)
             for info in graph.params}
    names = [v.name for v in graph.inputs]
    batch = [n for n in names if n not in HYPER_INPUTS]
    hyper = [n for n in HYPER_INPUTS if n in names]
    arrays = workload.data(np.random.default_rng(0))
    before = clock()
    step = compiled.bind(state, inputs=batch + hyper)
    step(*(arrays[n] for n in batch), *(workload.lr, 1.0, 1)[:len(hyper)])
    result["first_step_s"] = clock() - before
    return result


def _child_command(args, threads: int, *extra: str) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--threads", str(threads)]
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
    """The environment of a child: `threads` for Numba's pool and for OpenBLAS (which NumPy
    and netdsl's matmuls call) unless the caller set OPENBLAS_NUM_THREADS; caches if given."""
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = str(threads)
    env.setdefault("OPENBLAS_NUM_THREADS", str(threads))
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


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------
@dataclass
class Row:
    key: str
    title: str
    threads: int = 2
    netdsl: Timing | None = None
    torch: Timing | None = None
    reference: Timing | None = None
    torch_optimizer: str = ""
    threading_layer: str = ""
    error: str = ""
    report: str = ""

    def ratio(self, other: Timing | None) -> float | None:
        if other is None or self.netdsl is None:
            return None
        return other.median / self.netdsl.median


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
    print("  " + _row_line(row), flush=True)
    return row


def _row_line(row: Row) -> str:
    parts = []
    for name in ("netdsl", "torch", "reference"):
        t = getattr(row, name)
        if t is not None:
            parts.append(f"{name} {t.median:.4g} ms [{t.p10:.4g}, {t.p90:.4g}] (n={t.n})")
    ratio = row.ratio(row.torch)
    if ratio is not None:
        parts.append(f"torch/netdsl {ratio:.2f}x")
    ratio = row.ratio(row.reference)
    if ratio is not None:
        parts.append(f"reference/netdsl {ratio:.1f}x")
    return "; ".join(parts)


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") \
        else "n/a"


def machine_info(args) -> dict[str, str]:
    import numba
    try:
        import torch
        torch_version = torch.__version__ if not args.no_torch else \
            f"{torch.__version__} (not measured: --no-torch)"
    except ImportError:
        torch_version = "not installed"
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    names = ("NUMBA_THREADING_LAYER", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "NETDSL_CACHE_DIR", "NUMBA_CACHE_DIR")
    env = ", ".join(f"{n}={os.environ[n]}" for n in names if n in os.environ)
    return {
        "cpu": model, "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "numpy": np.__version__,
        "numba": numba.__version__, "torch": torch_version,
        "env": env or "none set", "load": _load(),
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }


def _cell(t: Timing | None) -> str:
    return "—" if t is None else f"{t.median:.4g} ({t.p10:.3g}–{t.p90:.3g})"


def _ratio_cell(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}×"


def targets_met(rows: list[Row], compile_result: dict | None) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for every target that was measured."""
    out = []
    wording = {"xor": "XOR step ≥ 20× faster than torch eager",
               "mlp": "MLP step at least as fast as torch (fused Adam)",
               "lenet": "LeNet-5 step at least as fast as torch"}
    several = len({row.threads for row in rows}) > 1
    for row in rows:
        plural = "s" if row.threads != 1 else ""
        target = wording[row.key] + (f" ({row.threads} thread{plural} each)" if several else "")
        ratio = row.ratio(row.torch)
        if ratio is None:
            out.append((target, row.error or "torch not measured", "not measured"))
        else:
            verdict = "met" if ratio >= TARGETS[row.key] else "missed"
            spread = max(t.p90 / max(t.p10, 1e-12) for t in (row.netdsl, row.torch))
            if spread > 3:
                verdict += f" (unreliable: p90/p10 = {spread:.0f} — contention)"
            out.append((target, f"torch/netdsl {ratio:.2f}×", verdict))
    if compile_result:
        for kind in ("cold", "warm"):
            limit = TARGETS[kind]
            target = f"{kind} compile of the MLP training step ≤ {limit:g} s"
            results = compile_result.get(kind) or []
            if not results:
                errors = [e for e in compile_result.get("errors", [])
                          if e.startswith(kind + ":")]
                out.append((target, errors[0] if errors else "—", "not measured"))
                continue
            value = float(np.median([r["total_s"] for r in results]))
            verdict = "met" if value <= limit else "missed"
            if kind == "warm" and not all(r["cache_hit"] for r in results):
                verdict += " (no cache hit!)"
            if any(r.get("failure") for r in results):
                verdict += " (but the compiled step crashed)"
            out.append((target, f"{value:.3f} s", verdict))
    return out


def _numba_init(compile_result: dict) -> str:
    values = [r["numba_init_s"] for r in compile_result.get("warm, Numba pre-initialised", [])
              if r.get("numba_init_s")]
    return f"{values[0]:.2f} s here" if values else "not measured"


def render_results(rows, compile_result, info, args) -> str:
    lines = ["# netdsl benchmark results", "",
             f"Written by `{' '.join(['python benchmarks/run.py'] + args.argv)}` on "
             f"{info['date']} "
             "(see README.md for the method). Median ms per training step, p10–p90 in "
             "brackets; ratios are of medians, > 1 means netdsl is faster. netdsl and torch "
             "ran interleaved in one process per workload; the reference backend (NumPy "
             "interpreter) ran a few steps after them.", "", "## Machine", ""]
    layers = sorted({row.threading_layer for row in rows if row.threading_layer})
    lines += [f"- CPU: {info['cpu']}, {info['cores']} cores ({info['os']})",
              f"- Python {info['python']}, NumPy {info['numpy']}, Numba {info['numba']}, "
              f"PyTorch {info['torch']}",
              f"- threads N (per row): torch.set_num_threads(N), NUMBA_NUM_THREADS=N and "
              f"OPENBLAS_NUM_THREADS=N (unless set); Numba threading layer: "
              f"{', '.join(layers) or 'n/a'}; settings in the environment: {info['env']}",
              f"- load average (1/5/15 min) at the start: {args.load_at_start}, at the end: "
              f"{info['load']} (the machine is shared: other work competes for the cores)",
              ""]
    if rows:
        lines += ["## Training step (ms)", "",
                  "| workload | threads | netdsl cpu | torch eager | reference | torch/netdsl "
                  "| reference/netdsl |",
                  "|---|---|---|---|---|---|---|"]
        for row in rows:
            if row.error:
                lines.append(f"| {row.title} | {row.threads} | failed: {row.error} | | | | |")
                continue
            lines.append(f"| {row.title} | {row.threads} | {_cell(row.netdsl)} | "
                         f"{_cell(row.torch)} | "
                         f"{_cell(row.reference)} | {_ratio_cell(row.ratio(row.torch))} | "
                         f"{_ratio_cell(row.ratio(row.reference), 1)} |")
        lines.append("")
        lines.append("Steps timed (netdsl / torch / reference): " + "; ".join(
            f"{row.key}@{row.threads} {row.netdsl.n if row.netdsl else 0} / "
            f"{row.torch.n if row.torch else 0} / "
            f"{row.reference.n if row.reference else 0}" for row in rows) + ".")
        optim = sorted({row.torch_optimizer for row in rows if row.torch_optimizer})
        if optim:
            lines.append(f"PyTorch optimiser: {', '.join(optim)}.")
        lines.append("")
        lines += [f"- {row.key}@{row.threads}: {row.report}" for row in rows if row.report]
        lines.append("")
    if compile_result:
        lines += ["## Compile time of the MLP training step (s)", "",
                  "Each in a fresh subprocess; cold with empty NETDSL_CACHE_DIR and "
                  "NUMBA_CACHE_DIR, warm with the same dirs again. *Total* = parse and check + "
                  "training graph + pipeline (Python) + CompileReport.total; imports are shown "
                  "apart and not counted. The first step (bind + one call) checks that the "
                  "compiled or cached code runs. The last row initialises Numba's CPU target "
                  "(lowering registries, scipy.linalg for BLAS: a one-time cost per process, "
                  f"{_numba_init(compile_result)}) before the clock starts; it is shown for "
                  "information, the verdict uses the plain warm runs.", "",
                  "| run | total | graph building | compile report | phases (ms) | cache hit "
                  "| LLVM compiles | first step | imports |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for kind in ("cold", "warm", "warm, Numba pre-initialised"):
            for r in compile_result.get(kind) or []:
                phases = ", ".join(f"{k} {v * 1000:.0f}" for k, v in r["phases"].items())
                first = f"{r['first_step_s'] * 1000:.1f} ms" if "first_step_s" in r else \
                    f"**{r['failure']}**"
                lines.append(f"| {kind} | {r['total_s']:.3f} | {r['load_s'] + r['graph_s']:.3f} "
                             f"| {r['report_total_s']:.3f} | {phases} | {r['cache_hit']} | "
                             f"{r['llvm_compiles']} | {first} | {r['import_s']:.2f} |")
        for error in compile_result.get("errors", []):
            lines.append(f"| {error.split(':')[0]} | failed: {error.split(': ', 1)[1]} "
                         "| | | | | | | |")
        lines.append("")
    verdicts = targets_met(rows, compile_result)
    if verdicts:
        lines += ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
        lines += [f"| {t} | {m} | {v} |" for t, m, v in verdicts]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter blocks (~40 s)")
    parser.add_argument("--only", default="xor,mlp,lenet,compile",
                        help="comma-separated subset of xor,mlp,lenet,compile")
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
        parser.error(f"unknown workload {unknown[0]!r} (known: xor, mlp, lenet, compile)")
    if not args.no_torch and import_torch(args.threads) is None:
        print("PyTorch is not installed: timing netdsl (and the reference) only", flush=True)
        args.no_torch = True
    args.load_at_start = _load()
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
        RESULTS.write_text(text + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
