"""A compiled graph at run time: the reference calling convention and a fast bound step.

`CompiledGraph.run(arrays)` has exactly the semantics of `reference.run`: arrays by name for
inputs, params and states; returns outputs and losses by name (fresh arrays); every state update
is written into `arrays[name]` in place.

`CompiledGraph.bind(arrays, inputs=None) -> step` is the fast path for training loops (the step
function of a BoundStep, which frees its arrays as soon as the function is dropped).
Params, states and constants are bound once, by reference (updates land in the caller's
arrays; rebind after replacing one of them by a new array object).  The step takes the fed
inputs positionally (`inputs`, default: all graph inputs in order; rank-0 inputs such as
`__lr__` and `__step__` take plain Python numbers) and returns the outputs then losses as a
tuple of arrays that the next call overwrites.  Per call it runs one small generated Python
function: compare the fed shapes with the last call's (a new batch size re-lays the arena,
keeping the larger allocation), store the scalars into 0-d arrays, call the njit driver.

Indices are checked by the kernels themselves: `take` and `take_grad` raise an IndexError with
a constant message (ops/indexing.py INDEX_ERROR) for an index out of range, before any access.
Both calling conventions turn it into an Error that names the input, the value and its position
(ir/index_ranges.py), found only then, so a step that succeeds pays nothing for it.
"""
from __future__ import annotations

import weakref
from math import prod
from typing import Mapping, Sequence

import numpy as np

from ...errors import Error
from ...ir.graph import Graph
from ...ir.types import evaluate_dim
from ...ops.indexing import INDEX_ERROR
from ..reference import bind_dims


