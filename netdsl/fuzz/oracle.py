"""The oracle: run one program on `cpu` and on `reference` and say whether they disagree.

A program's text is lowered by the real front end (so the front end and lowering are tested
too), then three graphs are compiled and compared, each as the runtime builds it:

* `grad`: the loss, every gradient (`passes.training.loss_and_grad_graph`) and the forward
  outputs in one graph, through the pass pipeline -- what `Model.loss_and_grad` runs;
* `forward`: the inference graph as `Model.forward` / `netdsl run` compile it;
* `train`: two optimiser steps (`build_training_graph`, SGD with momentum or Adam, sometimes
  with weight decay and clipping), comparing the outputs and every updated parameter and
  optimiser state -- what `fit` runs.

Values agree when |cpu - ref| <= rtol * |ref| + atol (rtol 1e-4, atol 1e-4 * max(1, max|ref|)
for each compared tensor).  Where they do not, the reference is run again in float64 (the
graph promoted by passes/precision.py): the difference is only rounding when cpu is within
rtol of the float64 truth plus eight times the float32 reference's own largest error on that
tensor.  Anything else -- a wrong number, a NaN the reference does not produce, a crash in
any stage, a program the front end refuses -- is a `Finding`.
"""
from __future__ import annotations

import os
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Error
from .program import DataSpec, Program

RTOL = 1e-4
ATOL = 1e-4
MODES = ("grad", "forward", "train")


@dataclass
class Finding:
    """Why a program failed: `kind` groups findings (the campaign counts them by kind)."""

    kind: str                       # mismatch:<mode> | nan:<mode> | crash:<stage>:<Type> | rejected
    detail: str
    mode: str = ""

    def same_kind(self, other: "Finding | None") -> bool:
        return other is not None and other.kind == self.kind


@dataclass
class Options:
    """How to compile and what to compare."""

    modes: tuple[str, ...] = MODES
    parallel_min: int | None = None     # CodegenOptions.parallel_min (None: the default)
    optimizer: str = "adam"
    clip_norm: float | None = None
    weight_decay: float = 0.0
    cache_dir: str | None = None
    steps: int = 2

    def to_json(self) -> str:
        import json
        return json.dumps({"modes": list(self.modes), "parallel_min": self.parallel_min,
                           "optimizer": self.optimizer, "clip_norm": self.clip_norm,
                           "weight_decay": self.weight_decay, "steps": self.steps})

    @staticmethod
    def from_json(text: str) -> "Options":
        import json
        data = json.loads(text)
        data["modes"] = tuple(data.get("modes", MODES))
        return Options(**data)


def options_for(seed: int, rotate: bool = False) -> Options:
    """The compile and training options a campaign uses for program `seed` (varied); with
    `rotate`, one mode per program, in turn."""
    rng = np.random.default_rng(seed + 7919)
    return Options(modes=(MODES[seed % len(MODES)],) if rotate else MODES,
                   parallel_min=1 if rng.random() < 0.2 else None,
                   optimizer=str(rng.choice(["adam", "sgd", "rmsprop", "adamw"])),
                   clip_norm=1.0 if rng.random() < 0.25 else None,
                   weight_decay=0.01 if rng.random() < 0.25 else 0.0)


def check(program: Program, options: Options | None = None) -> Finding | None:
    """Run `program` on both targets; None when they agree everywhere."""
    return check_source(program.text(), program.data_spec(), options)


def check_source(text: str, data: DataSpec, options: Options | None = None) -> Finding | None:
    """Lower `.net` source and run it on both targets with `data`; None when they agree."""
    options = options or Options()
    stage = "lower"
    try:
        with tempfile.TemporaryDirectory(prefix="netdsl-fuzz-") as folder:
            path = Path(folder) / "fuzz.net"
            path.write_text(text)
            import netdsl
            try:
                model = netdsl.load(path)
            except Error as error:
                return Finding("rejected", str(error))
            weights = model.init(seed=data.seed)
            inputs = data.arrays(model.graph.inputs)
            for mode in options.modes:
                stage = mode
                finding = _check_mode(mode, model, weights, inputs, options)
                if finding is not None:
                    return finding
    except Error as error:
        return Finding(f"error:{stage}", str(error), stage)
    except Exception as error:                      # noqa: BLE001 - every crash is a finding
        where = _innermost_netdsl_frame(error)
        return Finding(f"crash:{stage}:{type(error).__name__}",
                       f"{type(error).__name__}: {error} (at {where})", stage)
    return None


def read_header(text: str) -> tuple[DataSpec, Options]:
    """The `# fuzz-data:` and `# fuzz-options:` lines of a shrunk program's header."""
    data, options = DataSpec({}, {}), Options()
    for line in text.splitlines():
        if line.startswith("# fuzz-data: "):
            data = DataSpec.from_json(line[len("# fuzz-data: "):])
        elif line.startswith("# fuzz-options: "):
            options = Options.from_json(line[len("# fuzz-options: "):])
    return data, options


def header(data: DataSpec, options: Options) -> str:
    """Header lines that make a `.net` file reproduce its finding (see read_header)."""
    return f"fuzz-data: {data.to_json()}\nfuzz-options: {options.to_json()}"


def _innermost_netdsl_frame(error: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "netdsl" in f.filename]
    if not frames:
        return "?"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} {frame.name}"


# ---------------------------------------------------------------------------------------------
# the three modes

