"""Compile times of the Numba CPU target: cold and warm compiles, and a warm `netdsl train` start.

    python -m benchmarks.compile_times [--write] [--repeats N] [--only mlp,lenet,deep,start]

Every measurement is a fresh subprocess.  Cold: new, empty NETDSL_CACHE_DIR and NUMBA_CACHE_DIR
(so Numba's library kernels, lowerings/, compile too); warm: a fresh process on the same
directories once the cold run has filled them.

  mlp, lenet   the training step of benchmarks/models/mlp.net and lenet5.net as `fit` compiles
               it (compile_step with the train section's optimiser): parse, training graph,
               passes and the target's stages; imports are not counted (shown apart; Lark's
               too, which `import netdsl` no longer imports: see frontend/parse_cache.py);
               and LeNet's once more cold after the MLP's compile filled the caches
  deep         examples/deep_residual.net: the training step alone (as above), and one epoch
               of `netdsl train --epochs 1` as a whole process (imports, data, the step's and
               the validation graph's compiles, the epoch)
  start        `netdsl train examples/xor.net` with everything cached: from starting the
               process to the end of the first training step (the child stops there)

Reported: median and p10-p90 of the runs, the load average at the start and the end (the
machine is shared: compare medians taken in the same period).  --write replaces the
"## Compile times" section of benchmarks/RESULTS.md and leaves the others (`run.py --write`
rewrites the file keeping only its Scaling section: run this after it).  Three to five minutes
on two cores (more under load).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
HEADING = "## Compile times"
MODELS = {"mlp": HERE / "models" / "mlp.net", "lenet": HERE / "models" / "lenet5.net",
          "deep": ROOT / "examples" / "deep_residual.net"}
START_MODEL = ROOT / "examples" / "xor.net"
# The targets of the issue, seconds.
TARGETS = {"mlp cold": 3.0, "lenet cold": 4.0, "deep epoch cold": 10.0, "start warm": 0.8}


def compile_child(path: str) -> dict:
    """Compile one training step in this fresh process (the clock starts after the imports)."""
    clock = time.perf_counter
    started = clock()
    import netdsl
    import netdsl.frontend.parser  # noqa: F401  (Lark: imported only on a parse-cache miss)
    from netdsl.compiler import Training, compile_step
    imported = clock()
    model = netdsl.load(path)
    compiled = compile_step(model.training_forward, "cpu",
                            Training.from_config(model.train_config))
    report = compiled.report
    return {"seconds": clock() - imported, "import_s": imported - started,
            "llvm_compiles": report.llvm_compiles, "cache_hit": bool(report.cache_hit),
            "phases": report.phases, "kernels": report.kernels}


def start_child(path: str) -> None:
    """Run `netdsl train` and stop at the end of its first training step: prints the seconds
    since the parent started this process ($NETDSL_BENCH_SPAWNED, wall clock)."""
    spawned = float(os.environ["NETDSL_BENCH_SPAWNED"])
    from netdsl.backends.numba_cpu import compiled as compiled_module
    from netdsl.cli import main
    bind = compiled_module.CompiledGraph.bind

    def timed_bind(self, *args, **kwargs):
        step = bind(self, *args, **kwargs)

        def first(*inputs):
            result = step(*inputs)
            print(json.dumps({"seconds": time.time() - spawned}), flush=True)
            os._exit(0)
            return result
        first.__dict__.update(step.__dict__)        # input_names, output_names, bound
        return first
    compiled_module.CompiledGraph.bind = timed_bind
    sys.argv = ["netdsl", "train", path, "--epochs", "1", "--quiet"]
    main()                  # as the console script calls it: the process is the command's
    raise SystemExit("the training step never ran")


def _run(command: list[str], env: dict) -> tuple[dict | None, float]:
    """(the child's JSON line or None, wall seconds of the whole process)."""
    env = dict(env, NETDSL_BENCH_SPAWNED=repr(time.time()))
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(ROOT))
    wall = time.perf_counter() - started
    if process.returncode != 0:
        tail = (process.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"  failed (exit {process.returncode}): {tail}", flush=True)
        return None, wall
    lines = [l for l in process.stdout.splitlines() if l.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), wall


def _env(directory: Path) -> dict:
    env = dict(os.environ)
    env["NETDSL_CACHE_DIR"] = str(directory / "netdsl")
    env["NUMBA_CACHE_DIR"] = str(directory / "numba")
    return env