class CompiledGraph:
    """A graph compiled to a Numba driver (see `netdsl.backends.compile_graph`)."""

    def __init__(self, graph: Graph, driver, generated, plan, fused, report, constants):
        self.graph, self.driver, self.generated = graph, driver, generated
        self.plan, self.fused, self.report = plan, fused, report
        self.source = generated.source
        self.output_names = list(generated.outputs)
        self._constants = constants                 # const index -> array
        self._arenas: dict = {}
        # Arenas a released binding handed back (BoundStep.release), for the next bind.
        self._spare_arenas: list[dict] = []
        # The bound step's generated function, compiled once per tuple of fed input names
        # (BoundStep._make_call): a fit binds anew each time, and compile() cost 0.35 ms of it.
        self._call_code: dict[tuple[str, ...], object] = {}
        self._user = {v.name: v for v in graph.inputs}
        self._user.update({p.name: p.value for p in graph.params})

    # -- memory --------------------------------------------------------------------------
    def _layout(self, bindings: Mapping[str, int], arenas: dict) -> tuple:
        """Offsets and (grown if needed) arenas for a binding of the symbolic dims."""
        offsets, totals = self.plan.layout(bindings)
        for dtype, total in totals.items():
            current = arenas.get(dtype)
            if current is None or current.shape[0] < total:
                arenas[dtype] = np.empty(total, dtype=dtype.numpy)
        return offsets, arenas

    def _args(self, feeds: Mapping[str, np.ndarray], user: Mapping[str, np.ndarray],
              offsets, arenas) -> list:
        return driver_args(self.generated.params, feeds, user, self._constants, arenas, offsets)

    # -- the reference calling convention --------------------------------------------------
    def run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step with reference semantics (outputs are fresh arrays)."""
        graph = self.graph
        feeds = {}
        for value in graph.inputs:
            if value.name not in arrays:
                raise Error(f"no data for input '{value.name}'",
                            graph.input_spans.get(value.name))
            feeds[value.name] = _contiguous(arrays[value.name], value.dtype.numpy)
        bindings = bind_dims(graph, feeds)
        user, write_back = {}, []
        for info in graph.params:
            if info.name not in arrays:
                raise Error(f"no value for parameter '{info.name}'", info.span)
            array = arrays[info.name]
            _check_shape(info.name, array, info.value, bindings)
            ready = _contiguous(array, info.value.dtype.numpy)
            if ready is not array:
                write_back.append((info.name, ready))
            user[info.name] = ready
        offsets, arenas = self._layout(bindings, self._arenas)
        try:
            returned = self.driver(*self._args(feeds, user, offsets, arenas))
        except IndexError as error:
            raise index_error(graph, feeds, error) from None
        except Exception:                       # left before putting the flush back
            _clear_flush()
            raise
        for name, ready in write_back:
            arrays[name][...] = ready
        results = merged(self.output_views(arenas, offsets, bindings), returned)
        return {name: np.array(result) for name, result in zip(self.output_names, results)}

    def output_views(self, arenas: dict, offsets: np.ndarray, bindings: Mapping[str, int]):
        """The outputs the driver leaves in its arenas, as views of them (None for those it
        returns): see GeneratedModule.output_places."""
        return output_views(self.generated.output_places or [None] * len(self.output_names),
                            arenas, offsets, bindings)

    __call__ = run

    # -- the fast path -------------------------------------------------------------------
    def bind(self, arrays: Mapping[str, np.ndarray], inputs: Sequence[str] | None = None):
        """A step function over bound params/states (see the module docstring): a plain
        generated function (no extra frame per call) with attributes `input_names`,
        `output_names` and `bound` (its BoundStep)."""
        bound = BoundStep(self, arrays, list(inputs) if inputs is not None else
                          [v.name for v in self.graph.inputs])
        return bound.function()

    def epoch_runner(self, storage: Mapping[str, np.ndarray], batch_inputs: Sequence[str],
                     data: Mapping[str, np.ndarray], batch: int, columns, loss_index: int,
                     prediction: int | None = None):
        """A runner of whole epochs of this training step in compiled code, bound to `storage`
        and `data` (epoch_runner.py; what runtime/compiled_epochs.py asks a target for);
        `prediction`: the output whose rows the training metrics read."""
        from .epoch_runner import BlockRunner
        return BlockRunner(self, storage, list(batch_inputs), data, batch, columns, loss_index,
                           prediction)


class BoundStep:
    """Holds what a bound step needs: bound arrays, arenas, and the generated call."""

    def __init__(self, compiled: CompiledGraph, arrays: Mapping[str, np.ndarray],
                 inputs: list[str]):
        graph = compiled.graph
        self.compiled, self.input_names = compiled, inputs
        self.output_names = compiled.output_names
        unknown = [n for n in inputs if n not in {v.name for v in graph.inputs}]
        if unknown:
            raise Error(f"bind: {unknown[0]!r} is not an input of the graph")
        self._user: dict[str, np.ndarray] = {}
        for info in graph.params:
            array = arrays.get(info.name)
            if array is None:
                raise Error(f"bind: no value for parameter '{info.name}'", info.span)
            if not (isinstance(array, np.ndarray) and array.dtype == info.value.dtype.numpy
                    and array.flags.c_contiguous and array.flags.writeable):
                raise Error(f"bind: parameter '{info.name}' must be a writeable C-contiguous "
                            f"{info.value.dtype.numpy} array, got "
                            f"{getattr(array, 'dtype', type(array).__name__)}")
            _check_shape(info.name, array, info.value, {})
            self._user[info.name] = array
        self._fixed = {v.name: _contiguous(arrays[v.name], v.dtype.numpy)
                       for v in graph.inputs if v.name not in inputs and v.name in arrays}
        try:                # a released binding's arenas (list.pop is atomic under the GIL)
            self._arenas: dict = compiled._spare_arenas.pop()
        except IndexError:
            self._arenas = {}
        self._function = None           # a weak reference to the step function, once made

    def function(self):
        """The step function: a plain generated function with attributes `input_names`,
        `output_names` and `bound` (this binding).

        The function holds this binding and the binding holds it weakly, so nothing here is
        a reference cycle: dropping the function frees the bound arrays at once, not at the
        garbage collector's next pass.  A fit's storage is freed when its result is, and the
        next fit's reuses that memory; while the old arrays waited for the collector, the
        next fit's fresh optimiser slots page-faulted in on its first step (866 faults,
        2.6 ms of the MLP benchmark's 30 ms fit here)."""
        step = self._function() if self._function is not None else None
        if step is None:
            step = self._make_call()
            step.input_names, step.output_names, step.bound = \
                self.input_names, self.output_names, self
            self._function = weakref.ref(step)
        return step

    def release(self) -> None:
        """Hand this binding's arenas to the next binding of the same compiled graph (the next
        fit of the model): fresh ones page-fault their memory in on the first step, 2 ms of
        the LeNet-5 and MLP benchmarks' fits here (0.5-1 k faults at ~4 us in this VM).  The
        binding stays usable: its next call lays out arenas of its own again."""
        if not self._arrays or not self._arenas:
            return                          # bound once at creation (no array is fed): kept
        spare, self._arenas = self._arenas, {}
        for i in self._arrays:              # the next call's shapes differ: it rebinds
            self._namespace[f"_shape{i}"] = None
        self._namespace["_bound"], self._namespace["_tail"] = None, ()
        self._namespace["_outputs"] = None
        if len(self.compiled._spare_arenas) < 2:
            self.compiled._spare_arenas.append(spare)

    def _make_call(self):
        graph = self.compiled.graph
        by_name = {v.name: v for v in graph.inputs}
        fed = [by_name[n] for n in self.input_names]
        params = [f"a{i}" for i in range(len(fed))]
        scalars = {i: np.zeros((), v.dtype.numpy) for i, v in enumerate(fed) if v.rank == 0}
        arrays = [i for i in range(len(fed)) if i not in scalars]
        namespace = {"_driver": self.compiled.driver, "_rebind": _weakly(self._rebind),
                     "_outputs": None, "_convert": _weakly(self._convert),
                     "_index_error": _weakly(self._index_error), "_clear_flush": _clear_flush}
        namespace.update({f"_s{i}": a for i, a in scalars.items()})
        namespace.update({f"_shape{i}": None for i in arrays})
        position = {n: i for i, n in enumerate(self.input_names)}
        driver_args = []
        for kind, key in self.compiled.generated.params:
            if kind == "input" and key in position:
                i = position[key]
                driver_args.append(f"_s{i}" if i in scalars else f"a{i}")
            else:
                driver_args.append(f"_bound[{len(driver_args)}]")
        suffix = len(driver_args)                 # bound arguments after the last fed one
        while suffix > 0 and driver_args[suffix - 1].startswith("_bound["):
            suffix -= 1
        self._suffix = suffix
        namespace["_tail"] = ()
        driver_args = driver_args[:suffix] + ["*_tail"]
        check = " or ".join(f"a{i}.shape != _shape{i}" for i in arrays) or "False"
        lines = [f"def step({', '.join(params)}):",
                 f"    if {check}:",
                 f"        _rebind({', '.join(params)})"]
        lines += [f"    _s{i}[()] = a{i}" for i in scalars]
        call = ", ".join(driver_args)
        # The outputs the driver leaves in its arenas are views made at each rebind
        # (`_outputs`, see output_views); it returns the others (`_r`).
        places = self.compiled.generated.output_places
        if not any(places):
            lines += ["    try:", f"        return _driver({call})"]
        elif all(places):
            lines += ["    try:", f"        _driver({call})", "        return _outputs"]
        else:
            returned = iter(range(len(places)))
            parts = [f"_outputs[{i}]" if place is not None else f"_r[{next(returned)}]"
                     for i, place in enumerate(places)]
            lines += ["    try:", f"        _r = _driver({call})",
                      f"        return ({', '.join(parts)},)"]
        lines += ["    except TypeError:",
                  f"        return _convert({', '.join(params)})",
                  "    except IndexError as error:",
                  f"        _index_error(error, {', '.join(params)})",
                  "    except Exception:",
                  "        _clear_flush()",
                  "        raise"]
        key = tuple(self.input_names)
        code = self.compiled._call_code.get(key)
        if code is None:            # the lines depend on the graph and the fed names only
            code = self.compiled._call_code[key] = compile("\n".join(lines),
                                                           "<netdsl bound step>", "exec")
        exec(code, namespace)
        step = namespace.pop("step")         # the function does not hold itself
        self._namespace, self._arrays = namespace, arrays
        if not arrays:                       # nothing fed can change the binding: bind now
            self._rebind(*(np.zeros(()) for _ in fed))
        return step

    def __call__(self, *inputs):
        return self.function()(*inputs)

    def _rebind(self, *inputs) -> None:
        """New input shapes: bind the dims, lay out the arena, rebuild the bound arguments."""
        feeds = dict(self._fixed)
        feeds.update({n: np.asarray(a) for n, a in zip(self.input_names, inputs)})
        bindings = bind_dims(self.compiled.graph, feeds)
        offsets, arenas = self.compiled._layout(bindings, self._arenas)
        bound = self.compiled._args(feeds, self._user, offsets, arenas)
        self._namespace["_outputs"] = tuple(self.compiled.output_views(arenas, offsets,
                                                                       bindings))
        self._namespace["_bound"] = bound
        self._namespace["_tail"] = tuple(bound[self._suffix:])
        for i in self._arrays:
            self._namespace[f"_shape{i}"] = inputs[i].shape

    def _index_error(self, error: IndexError, *inputs) -> None:
        """A kernel refused an index: raise the Error that says which input and value."""
        feeds = dict(self._fixed)
        feeds.update(zip(self.input_names, inputs))
        raise index_error(self.compiled.graph, feeds, error) from None

    def _convert(self, *inputs):
        """Slow path: inputs of another dtype or layout are converted, then the step runs."""
        by_name = {v.name: v for v in self.compiled.graph.inputs}
        converted = [a if by_name[n].rank == 0 else _contiguous(a, by_name[n].dtype.numpy)
                     for n, a in zip(self.input_names, inputs)]
        if all(c is a for c, a in zip(converted, inputs)):
            raise TypeError("bound step: the arguments do not match the compiled signature")
        return self.function()(*converted)


