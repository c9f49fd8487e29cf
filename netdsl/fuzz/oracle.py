"""The oracle: run one program on a compiled target (`cpu` by default, or `cuda`) and on
`reference` and say whether they disagree.

A program's text is lowered by the real front end (so the front end and lowering are tested
too), then the graphs users run are compiled and compared, each as the runtime builds it:

* `grad`: the loss, every gradient (`passes.training.loss_and_grad_graph`) and the forward
  outputs in one graph, through the pass pipeline -- what `Model.loss_and_grad` runs;
* `forward`: the inference graph as `Model.forward` / `netdsl run` compile it;
* `train`: two optimiser steps (`build_training_graph`: SGD with momentum, RMSprop, Adam or
  AdamW, sometimes with weight decay and clipping) through `bind`, as `fit` runs them, comparing
  the outputs of each step and every updated parameter and optimiser state;
* `eval`: the inference graph with its losses through the pipeline -- `fit`'s validation.

Each compiled graph runs twice, the second time with other values of the symbolic dims (a
batch of another size, as an epoch's short last batch), so the arena is laid out again.

Values agree when |cpu - ref| <= rtol * |ref| + atol (rtol 1e-4, atol 1e-4 * max(1, max|ref|)
for each compared tensor).  Where they do not, the reference is run again in float64 (the
graph promoted by passes/precision.py): the difference is only rounding when cpu is within
rtol of the float64 truth plus eight times the float32 reference's own largest error on that
tensor.  Anything else -- a wrong number, a NaN the reference does not produce, a crash in
any stage, a program the front end refuses -- is a `Finding`.
"""
from __future__ import annotations

import re
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Error
from .program import DataSpec, Program

RTOL = 1e-4
ATOL = 1e-4
MODES = ("grad", "forward", "train", "eval")


@dataclass
class Finding:
    """Why a program failed: `kind` groups findings (the campaign counts them by kind)."""

    kind: str                       # mismatch:<mode> | nan:<mode> | crash:<stage>:<Type> | rejected
    detail: str
    mode: str = ""

    def same_kind(self, other: "Finding | None") -> bool:
        """Whether `other` is this failure (what the shrinker keeps): the same kind, and for
        a refusal the same complaint.  A shrink step that dropped the loss of a program the
        compiler refused ("cannot compile: dimension 2*B*T ...") was refused too, for having
        no loss, and the shrunk program showed that instead (seed 88076)."""
        if other is None or other.kind != self.kind:
            return False
        return not self.kind.startswith("error:") or _gist(other.detail) == _gist(self.detail)


def _gist(message: str) -> str:
    """What an error message complains of: its text up to the first colon after `error: `,
    names and numbers dropped ("cannot compile", "model has no loss to train")."""
    text = message.split("error: ", 1)[-1].split(":", 1)[0].split("\n", 1)[0]
    return " ".join(word for word in re.sub(r"'[^']*'|\d+", " ", text).split())


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
    target: str = "cpu"                 # the compiled target checked against the reference

    def to_json(self) -> str:
        import json
        return json.dumps({"modes": list(self.modes), "parallel_min": self.parallel_min,
                           "optimizer": self.optimizer, "clip_norm": self.clip_norm,
                           "weight_decay": self.weight_decay, "steps": self.steps,
                           "target": self.target})

    @staticmethod
    def from_json(text: str) -> "Options":
        import json
        data = json.loads(text)
        data["modes"] = tuple(data.get("modes", MODES))
        return Options(**data)


def options_for(seed: int, rotate: bool = False, target: str = "cpu",
                tags=()) -> Options:
    """The compile and training options a campaign uses for program `seed` (varied); with
    `rotate`, one mode per program, in turn; `target` is the compiled target checked.
    A program `tags` says has a scan gets every kernel parallel half the time, not a fifth:
    its loop then also runs over blocks of rows where it can (numba_cpu/scan_rows.py)."""
    rng = np.random.default_rng(seed + 7919)
    parallel = 0.5 if "scan" in tags else 0.2
    return Options(modes=(MODES[seed % len(MODES)],) if rotate else MODES,
                   parallel_min=1 if rng.random() < parallel else None,
                   optimizer=str(rng.choice(["adam", "sgd", "rmsprop", "adamw"])),
                   clip_norm=1.0 if rng.random() < 0.25 else None,
                   weight_decay=0.01 if rng.random() < 0.25 else 0.0, target=target)


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
            for mode in options.modes:
                stage = mode
                finding = _check_mode(mode, model, weights, data, options)
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