def _child(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.compile_times", "--child", *arguments]


def measure(only: set[str], repeats: int, deep_repeats: int) -> dict[str, list[dict]]:
    """name -> the runs (each a dict with "seconds"), cold and warm, for the chosen items."""
    runs: dict[str, list[dict]] = {}

    def add(name: str, result: dict | None) -> None:
        if result is not None:
            runs.setdefault(name, []).append(result)
            extra = f", {result['llvm_compiles']} LLVM compiles" if "llvm_compiles" in result \
                else ""
            print(f"  {name}: {result['seconds']:.2f} s{extra}", flush=True)

    for key in ("mlp", "lenet", "deep"):
        if key not in only:
            continue
        step = "deep step" if key == "deep" else key
        for _ in range(deep_repeats if key == "deep" else repeats):
            with tempfile.TemporaryDirectory(prefix="netdsl-compile-times-") as tmp:
                env = _env(Path(tmp))
                add(f"{step} cold", _run(_child("compile", str(MODELS[key])), env)[0])
                add(f"{step} warm", _run(_child("compile", str(MODELS[key])), env)[0])
            if key == "lenet":             # after another model filled the caches
                with tempfile.TemporaryDirectory(prefix="netdsl-compile-times-") as tmp:
                    env = _env(Path(tmp))
                    _run(_child("compile", str(MODELS["mlp"])), env)
                    add("lenet after mlp", _run(_child("compile", str(MODELS[key])), env)[0])
            if key == "deep":              # one epoch as a whole process, its own empty dirs
                with tempfile.TemporaryDirectory(prefix="netdsl-compile-times-") as tmp:
                    command = [sys.executable, "-m", "netdsl", "train", str(MODELS[key]),
                               "--epochs", "1", "--quiet"]
                    result, wall = _run(command, _env(Path(tmp)))
                    add("deep epoch cold", None if result is None else {"seconds": wall})
    if "start" in only:
        with tempfile.TemporaryDirectory(prefix="netdsl-compile-times-") as tmp:
            env = _env(Path(tmp))
            _run(_child("start", str(START_MODEL)), env)          # fills the caches
            for _ in range(repeats + 2):
                add("start warm", _run(_child("start", str(START_MODEL)), env)[0])
    return runs


def summary(runs: dict[str, list[dict]], loads: tuple[str, str], argv: list[str]) -> str:
    import numpy as np
    arguments = " " + " ".join(argv) if argv else ""
    lines = [HEADING, "",
             f"Written by `python -m benchmarks.compile_times{arguments}`"
             f" on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
             f"{loads[0]} at the start, {loads[1]} at the end (two shared cores: compare "
             "medians taken in the same period).  Each run a fresh process; cold: empty "
             "NETDSL_CACHE_DIR and NUMBA_CACHE_DIR (Numba's library kernels compile too); warm: "
             "the same directories again.  Step compiles count parse, training graph, passes "
             "and the target's stages, not imports; *deep epoch* is `netdsl train "
             "examples/deep_residual.net --epochs 1` as a whole process; *start* is `netdsl "
             "train examples/xor.net` from process start to the end of its first step; "
             "*lenet after mlp*: LeNet's step cold but for what the MLP's compile left in the "
             "caches (the library kernels and loop nests the two share: Numba's cache and the "
             "content-addressed modules), what a second model costs.",
             "", "| what | runs | median (s) | p10-p90 (s) | LLVM compiles | target | verdict |",
             "|---|---|---|---|---|---|---|"]
    for name in ("mlp cold", "mlp warm", "lenet cold", "lenet warm", "lenet after mlp",
                 "deep step cold",
                 "deep step warm", "deep epoch cold", "start warm"):
        values = [r["seconds"] for r in runs.get(name, [])]
        if not values:
            continue
        median = float(np.median(values))
        p10, p90 = np.percentile(values, [10, 90])
        compiles = sorted({r["llvm_compiles"] for r in runs[name] if "llvm_compiles" in r})
        target = TARGETS.get(name)
        verdict = "" if target is None else ("met" if median <= target else "missed")
        lines.append(f"| {name} | {len(values)} | {median:.2f} | {p10:.2f}-{p90:.2f} | "
                     f"{', '.join(map(str, compiles)) or '-'} | "
                     f"{'' if target is None else f'<= {target:g}'} | {verdict} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the section of RESULTS.md")
    parser.add_argument("--repeats", type=int, default=3, help="cold runs of mlp and lenet")
    parser.add_argument("--deep-repeats", type=int, default=1, help="cold runs of deep")
    parser.add_argument("--only", default="mlp,lenet,deep,start")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, path = args.child
        if kind == "start":
            start_child(path)
        print(json.dumps(compile_child(path)), flush=True)
        return 0
    sys.path.insert(0, str(HERE))
    from report import load_average, replace_section
    only = set(args.only.split(","))
    start = load_average()
    runs = measure(only, args.repeats, args.deep_repeats)
    text = summary(runs, (start, load_average()), [a for a in argv if a != "--write"])
    print(text)
    if args.write:
        old = RESULTS.read_text() if RESULTS.exists() else ""
        RESULTS.write_text(replace_section(old, HEADING, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
