"""The Numba CPU backend agrees with the reference interpreter on every kind of kernel group."""
from __future__ import annotations

import numpy as np
import pytest

from backend_helpers import (B, F32, assert_matches_reference, copy_arrays, mlp_graph,
                             random_arrays, scalar_constant, t32, training_arrays,
                             training_graph)
from netdsl.backends import compile_graph
from netdsl.backends.reference import run as reference_run
from netdsl.errors import Error
from netdsl.ir.graph import Graph, GraphBuilder, LossInfo
from netdsl.ir.types import DType, TensorType


def test_elementwise_ops_with_broadcasting_casts_and_comparisons():
    b = GraphBuilder(Graph(name="elementwise"))
    x = b.input("x", t32(B, 3, 4))
    row = b.input("row", t32(4))
    col = b.input("col", t32(3, 1))
    s = b.input("s", t32())
    y = b.op("add", b.op("mul", x, row), col)
    mask = b.op("greater", y, s)
    z = b.op("where", mask, b.op("exp", b.op("neg", b.op("abs", y))), b.op("tanh", y))
    z = b.op("maximum", z, b.op("mul", s, scalar_constant(b, 0.5)))
    counted = b.op("cast", mask, dtype=DType.f32)
    b.graph.outputs = {"z": b.op("add", z, counted), "mask": mask,
                       "sqrt": b.op("sqrt", b.op("add", b.op("square", y), scalar_constant(b, 1.0))),
                       "scaled": b.op("div", b.op("broadcast_to", s, x), scalar_constant(b, 3.0))}
    assert_matches_reference(b.graph, random_arrays(b.graph, batch=5))


def test_reductions_over_leading_trailing_middle_and_all_axes():
    b = GraphBuilder(Graph(name="reductions"))
    x = b.input("x", t32(B, 3, 4))
    sq = b.op("mul", x, x)
    b.graph.outputs = {
        "sum_last": b.op("sum", sq, axes=(2,)),
        "mean_first": b.op("mean", b.op("add", x, scalar_constant(b, 1.0)), axes=(0,)),
        "max_middle": b.op("max", b.op("tanh", x), axes=(1,), keepdims=True),
        "min_all": b.op("min", b.op("sub", x, scalar_constant(b, 2.0))),
        "sum_outer": b.op("sum", b.op("exp", x), axes=(0, 2)),
        "count": b.op("sum", b.op("greater", x, scalar_constant(b, 0.0))),
        "mean_all": b.op("mean", b.op("abs", x)),
        # All-positive data for min and all-negative for max: a wrong starting value (0
        # instead of +-inf) shows only there.
        "min_positive": b.op("min", b.op("exp", x), axes=(1,)),
        "min_positive_all": b.op("min", b.op("add", b.op("abs", x), scalar_constant(b, 1.0))),
        "max_negative": b.op("max", b.op("neg", b.op("exp", x)), axes=(0, 2)),
    }
    assert_matches_reference(b.graph, random_arrays(b.graph, batch=6))


def test_matmul_epilogues_transposes_and_batches():
    b = GraphBuilder(Graph(name="matmuls"))
    x = b.input("x", t32(B, 4))
    w = b.param("w", t32(5, 4), init=None)
    bias = b.param("bias", t32(5), init=None)
    h = b.op("relu", b.op("add", b.op("matmul", x, w, transpose_b=True), bias))
    seq = b.input("seq", t32(B, 2, 3))
    v = b.param("v", t32(3, 6), init=None)
    b.graph.outputs = {"h": h, "raw": b.op("matmul", x, w, transpose_b=True),
                       "batched": b.op("sigmoid", b.op("matmul", seq, v)),
                       "gram": b.op("matmul", h, h, transpose_a=True)}
    assert_matches_reference(b.graph, random_arrays(b.graph, batch=7), rtol=1e-4, atol=1e-5)


def test_conv_net_training_step():
    b = GraphBuilder(Graph(name="convnet"))
    x = b.input("x", TensorType(F32, (B, 1, 6, 6)))
    w = b.param("w", TensorType(F32, (2, 1, 3, 3)), init=None)
    bias = b.param("bias", TensorType(F32, (2, 1, 1)), init=None)
    h = b.op("relu", b.op("add", b.op("conv2d", x, w, padding=1), bias))
    flat = b.op("reshape", h, shape=(B, 72))
    loss = b.op("mean", b.op("mul", flat, flat))
    b.graph.outputs = {"h": h}
    b.graph.losses = [LossInfo("energy", loss)]
    graph = training_graph(b.graph, "sgd")
    compiled = assert_matches_reference(graph, training_arrays(graph, batch=3), steps=2,
                                        rtol=1e-4, atol=1e-5)
    assert any(g.kind == "conv" and g.epilogue for g in compiled.fused.groups)


