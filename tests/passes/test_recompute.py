"""passes/recompute.py: a late reader of a cheap large value computes its own copy, only where
that keeps nothing alive longer and the copy can fuse into the reader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netdsl.backends.reference import run
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import DType, Sym, TensorType
from netdsl.passes.fusion import fuse
from netdsl.passes.recompute import recompute_late_reads

B = Sym.named("B")
ROOT = Path(__file__).resolve().parents[2]


def t32(*shape) -> TensorType:
    return TensorType(DType.f32, tuple(shape))


def _normalise_and_read_late(late_reader: str = "mul", keep_centred: bool = True,
                             channels: int = 64):
    """x_hat = centred * rstd, read by `y = x_hat * g` at once and by `late_reader` after an
    unrelated stretch; `keep_centred`: centred is read after that too (as batch norm's
    backward pass does)."""
    b = GraphBuilder(Graph(name="late"))
    x = b.input("x", t32(B, channels, 16))
    g = b.input("g", t32(B, channels, 16))
    w = b.input("w", t32(16, 16))
    rstd = b.input("rstd", t32(1, channels, 1))
    centred = b.op("sub", x, b.op("mean", x, axes=(0, 2), keepdims=True))
    x_hat = b.op("mul", centred, rstd)
    y = b.op("mul", x_hat, g)
    between = b.op("sum", y, axes=(1, 2))       # a reduction: closes x_hat's kernel
    late = b.op(late_reader, x_hat, w) if late_reader == "matmul" else b.op(late_reader, x_hat, g)
    outputs = {"y": between, "late": late}
    if keep_centred:
        outputs["after"] = b.op("sum", b.op("mul", centred, late), axes=(0, 2))
    b.graph.outputs = outputs
    return b.graph, x_hat


def _arrays(graph, batch=3):
    rng = np.random.default_rng(0)
    return {v.name: rng.standard_normal([batch if d == B else d for d in v.shape]).astype(
        np.float32) for v in graph.inputs}


def _producers_of(graph, op):
    return [n for n in graph.nodes if n.op.name == op]


def test_a_late_reader_gets_its_own_copy_and_the_value_is_no_longer_stored():
    graph, _ = _normalise_and_read_late()
    after = recompute_late_reads(graph)
    assert len(_producers_of(after, "mul")) == len(_producers_of(graph, "mul")) + 1
    arrays = _arrays(graph)
    for name, value in run(graph, dict(arrays)).items():
        np.testing.assert_array_equal(run(after, dict(arrays))[name], value)
    # Before, x_hat was a kernel output (stored for its late reader); after, no group exports
    # a value made by that first mul.
    def stored_products(fused):
        return sum(1 for group in fused.groups for v in group.outputs
                   if v.producer is not None and v.producer.op.name == "mul"
                   and v.producer.inputs[1].name == "rstd")
    assert stored_products(fuse(graph)) == 1
    assert stored_products(fuse(after)) == 0


def test_no_copy_when_the_inputs_would_live_longer():
    graph, _ = _normalise_and_read_late(keep_centred=False)
    # centred's last data read is x_hat's own mul and the first reader: a copy at the late
    # reader would keep centred alive until then.  (The late reader reads g, not centred.)
    assert recompute_late_reads(graph) is graph


def test_no_copy_for_a_reader_that_cannot_fuse_it():
    graph, _ = _normalise_and_read_late(late_reader="matmul")
    assert recompute_late_reads(graph) is graph


def test_no_copy_for_small_values():
    graph, _ = _normalise_and_read_late(channels=2)     # [128, 2, 16] at the hint: 4,096
    assert recompute_late_reads(graph) is graph


def test_a_read_of_the_shape_alone_is_not_a_reader():
    b = GraphBuilder(Graph(name="shape_only"))
    x = b.input("x", t32(B, 64, 16))
    square = b.op("mul", x, x)
    total = b.op("sum", square)
    later = b.op("broadcast_to", total, square)           # reads square's shape only
    b.graph.outputs = {"total": total, "later": b.op("add", later, x)}
    assert recompute_late_reads(b.graph) is b.graph


@pytest.mark.parametrize("example", ["resnet_digits", "gpt_tiny", "bert_tiny",
                                     "diffusion_moons"])
def test_the_pipeline_keeps_the_gradients_of_models_it_rewrites(example):
    """The examples where the recompute pass (and the numel rewrite) fire: the loss and every
    gradient of the graph after the whole pipeline equal those of the graph before it, both
    run by the float64 reference.  The differential tester cannot see a wrong graph-level
    rewrite: its reference runs the graph after the pipeline too."""
    import netdsl
    from netdsl.passes.pipeline import run_pipeline
    from netdsl.passes.precision import to_float64
    from netdsl.passes.training import loss_and_grad_graph
    model = netdsl.load(ROOT / "examples" / f"{example}.net")
    before = to_float64(loss_and_grad_graph(model.training_forward))
    after = run_pipeline(before)
    cleaned = run_pipeline(before, stop_after="cleanup")
    assert recompute_late_reads(cleaned) is not cleaned        # the pass fires on this model
    rng = np.random.default_rng(0)
    sizes = {"B": 3}
    arrays = {}
    for value in before.inputs:
        shape = [d if isinstance(d, int) else sizes.setdefault(str(d), 4) for d in value.shape]
        arrays[value.name] = rng.integers(0, 2, shape) if not value.dtype.is_float else \
            rng.standard_normal(shape)
    weights = {name: np.asarray(w, np.float64) for name, w in model.init(seed=0).items()}
    want, got = run(before, {**weights, **arrays}), run(after, {**weights, **arrays})
    assert set(want) == set(got)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12, err_msg=name)