def _step_for(mode: str, model, options: Options):
    """(graph, training) that `compile_step` compiles for `mode`, as the product does."""
    from ..compiler import Training
    from ..passes.training import loss_and_grad_graph
    if mode == "forward":
        return model.inference_graph, None
    if mode == "grad":
        graph = loss_and_grad_graph(model.training_forward)
        graph.outputs.update({f"out.{name}": value
                              for name, value in model.training_forward.outputs.items()})
        return graph, None
    if mode == "eval":
        return model.graph.restricted(keep_losses=True), None
    from ..passes.optimizers import OptimizerSpec
    # eps 0.1, not 1e-8: RMSprop and Adam divide a gradient by its own running magnitude plus
    # eps, so a gradient that is zero in exact arithmetic (softmax cross-entropy's, summed over
    # the classes of a broadcast logit; a LayerNorm's output summed over its axis) came out of
    # float32 round-off (1e-8) as an lr-sized update whose sign depends on summation order
    # (findings 85394, 86166: with eps 1e-3 the round-off still grew 50-fold a step).  With 0.1
    # an update is at most lr/eps = 0.5 times its gradient, and every term of the update
    # (moments, bias corrections, the square root, the division) is still computed and compared.
    spec = OptimizerSpec(options.optimizer, lr=0.05, momentum=0.9 if options.optimizer == "sgd"
                         else 0.0, weight_decay=options.weight_decay, eps=0.1)
    return model.training_forward, Training(spec, clip_norm=options.clip_norm)


HYPER = ("__lr__", "__step__", "__rng__")


def _check_mode(mode: str, model, weights, data: DataSpec, options: Options) -> Finding | None:
    """Compile `mode`'s graph once and compare two runs, the second with other dim values
    (a batch of another size: the arena is laid out again)."""
    from ..backends.numba_cpu import CodegenOptions
    from ..backends.reference import run as reference_run
    from ..compiler import compile_step
    graph, training = _step_for(mode, model, options)
    codegen = CodegenOptions() if options.parallel_min is None else \
        CodegenOptions(parallel_min=options.parallel_min)
    compiled = compile_step(graph, options.target, training, cache_dir=options.cache_dir,
                            options=codegen if options.target == "cpu" else None)
    graph = compiled.graph                  # after the pass pipeline: the reference runs it too
    feeds = [_with_hyper(graph, data.arrays(graph.inputs), 1),
             _with_hyper(graph, data.rebound().arrays(graph.inputs), 2)][:options.steps]
    params = _params(graph, weights)
    if mode == "train":
        return _check_training(graph, compiled, params, feeds)
    for k, feed in enumerate(feeds):
        cpu = compiled.run({**_copy(params), **feed})
        ref = reference_run(graph, {**_copy(params), **feed})
        for name in ref:
            finding = _compare(mode, name, cpu[name], ref[name],
                               lambda: _float64_run(graph, params, feeds[k:k + 1])[0][name])
            if finding is not None:
                finding.detail = f"run {k + 1}: {finding.detail}"
                return finding
    return None


def _check_training(graph, compiled, params, feeds) -> Finding | None:
    """Training steps through `bind`, as `fit` runs them, against the reference."""
    from ..backends.reference import run as reference_run
    cpu_state, ref_state = _copy(params), _copy(params)
    batch = [v.name for v in graph.inputs if v.name not in HYPER]
    hyper = [v.name for v in graph.inputs if v.name in HYPER]
    step = compiled.bind(cpu_state, inputs=batch + hyper)
    for k, feed in enumerate(feeds):
        outputs = step(*(feed[name] for name in batch + hyper))
        cpu = {name: np.array(value) for name, value in zip(step.output_names, outputs)}
        ref = reference_run(graph, {**ref_state, **feed})
        for name in ref:
            finding = _compare("train", name, cpu[name], ref[name],
                               lambda: _float64_run(graph, params, feeds[:k + 1])[0][name])
            if finding is not None:
                finding.detail = f"step {k + 1}: {finding.detail}"
                return finding
    synchronize = getattr(getattr(step, "bound", None), "synchronize", None)
    if synchronize is not None:                 # a device-resident step (cuda)
        synchronize()
    for name in graph.state_updates:
        finding = _compare("train", name, cpu_state[name], ref_state[name],
                           lambda: _float64_run(graph, params, feeds)[1][name])
        if finding is not None:
            finding.detail = f"after {len(feeds)} steps: {finding.detail}"
            return finding
    return None


def _params(graph, weights) -> dict[str, np.ndarray]:
    """Every param and state as a writeable C array; optimiser state starts at zero."""
    return {info.name: np.array(weights[info.name], dtype=info.value.dtype.numpy, order="C")
            if info.name in weights else
            np.zeros(tuple(int(d) for d in info.value.shape), info.value.dtype.numpy)
            for info in graph.params}


def _with_hyper(graph, feed: dict, step: int) -> dict:
    """The step's learning rate, step count and random-counter inputs, where the graph has them."""
    names = {v.name for v in graph.inputs}
    extra = {"__lr__": np.asarray(0.05, np.float32), "__step__": np.asarray(step, np.float32),
             "__rng__": np.asarray(step, np.int64)}
    return {**feed, **{k: v for k, v in extra.items() if k in names}}


def _copy(arrays: dict) -> dict:
    return {k: np.array(v) for k, v in arrays.items()}


def _float64_run(graph, params, feeds) -> tuple[dict, dict]:
    """The float64 reference's results of the last of `feeds`' steps and its final state."""
    from ..backends.reference import run as reference_run
    from ..passes.precision import to_float64
    promoted = to_float64(graph)

    def wide(arrays):
        return {k: np.asarray(v, np.float64) if np.asarray(v).dtype.kind == "f" else np.array(v)
                for k, v in arrays.items()}
    state = wide(params)
    results: dict = {}
    for feed in feeds:
        results = reference_run(promoted, {**state, **wide(feed)})
    return results, state


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