def _rnn(axis: int = 1) -> Graph:
    from netdsl.ops.control import scan
    cell = GraphBuilder(Graph(name="cell"))
    h = cell.input("h", t32(B, 3))
    x_t = cell.input("x_t", t32(B, 2))
    w = cell.input("w", t32(2, 3))
    u = cell.input("u", t32(3, 3))
    new = cell.op("tanh", cell.op("add", cell.op("matmul", x_t, w), cell.op("matmul", h, u)))
    offsets = cell.op("constant", value=np.array([0.5, -0.5, 1.0], np.float32))
    y = cell.op("add", cell.op("mul", new, scalar_constant(cell, 2.0)), offsets)
    cell.graph.outputs = {"h": new, "y": y}
    b = GraphBuilder(Graph(name="rnn"))
    xs = b.input("xs", t32(B, 4, 2) if axis == 1 else t32(4, B, 2))
    h0 = b.input("h0", t32(B, 3))
    w, u = b.param("w", t32(2, 3), init=None), b.param("u", t32(3, 3), init=None)
    (final,), (ys,) = scan(b, cell.graph, [h0], [xs], [w, u], axis=axis)
    b.graph.outputs = {"final": final, "ys": ys}
    b.graph.losses = [LossInfo("l", b.op("mean", b.op("mul", ys, ys)))]
    return b.graph


@pytest.mark.parametrize("axis", [1, 0])     # 0: time-major, each step a view (no copies)
def test_scan_forward_and_its_gradient(axis):
    graph = _rnn(axis)
    assert_matches_reference(graph, random_arrays(graph, batch=2))
    train = training_graph(graph, "sgd")
    assert_matches_reference(train, training_arrays(train, batch=2), steps=2, rtol=1e-4)


def test_adam_training_steps_update_params_in_place():
    graph = training_graph(mlp_graph((4, 8, 8, 3)))
    compiled = compile_graph(graph)
    assert set(compiled.plan.in_place) == set(graph.state_updates) and not compiled.plan.copies
    arrays = training_arrays(graph, batch=5)
    ours, theirs = copy_arrays(arrays), copy_arrays(arrays)
    held = dict(ours)                     # the caller's array objects, as handed to run()
    for _ in range(3):
        before = {name: held[name].copy() for name in graph.state_updates}
        got = compiled.run(ours)
        want = reference_run(graph, theirs)
        np.testing.assert_allclose(got["mse"], want["mse"], rtol=1e-5)
        for name in graph.state_updates:
            # The step wrote into the very arrays the caller holds (not into new ones), and
            # wrote what the reference computes; every parameter and moment really moved.
            assert ours[name] is held[name], name
            np.testing.assert_allclose(held[name], theirs[name], rtol=1e-4, atol=1e-6,
                                       err_msg=name)
            assert not np.array_equal(held[name], before[name]), f"{name} did not change"
    # The bound fast path updates the arrays it was bound to, in place, the same way.
    bound = copy_arrays(arrays)
    step = compiled.bind(bound, inputs=["x", "y", "__lr__", "__step__"])
    mirror = copy_arrays(arrays)
    for t in range(2):
        step(bound["x"], bound["y"], 0.01, t + 1)
        reference_run(graph, {**mirror, "__step__": np.array(t + 1.0, np.float32)})
    for p in graph.params:
        np.testing.assert_allclose(bound[p.name], mirror[p.name], rtol=1e-4, atol=1e-6,
                                   err_msg=p.name)


def test_bound_step_with_a_short_last_batch():
    graph = training_graph(mlp_graph((4, 8, 3)))
    arrays = training_arrays(graph, batch=6)
    compiled = compile_graph(graph)
    theirs = copy_arrays(arrays)
    state = {p.name: arrays[p.name] for p in graph.params}
    step = compiled.bind(state, inputs=["x", "y", "__lr__", "__step__"])
    rng = np.random.default_rng(1)
    for t, batch in enumerate([6, 6, 2, 6]):
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        y = rng.standard_normal((batch, 3)).astype(np.float32)
        got = dict(zip(step.output_names, step(x, y, 0.01, t + 1)))
        want = reference_run(graph, {**theirs, "x": x, "y": y,
                                     "__lr__": np.float32(0.01), "__step__": np.float32(t + 1)})
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-6)
    for p in graph.params:
        np.testing.assert_allclose(state[p.name], theirs[p.name], rtol=1e-4, atol=1e-6)


