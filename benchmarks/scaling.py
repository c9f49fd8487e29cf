"""Scaling of the MLP training step with batch size and width: netdsl cpu against torch eager.

    python -m benchmarks.scaling [--threads 2,1] [--write] [--smoke]

Points: batch 1, 4, 16, 64, 256, 1,024 at width 256 (784-256-256-10), and widths 64, 256,
1,024 at batch 128 (784-W-W-10); relu, cross_entropy, Adam(lr=1e-3), as the `mlp` workload
of run.py (workloads.py's data, torch module and steps; the width is the only change to
models/mlp.net).  Each thread count runs in its own subprocess (processes.py: N threads for
torch, Numba and OpenBLAS), which times every point in turn with timing.interleaved: netdsl
and torch eager (fused Adam) alternate in blocks, each step timed on its own; the median,
p10-p90 and the ratio torch/netdsl of the medians (> 1: netdsl is faster) go into a table,
with the load average at the start and end of each subprocess.  torch.compile is not timed:
the CPU benchmark compares against eager (run.py does too), and compiling nine shapes would
take longer than the whole run.

--write replaces the "## Scaling" section of benchmarks/RESULTS.md and leaves the others (run.py
--write keeps this section in turn).  --smoke: toy sizes, one round, one thread (the test).
3-5 minutes on two cores (more under load).
"""
from __future__ import annotations

import dataclasses
import functools
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
for _path in (ROOT, HERE):              # this checkout, and the benchmark's sibling modules
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402

from processes import _threading_layer, section_main  # noqa: E402
from report import Row, _cell, _ratio_cell, load_average  # noqa: E402
from timing import Timing, interleaved  # noqa: E402
from workloads import MODELS, WORKLOAD_DEFS, import_torch, mlp_data, mlp_torch  # noqa: E402
from workloads import netdsl_stepper, torch_stepper  # noqa: E402

HEADING = "## Scaling: MLP training step against batch size and width"
BATCHES, WIDTH = (1, 4, 16, 64, 256, 1024), 256          # the batch sweep, at this width
WIDTHS, WIDTH_BATCH = (64, 256, 1024), 128               # the width sweep, at this batch
SMOKE_BATCHES, SMOKE_WIDTH, SMOKE_WIDTHS, SMOKE_WIDTH_BATCH = (1, 4), 16, (16, 32), 4
# Per point: up to 16 rounds of ~0.15 s blocks, cut (to at least 4) where they would pass 8 s:
# the large points get fewer steps, the whole run stays within a few minutes.
FULL_TIMING = dict(rounds=16, block_s=0.15, warmup_s=0.3, budget_s=8.0)
SMOKE_TIMING = dict(rounds=1, block_s=1e-9, warmup_s=0.0, budget_s=0.0)


def sweeps(smoke: bool) -> list[tuple[str, int, int]]:
    """(sweep, batch, width) in the order they are timed."""
    if smoke:
        return ([("batch", b, SMOKE_WIDTH) for b in SMOKE_BATCHES] +
                [("width", SMOKE_WIDTH_BATCH, w) for w in SMOKE_WIDTHS])
    return [("batch", b, WIDTH) for b in BATCHES] + [("width", WIDTH_BATCH, w) for w in WIDTHS]


def mlp_workload(batch: int, width: int, directory: Path):
    """run.py's `mlp` workload with both hidden layers `width` wide and batches of `batch`."""
    base = WORKLOAD_DEFS["mlp"]
    source = (MODELS / "mlp.net").read_text()
    assert source.count("Dense(256)") == 2, "models/mlp.net no longer has two Dense(256)"
    net = directory / f"mlp_{width}.net"
    net.write_text(source.replace("Dense(256)", f"Dense({width})"))
    return dataclasses.replace(
        base, title=f"MLP 784-{width}-{width}-10, batch {batch}", net=net,
        data=mlp_data(batch), torch_model=functools.partial(mlp_torch,
                                                            widths=(784, width, width, 10)))


def scaling_child(threads: int, smoke: bool) -> dict:
    """Time every point in this process (its thread counts set by the parent's environment)."""
    torch = import_torch(threads)
    timing = SMOKE_TIMING if smoke else FULL_TIMING
    result: dict = {"threads": threads, "load_start": load_average(), "points": []}
    with tempfile.TemporaryDirectory(prefix="netdsl-scaling-") as tmp:
        for sweep, batch, width in sweeps(smoke):
            print(f"  phase: {sweep} sweep, batch {batch}, width {width}", file=sys.stderr,
                  flush=True)
            workload = mlp_workload(batch, width, Path(tmp))
            arrays = workload.data(np.random.default_rng(0))
            contenders = {"netdsl": netdsl_stepper(workload, arrays, "cpu")[0]}
            point = {"sweep": sweep, "batch": batch, "width": width}
            if torch is not None:
                contenders["torch"], point["torch_optimizer"] = torch_stepper(torch, workload,
                                                                              arrays)
            for name, t in interleaved(contenders, **timing).items():
                point[name] = vars(t)
            result["points"].append(point)
            row = _row(point, threads)
            print(f"  {threads} thread(s) {sweep} sweep, batch {batch}, width {width}: "
                  f"netdsl {_cell(row.netdsl)}, torch {_cell(row.torch)}, "
                  f"torch/netdsl {_ratio_cell(row.ratio(row.torch))}", file=sys.stderr,
                  flush=True)
    result["threading_layer"] = _threading_layer()
    result["load_end"] = load_average()
    return result


