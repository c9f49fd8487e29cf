"""Cold compiles on two cores (numba_cpu/compile_helper.py): a forked helper compiles a split
driver's parts from the last while the parent compiles them from the first; the parent loads
what the helper compiled, and compiles everything itself when the helper fails."""
from __future__ import annotations

import os

from backend_helpers import assert_matches_reference, mlp_graph, training_arrays, training_graph
from netdsl.backends import compile_graph
from netdsl.backends.numba_cpu import compile_helper


def _long_graph(widths_from: int):
    # distinct widths: no repeated run becomes a segment; ~300 statements, several parts
    return training_graph(mlp_graph(tuple(widths_from + k % 5 + k for k in range(25))), "adam")


def _parts_compiled_here(graph, cache_dir):
    """(the compiled graph, the parts this process compiled rather than loaded)."""
    from numba.core import event
    compiled_here = []

    class Listener(event.Listener):
        def on_start(self, ev):
            name = ev.data["dispatcher"].py_func.__name__
            if name.startswith("part_"):
                compiled_here.append(name)

        def on_end(self, ev):
            pass

    listener = Listener()
    event.register("numba:compile", listener)
    try:
        compiled = compile_graph(graph, cache_dir=cache_dir)
    finally:
        event.unregister("numba:compile", listener)
    return compiled, compiled_here


def test_the_helper_compiles_parts_the_parent_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("NETDSL_COMPILE_JOBS", "2")
    graph = _long_graph(4)
    compiled, compiled_here = _parts_compiled_here(graph, tmp_path)
    parts = compiled.report.kernels["parts"]
    assert parts >= 3
    # the helper starts on the last part at once: the parent never compiles all of them
    assert len(compiled_here) < parts
    assert compile_helper._session is None and not compile_helper._helpers
    assert not list(tmp_path.glob("netdsl-compile-*"))
    assert_matches_reference(graph, training_arrays(graph), compiled=compiled, steps=2,
                             rtol=1e-4, atol=1e-5)


def test_a_helper_that_fails_leaves_the_parent_to_compile_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("NETDSL_COMPILE_JOBS", "2")
    forked = []
    compile_parts, spawn = compile_helper._compile_parts, compile_helper._spawn

    def failing(module, names, signature):
        compile_parts(module, [*names, "no_such_part"], signature)   # fails on its first

    def spawn_recorded(work):
        forked.append(spawn(work))
        return forked[-1]
    monkeypatch.setattr(compile_helper, "_compile_parts", failing)
    monkeypatch.setattr(compile_helper, "_spawn", spawn_recorded)
    graph = _long_graph(5)
    compiled, compiled_here = _parts_compiled_here(graph, tmp_path)
    assert len(forked) == 1 and forked[0] > 0           # a helper ran, and failed
    assert sorted(compiled_here) == [f"part_{k}" for k in range(compiled.report.kernels["parts"])]
    assert_matches_reference(graph, training_arrays(graph), compiled=compiled, steps=1,
                             rtol=1e-4, atol=1e-5)


def test_no_helper_on_one_job_or_for_a_short_driver(monkeypatch):
    monkeypatch.setenv("NETDSL_COMPILE_JOBS", "1")
    assert compile_helper.jobs() == 1
    with compile_helper.helping(object(), ["part_0", "part_1"], ()):
        assert compile_helper._session is None
    monkeypatch.setenv("NETDSL_COMPILE_JOBS", "2")
    with compile_helper.helping(object(), [], ()):
        assert compile_helper._session is None
    assert os.environ["NETDSL_COMPILE_JOBS"] == "2"