def test_a_released_binding_hands_its_arenas_to_the_next_and_still_runs():
    """BoundStep.release (a fit's end): the next binding of the graph takes the arenas (no
    fresh memory to page in), and the released one lays out arenas of its own when called."""
    graph = mlp_graph((4, 8, 3))
    compiled = compile_graph(graph)
    arrays = random_arrays(graph)
    x, y = arrays["x"], arrays["y"]
    first = compiled.bind({k: v.copy() for k, v in arrays.items()}, inputs=["x", "y"])
    if not hasattr(first.bound, "release"):
        pytest.skip("this target's bindings keep their arenas (on the device)")
    expected = [np.array(out) for out in first(x, y)]
    arenas = first.bound._arenas
    first.bound.release()
    second = compiled.bind({k: v.copy() for k, v in arrays.items()}, inputs=["x", "y"])
    assert second.bound._arenas is arenas and not compiled._spare_arenas
    for got, want in zip(first(x, y), expected):        # its own arenas now
        np.testing.assert_array_equal(got, want)
    assert first.bound._arenas is not arenas
    for got, want in zip(second(x, y), expected):
        np.testing.assert_array_equal(got, want)


def test_dropping_a_bound_step_frees_its_arrays_without_the_garbage_collector():
    """The step function, its namespace and its BoundStep hold no reference cycle: once the
    caller drops the function (a fit's end), the bound arrays are freed at once, so the next
    fit's storage reuses their memory instead of faulting fresh pages in.  Before, the
    arrays waited for the collector's next pass."""
    import gc
    import weakref
    graph = mlp_graph((4, 8, 3))
    compiled = compile_graph(graph)
    arrays = random_arrays(graph)
    bound = {k: v.copy() for k, v in arrays.items()}
    step = compiled.bind(bound, inputs=["x", "y"])
    if not hasattr(step.bound, "release"):
        pytest.skip("this target's bindings keep their arrays on the device")
    step(arrays["x"], arrays["y"])
    step.bound.release()
    step(arrays["x"], arrays["y"])                     # rebinds after the release
    watched = [weakref.ref(array) for array in bound.values()]
    binding = weakref.ref(step.bound)
    enabled = gc.isenabled()
    gc.disable()
    try:
        del step, bound
        assert binding() is None
        assert all(ref() is None for ref in watched)
    finally:
        if enabled:
            gc.enable()


def test_bindings_reuse_the_generated_call_per_order_of_fed_inputs():
    """A binding's generated step function is compiled once per tuple of fed names (a fit
    binds anew each time) and still runs its own arrays: two bindings with the same names share
    the code and not the state; another order of the names gets code of its own."""
    graph = mlp_graph((4, 8, 3))
    compiled = compile_graph(graph)
    arrays = random_arrays(graph)
    if not hasattr(compiled, "_call_code"):
        pytest.skip("this target generates no bound call")
    x, y = arrays["x"], arrays["y"]
    first = compiled.bind({k: v.copy() for k, v in arrays.items()}, inputs=["x", "y"])
    changed = {k: v.copy() for k, v in arrays.items()}
    for info in graph.params:
        changed[info.name] *= 2.0
    second = compiled.bind(changed, inputs=["x", "y"])
    swapped = compiled.bind({k: v.copy() for k, v in arrays.items()}, inputs=["y", "x"])
    assert first.__code__ is second.__code__ and swapped.__code__ is not first.__code__
    assert set(compiled._call_code) == {("x", "y"), ("y", "x")}
    want = reference_run(graph, copy_arrays(arrays))
    doubled = reference_run(graph, copy_arrays(changed))
    np.testing.assert_allclose(first(x, y)[0], want["out"], rtol=1e-5)
    np.testing.assert_allclose(second(x, y)[0], doubled["out"], rtol=1e-5)
    np.testing.assert_allclose(swapped(y, x)[0], want["out"], rtol=1e-5)


