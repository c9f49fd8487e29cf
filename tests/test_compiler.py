"""The one entry point (netdsl/compiler.py) and the target registry (backends/target.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import netdsl
from netdsl.backends.target import Target, get_target, target_names
from netdsl.compiler import GRADIENTS, StageRecorder, Training, compile_step, stage_names
from netdsl.errors import Error
from netdsl.ir.graph import Graph
from netdsl.passes.pipeline import stage_names as pass_names

XOR = Path(__file__).resolve().parents[1] / "examples" / "xor.net"


def test_the_registry_knows_both_targets_and_names_them_in_errors():
    assert {"cpu", "reference"} <= set(target_names())
    assert isinstance(get_target("cpu"), Target)
    assert get_target("cpu").stages == ("fuse", "plan_memory", "codegen", "cache", "load")
    assert get_target("reference").stages == ()
    with pytest.raises(Error, match=r"unknown target 'cdu' \(targets: .*cpu.*reference"):
        get_target("cdu")


def test_the_stage_list_is_training_then_passes_then_the_target():
    assert stage_names("cpu") == ["training"] + pass_names() + list(get_target("cpu").stages)
    assert stage_names("reference") == ["training"] + pass_names()


def test_trace_sees_every_stage_in_order_and_stop_after_ends_there():
    model = netdsl.load(XOR)
    training = Training.from_config(model.train_config)
    seen = []
    plan = compile_step(model.training_forward, "cpu", training,
                        trace=lambda stage, result: seen.append(stage),
                        stop_after="plan_memory")
    assert seen == stage_names("cpu")[:stage_names("cpu").index("plan_memory") + 1]
    assert hasattr(plan, "layout")                       # passes.memory.MemoryPlan
    graph = compile_step(model.training_forward, "cpu", training, stop_after="training")
    assert isinstance(graph, Graph) and "loss" in graph.outputs
    with pytest.raises(Error, match="unknown compiler stage 'fsue'"):
        compile_step(model.training_forward, "cpu", training, stop_after="fsue")


def test_forward_and_gradients_agree_across_targets():
    """Model.forward on cpu now runs the pass pipeline too: the outputs are unchanged."""
    model = netdsl.load(XOR)
    weights = model.init(seed=0)
    inputs = {"x": np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)}
    cpu, reference = model.forward(weights, inputs, "cpu"), model.forward(weights, inputs)
    for name in reference:
        np.testing.assert_allclose(cpu[name], reference[name], rtol=1e-5, atol=1e-6)
    recorder = StageRecorder("training")
    compiled = compile_step(model.training_forward, "reference", GRADIENTS, trace=recorder)
    assert {f"grad.{p.name}" for p in model.graph.trainable} <= set(recorder["training"].outputs)
    assert compiled.report.target == "reference"
