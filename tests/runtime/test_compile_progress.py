"""What fit says while compiling: a spinner on a terminal naming the step and stage, and the
plain lines (ops, kernels, cache) everywhere."""
from __future__ import annotations

import io
import time

import numpy as np

import netdsl
from netdsl.compiler import stage_names
from netdsl.runtime import progress
from netdsl.runtime.compile_progress import CompilePhases, stage_text
from netdsl.runtime.progress import Spinner

MODEL = """
model Tiny {
    in  x: f32[B, 2]
    in  y: i64[B]
    logits = x |> Dense(3) as classifier
    out probs = softmax(logits)
    loss cross_entropy(logits, y)
}
"""


class Recorder:
    def __init__(self):
        self.texts = []

    def phase(self, text):
        self.texts.append(text)


def test_spinner_redraws_the_phase_and_erases_itself():
    shown = io.StringIO()
    with Spinner("compiling Tiny", stream=shown, force=True, interval=0.005) as spinner:
        assert shown.getvalue() == "\r| compiling Tiny  0.00s"      # the first frame at once
        spinner.phase("step: generating code")
        time.sleep(0.1)
    frames = shown.getvalue().split("\r")[1:]
    assert len(frames) >= 3
    assert frames[1].startswith("/ compiling Tiny: step: generating code  0.")
    # The last write blanks the longest line drawn and returns to its start.
    assert frames[-1] == "" and frames[-2] == " " * len(frames[-3].rstrip())


def test_spinner_off_a_terminal_writes_nothing():
    quiet = io.StringIO()
    with Spinner("compiling Tiny", stream=quiet, interval=0.001) as spinner:
        spinner.phase("step: fusing kernels")
        time.sleep(0.01)
    assert quiet.getvalue() == "" and spinner._thread is None
    with Spinner("x", stream=io.StringIO(), force=True, enabled=False) as spinner:
        assert spinner._thread is None


class Step:
    """What on_step reads of a compiled step."""

    def __init__(self, nodes: int, kernels: dict):
        self.reused = False
        self.compiled = type("Compiled", (), {})()
        self.compiled.graph = type("Graph", (), {"nodes": [None] * nodes})()
        self.compiled.report = type("Report", (), {"kernels": kernels, "module_path": "",
                                                   "cache_hit": False, "total": 0.0})()


def test_compile_phases_name_the_stage_running_and_print_each_graph_when_done():
    recorder, printed = Recorder(), []
    recorder.above = lambda write: write()
    phases = CompilePhases(recorder, ["d_loss", "g_loss"], "cpu", printed.append)
    stages = stage_names("cpu")
    for number in range(2):
        for stage in stages:
            phases(stage, None)
        assert len(printed) == number
        phases.on_step(Step(10 + number, {"inlined": 3, "parallel": number}))
    evaluator = phases.validation(lambda: Step(5, {}))
    assert isinstance(evaluator, Step)
    texts = recorder.texts
    assert texts[0] == "d_loss (1/2): building the gradients and the update"
    assert texts[stages.index("cache") + 1] == \
        "d_loss (1/2): loading (a first run compiles with LLVM: seconds, once)"
    assert texts[len(stages)] == "g_loss (2/2): building the gradients and the update"
    assert texts[len(stages) + 2] == "g_loss (2/2): graph pass dce"
    assert len(texts) == 2 * len(stages) + 1
    assert texts[-1] == "validation: compiling the inference graph"
    assert printed == ["  d_loss: 10 ops in 3 kernels", "  g_loss: 11 ops in 4 kernels",
                       "  validation: 5 ops"]
    assert stage_text("verify") == "graph pass verify"


def test_fit_spins_on_a_terminal_and_prints_a_line_per_compiled_graph(tmp_path, capsys,
                                                                      monkeypatch):
    path = tmp_path / "tiny.net"
    path.write_text(MODEL)
    model = netdsl.load(path)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    data = {"x": x, "y": (x[:, 0] > 0).astype(np.int64)}
    monkeypatch.setattr(progress, "_is_terminal", lambda stream: True)
    model.fit(model.init(seed=0), data, epochs=1, batch=8, split=0.5, verbose=True)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "compiling Tiny for cpu: 1 training step..."
    assert lines[1].startswith("  step: ") and " ops in " in lines[1]
    assert lines[2].startswith("  validation: ") and " ops in " in lines[2]
    assert lines[3].startswith("  ready in ")
    assert err.startswith("\r| compiling Tiny: step: building the gradients and the update")
    # Each line was printed with the spinner's line erased: the stream ends blank.
    assert err.endswith("\r") and err.split("\r")[-2].strip() == ""


def test_a_second_fit_of_a_model_reuses_its_compiled_graphs_and_says_so(tmp_path, capsys,
                                                                        monkeypatch):
    """Model.compiled_training_step / compiled_evaluation: the second fit compiles nothing
    (the compiler is not called) and trains exactly as the first did."""
    from netdsl import compiler
    path = tmp_path / "tiny.net"
    path.write_text(MODEL)
    model = netdsl.load(path)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    data = {"x": x, "y": (x[:, 0] > 0).astype(np.int64)}
    first = model.fit(model.init(seed=0), data, epochs=2, batch=8, split=0.5, verbose=True)
    capsys.readouterr()

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled again")
    monkeypatch.setattr(compiler, "compile_step", no_compile)
    second = model.fit(model.init(seed=0), data, epochs=2, batch=8, split=0.5, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith(", compiled earlier in this process")
    assert lines[2].startswith("  validation: ") and \
        lines[2].endswith(", compiled earlier in this process")
    for old, new in zip(first.history, second.history):
        assert {k: v for k, v in old.items() if "second" not in k} == \
            {k: v for k, v in new.items() if "second" not in k}
    for name, value in first.weights.items():
        np.testing.assert_array_equal(value, second.weights[name])
    # Another optimiser setting is another step: compiled, not reused.
    monkeypatch.undo()
    model.fit(model.init(seed=0), data, epochs=1, batch=8, split=0.5, verbose=True,
              optimizer="SGD")
    assert "compiled earlier" not in capsys.readouterr().out.splitlines()[1]