def _graph_for(mode: str, model, options: Options):
    from ..passes.pipeline import run_pipeline
    from ..passes.training import build_training_graph, loss_and_grad_graph
    if mode == "forward":
        return model.inference_graph, False
    if mode == "grad":
        graph = loss_and_grad_graph(model.training_forward)
        graph.outputs.update({f"out.{name}": value
                              for name, value in model.training_forward.outputs.items()})
        return run_pipeline(graph), True
    from ..runtime.optimizers import OptimizerSpec
    spec = OptimizerSpec(options.optimizer, lr=0.05, momentum=0.9 if options.optimizer == "sgd"
                         else 0.0, weight_decay=options.weight_decay)
    graph = build_training_graph(model.training_forward, spec, clip_norm=options.clip_norm)
    return run_pipeline(graph), True


def _check_mode(mode: str, model, weights, inputs, options: Options) -> Finding | None:
    from ..backends import compile_graph
    from ..backends.numba_cpu import CodegenOptions
    graph, training = _graph_for(mode, model, options)
    codegen = CodegenOptions() if options.parallel_min is None else \
        CodegenOptions(parallel_min=options.parallel_min)
    compiled = compile_graph(graph, target="cpu", cache_dir=options.cache_dir, options=codegen)
    arrays = _arrays(model, graph, weights, inputs)
    steps = options.steps if mode == "train" else 1
    cpu_state, ref_state = _copy(arrays), _copy(arrays)
    from ..backends.reference import run as reference_run
    for step in range(1, steps + 1):
        for state in (cpu_state, ref_state):
            _feed_step(graph, state, step)
        cpu = compiled.run(cpu_state)
        ref = reference_run(graph, ref_state)
        names = list(ref)
        if mode == "train":
            names += list(graph.state_updates)
            cpu = {**cpu, **{n: cpu_state[n] for n in graph.state_updates}}
            ref = {**ref, **{n: ref_state[n] for n in graph.state_updates}}
        for name in names:
            finding = _compare(mode, name, cpu[name], ref[name],
                               lambda: _float64_value(graph, arrays, name, step, mode))
            if finding is not None:
                finding.detail = f"step {step}: {finding.detail}" if mode == "train" else \
                    finding.detail
                return finding
    return None


def _arrays(model, graph, weights, inputs) -> dict[str, np.ndarray]:
    arrays = model._arrays(graph, weights, inputs, step=1)
    for info in graph.params:                      # optimiser state starts at zero
        if info.name not in arrays:
            arrays[info.name] = np.zeros(tuple(int(d) for d in info.value.shape),
                                         info.value.dtype.numpy)
    return arrays


def _feed_step(graph, arrays: dict, step: int) -> None:
    names = {v.name for v in graph.inputs}
    if "__lr__" in names:
        arrays["__lr__"] = np.asarray(0.05, np.float32)
    if "__step__" in names:
        arrays["__step__"] = np.asarray(float(step), np.float32)
    if "__rng__" in names:
        arrays["__rng__"] = np.asarray(step, np.int64)


def _copy(arrays: dict) -> dict:
    return {k: np.array(v) for k, v in arrays.items()}


def _float64_value(graph, arrays, name: str, steps: int, mode: str) -> np.ndarray:
    """`name` as the float64 reference computes it after `steps` steps (the truth)."""
    from ..backends.reference import run as reference_run
    from ..passes.precision import to_float64
    promoted = to_float64(graph)
    state = {k: (np.asarray(v, np.float64) if np.asarray(v).dtype.kind == "f" else np.array(v))
             for k, v in arrays.items()}
    result = None
    for step in range(1, steps + 1):
        _feed_step(promoted, state, step)
        state.update({k: np.asarray(v, np.float64) for k, v in state.items()
                      if k in ("__lr__", "__step__")})
        result = reference_run(promoted, state)
    if mode == "train" and name in graph.state_updates:
        return state[name]
    return result[name]


def _compare(mode: str, name: str, cpu, ref, truth) -> Finding | None:
    cpu, ref = np.asarray(cpu), np.asarray(ref)
    if cpu.shape != ref.shape:
        return Finding(f"mismatch:{mode}", f"{name}: shape {cpu.shape} != reference {ref.shape}",
                       mode)
    if ref.dtype.kind != "f":
        if np.array_equal(cpu, ref):
            return None
        return Finding(f"mismatch:{mode}", f"{name}: {_first_difference(cpu, ref)}", mode)
    cpu64, ref64 = cpu.astype(np.float64), ref.astype(np.float64)
    finite = np.isfinite(ref64)
    scale = max(1.0, float(np.max(np.abs(ref64[finite]), initial=0.0)))
    close = np.isclose(cpu64, ref64, rtol=RTOL, atol=ATOL * scale, equal_nan=True)
    if close.all():
        return None
    exact = np.asarray(truth(), np.float64)
    usable = np.isfinite(exact) & finite
    own_error = float(np.max(np.abs(ref64 - exact)[usable], initial=0.0))
    allowance = RTOL * np.abs(exact) + ATOL * scale + 8.0 * own_error
    bad = ~close & (~usable | (np.abs(cpu64 - exact) > allowance))
    bad &= ~(~np.isfinite(exact) & ~finite)        # both precisions overflow: ill-conditioned
    bad &= ~(np.isfinite(exact) & ~finite)         # float32 overflows where float64 does not
    if not bad.any():
        return None
    kind = "nan" if np.isnan(cpu64[bad]).any() and not np.isnan(ref64[bad]).any() else "mismatch"
    return Finding(f"{kind}:{mode}", f"{name}: {_first_difference(cpu, ref, bad)}", mode)


def _first_difference(cpu, ref, mask=None) -> str:
    mask = (cpu != ref) if mask is None else mask
    index = tuple(int(i) for i in np.argwhere(mask)[0]) if mask.ndim else ()
    count = int(np.count_nonzero(mask))
    return (f"cpu {cpu[index]!r} != reference {ref[index]!r} at {list(index)} "
            f"({count} of {cpu.size} elements differ)")


__all__ = ["Finding", "MODES", "Options", "check", "check_source", "header",
           "options_for", "read_header"]
