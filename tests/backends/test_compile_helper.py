"""Cold compiles on two cores (numba_cpu/compile_helper.py): a forked helper compiles a split
driver's parts from the last while the parent compiles them from the first; the parent loads
what the helper compiled, and compiles everything itself when the helper fails."""
from __future__ import annotations

import os

import numba
import pytest
from backend_helpers import assert_matches_reference, mlp_graph, training_arrays, training_graph
from netdsl.backends import compile_graph
from netdsl.backends.numba_cpu import compile_helper
from netdsl.backends.numba_cpu.separate import separately


@pytest.fixture(autouse=True)
def _own_kernels_loaded():
    """netdsl's own products loaded first (own_entry.py), where they run here: a cold first
    compile would otherwise fork one more helper, for them, beside the ones counted below."""
    from netdsl.backends.numba_cpu import own_entry
    own_entry.load()


def _long_graph(widths_from: int):
    # distinct widths: no repeated run becomes a segment; ~300 statements, several parts
    return training_graph(mlp_graph(tuple(widths_from + k % 5 + k for k in range(25))), "adam")


def _parts_compiled(graph, cache_dir, record):
    """(the compiled graph, the parts this process compiled rather than loaded); every part
    compile in this process or its helper (the listener forks with it) is appended to
    `record` as "<pid> <name>"."""
    from numba.core import event
    compiled_here = []

    class Listener(event.Listener):
        def on_start(self, ev):
            name = ev.data["dispatcher"].py_func.__name__
            if name.startswith("part_"):
                with open(record, "a") as lines:
                    lines.write(f"{os.getpid()} {name}\n")
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


@pytest.mark.parametrize("twin", [False, True], ids=["parts", "twin then parts"])
def test_the_helper_compiles_parts_the_parent_then_loads(tmp_path, monkeypatch, twin):
    """The helper takes the parts the parent has not (first typing the driver's reversed
    twin, where a separately called function is uncached: `twin`); each part is compiled
    once, by one of the two, and the step agrees with the reference."""
    from netdsl.backends.numba_cpu import numba_cache, target
    monkeypatch.setenv("NETDSL_COMPILE_JOBS", "2")
    monkeypatch.setattr(numba_cache, "separate_uncached", lambda module: twin)
    helped, helped_by = [], target._helped
    monkeypatch.setattr(target, "_helped", lambda *args: helped.append(helped_by(*args)) or
                        helped[-1])
    spawned, spawn = [], compile_helper._spawn
    monkeypatch.setattr(compile_helper, "_spawn",
                        lambda work: spawned.append(spawn(work)) or spawned[-1])
    graph = _long_graph(6 if twin else 4)
    record = tmp_path / "compiles.txt"
    compiled, _ = _parts_compiled(graph, tmp_path / "cache", record)
    parts = [f"part_{k}" for k in range(compiled.report.kernels["parts"])]
    assert len(parts) >= 3 and helped[-1] == parts + (["warm_up"] if twin else [])
    assert len(spawned) == 1 and spawned[0] > 0
    # Each part compiled once, in one of the two processes (which one, and how many each,
    # depends on how the two were scheduled); the other loaded it from Numba's cache.
    compiles = [line.split() for line in record.read_text().splitlines()]
    assert sorted(name for _, name in compiles) == parts
    assert {int(pid) for pid, _ in compiles} <= {os.getpid(), spawned[0]}
    assert compile_helper._session is None and not compile_helper._helpers
    assert not list(tmp_path.glob("netdsl-compile-*"))
    assert_matches_reference(graph, training_arrays(graph), compiled=compiled, steps=2,
                             rtol=1e-4, atol=1e-5)


def test_a_helper_that_fails_leaves_the_parent_to_compile_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("NETDSL_COMPILE_JOBS", "2")
    forked = []
    compile_parts, spawn = compile_helper._compile_parts, compile_helper._spawn

    def failing(module, names, signature):
        compile_parts(module, ["no_such_part"], signature)   # fails before any part

    def spawn_recorded(work):
        forked.append(spawn(work))
        return forked[-1]
    monkeypatch.setattr(compile_helper, "_compile_parts", failing)
    monkeypatch.setattr(compile_helper, "_spawn", spawn_recorded)
    graph = _long_graph(5)
    compiled, compiled_here = _parts_compiled(graph, tmp_path / "cache", tmp_path / "record")
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


TINY = """
model Tiny {
    in  x: f32[B, 2]
    in  y: i64[B]
    logits = x |> Dense(3) as classifier
    out probs = softmax(logits)
    loss cross_entropy(logits, y)
}
"""


def test_fit_compiles_its_validation_graph_in_a_helper(tmp_path, monkeypatch):
    """The validation graph compiles in a helper while the step compiles here: this process
    then loads it (no compile of its own), and the run is the one without a helper."""
    import sys

    import numpy as np

    import netdsl
    (tmp_path / "tiny.net").write_text(TINY)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    data = {"x": x, "y": (x[:, 0] > 0).astype(np.int64)}
    histories, reports = [], []
    for jobs in ("2", "1"):
        for name in [name for name in sys.modules if name.startswith("netdsl_generated_")]:
            del sys.modules[name]              # as in a new process: nothing in memory
        monkeypatch.setenv("NETDSL_COMPILE_JOBS", jobs)
        monkeypatch.setenv("NETDSL_CACHE_DIR", str(tmp_path / f"cache{jobs}"))
        model = netdsl.load(tmp_path / "tiny.net")
        result = model.fit(model.init(seed=0), data, epochs=2, batch=8, split=0.5)
        histories.append([{k: v for k, v in row.items() if k not in ("seconds",
                                                                    "examples_per_second")}
                          for row in result.history])
        reports.append(model.compiled_evaluation("cpu")[0].report)
        assert compile_helper._session is None and not compile_helper._helpers
        if jobs == "2":                  # a second fit has it: no helper for nothing
            spawned = []
            with monkeypatch.context() as patch:
                patch.setattr(compile_helper, "_spawn", lambda work: spawned.append(work))
                model.fit(model.init(seed=0), data, epochs=1, batch=8, split=0.5)
            assert spawned == []
    assert reports[0].llvm_compiles == 0 and reports[0].cache_hit      # the helper's work
    assert reports[1].llvm_compiles > 0
    assert histories[0] == histories[1] and "val_loss" in histories[0][0]


