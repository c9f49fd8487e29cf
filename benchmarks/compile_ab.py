"""Cold compiles of two versions of netdsl, alternated and paired: what a change does to compile
time on a machine whose speed drifts more than the change.

    python -m benchmarks.compile_ab BASE [NEW] [--models lenet,mlp] [--rounds 10] [--jobs 2]

BASE and NEW are git revisions of this repository, or `.` for this checkout as it is (NEW's
default).  Each revision is checked out in a temporary worktree (removed at the end) and
byte-compiled; each round then compiles every model's training step cold in a fresh process
per version (compile_times.py's child: empty NETDSL_CACHE_DIR and NUMBA_CACHE_DIR), the two
in alternating order, one after the other.  `--jobs 1` turns off the compile helper
(NETDSL_COMPILE_JOBS), for one process's work alone.

Reported per model: each version's median and p10-p90 of the step compile's seconds and of
the child's CPU seconds, and the paired differences NEW - BASE round by round (median,
p10-p90, how many rounds NEW was faster).  On this shared two-core machine `compile_times`
medians of the same code taken fifteen minutes apart differed by 40 % (2.75 against 4.00 s
for the MLP, stop 53); pairs taken seconds apart share the machine's state, and their median
resolves changes of a few tenths of a second in ten rounds.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.compile_times import ROOT, _child, _env

MODELS = {"mlp": "benchmarks/models/mlp.net", "lenet": "benchmarks/models/lenet5.net",
          "deep": "examples/deep_residual.net"}


def _spread(values: list[float]) -> str:
    """"median (p10-p90)" of `values`."""
    if len(values) < 2:
        return f"{values[0]:.2f}" if values else "-"
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return f"{statistics.median(values):.2f} ({deciles[0]:.2f}-{deciles[-1]:.2f})"


def paired(base: list[float], new: list[float]) -> dict:
    """NEW - BASE round by round: median, p10, p90 and how many rounds NEW was faster."""
    differences = [b - a for a, b in zip(base, new)]
    if not differences:
        return {"rounds": 0}
    deciles = (statistics.quantiles(differences, n=10, method="inclusive")
               if len(differences) > 1 else differences * 9)
    return {"rounds": len(differences), "median": statistics.median(differences),
            "p10": deciles[0], "p90": deciles[-1],
            "faster": sum(difference < 0 for difference in differences)}


def _checkout(revision: str, into: Path) -> Path:
    """The tree of `revision` (`.`: this checkout), byte-compiled."""
    if revision == ".":
        tree = ROOT
    else:
        tree = into / revision.replace("/", "_")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", "-q",
                        str(tree), revision], check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "netdsl", "benchmarks"],
                   cwd=tree, check=True, stdout=subprocess.DEVNULL)
    return tree


def _compile(tree: Path, model: str, jobs: int | None) -> tuple[float, float] | None:
    """(step compile seconds, the child's CPU seconds) of one cold compile in `tree`."""
    with tempfile.TemporaryDirectory() as caches:
        env = {**_env(Path(caches)), "PYTHONPATH": str(tree)}      # compile_times' cold caches
        if jobs is not None:
            env["NETDSL_COMPILE_JOBS"] = str(jobs)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = subprocess.run(_child("compile", str(tree / MODELS[model])), cwd=tree,
                                env=env, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not lines:
        print(f"{tree} {model}: failed\n{result.stderr[-2000:]}", file=sys.stderr)
        return None
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(lines[-1])["seconds"], cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="git revision, or . for this checkout")
    parser.add_argument("new", nargs="?", default=".", help="git revision, or . (default)")
    parser.add_argument("--models", default="lenet,mlp", help=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--jobs", type=int, choices=(1, 2), help="NETDSL_COMPILE_JOBS")
    args = parser.parse_args(argv)
    models = [model for model in args.models.split(",") if model]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    with tempfile.TemporaryDirectory(prefix="netdsl-ab-") as scratch:
        trees = {}
        try:
            for label, revision in (("base", args.base), ("new", args.new)):
                trees[label] = _checkout(revision, Path(scratch))
            for model in models:
                times = {"base": [], "new": []}
                cpus = {"base": [], "new": []}
                for round_ in range(args.rounds):
                    order = ("base", "new") if round_ % 2 == 0 else ("new", "base")
                    measured = {label: _compile(trees[label], model, args.jobs)
                                for label in order}
                    if None in measured.values():
                        continue                     # a failed pair is dropped whole
                    for label, (seconds, cpu) in measured.items():
                        times[label].append(seconds)
                        cpus[label].append(cpu)
                _report(model, args, times, cpus)
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                    str(tree)], check=False)
    return 0


def _report(model: str, args, times: dict, cpus: dict) -> None:
    print(f"\n{model}: {len(times['base'])} pairs, jobs {args.jobs or 'default'}")
    for label, revision in (("base", args.base), ("new", args.new)):
        print(f"  {label} {revision}: compile {_spread(times[label])} s, "
              f"CPU {_spread(cpus[label])} s")
    for what, values in (("compile", times), ("CPU", cpus)):
        result = paired(values["base"], values["new"])
        if result["rounds"]:
            print(f"  new - base, {what}: median {result['median']:+.2f} s "
                  f"(p10 {result['p10']:+.2f}, p90 {result['p90']:+.2f}); new faster in "
                  f"{result['faster']} of {result['rounds']}")


if __name__ == "__main__":
    sys.exit(main())