def test_bound_step_converts_inputs_of_another_dtype():
    graph = mlp_graph((4, 3))
    arrays = random_arrays(graph, batch=2)
    step = compile_graph(graph).bind(arrays, inputs=["x", "y"])
    got = step(arrays["x"].astype(np.float64), arrays["y"])
    want = reference_run(graph, copy_arrays(arrays))
    np.testing.assert_allclose(got[0], want["out"], rtol=1e-5)


def test_constants_full_and_views():
    b = GraphBuilder(Graph(name="constants"))
    x = b.input("x", t32(B, 2, 3))
    table = b.op("constant", value=np.arange(6, dtype=np.float32).reshape(2, 3))
    flat = b.op("reshape", b.op("add", x, table), shape=(B, 6))
    ones = b.op("full", shape=(6,), value=1.5, dtype=DType.f32)
    b.graph.outputs = {"flat": b.op("mul", flat, ones), "view": b.op("expand_dims", flat, axes=(1,)),
                       "table": table}
    assert_matches_reference(b.graph, random_arrays(b.graph, batch=3))


def test_missing_input_is_an_error():
    graph = mlp_graph((4, 3))
    compiled = compile_graph(graph)
    arrays = random_arrays(graph)
    del arrays["x"]
    with pytest.raises(Error, match="no data for input 'x'"):
        compiled.run(arrays)


def test_reference_target_has_the_same_interface():
    graph = mlp_graph((4, 3))
    compiled = compile_graph(graph, target="reference")
    arrays = random_arrays(graph)
    out = compiled.bind(arrays, inputs=["x", "y"])(arrays["x"], arrays["y"])
    np.testing.assert_allclose(out[0], reference_run(graph, copy_arrays(arrays))["out"])


def test_parallel_kernels_agree_with_the_reference():
    from netdsl.backends.numba_cpu import CodegenOptions
    b = GraphBuilder(Graph(name="parallel"))
    x = b.input("x", t32(B, 5))
    y = b.op("tanh", b.op("mul", x, scalar_constant(b, 3.0)))
    b.graph.outputs = {"y": y, "rows": b.op("sum", b.op("mul", y, x), axes=(1,)),
                       "cols": b.op("max", b.op("add", x, y), axes=(0,))}
    compiled = compile_graph(b.graph, options=CodegenOptions(parallel_min=1))
    # The column maximum reduces the outer loop: split into chunks of rows in a prange, their
    # partial maxima combined, so it is parallel too.
    assert compiled.report.kernels["parallel"] == 2
    assert "prange" in compiled.source
    assert_matches_reference(b.graph, random_arrays(b.graph, batch=9), compiled)


@pytest.mark.parametrize("threads", [1, 2])
def test_parallel_reductions_over_the_outermost_axis_in_chunks(threads):
    """A reduction over the outermost loop runs in chunks of it, each with its own partial
    result (loopir.mark_parallel, render._split): right for every batch, one chunk (fewer
    than 16 rows) or several, for sum, mean, max and min, with NaN kept."""
    import numba
    from netdsl.backends.numba_cpu import CodegenOptions
    b = GraphBuilder(Graph(name="split"))
    x = b.input("x", t32(B, 3, 4))
    centred = b.op("sub", x, b.op("mean", x, axes=(0, 2), keepdims=True))
    b.graph.outputs = {
        "mean": b.op("mean", x, axes=(0, 2)), "var": b.op("mean", b.op("mul", centred, centred),
                                                          axes=(0, 2)),
        "sum_all": b.op("sum", b.op("exp", x)), "max": b.op("max", x, axes=(0, 2)),
        "min_rows": b.op("min", x, axes=(0,)), "centred": centred}
    compiled = compile_graph(b.graph, options=CodegenOptions(parallel_min=1))
    assert compiled.source.count("chunks = ") + sum(
        text.count("chunks = ") for text in compiled.generated.segments.values()) >= 4
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        for batch in (1, 3, 8, 37):
            arrays = random_arrays(b.graph, batch=batch, seed=batch)
            assert_matches_reference(b.graph, arrays, compiled)
        arrays = random_arrays(b.graph, batch=40)
        arrays["x"][37, 1, 2] = np.nan           # in the last of 5 chunks, channel 1 only
        got = compiled.run(dict(arrays))
        assert np.isnan(got["max"][1]) and not np.isnan(got["max"][[0, 2]]).any()
        assert np.isnan(got["mean"][1]) and np.isnan(got["min_rows"][1, 2])
    finally:
        numba.set_num_threads(before)