def _weakly(method):
    """`method`, called through a weak reference to its object: the generated step's
    namespace must not hold the binding that holds the namespace (BoundStep.function)."""
    reference = weakref.WeakMethod(method)

    def call(*args):
        return reference()(*args)
    return call


def driver_args(params, feeds, user, constants, arenas, offsets) -> list:
    """A generated driver's arguments in the order of its `params` ((kind, key) pairs): fed
    inputs, bound parameters (each an argument, or the cpu driver's one table of their
    addresses, kind "params": param_table.py), constants, one arena per dtype, then the offsets
    (any target whose driver takes the cpu target's parameter list)."""
    args = []
    for kind, key in params:
        if kind == "input":
            args.append(feeds[key])
        elif kind == "param":
            args.append(user[key])
        elif kind == "const":
            args.append(constants[key])
        elif kind == "arena":
            args.append(arenas[key])
        elif kind == "params":                 # the parameters' address table
            from .param_table import address_table
            args.append(address_table(user[name] for name in key))
        else:
            args.append(offsets)
    return args


def output_views(places: list, arenas: dict, offsets: np.ndarray,
                 bindings: Mapping[str, int]) -> list:
    """Per output, a view of the arena where the driver leaves it, for a place (arena dtype,
    slot, shape: GeneratedModule.output_places) under the dims `bindings` and the layout
    `offsets` (MemoryPlan.layout): the C-contiguous array the driver's own `_view` of it
    would be; None where the place is None (the driver returns that output)."""
    views = []
    for place in places:
        if place is None:
            views.append(None)
            continue
        dtype, slot, shape = place
        dims = tuple(evaluate_dim(d, bindings) for d in shape)
        start = int(offsets[slot])
        views.append(arenas[dtype][start:start + prod(dims)].reshape(dims))
    return views


