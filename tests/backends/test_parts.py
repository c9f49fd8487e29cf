"""A long step driver split into parts (numba_cpu/parts.py): the same numbers, and cuts only
where no local crosses them."""
from __future__ import annotations

from backend_helpers import assert_matches_reference, mlp_graph, training_arrays, training_graph
from netdsl.backends import compile_graph
from netdsl.backends.numba_cpu import parts


def test_a_long_driver_runs_in_parts_and_matches_the_reference():
    # 24 layers of distinct widths (no repeated run becomes a segment): a driver of ~300
    # statements, above SPLIT_ABOVE.
    graph = training_graph(mlp_graph(tuple(3 + k % 5 + k for k in range(25))), "adam")
    compiled = compile_graph(graph)
    assert compiled.report.kernels["parts"] >= 2
    assert "part_0(" in compiled.generated.source
    assert_matches_reference(graph, training_arrays(graph), compiled=compiled, steps=2,
                             rtol=1e-4, atol=1e-5)


def _split(body, monkeypatch, returned=("return (v_0,)",)):
    monkeypatch.setattr(parts, "SPLIT_ABOVE", 2)
    monkeypatch.setattr(parts, "PART_STATEMENTS", 2)
    defined = {}

    def define(name, lines):
        defined[name] = lines
        return name
    calls = parts.split_driver(["d_0 = in_0.shape[0]"], body, list(returned),
                               {"v_0": "v_0 = _view(arena, offsets[0], (d_0,))"},
                               ["in_0", "arena", "offsets"], {"kernel_0", "range"}, define)
    return calls, defined


def test_parts_cut_only_where_no_local_crosses(monkeypatch):
    body = ["kernel_0(v_0)", "kernel_0(v_0)", "t = v_0[0]", "kernel_0(v_0)", "kernel_0(v_0)",
            "v_0[1] = t", "kernel_0(v_0)", "kernel_0(v_0)", "o = 0", "kernel_0(v_0)",
            "kernel_0(v_0)", "kernel_0(v_0)", "o += 1", "kernel_0(v_0)", "kernel_0(v_0)"]
    calls, defined = _split(body, monkeypatch)
    assert calls == [f"{name}(in_0, arena, offsets)" for name in defined]
    for lines in defined.values():   # `t` and `o` (read by `o += 1`) stay in one part each
        text = "\n".join(lines)
        assert ("t = v_0[0]" in text) == ("v_0[1] = t" in text)
        assert ("o = 0" in text) == ("o += 1" in text)
        assert "v_0 = _view(arena, offsets[0], (d_0,))" in text and "d_0 = in_0" in text
    assert len(defined) >= 2


def test_else_stays_with_its_if_and_short_or_unsplittable_drivers_stay_whole(monkeypatch):
    body = ["kernel_0(v_0)", "if d_0 > 1:", "    kernel_0(v_0)", "else:", "    kernel_0(v_0)",
            "kernel_0(v_0)", "kernel_0(v_0)"]
    calls, defined = _split(body, monkeypatch)
    for lines in defined.values():
        text = "\n".join(lines)
        assert ("if d_0 > 1:" in text) == ("else:" in text)
    # the return reads a local of the body: no parts
    assert _split(["t = v_0[0]", "kernel_0(v_0)", "kernel_0(v_0)", "kernel_0(v_0)"],
                  monkeypatch, returned=("return (t,)",))[0] is None


def test_a_busy_step_splits_a_shorter_driver(monkeypatch):
    # Above SPLIT_BUSY_ABOVE statements (not SPLIT_ABOVE), a driver is split only where its
    # step touches BUSY_ELEMENTS elements or more: a tiny step keeps the parts' calls away.
    body = [f"kernel_0(v_{k % 2})" for k in range(12)]
    monkeypatch.setattr(parts, "SPLIT_BUSY_ABOVE", 8)
    monkeypatch.setattr(parts, "SPLIT_ABOVE", 20)
    monkeypatch.setattr(parts, "PART_STATEMENTS", 6)
    carves = {"v_0": "v_0 = _view(arena, offsets[0], (d_0,))",
              "v_1": "v_1 = _view(arena, offsets[1], (d_0,))"}

    def split(elements):
        return parts.split_driver(["d_0 = in_0.shape[0]"], body, ["return ()"], carves,
                                  ["in_0", "arena", "offsets"], {"kernel_0"},
                                  lambda name, lines: name, elements=elements)
    assert split(parts.BUSY_ELEMENTS - 1) is None
    # twelve statements in parts of six would make two: three parts of four instead
    # (LEAST_PARTS), so the helper process has one of its own beside this one's first
    assert split(parts.BUSY_ELEMENTS) == [f"part_{k}(in_0, arena, offsets)" for k in range(3)]
    # above twice PART_STATEMENTS the parts keep that length: 3 of 6, 6 and 1 statements
    body.append("kernel_0(v_0)")
    assert len(split(parts.BUSY_ELEMENTS)) == 3
    monkeypatch.setattr(parts, "PART_STATEMENTS", 4)
    assert len(split(parts.BUSY_ELEMENTS)) == 4


def test_the_mlp_benchmarks_step_is_split_and_xors_is_not():
    # The drivers of the MLP benchmark (784-256-256-10, Adam: ~1.1 M elements, ~70
    # statements) and of XOR (2-8-1: ~3 k elements, ~90 statements), as code generation
    # makes them (no Numba compile).
    from pathlib import Path

    import netdsl
    from netdsl.compiler import Training, compile_step
    models = Path(__file__).resolve().parents[2] / "benchmarks" / "models"
    counts = {}
    for name in ("mlp", "xor"):
        model = netdsl.load(models / f"{name}.net")
        generated = compile_step(model.training_forward, "cpu",
                                 Training.from_config(model.train_config), stop_after="codegen")
        counts[name] = generated.source.count("\ndef part_")
    assert counts == {"mlp": 3, "xor": 0}
