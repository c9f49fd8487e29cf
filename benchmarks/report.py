"""The report: one Row per workload and thread count, the targets, and RESULTS.md's text."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from dataclasses import dataclass

import numpy as np

from timing import Timing

# Targets of the issues (14: CPU performance): ratio torch/netdsl at least this much; compile
# seconds at most this.  Workloads without one (the generative models) are reported side by
# side only.
TARGETS = {"xor": 20.0, "mlp": 1.3, "lenet": 1.2, "lstm": 1.0, "gru": 1.0, "transformer": 0.8,
           "forward": 1.2, "cold": 3.0, "warm": 0.3}


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


def row_line(row: Row) -> str:
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


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") \
        else "n/a"


def compiled_blas() -> str:
    """The BLAS netdsl's compiled products call (blas_library.py: SciPy's OpenBLAS or MKL), its
    version and the kernels it picked for this processor, as threadpoolctl reports them."""
    try:
        from netdsl.backends.numba_cpu.blas_library import chosen, narrow_library, own_sgemm
        from threadpoolctl import threadpool_info
        path = os.path.realpath(chosen().path)
    except ImportError:
        return "n/a"
    own = "; float32 products of 16 columns or more in netdsl's own kernels" \
        if own_sgemm() else ""
    if narrow_library() is not chosen():
        own += "; products of 2 to 15 columns in SciPy's OpenBLAS, one thread"
    for library in threadpool_info():
        if library.get("user_api") == "blas" and \
                os.path.realpath(library.get("filepath", "")) == path:
            kernels = library.get("architecture")
            owner = "Intel MKL, sequential" if chosen().name == "mkl" else "SciPy's OpenBLAS"
            return (f"{owner} ({library.get('internal_api', 'BLAS')} "
                    f"{library.get('version', '')}"
                    + (f", {kernels} kernels" if kernels else "") + ")" + own)
    return "n/a"


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
    # OPENBLAS_CORETYPE picks the kernels of the BLAS netdsl's products call: where it was set
    # to Haswell (AVX2) on this AVX-512 processor, its SkylakeX kernels ran sgemm 1.5-1.8x
    # faster (benchmarks/README.md, *BLAS: threads and kernels*); `blas` says which ran.
    names = ("NUMBA_THREADING_LAYER", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_NUM_THREADS", "OMP_WAIT_POLICY",
             "NETDSL_CACHE_DIR", "NUMBA_CACHE_DIR", "NETDSL_BLAS_THREADS")
    env = ", ".join(f"{n}={os.environ[n]}" for n in names if n in os.environ)
    return {
        "cpu": model, "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "numpy": np.__version__,
        "numba": numba.__version__, "torch": torch_version,
        "env": env or "none set", "load": load_average(), "blas": compiled_blas(),
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
               "mlp": "MLP step ≥ 1.3× torch's speed (fused Adam)",
               "lenet": "LeNet-5 step ≥ 1.2× torch's speed",
               "resnet": "ResNet (batch norm) step beside torch",
               "lstm": "LSTM step at least as fast as torch",
               "gru": "GRU step at least as fast as torch",
               "transformer": "Transformer step ≥ 0.8× torch's speed",
               "forward": "MLP inference forward (b128) ≥ 1.2× torch's speed",
               "vae": "VAE step beside torch", "gan": "GAN step beside torch",
               "diffusion": "DDPM step beside torch"}
    several = len({row.threads for row in rows}) > 1
    for row in rows:
        plural = "s" if row.threads != 1 else ""
        target = wording[row.key] + (f" ({row.threads} thread{plural} each)" if several else "")
        ratio = row.ratio(row.torch)
        if ratio is None:
            out.append((target, row.error or "torch not measured", "not measured"))
        else:
            verdict = "reported (no target)" if row.key not in TARGETS else \
                "met" if ratio >= TARGETS[row.key] else "missed"
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
              f"PyTorch {info['torch']}; netdsl's products: {info.get('blas', 'n/a')}",
              f"- threads N (per row): torch.set_num_threads(N), NUMBA_NUM_THREADS=N, "
              f"OPENBLAS_NUM_THREADS=N and MKL_NUM_THREADS=N (unless set); Numba threading layer: "
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
                  "(its lowering registries: a one-time cost per process, "
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


def _section_span(text: str, heading: str) -> tuple[int, int] | None:
    """(first, end) line indices of the "## " section starting with `heading`, or None."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(heading)]
    if not starts:
        return None
    end = next((i for i in range(starts[0] + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    return starts[0], end


def section(text: str, heading: str) -> str:
    """The section of RESULTS.md's `text` under `heading` (to the next "## "), or ""."""
    span = _section_span(text, heading)
    return "" if span is None else "\n".join(text.splitlines()[span[0]:span[1]]).strip("\n")


def replace_section(text: str, heading: str, body: str) -> str:
    """`text` with its section under `heading` replaced by `body` (appended if absent): two
    commands write RESULTS.md (run.py and scaling.py), each its own sections."""
    lines = text.splitlines()
    span = _section_span(text, heading)
    new = body.strip("\n").splitlines()
    if span is None:
        lines = (lines + [""] if lines and lines[-1].strip() else lines) + new
    else:
        lines = lines[:span[0]] + new + ([""] if span[1] < len(lines) else []) + lines[span[1]:]
    return "\n".join(lines).rstrip("\n") + "\n"