def merged(views: list, returned) -> list:
    """The outputs in order: `views` (output_views), with the driver's `returned` tuple
    filling the places that are None."""
    rest = iter(returned)
    return [next(rest) if view is None else view for view in views]


def index_error(graph: Graph, feeds: Mapping[str, np.ndarray], error: IndexError) -> Exception:
    """The Error for a kernel's INDEX_ERROR (any other IndexError is returned unchanged).
    The driver raised before putting the floating-point state back: the flush goes off here
    (denormals.py)."""
    _clear_flush()
    if not str(error).startswith(INDEX_ERROR):
        return error
    from ...ir.index_ranges import check_index_ranges, index_ranges
    check_index_ranges(feeds, index_ranges(graph), graph.input_spans)   # raises if an input
    span = next((node.span for node in graph.nodes
                 if node.op.name in ("take", "take_grad") and node.span is not None), None)
    return Error("an index computed by the model is out of range for take (an Embedding "
                 "lookup): no row of the table has it", span,
                 hint="ids must lie in [0, vocabulary); check how the ids are computed")


def _clear_flush() -> None:
    """A driver that raised left subnormals flushed in this thread: turn that off
    (denormals.py; any exception out of compiled code comes through here)."""
    from .denormals import clear_flush
    clear_flush()


def _contiguous(array, dtype) -> np.ndarray:
    """A writeable C-contiguous array of `dtype` (the same object when it already is one)."""
    result = np.asarray(array, dtype=dtype)
    if not result.flags.c_contiguous or not result.flags.writeable:
        result = np.array(result, dtype=dtype, order="C")
    return result


def _check_shape(name: str, array, value, bindings) -> None:
    declared = value.shape
    shape = np.shape(array)
    ok = len(shape) == len(declared)
    for d, actual in zip(declared, shape):
        if isinstance(d, int) and d != actual:
            ok = False
    if not ok:
        raise Error(f"'{name}' has declared type {value.type}, but the array has shape "
                    f"{list(shape)}")


__all__ = ["BoundStep", "CompiledGraph", "driver_args"]
