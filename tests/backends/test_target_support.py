"""Element types a target cannot compile are a clear error at the source, not a Numba crash."""
import numpy as np
import pytest

import netdsl

HALF = """model Half {
    in x: f32[B, 4]
    h = cast(x, "f16")
    out y = cast(h * 2.0, "f32")
}
"""


def test_f16_runs_on_the_reference_and_is_refused_by_cpu(tmp_path):
    path = tmp_path / "half.net"
    path.write_text(HALF)
    model = netdsl.load(path)
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    out = model.forward(model.init(), {"x": x}, target="reference")["y"]
    np.testing.assert_allclose(out, 2 * x.astype(np.float16).astype(np.float32))
    with pytest.raises(netdsl.Error) as caught:
        model.forward(model.init(), {"x": x}, target="cpu")
    message = str(caught.value)
    assert message.startswith(f"{path}:3:9: error: the cpu target does not support f16 tensors")
    assert 'h = cast(x, "f16")' in message and "hint: use f32" in message


def test_check_refuses_f16_for_the_cpu_target_only(tmp_path, capsys):
    from netdsl.cli import main
    path = tmp_path / "half.net"
    path.write_text(HALF)
    assert main(["check", str(path)]) == 1
    assert "error: the cpu target does not support f16 tensors" in capsys.readouterr().err
    assert main(["check", str(path), "--target", "reference", "-q"]) == 0