def test_small_lenet_with_pooling_and_cross_entropy():
    b = GraphBuilder(Graph(name="tiny_lenet"))
    x = b.input("x", TensorType(F32, (B, 1, 8, 8)))
    labels = b.input("labels", TensorType(DType.i64, (B,)))
    w = b.param("c.w", TensorType(F32, (2, 1, 3, 3)), init=None)
    bias = b.param("c.b", TensorType(F32, (2, 1, 1)), init=None)
    h = b.op("relu", b.op("add", b.op("conv2d", x, w, padding=1), bias))
    h = b.op("reshape", b.op("max_pool2d", h, size=2), shape=(B, 32))
    d = b.param("d.w", t32(32, 3), init=None)
    logits = b.op("matmul", h, d)
    b.graph.outputs = {"logits": logits}
    b.graph.losses = [LossInfo("ce", b.op("mean", b.op("softmax_cross_entropy", logits,
                                                      labels)))]
    graph = training_graph(b.graph, "adam")
    arrays = training_arrays(graph, batch=4)
    arrays["labels"] = np.array([0, 2, 1, 2], np.int64)
    assert_matches_reference(graph, arrays, steps=2, rtol=1e-4, atol=1e-5)


# -- shapes the loop IR must not get wrong ---------------------------------------------------
# Each runs serially (loop nests inlined into the driver) and with parallel_min=1 (every nest a
# separate prange function whose array parameters are chosen by `source_of`): the two paths
# name and index arrays differently.

SERIAL_AND_PARALLEL = pytest.mark.parametrize("parallel_min", [0, 1], ids=["serial", "parallel"])


def _compile(graph, parallel_min):
    from netdsl.backends.numba_cpu import CodegenOptions
    return compile_graph(graph, options=CodegenOptions(parallel_min=parallel_min))


@SERIAL_AND_PARALLEL
def test_size_one_axes_broadcast_and_reduce(parallel_min):
    b = GraphBuilder(Graph(name="size_one"))
    x = b.input("x", t32(B, 1, 4))
    c = b.input("c", t32(1, 3, 1))
    s = b.input("s", t32(1))
    y = b.op("add", b.op("mul", x, c), s)                       # f32[B, 3, 4]
    b.graph.outputs = {
        "y": y,
        "sum_size_one": b.op("sum", x, axes=(1,)),               # reduces an extent-1 axis
        "max_keep": b.op("max", y, axes=(2,), keepdims=True),
        "mean_batch_and_one": b.op("mean", b.op("exp", x), axes=(0, 1)),
        "min_all": b.op("min", b.op("sub", y, scalar_constant(b, 2.0))),
        "squeezed": b.op("reshape", b.op("tanh", x), shape=(B, 4)),
    }
    compiled = _compile(b.graph, parallel_min)
    # B = 1 makes every batch axis an extent-1 loop too; then a larger batch grows the arena.
    for batch in (3, 1, 5):
        assert_matches_reference(b.graph, random_arrays(b.graph, batch=batch), compiled)
        # Buffers are unchecked views into the arenas (numba_support.view): an arena smaller
        # than the layout would be written past its end and still give the right numbers.
        _, totals = compiled.plan.layout({"B": batch})
        for dtype, total in totals.items():
            assert compiled._arenas[dtype].shape[0] >= total, (batch, dtype)


@SERIAL_AND_PARALLEL
def test_mean_over_axes_separated_by_a_size_one_axis(parallel_min):
    # axis 1 (extent 1) is dropped from the nest, leaving two reduced loops, [B] and [8, 8]:
    # the mean divides by the product of both extents.
    b = GraphBuilder(Graph(name="separated_mean"))
    x = b.input("x", TensorType(F32, (B, 1, 8, 8)))
    b.graph.outputs = {
        "mean": b.op("mean", x, axes=(0, 2, 3)),
        "mean_keep": b.op("mean", b.op("mul", x, x), axes=(0, 2, 3), keepdims=True),
        "sum": b.op("sum", x, axes=(0, 2, 3)),
        "centred": b.op("sub", x, b.op("mean", x, axes=(0, 2, 3), keepdims=True)),
        "mean_outer": b.op("mean", b.op("abs", x), axes=(0, 2)),     # reduced, kept, reduced
    }
    compiled = _compile(b.graph, parallel_min)
    arrays = random_arrays(b.graph, batch=3)
    assert_matches_reference(b.graph, arrays, compiled)
    np.testing.assert_allclose(compiled.run(dict(arrays))["mean"],
                               arrays["x"].mean(axis=(0, 2, 3)), rtol=1e-5)


