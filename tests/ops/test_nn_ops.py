"""The fused numerics ops: log_softmax, softmax cross-entropy and BCE on logits — against torch,
stable on extreme logits, with gradients (and second derivatives) checked by finite differences
and compiled kernels checked against the references."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.backends.numba_cpu.emit import compile_single_node
from netdsl.ir.types import DType, ShapeError, Sym
from netdsl.ops import get_op

from op_checks import t, build, check_vjp, emitted, normal  # noqa: E402

B, T = Sym.named("B"), Sym.named("T")
f32, i64 = DType.f32, DType.i64


def labels(*shape, classes, seed=1):
    return np.random.default_rng(seed).integers(0, classes, shape).astype(np.int64)


# -- types -------------------------------------------------------------------------------------

def test_infer():
    assert get_op("log_softmax").infer(t(B, T, 10), axis=1) == t(B, T, 10)
    assert get_op("softmax_cross_entropy").infer(t(B, 10), t(B, dtype=i64)) == t(B)
    assert get_op("softmax_cross_entropy").infer(t(B, T, 50), t(B, T, dtype=i64)) == t(B, T)
    assert get_op("softmax_cross_entropy_grad").infer(t(B, 10), t(B, dtype=i64)) == t(B, 10)
    assert get_op("sigmoid_bce_logits").infer(t(B, 1), t(B, 1)) == t(B, 1)


@pytest.mark.parametrize("name, types, attrs, words", [
    ("log_softmax", (t(B, 10, dtype=i64),), {}, "floating-point"),
    ("log_softmax", (t(B, 10),), {"axis": 2}, "out of range"),
    ("softmax_cross_entropy", (t(B, 10), t(B, 10, dtype=i64)), {},
     "labels i64[B, 10] must have the shape of logits f32[B, 10] without its class axis ([B])"),
    ("softmax_cross_entropy", (t(B, 10), t(B)), {}, "integer class labels"),
    ("sigmoid_bce_logits", (t(B, 3), t(B, 4)), {}, "cannot broadcast"),
])
def test_errors(name, types, attrs, words):
    with pytest.raises(ShapeError) as error:
        get_op(name).infer(*types, **attrs)
    assert words in error.value.message


# -- references against torch, and stability -----------------------------------------------------

@pytest.mark.parametrize("shape, axis", [((4, 7), -1), ((2, 5, 3), 1), ((6,), 0)])
def test_log_softmax_matches_torch(shape, axis):
    torch = pytest.importorskip("torch")
    x = normal(*shape, scale=3.0)
    expected = torch.log_softmax(torch.from_numpy(x), dim=axis).numpy()
    np.testing.assert_allclose(get_op("log_softmax").reference(x, axis=axis), expected,
                               rtol=1e-12, atol=1e-12)


def test_cross_entropy_and_its_gradient_match_torch():
    torch = pytest.importorskip("torch")
    logits, y = normal(2, 3, 6, scale=2.0), labels(2, 3, classes=6)
    lt = torch.tensor(logits, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(lt.reshape(-1, 6), torch.from_numpy(y).reshape(-1),
                                             reduction="none").reshape(2, 3)
    loss.sum().backward()
    np.testing.assert_allclose(get_op("softmax_cross_entropy").reference(logits, y),
                               loss.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(get_op("softmax_cross_entropy_grad").reference(logits, y),
                               lt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_bce_logits_matches_torch():
    torch = pytest.importorskip("torch")
    x, target = normal(5, 4, scale=4.0), np.random.default_rng(2).random((5, 4))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(x), torch.from_numpy(target), reduction="none").numpy()
    np.testing.assert_allclose(get_op("sigmoid_bce_logits").reference(x, target), expected,
                               rtol=1e-12)


def test_extreme_logits_stay_finite_and_exact():
    x = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]], dtype=np.float32)
    log_p = get_op("log_softmax").reference(x, axis=-1)
    assert np.isfinite(log_p).all() and log_p[0, 0] == 0.0 and log_p[0, 2] == -2e4
    y = np.array([2, 1])
    loss = get_op("softmax_cross_entropy").reference(x, y)
    np.testing.assert_allclose(loss, [2e4, np.log(3)], rtol=1e-6)
    for array in (emitted("log_softmax", [x], axis=-1), emitted("softmax_cross_entropy", [x, y])):
        assert np.isfinite(array).all()
    bce = get_op("sigmoid_bce_logits").reference(np.array([100.0, -100.0]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(bce, [100.0, 100.0])


def test_bad_labels_raise_in_the_reference_and_give_nan_compiled():
    logits, y = normal(3, 4, dtype=np.float32), np.array([0, 4, 1])
    with pytest.raises(ValueError, match=r"in \[0, 4\)"):
        get_op("softmax_cross_entropy").reference(logits, y)
    _, _, out = build("softmax_cross_entropy", [logits, y])
    kernel, _ = compile_single_node(out.producer)
    loss = np.zeros(3, dtype=np.float32)
    kernel(logits, y, loss)
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()


# -- gradients ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis", [((3, 5), -1), ((2, 4, 3), 1)])
def test_log_softmax_vjp(shape, axis):
    check_vjp("log_softmax", [normal(*shape)], axis=axis)


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4), (3,)])
def test_cross_entropy_vjp_and_second_derivative(shape):
    logits, y = normal(*shape), labels(*shape[:-1], classes=shape[-1])
    check_vjp("softmax_cross_entropy", [logits, y])
    check_vjp("softmax_cross_entropy_grad", [logits, y])


def test_bce_logits_vjp_with_broadcast_targets():
    check_vjp("sigmoid_bce_logits", [normal(3, 4, scale=3.0), normal(4, seed=1)])
    check_vjp("sigmoid_bce_logits", [normal(3, 4, scale=3.0), labels(3, 4, classes=2)])


# -- compiled ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, arrays, attrs", [
    ("log_softmax", [normal(4, 10, scale=5.0, dtype=np.float32)], {"axis": 1}),
    ("log_softmax", [normal(2, 7, 3, scale=5.0, dtype=np.float32)], {"axis": 1}),
    ("log_softmax", [normal(2, 3, 5, dtype=np.float32)], {"axis": 0}),
    ("softmax_cross_entropy", [normal(64, 10, scale=3.0, dtype=np.float32),
                               labels(64, classes=10)], {}),
    ("softmax_cross_entropy", [normal(2, 5, 7, dtype=np.float32), labels(2, 5, classes=7)], {}),
    ("softmax_cross_entropy_grad", [normal(64, 10, scale=3.0, dtype=np.float32),
                                    labels(64, classes=10)], {}),
    ("softmax_cross_entropy_grad", [normal(6, dtype=np.float32),
                                    np.array(3, dtype=np.int64)], {}),
    ("sigmoid_bce_logits", [normal(8, 3, scale=5.0, dtype=np.float32),
                            np.random.default_rng(0).random((8, 3)).astype(np.float32)], {}),
])
def test_compiled_matches_reference(name, arrays, attrs):
    np.testing.assert_allclose(emitted(name, arrays, **attrs),
                               get_op(name).reference(*arrays, **attrs), rtol=1e-5, atol=1e-6)
