"""Whole epochs of a compiled training step in one compiled call: the loop around a tiny step.

Through Python, every step of `fit` costs its bound call (unboxing each array argument, ~3-4 us
for XOR's 18) and every epoch its shuffle, batch gathering and row (runtime/epoch.py,
runtime/train.py): for XOR's 2-8-1 MLP that is ~18 us an epoch around ~1.5 us of arithmetic.
`BlockRunner` writes a small module beside the step's own in the compile cache (named by its
content hash, like every generated module) whose `@njit(cache=True)` function `run` does what
the Python loop does, for `epochs` epochs at a time, and calls the step's driver directly:

* the order of each epoch: a row of `orders`, which the caller draws for the whole call with
  one `rng.permuted` over rows of `arange(examples)` (NumPy shuffles the rows one after the
  other as `rng.permutation(examples)` would, epoch after epoch: the same orders and the same
  state of the generator after them, ~0.05 us an epoch for XOR's 4 examples against 2.7), or
  the stored order;
* each batch gathered row by row into buffers kept across calls (or, unshuffled, a slice of
  the data), the learning rate of each step from `rates` (one per step of the call), the step
  number and the random stream's counter in the step's 0-d hyper inputs;
* the loss of every step checked finite (else it stops there and says where), and per epoch
  the sums `fit` keeps: loss x examples, each loss term x examples, each gradient norm.

The sums are float64 additions in the order the Python loop makes them, so the history is the
same to the last bit.  Arenas and offsets are laid out once for the full batch and once for a
shorter last one (the offsets differ; one arena per dtype, large enough for both).  The module
is only written and compiled when `fit` first asks for it (runtime/compiled_epochs.py), and
compiled once per process and step (Numba's cache keeps it on disk).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..reference import bind_dims
from .compiled import _clear_flush, _contiguous, driver_args, index_error

_HYPER = {"__lr__": "lr", "__step__": "number", "__rng__": "stream"}
# Loading a compiled runner from Numba's cache, once per process (~20 ms measured for XOR's).
LOAD_SECONDS = 0.03
# Compiling a runner cold: its own loops (it calls the step separately); 0.65 s for XOR's.
COMPILE_SECONDS = 0.7


def runner_source(step_key: str, params: list, batch_inputs: list[str],
                  scalar_outputs: dict, prediction: tuple[int, int] | None = None,
                  places: list | None = None) -> str:
    """The runner module for the step module `step_key` whose driver takes `params` ((kind,
    key) pairs, codegen's order).  `scalar_outputs`: sums column -> (output index, weighted by
    the batch's examples); column 0 is the loss.  `prediction`: (output index, rank) of an
    output whose rows each step copies into `predictions[epoch, example position]` (as rows
    of scalars), for the training metrics.  `places`: the step's GeneratedModule.
    output_places (an output with a place is read from its arena, not from what the driver
    returns)."""
    data = [f"data_{k}" for k in range(len(batch_inputs))]
    buffers = [f"buffer_{k}" for k in range(len(batch_inputs))]
    # The same data and buffers as rows of scalars: a row copied element by element (Numba's
    # `buffer[row] = data[source]` costs ~4 s of compile, for its shape-mismatch error path).
    rows = [f"rows_{k}" for k in range(len(batch_inputs))]
    buffer_rows = [f"buffer_rows_{k}" for k in range(len(batch_inputs))]
    fixed, call, arenas = [], [], {}
    for kind, key in params:
        if kind == "arena":
            arenas[key] = f"f_{len(fixed)}"
        if kind == "input" and key in batch_inputs:
            call.append(f"x_{batch_inputs.index(key)}")
        elif kind == "input":
            call.append(_HYPER[key])
        elif kind == "offsets":
            call.append("offsets")
        else:
            fixed.append(f"f_{len(fixed)}")
            call.append(fixed[-1])
    hyper = [_HYPER[key] for kind, key in params if kind == "input" and key in _HYPER]
    arguments = ["epochs", "shuffle", "batch", "first", "rates", "orders", *data, *buffers,
                 *rows, *buffer_rows,
                 *hyper, *fixed, "offsets_full", "offsets_last", "sums",
                 *(["predictions"] if prediction is not None else [])]
    lines = ['"""netdsl generated epoch runner (backends/numba_cpu/epoch_runner.py)"""',
             "import numpy as np",
             "from netdsl.backends.numba_cpu.builtins_inline import min2",
             "from netdsl.backends.numba_cpu.jit import njit",
             "from netdsl.backends.numba_cpu.support import view as _view",
             "from netdsl.backends.numba_cpu.separate import separately",
             f"from netdsl_generated_{step_key} import step as _step",
             "_step = separately(_step)      # its code stays in its own module (separate.py)",
             "",
             "",
             "@njit(cache=True, error_model='numpy', no_cfunc_wrapper=True)",
             f"def run({', '.join(arguments)}):",
             f"    examples = {data[0]}.shape[0]",
             "    batches = (examples + batch - 1) // batch",
             "    done = 0",
             "    for epoch in range(epochs):",
             "        for position in range(batches):",
             "            start = position * batch",
             "            size = min2(start + batch, examples) - start",
             "            if shuffle:",
             "                for row in range(size):",
             "                    source = orders[epoch, start + row]"]
    for k in range(len(batch_inputs)):
        copy = f"{buffer_rows[k]}[row, column] = {rows[k]}[source, column]"
        lines += [f"                    for column in range({rows[k]}.shape[1]):",
                  f"                        {copy}"]
    for k in range(len(batch_inputs)):
        view = f"{buffers[k]}[:size] if shuffle else {data[k]}[start:start + size]"
        lines.append(f"            x_{k} = {view}")
    lines += ["            offsets = offsets_full if size == batch else offsets_last"]
    if "lr" in hyper:
        lines.append("            lr[()] = rates[done]")
    if "number" in hyper:
        lines.append("            number[()] = first + done + 1")
    if "stream" in hyper:
        lines.append("            stream[()] = first + done + 1")
    lines += [f"            outputs = _step({', '.join(call)})",
              "            done += 1"]
    places = places or []

    def read(output: int, shape: str) -> str:
        """Source of output `output` after the step: a view of its arena where it has a
        place there (its `shape` there), else its item of the tuple the driver returns."""
        place = places[output] if places else None
        if place is None:
            return f"outputs[{sum(p is None for p in places[:output]) if places else output}]"
        return f"_view({arenas[place[0]]}, offsets[{place[1]}], {shape})"
    if prediction is not None:                  # rank 1 or 2 (BlockRunner)
        output, rank = prediction
        shape = "(size,)" if rank == 1 else "(size, predictions.shape[2])"
        lines += [f"            predicted = {read(output, shape)}",
                  "            for row in range(size):"]
        lines += ["                predictions[epoch, start + row, 0] = predicted[row]"] \
            if rank == 1 else \
            ["                for column in range(predictions.shape[2]):",
             "                    predictions[epoch, start + row, column] = predicted[row, column]"]
    for column, (output, weighted) in scalar_outputs.items():
        value = f"np.float64({read(output, '()')}[()])"
        if column == 0:
            lines += [f"            loss = {value}",
                      "            if not np.isfinite(loss):",
                      "                sums[epoch, 0] = loss",
                      "                return epoch, position",
                      "            sums[epoch, 0] += loss * size"]
        else:
            lines.append(f"            sums[epoch, {column}] += {value}"
                         + (" * size" if weighted else ""))
    lines += ["    return epochs, 0", ""]
    return "\n".join(lines)


class BlockRunner:
    """Runs epochs of one single-step training plan in compiled code (the module docstring).

    `run(epochs, shuffle, rng, first, rates)` runs `epochs` epochs from global step `first`
    (steps done before), drawing their orders from `rng` when shuffling, and returns (epochs
    done, batch at which a non-finite loss stopped it or None, sums): sums[e] = [loss x
    examples, then each `columns` entry's sum].  With a `prediction` output (rank 1 or 2,
    batch first), `predictions` then holds its rows of each epoch in the order the examples
    ran, and `orders` that order (None unshuffled): what the training metrics read.  Its
    module is loaded, and compiled unless Numba's cache has it (`compile_seconds`), by `load`
    or the first `run`.  A step it cannot run (a rank-0 batch input, a loss or gradient norm
    that is not a scalar, a prediction of another rank) raises ValueError when it is made: the
    caller keeps its Python loop."""

    def __init__(self, compiled, storage: dict[str, np.ndarray], batch_inputs: list[str],
                 data: dict[str, np.ndarray], batch: int, columns: list[tuple[int, bool]],
                 loss_index: int, prediction: int | None = None):
        graph = compiled.graph
        self.compiled, self.batch, self.names = compiled, batch, list(batch_inputs)
        by_name = {v.name: v for v in graph.inputs}
        if any(by_name[name].rank == 0 for name in batch_inputs):
            raise ValueError("a rank-0 batch input")
        # As the bound step converts its inputs: a read-only array would type differently.
        self.data = [_contiguous(data[name], by_name[name].dtype.numpy) for name in batch_inputs]
        examples = len(self.data[0])
        self.buffers = [np.empty((min(batch, examples),) + array.shape[1:], array.dtype)
                        for array in self.data]
        self.rows = [array.reshape(examples, -1) for array in self.data]
        self.buffer_rows = [array.reshape(len(array), -1) for array in self.buffers]
        self._unshuffled = np.zeros((1, 1), np.int64)
        self.hyper = [np.zeros((), by_name[name].dtype.numpy) for kind, name in
                      compiled.generated.params if kind == "input" and name in _HYPER]
        output_ranks = _output_ranks(graph, compiled.output_names)
        scalar_outputs = dict(enumerate([(loss_index, True), *columns]))
        for output, _ in scalar_outputs.values():
            if output_ranks[output] != 0:
                raise ValueError(f"output {compiled.output_names[output]} is not a scalar")
        self.width = len(scalar_outputs)
        # Offsets for the full batch and for a shorter last one; arenas large enough for both.
        arenas: dict = {}
        sizes = [min(batch, examples), examples % batch or min(batch, examples)]
        layouts = []
        for size in sizes:
            feeds = {name: array[:size] for name, array in zip(batch_inputs, self.data)}
            feeds.update({v.name: np.zeros((), v.dtype.numpy) for v in graph.inputs
                          if v.rank == 0})
            layouts.append((feeds, compiled._layout(bind_dims(graph, feeds), arenas)[0]))
        user = {info.name: storage[info.name] for info in graph.params}
        args = driver_args(compiled.generated.params, layouts[0][0], user,
                           compiled._constants, arenas, layouts[0][1])
        self.fixed = [arg for (kind, key), arg in zip(compiled.generated.params, args)
                      if kind not in ("input", "offsets")]
        self.offsets = (layouts[0][1], layouts[1][1])
        self.prediction = prediction
        self.predictions, self.orders = None, None
        if prediction is not None:
            self.prediction_shape = _prediction_shape(graph, prediction,
                                                      [feeds for feeds, _ in layouts], sizes)
            self.prediction_dtype = _output_values(graph)[prediction].dtype.numpy
        from .. import cache
        from .numba_cache import toolchain
        self.source = runner_source(compiled.report.key, compiled.generated.params,
                                    batch_inputs, scalar_outputs,
                                    None if prediction is None else
                                    (prediction, output_ranks[prediction]),
                                    compiled.generated.output_places)
        self.key = cache.cache_key(self.source, "cpu", toolchain())
        self.path = Path(compiled.report.module_path).parent / f"nd_{self.key}.py"
        self.function = None                    # loaded (and compiled if need be) by `run`

    @property
    def compile_seconds(self) -> float:
        """About what compiling it costs, cold: its own loops only, since it calls the step
        separately (separate.py) rather than compiling the step's code into itself again (which
        took ~0.11 s per 1,000 characters of the step's source: 1.2 s for XOR's, 5.3 s for the
        LSTM example's); measured 0.65 s for XOR's runner."""
        return COMPILE_SECONDS

    def load(self) -> None:
        """Load its module, and compile it unless Numba's cache has it (once per process): a
        call for no epochs, since Numba compiles a function at its first call."""
        if self.function is None:
            self.function = _load(self.path, self.key, self.source)
            self._call(0, False, self._unshuffled, 0, np.zeros(0), np.zeros((0, self.width)),
                       self._predictions(0))

    @property
    def start_seconds(self) -> float:
        """About what making it ready to run costs: nothing when its module is loaded in this
        process, LOAD_SECONDS when the compile cache has it (its module is written just before
        its first compile, so Numba's cache has the code too, unless removed since), else
        `compile_seconds`."""
        if f"netdsl_generated_{self.key}" in sys.modules:
            return 0.0
        return LOAD_SECONDS if self.path.is_file() else self.compile_seconds

    def run(self, epochs: int, shuffle: bool, rng: np.random.Generator, first: int,
            rates: np.ndarray) -> tuple[int, int | None, np.ndarray]:
        """Run `epochs` epochs (the class docstring)."""
        self.load()
        sums = np.zeros((epochs, self.width))
        examples = len(self.data[0])
        orders = rng.permuted(np.tile(np.arange(examples), (epochs, 1)), axis=1) \
            if shuffle else self._unshuffled
        self.predictions = self._predictions(epochs)
        self.orders = orders if shuffle else None
        done, position = self._call(epochs, shuffle, orders, first, rates, sums,
                                    self.predictions)
        if done < epochs:
            return done, position, sums
        return done, None, sums

    def _predictions(self, epochs: int) -> np.ndarray | None:
        """Where a call of `epochs` epochs writes the prediction's rows (None without one)."""
        if self.prediction is None:
            return None
        width = int(np.prod(self.prediction_shape, dtype=np.int64))
        return np.zeros((epochs, len(self.data[0]), width), self.prediction_dtype)

    def _call(self, epochs, shuffle, orders, first, rates, sums,
              predictions) -> tuple[int, int]:
        """The compiled function's call: (epochs done, batch of a non-finite loss or 0)."""
        buffers = self.buffers if shuffle else self.data
        extra = [] if predictions is None else [predictions]
        try:
            return self.function(
                epochs, shuffle, self.batch, first, rates, orders, *self.data, *buffers,
                *self.rows, *self.buffer_rows, *self.hyper, *self.fixed, *self.offsets, sums,
                *extra)
        except IndexError as error:
            raise index_error(self.compiled.graph, dict(zip(self.names, self.data)),
                              error) from None
        except Exception:                       # left before putting the flush back
            _clear_flush()
            raise


def _output_values(graph) -> list:
    return list(graph.outputs.values()) + [loss.value for loss in graph.losses]


def _output_ranks(graph, names: list[str]) -> list[int]:
    values = _output_values(graph)
    if len(values) != len(names):
        raise ValueError("the outputs do not match the graph's")
    return [value.rank for value in values]


def _prediction_shape(graph, index: int, feeds: list[dict], sizes: list[int]) -> tuple:
    """The shape of one example's row of output `index`: rank 1 or 2 with the batch first, in
    both layouts (else ValueError: the training metrics stay in the Python loop)."""
    from ...ir.types import evaluate_dim
    value = _output_values(graph)[index]
    name = list(graph.outputs)[index] if index < len(graph.outputs) else "a loss"
    if value.rank not in (1, 2):
        raise ValueError(f"the prediction {name} has rank {value.rank}")
    shapes = []
    for fed, size in zip(feeds, sizes):
        shape = tuple(evaluate_dim(dim, bind_dims(graph, fed)) for dim in value.shape)
        if shape[0] != size:
            raise ValueError(f"the prediction {name} is not one row per example")
        shapes.append(shape[1:])
    if shapes[0] != shapes[1]:
        raise ValueError(f"the prediction {name} changes shape with the batch")
    return shapes[0]


def _load(path: Path, key: str, source: str):
    """The runner's `run`, written beside the step's module and imported (once per process)."""
    from .. import cache
    from . import numba_cache
    path, _ = cache.write_module(path.parent, key, source)
    return cache.import_module(path, key, source, numba_cache.guard).run


__all__ = ["BlockRunner", "runner_source"]