@SERIAL_AND_PARALLEL
def test_two_views_of_one_buffer_in_one_kernel(parallel_min):
    b = GraphBuilder(Graph(name="two_views"))
    x = b.input("x", t32(B, 5))
    p = b.op("tanh", x)                   # an arena buffer, read below through two views
    row, col = b.op("reshape", p, shape=(B, 1, 5)), b.op("reshape", p, shape=(B, 5, 1))
    rx, cx = b.op("reshape", x, shape=(B, 1, 5)), b.op("reshape", x, shape=(B, 5, 1))
    b.graph.outputs = {"p": p, "pairs": b.op("sub", row, col),
                       "input_pairs": b.op("mul", rx, b.op("exp", cx))}
    compiled = _compile(b.graph, parallel_min)
    arrays = random_arrays(b.graph, batch=2)
    assert_matches_reference(b.graph, arrays, compiled)
    t = np.tanh(arrays["x"])
    np.testing.assert_allclose(compiled.run(dict(arrays))["pairs"],
                               t[:, None, :] - t[:, :, None], rtol=1e-5, atol=1e-6)


@SERIAL_AND_PARALLEL
def test_centring_and_normalising_an_elementwise_result(parallel_min):
    # The reductions join the elementwise kernel that makes y; the kernel must then close, or
    # y - max(y) and e / sum(e) would be computed before the reduction is complete.
    b = GraphBuilder(Graph(name="softmax_by_hand"))
    x = b.input("x", t32(B, 6))
    y = b.op("mul", b.op("tanh", x), scalar_constant(b, 3.0))
    e = b.op("exp", b.op("sub", y, b.op("max", y, axes=(1,), keepdims=True)))
    softmax = b.op("div", e, b.op("sum", e, axes=(1,), keepdims=True))
    z = b.op("add", x, scalar_constant(b, 1.0))
    centred = b.op("sub", z, b.op("mean", z, axes=(0,), keepdims=True))
    b.graph.outputs = {"softmax": softmax, "centred": centred}
    compiled = _compile(b.graph, parallel_min)
    arrays = random_arrays(b.graph, batch=4)
    assert_matches_reference(b.graph, arrays, compiled)
    got = compiled.run(dict(arrays))
    np.testing.assert_allclose(got["softmax"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(got["centred"].mean(axis=0), 0.0, atol=1e-6)


LAYER_NORM_MODEL = """
model NormMse {
    in x: f32[B, T, 8]
    in y: f32[B, T, 8]
    h = (x * 2.0) |> LayerNorm as norm |> Dense(8) as proj |> LayerNorm as norm2
    out o = h
    loss mse(h, y)
}
"""


def test_layer_norm_training_loss_matches_the_reference(tmp_path):
    """The loss value itself (not a ratio) of a compiled LayerNorm training step."""
    import netdsl
    source = tmp_path / "norm.net"
    source.write_text(LAYER_NORM_MODEL)
    model = netdsl.load(source)
    graph = training_graph(model.training_forward, "adam")
    arrays = training_arrays(graph, batch=2, seed=4)
    arrays["x"] = np.random.default_rng(5).standard_normal((2, 3, 8)).astype(np.float32)
    arrays["y"] = np.random.default_rng(6).uniform(-1, 1, (2, 3, 8)).astype(np.float32)
    for name, value in model.init(seed=0).items():
        arrays[name] = value
    compiled = compile_graph(graph)
    ours = copy_arrays(arrays)
    loss = float(compiled.run(ours)[graph.losses[0].name])
    # The first step's loss written out in NumPy (float64), from the initial weights.
    def layer_norm(h, name):
        h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
        return h * arrays[f"{name}.weight"] + arrays[f"{name}.bias"]
    h = layer_norm(arrays["x"].astype(np.float64) * 2.0, "norm")
    h = layer_norm(h @ arrays["proj.weight"].T + arrays["proj.bias"], "norm2")
    np.testing.assert_allclose(loss, np.mean((h - arrays["y"]) ** 2), rtol=1e-5)
    assert_matches_reference(graph, arrays, compiled, steps=3, rtol=1e-4, atol=1e-5)
