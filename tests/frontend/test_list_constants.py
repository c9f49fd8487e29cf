"""List literals where a tensor is expected are constant tensors of the list's shape: f32, or
i64 where an integer tensor is expected (labels, or an operand beside an int tensor).  Errors
for ragged, empty and non-numeric lists are golden (golden_check/list_as_tensor_errors.net)."""
from __future__ import annotations

import numpy as np

from frontend_helpers import load_text  # noqa: E402


def test_lists_as_operands_and_arguments(tmp_path):
    model = load_text(tmp_path, """
        model M {
            in x: f32[B, 3]
            in i: i64[B, 2]
            out a = x * [1.0, 2.0, 3.0] + [[1, 2, 3]]
            out b = one_hot([0, 2], 3)
            out c = maximum(x, [0.5, 0.5, 0.5])
            out d = i + [10, 20]
            out e = [2, 4] - i
        }
    """)
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    i = np.arange(8).reshape(4, 2)
    result = model.forward(model.init(), {"x": x, "i": i}, target="reference")
    np.testing.assert_allclose(result["a"], x * [1, 2, 3] + [[1, 2, 3]], rtol=1e-6)
    assert result["a"].dtype == np.float32
    np.testing.assert_array_equal(result["b"], np.eye(3)[[0, 2]])
    np.testing.assert_allclose(result["c"], np.maximum(x, 0.5))
    assert result["d"].dtype == np.int64 and result["e"].dtype == np.int64
    np.testing.assert_array_equal(result["d"], i + [10, 20])
    np.testing.assert_array_equal(result["e"], [2, 4] - i)


def test_class_weights_as_a_list_match_numpy(tmp_path):
    model = load_text(tmp_path, """
        model M {
            in x: f32[B, 3]
            in y: i64[B]
            loss cross_entropy(x, y, weights=[1.0, 2.0, 8.0])
        }
    """)
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 2, 1])
    loss, _ = model.loss_and_grad(model.init(), {"x": x, "y": y}, target="reference")
    logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    w = np.array([1.0, 2.0, 8.0])[y]
    np.testing.assert_allclose(loss, -(w * logp[np.arange(5), y]).sum() / w.sum(), rtol=1e-5)