def _row(point: dict, threads: int) -> Row:
    row = Row("scaling", f"{point['sweep']} {point['batch']}x{point['width']}", threads)
    row.netdsl = Timing(**point["netdsl"])
    row.torch = Timing(**point["torch"]) if "torch" in point else None
    return row


def _contended(row: Row, one_thread: Row | None) -> str:
    """" (contended)" when the row's times are the machine's load rather than the code's."""
    for name in ("netdsl", "torch"):
        t, alone = getattr(row, name), getattr(one_thread, name, None)
        if t is None:
            continue
        if t.p90 / max(t.p10, 1e-12) > 3 or (alone is not None and row.threads > 1 and
                                            t.median > 2 * alone.median):
            return " (contended)"
    return ""


def render_section(children: list[dict], command: str, info: dict, seconds: float) -> str:
    """The scaling section of RESULTS.md: one table per sweep, a row per point and threads."""
    optimisers = sorted({p.get("torch_optimizer", "") for c in children for p in c["points"]
                         if p.get("torch_optimizer")})
    loads = "; ".join(f"{c['threads']} thread(s): {c['load_start']} → {c['load_end']}"
                      for c in children)
    lines = [HEADING, "",
             f"Written by `{command}` on {info['date']} in {seconds:.0f} s (see README.md, "
             "*Scaling*). Median ms per step, p10–p90 in brackets; torch/netdsl is the ratio of "
             "the medians (> 1: netdsl is faster), measured interleaved in one process per "
             f"thread count. torch eager with {', '.join(optimisers) or 'no torch'}; "
             "torch.compile not timed. Threads N: torch.set_num_threads(N), NUMBA_NUM_THREADS=N, "
             "OPENBLAS_NUM_THREADS=N, MKL_NUM_THREADS=N (unless set); Numba threading layer: "
             f"{', '.join(sorted({c['threading_layer'] for c in children}))}.",
             "",
             f"Load average (1/5/15 min) at the start → end of each process: {loads}. The "
             "machine is shared: absolute times drift by 20–30 % from run to run, the ratios "
             "of one run hold. *contended*: a contender's p90/p10 exceeds 3, or with more "
             "threads its median is over twice its one-thread median: its threads waited for "
             "cores held by other processes, and the row measures the neighbours, not the "
             "code.", ""]
    single = {(p["sweep"], p["batch"], p["width"]): _row(p, 1) for c in children
              if c["threads"] == 1 for p in c["points"]}
    for sweep, label in (("batch", "batch (784-W-W-10)"), ("width", "width W (784-W-W-10)")):
        points = sorted({(p["batch"], p["width"]) for c in children for p in c["points"]
                         if p["sweep"] == sweep}, key=lambda bw: bw[0] if sweep == "batch"
                        else bw[1])
        if not points:
            continue
        lines += [f"| {label} | batch × W | threads | netdsl cpu | torch eager | torch/netdsl "
                  "| steps (netdsl / torch) |", "|---|---|---|---|---|---|---|"]
        for batch, width in points:
            for child in children:
                for point in child["points"]:
                    if (point["sweep"], point["batch"], point["width"]) != (sweep, batch, width):
                        continue
                    row = _row(point, child["threads"])
                    key = batch if sweep == "batch" else width
                    flag = _contended(row, single.get((sweep, batch, width)))
                    lines.append(f"| {key} | {batch} × {width} | {row.threads} | "
                                 f"{_cell(row.netdsl)} | {_cell(row.torch)} | "
                                 f"{_ratio_cell(row.ratio(row.torch))}{flag} | "
                                 f"{row.netdsl.n} / {row.torch.n if row.torch else 0} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    return section_main(argv, description=__doc__.splitlines()[0], module="benchmarks.scaling",
                        label="MLP scaling", what="scaling",
                        smoke_help="toy sizes, one round (checks the script; numbers mean nothing)",
                        child=scaling_child, render=render_section, heading=HEADING,
                        results=RESULTS)


if __name__ == "__main__":
    sys.exit(main())
