"""A graph compiled for the cuda target, at run time.

`CudaCompiledGraph.run(arrays)` has the reference semantics (host arrays in, fresh host arrays
out, state updates written back into `arrays`); it copies everything each call.

`bind(arrays, inputs)` is the training loop's path and keeps the model on the device: each
bound host array (parameters, optimiser state) gets ONE device copy, shared by every step bound
to that same host array (a GAN's two steps update one discriminator), and made when first
bound.  Per call only the fed batch crosses to the device (rank-0 inputs such as `__lr__` as
0-d device arrays), the generated host driver launches the kernels over the device arenas, and
the outputs (loss, predictions) come back to the host.  The host arrays are stale while
training runs: `synchronize()` copies the device state back into them (the training loop calls
it before it reads weights: validation, checkpoints, the end of the run), and `upload()` copies
host arrays that the caller changed (a resumed run's restored state) to the device.
"""
from __future__ import annotations

import weakref
from typing import Mapping, Sequence

import numpy as np

from ...errors import Error
from ...ir.graph import Graph
from ..numba_cpu.compiled import _check_shape, _contiguous, driver_args, index_error
from ..reference import bind_dims

# id(host array) -> (weak reference to it, its device copy): one device copy per host array.
_MIRRORS: dict[int, tuple] = {}


def device_copy(host: np.ndarray, cuda):
    """The device copy of a bound host array, shared by every step that binds it."""
    entry = _MIRRORS.get(id(host))
    if entry is not None and entry[0]() is host:
        return entry[1]
    device = cuda.to_device(host)
    _MIRRORS[id(host)] = (weakref.ref(host, lambda _, key=id(host): _MIRRORS.pop(key, None)),
                          device)
    return device


class CudaCompiledGraph:
    """A graph compiled to a generated CUDA module (see target.py)."""

    def __init__(self, graph: Graph, cuda, module, generated, plan, fused, report, constants):
        self.graph, self.cuda, self.module, self.generated = graph, cuda, module, generated
        self.driver = module.step
        self.plan, self.fused, self.report = plan, fused, report
        self.source = generated.source
        self.output_names = list(generated.outputs)
        self._constants = {k: cuda.to_device(array) for k, array in constants.items()}
        self._arenas: dict = {}

    def _layout(self, bindings: Mapping[str, int], arenas: dict) -> np.ndarray:
        offsets, totals = self.plan.layout(bindings)
        for dtype, total in totals.items():
            current = arenas.get(dtype)
            if current is None or current.shape[0] < total:
                arenas[dtype] = self.cuda.device_array(max(total, 1), dtype=dtype.numpy)
        return offsets

    def _args(self, feeds, user, offsets, arenas) -> list:
        # The offsets as Python ints: the host driver slices device arrays with them.
        return driver_args(self.generated.params, feeds, user, self._constants, arenas,
                           offsets.tolist())

    def _call(self, args, feeds_host) -> tuple:
        try:
            return self.driver(*args)
        except IndexError as error:
            raise index_error(self.graph, feeds_host, error) from None

    def run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step with reference semantics (host arrays in and out)."""
        graph, cuda = self.graph, self.cuda
        host = {}
        for value in graph.inputs:
            if value.name not in arrays:
                raise Error(f"no data for input '{value.name}'",
                            graph.input_spans.get(value.name))
            host[value.name] = _contiguous(arrays[value.name], value.dtype.numpy)
        bindings = bind_dims(graph, host)
        user = {}
        for info in graph.params:
            if info.name not in arrays:
                raise Error(f"no value for parameter '{info.name}'", info.span)
            _check_shape(info.name, arrays[info.name], info.value, bindings)
            user[info.name] = cuda.to_device(_contiguous(arrays[info.name],
                                                         info.value.dtype.numpy))
        feeds = {name: cuda.to_device(array) for name, array in host.items()}
        offsets = self._layout(bindings, self._arenas)
        results = self._call(self._args(feeds, user, offsets, self._arenas), host)
        for info in graph.params:                # state updates, as the reference writes them
            if info.name in graph.state_updates:
                arrays[info.name][...] = user[info.name].copy_to_host()
        return {name: np.array(result.copy_to_host())
                for name, result in zip(self.output_names, results)}

    __call__ = run

    def bind(self, arrays: Mapping[str, np.ndarray], inputs: Sequence[str] | None = None):
        bound = CudaBoundStep(self, arrays, list(inputs) if inputs is not None else
                              [v.name for v in self.graph.inputs])
        return _Step(bound)


class _Step:
    """The bound step as the training loop calls it: `step(*inputs) -> outputs`."""

    def __init__(self, bound: "CudaBoundStep"):
        self.bound = bound
        self.input_names, self.output_names = bound.input_names, bound.output_names

    def __call__(self, *inputs):
        return self.bound(*inputs)


class CudaBoundStep:
    """Bound parameters and state on the device; per call the batch goes over."""

    def __init__(self, compiled: CudaCompiledGraph, arrays: Mapping[str, np.ndarray],
                 inputs: list[str]):
        graph, cuda = compiled.graph, compiled.cuda
        self.compiled, self.cuda, self.input_names = compiled, cuda, inputs
        self.output_names = compiled.output_names
        known = {v.name for v in graph.inputs}
        unknown = [n for n in inputs if n not in known]
        if unknown:
            raise Error(f"bind: {unknown[0]!r} is not an input of the graph")
        self._host: dict[str, np.ndarray] = {}
        self._user: dict = {}
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
            self._host[info.name] = array
            self._user[info.name] = device_copy(array, cuda)
        self._fixed_host = {v.name: _contiguous(arrays[v.name], v.dtype.numpy)
                            for v in graph.inputs if v.name not in inputs and v.name in arrays}
        self._fixed = {name: cuda.to_device(a) for name, a in self._fixed_host.items()}
        self._by_name = {v.name: v for v in graph.inputs}
        self._shapes: tuple | None = None
        self._arenas: dict = {}
        self._offsets = None

    def __call__(self, *inputs):
        cuda = self.cuda
        host = {}
        for name, array in zip(self.input_names, inputs):
            value = self._by_name[name]
            host[name] = _contiguous(array, value.dtype.numpy)
        shapes = tuple(a.shape for a in host.values())
        if shapes != self._shapes:
            bindings = bind_dims(self.compiled.graph, {**self._fixed_host, **host})
            self._offsets = self.compiled._layout(bindings, self._arenas)
            self._shapes = shapes
        feeds = dict(self._fixed)
        feeds.update({name: cuda.to_device(array) for name, array in host.items()})
        args = self.compiled._args(feeds, self._user, self._offsets, self._arenas)
        results = self.compiled._call(args, {**self._fixed_host, **host})
        return tuple(result.copy_to_host() for result in results)

    def synchronize(self) -> None:
        """Copy the device state back into the bound host arrays."""
        for name, device in self._user.items():
            if name in self.compiled.graph.state_updates:
                device.copy_to_host(self._host[name])

    def upload(self) -> None:
        """Copy the bound host arrays (changed by the caller) to their device copies."""
        for name, device in self._user.items():
            device.copy_to_device(self._host[name])


__all__ = ["CudaBoundStep", "CudaCompiledGraph", "device_copy"]
