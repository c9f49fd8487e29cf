"""The cuda target's generated kernels against the reference interpreter: the cpu target's
backend tests (tests/backends/test_numba_cpu.py) rerun with every `compile_graph` of theirs
compiling for "cuda" -- elementwise chains with broadcasting, reductions over every axis
pattern, matmul epilogues, training steps with in-place updates, bound steps over new batch
sizes.  Tests about the cpu target's own machinery (parallel kernels, njit specifics) are
left out by name."""
from __future__ import annotations

import importlib

import pytest

from cuda_helpers import needs_cuda

pytestmark = needs_cuda

cpu_tests = importlib.import_module("test_numba_cpu")
helpers = importlib.import_module("backend_helpers")

# cpu-only: parallel (prange) kernels, CodegenOptions, Numba's own error machinery.
CPU_ONLY = {"test_parallel", "test_parallel_min", "test_parallel_kernels_match_serial"}


def _cases() -> list:
    """(test name, its parametrize arguments) for every case of every cpu backend test."""
    cases = []
    for name in sorted(dir(cpu_tests)):
        if not name.startswith("test_") or any(name.startswith(p) for p in CPU_ONLY):
            continue
        marks = [m for m in getattr(getattr(cpu_tests, name), "pytestmark", [])
                 if m.name == "parametrize"]
        if not marks:
            cases.append(pytest.param(name, {}, id=name))
            continue
        argument, values = marks[0].args[0], marks[0].args[1]
        for value in values[:1] if argument == "parallel_min" else values:
            cases.append(pytest.param(name, {argument: value}, id=f"{name}[{value}]"))
    return cases


def _synchronized(bind):
    """A bound cuda step keeps the state on the device; the cpu tests read the host arrays
    after each call, so copy the state back after each call (what fit does per epoch)."""
    def bind_and_synchronize(*args, **kwargs):
        step = bind(*args, **kwargs)

        def call(*inputs):
            outputs = step(*inputs)
            step.bound.synchronize()
            return outputs
        call.input_names, call.output_names, call.bound = \
            step.input_names, step.output_names, step.bound
        return call
    return bind_and_synchronize


@pytest.fixture
def on_cuda(monkeypatch):
    from netdsl.backends import compile_graph

    def for_cuda(graph, target="cpu", cache_dir=None, **options):
        if target != "cpu":
            pytest.skip(f"compiles for {target}")
        # the cpu CodegenOptions (parallel kernels) mean nothing on cuda
        compiled = compile_graph(graph, target="cuda", cache_dir=cache_dir)
        compiled.bind = _synchronized(compiled.bind)
        return compiled

    monkeypatch.setattr(helpers, "compile_graph", for_cuda)
    monkeypatch.setattr(cpu_tests, "compile_graph", for_cuda)


@pytest.mark.parametrize("name, given", _cases())
def test_cpu_backend_test_on_cuda(name, given, on_cuda, request):
    function = getattr(cpu_tests, name)
    wanted = function.__code__.co_varnames[:function.__code__.co_argcount]
    arguments = {parameter: given[parameter] if parameter in given else
                 request.getfixturevalue(parameter) for parameter in wanted}
    function(**arguments)
