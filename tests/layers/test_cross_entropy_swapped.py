"""cross_entropy(labels, logits), the arguments swapped, is named as such, with both types."""
from __future__ import annotations

import pytest

import netdsl

MODEL = """\
model M {{
    in  x: f32[B, 4]
    in  y: i64[B]
    logits = x |> Dense(10) as fc
    out probs = softmax(logits)
    loss {loss}
}}
"""


def _load(tmp_path, loss: str):
    path = tmp_path / "m.net"
    path.write_text(MODEL.format(loss=loss))
    return netdsl.load(path)


def test_swapped_arguments_are_named(tmp_path):
    with pytest.raises(netdsl.Error) as caught:
        _load(tmp_path, "cross_entropy(y, logits)")
    text = str(caught.value)
    assert ("m.net:6:10: error: cross_entropy(logits, labels): got an integer tensor i64[B] as "
            "logits and f32[B, 10] as labels; the arguments look swapped") in text
    assert "hint: swap them" in text


def test_integer_logits_with_integer_labels_are_not_called_swapped(tmp_path):
    with pytest.raises(netdsl.Error) as caught:
        _load(tmp_path, "cross_entropy(y, y)")
    assert "look swapped" not in str(caught.value)
    assert "the logits must be a floating-point tensor, got i64[B]" in str(caught.value)


def test_the_right_order_loads(tmp_path):
    assert _load(tmp_path, "cross_entropy(logits, y)").name == "M"