def _tiny_step(tmp_path):
    """The model TINY and a function compiling its training step into a cache of its own, as
    a new process would (nothing generated in memory)."""
    import sys

    import netdsl
    for name in [name for name in sys.modules if name.startswith("netdsl_generated_")]:
        del sys.modules[name]
    tmp_path.mkdir(parents=True, exist_ok=True)
    from netdsl.compiler import Training, compile_step
    (tmp_path / "tiny.net").write_text(TINY)
    model = netdsl.load(tmp_path / "tiny.net")
    return model, lambda: compile_step(model.training_forward, "cpu",
                                       Training.from_config(model.train_config),
                                       cache_dir=tmp_path / "cache")


def test_a_whole_driver_has_a_reversed_twin_of_its_first_library_calls(tmp_path, monkeypatch):
    """A driver that stays whole gets `warm_up`: the statements of its first call of each
    separately compiled kernel, last first, which compiles for the driver's own types."""
    import re
    import sys
    monkeypatch.setenv("NETDSL_COMPILE_JOBS", "1")
    _, compile_tiny = _tiny_step(tmp_path)
    compiled = compile_tiny()
    source = compiled.generated.source
    driver = source[source.index("def step("):]
    twin = source[source.index("def warm_up("):source.index("def step(")]
    called = re.compile(r"^    (_\w+)\(", re.M)
    library = set(re.findall(r"^(_\w+) = _separately\(", source, re.M))
    firsts = list(dict.fromkeys(name for name in called.findall(driver) if name in library))
    assert len(firsts) >= 3                # matmul, log_softmax, cross-entropy and its grad
    assert called.findall(twin) == firsts[::-1]
    module = sys.modules[f"netdsl_generated_{compiled.report.key}"]
    signature = compiled.driver.signatures[0]
    compile_helper._compile_parts(module, ["warm_up"], signature)   # as a helper would
    assert module.warm_up.signatures == []         # typed for the signature, not compiled


@numba.njit
def _plus_one(x):
    return x + 1.0


_plus_one_separately = separately(_plus_one)


@numba.njit
def _calls_plus_one(x):
    return _plus_one_separately(x)


def test_typing_the_twin_compiles_what_it_calls_separately_and_not_the_twin():
    """The helper only types a twin (compile_helper._type_only): typing a separate call
    compiles the callee, which is what the parent will load; the twin itself is never
    lowered, so it has no compiled signature."""
    assert _plus_one.signatures == [] and _calls_plus_one.signatures == []
    compile_helper._type_only(_calls_plus_one, (numba.float64,))
    assert _plus_one.signatures == [(numba.float64,)]
    assert _calls_plus_one.signatures == []
    assert _calls_plus_one(1.5) == 2.5             # and it still compiles as usual after


def test_the_twin_is_helped_only_where_a_separate_function_is_uncached(tmp_path, monkeypatch):
    from netdsl.backends.numba_cpu import numba_cache, target
    monkeypatch.setenv("NETDSL_COMPILE_JOBS", "2")
    helped = []
    helped_by = target._helped
    monkeypatch.setattr(target, "_helped", lambda *args: helped.append(helped_by(*args)) or
                        helped[-1])
    spawned, spawn = [], compile_helper._spawn
    monkeypatch.setattr(compile_helper, "_spawn",
                        lambda work: spawned.append(spawn(work)) or spawned[-1])
    monkeypatch.setattr(numba_cache, "separate_uncached", lambda module: False)
    _, compile_tiny = _tiny_step(tmp_path / "cached")
    compile_tiny()
    assert helped == [[]] and spawned == []
    monkeypatch.setattr(numba_cache, "separate_uncached", lambda module: True)
    compiled = _tiny_step(tmp_path / "uncached")[1]()
    assert helped[-1] == ["warm_up"] and len(spawned) == 1 and spawned[0] > 0
    assert compile_helper._session is None and not compile_helper._helpers
    assert compiled.report.llvm_compiles > 0


def test_abandon_stops_the_helpers_and_removes_the_lock_directory():
    """What the CLI's exit on a signal calls (os._exit runs no `finally`): the helpers are
    killed and reaped, the session's lock directory removed; leaving the session after that
    (as a test does, where the process goes on) is harmless."""
    import time
    with compile_helper._active_session():
        session = compile_helper._session
        pid = compile_helper._spawn(lambda: time.sleep(60))
        assert pid and session.is_dir()
        compile_helper.abandon()
        assert not session.exists() and compile_helper._session is None
        assert pid not in compile_helper._helpers
        with pytest.raises(ChildProcessError):          # killed and already reaped
            os.waitpid(pid, os.WNOHANG)
    assert compile_helper._session is None and compile_helper._depth == 0
