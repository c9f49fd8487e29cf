"""`netdsl check`'s summary through the CLI: parameter counts, FLOPs (a raw `x @ w` is
2·B·K·N), memory of the inference and training steps from the memory planner at --batch N,
symbolic dims as expressions or bound with --dim, repeat folded unless --expand, --json, and
ASCII output where stdout cannot encode box-drawing characters."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import netdsl
from netdsl.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[2]

MLP = """\
model Mlp {
    in  x: f32[B, 4]
    in  y: i64[B]
    logits = x |> Dense(8) |> relu |> Dense(3)
    out probs = softmax(logits)
    loss cross_entropy(logits, y)
}
"""

RAW = """\
model Raw {
    in  x: f32[B, 3]
    in  y: f32[B, 5]
    param w: f32[3, 5] = zeros
    out z = x @ w
    loss mse(z, y)
}

train Raw {
    batch     = 4
    optimizer = Adam(lr=0.01)
}
"""

SEQUENCE = RAW.replace("f32[B, 3]", "f32[B, T, 3]").replace("f32[B, 5]", "f32[B, T, 5]")


def _run(tmp_path, capsys, text: str, *flags: str) -> tuple[int, str, str]:
    path = tmp_path / "m.net"
    path.write_text(text)
    status = main(["check", str(path), *flags])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _json(tmp_path, capsys, text: str, *flags: str) -> dict:
    status, out, err = _run(tmp_path, capsys, text, "--json", *flags)
    assert status == 0, err
    models = json.loads(out)["models"]
    assert len(models) == 1
    return models[0]


def _row(data: dict, name: str) -> dict:
    return next(row for row in data["rows"] if row["name"] == name)


def test_mlp_parameters_and_flops_per_example(tmp_path, capsys):
    data = _json(tmp_path, capsys, MLP)
    # Dense(8) on 4 features: 4*8 + 8 parameters; 2*4*8 FLOPs for the product, 8 for the bias.
    assert _row(data, "dense_1")["params"] == 40 and _row(data, "dense_1")["flops"] == 72
    assert _row(data, "dense_2")["params"] == 27 and _row(data, "dense_2")["flops"] == 2 * 8 * 3 + 3
    assert data["parameters"] == {"total": 67, "trainable": 67, "bytes": 268, "non_trainable": 0}
    status, out, _ = _run(tmp_path, capsys, MLP)
    assert status == 0
    assert "Parameters:  67 (268 B)" in out
    assert "a multiply and an add are 2 FLOPs" in out


def test_raw_matmul_counts_two_flops_per_multiply_add(tmp_path, capsys):
    data = _json(tmp_path, capsys, RAW, "--batch", "7")
    assert _row(data, "matmul_1")["kind"] == "@"
    assert _row(data, "matmul_1")["flops"] == 2 * 3 * 5               # per example
    assert data["per_example"]["forward_flops"] == 2 * 3 * 5
    # The inference step is x @ w alone: 2·B·K·N at B = 7.
    assert data["steps"]["inference"]["flops"] == 2 * 7 * 3 * 5
    assert data["batch"] == {"dim": "B", "size": 7, "from": "--batch"}


def test_memory_of_both_steps_comes_from_the_planner(tmp_path, capsys):
    data = _json(tmp_path, capsys, RAW)
    assert data["batch"] == {"dim": "B", "size": 4, "from": "train section"}
    inference, training = data["steps"]["inference"], data["steps"]["training"]
    assert inference["parameters"] == 15 * 4
    assert inference["inputs"] == 4 * 3 * 4              # x only: inference needs no label
    # z, 4*5 floats, is the one buffer: padded to 32 elements (64-byte aligned).
    assert inference["arena"] == 32 * 4 and inference["exact"]
    assert inference["total"] == 60 + 48 + 128
    assert training["parameters"] == 60
    assert training["optimizer"] == 2 * 60 and training["optimizers"] == ["adam"]   # m and v
    assert training["gradients"] == 60
    # The arena of the training step as the cpu target's planner lays it out at B = 4.
    from netdsl.compiler import Training, compile_step
    model = netdsl.load(tmp_path / "m.net")
    plan = compile_step(model.training_forward, training=Training.from_config(model.train_config),
                        stop_after="plan_memory")
    _, totals = plan.layout({"B": 4})
    assert training["arena"] == sum(n * dtype.numpy.itemsize for dtype, n in totals.items())
    assert training["arena"] > training["gradients"]
    assert training["total"] == (training["parameters"] + training["optimizer"] +
                                 training["inputs"] + training["constants"] + training["arena"])
    status, out, _ = _run(tmp_path, capsys, RAW, "--batch", "64")
    assert "One step at batch 64 (B=64, from --batch)" in out
    assert "optimiser state" in out and "memory planner" in out


CONV = """\
model Conv {
    in  x: f32[B, 1, 8, 8]
    in  y: i64[B]
    logits = x |> Conv2D(4, kernel=3, padding=1) |> relu |> GlobalAvgPool |> Dense(3)
    out probs = softmax(logits)
    loss cross_entropy(logits, y)
}
"""


def test_a_loop_bodys_own_arena_counts(tmp_path, capsys):
    """The cpu target runs this inference forward in blocks of rows: a body function with
    arenas of its own (backends/numba_cpu/row_blocks.py) that hold the convolution's
    [B, 4, 8, 8] output.  The step's own arena is far smaller; the summary counts both."""
    from netdsl.compiler import compile_step
    data = _json(tmp_path, capsys, CONV, "--batch", "16")
    inference = data["steps"]["inference"]
    feature_map = 16 * 4 * 8 * 8 * 4
    plan = compile_step(netdsl.load(tmp_path / "m.net").inference_graph, target="cpu",
                        stop_after="plan_memory")
    _, totals = plan.layout({"B": 16})
    own = sum(n * dtype.numpy.itemsize for dtype, n in totals.items())
    assert own < feature_map <= inference["arena"] and inference["exact"]
    assert inference["total"] == (inference["parameters"] + inference["inputs"] +
                                  inference["constants"] + inference["arena"])


def test_symbolic_dims_are_expressions_until_bound(tmp_path, capsys):
    data = _json(tmp_path, capsys, SEQUENCE)
    assert _row(data, "matmul_1")["flops"] == "30*T"
    assert data["steps"]["inference"]["flops"] == "120*T"          # B = 4 from the train section
    assert data["free_dims"] == ["T"]
    status, out, _ = _run(tmp_path, capsys, SEQUENCE)
    assert "30·T FLOPs" in out and "--dim T=N" in out
    bound = _json(tmp_path, capsys, SEQUENCE, "--dim", "T=12")
    assert _row(bound, "matmul_1")["flops"] == 30 * 12
    assert bound["steps"]["inference"]["flops"] == 2 * 4 * 12 * 3 * 5
    assert bound["steps"]["inference"]["exact"] and bound["free_dims"] == []
    assert bound["steps"]["inference"]["arena"] == 4 * 12 * 5 * 4       # 240 floats, aligned


def test_malformed_dim_flags_are_errors(tmp_path, capsys):
    for flag, message in [("T", "error: --dim T: expected NAME=N, e.g. --dim T=12"),
                          ("T=x", "error: --dim T=x: expected NAME=N"),
                          ("=3", "error: --dim =3: expected NAME=N"),
                          ("T=0", "error: --dim T=0: a dim is at least 1"),
                          ("Q=3", "error: --dim Q=3: no model here has a dim Q")]:
        status, out, err = _run(tmp_path, capsys, SEQUENCE, "--dim", flag)
        assert status == 1, flag
        assert message in err, err
        assert "Traceback" not in err and "^" not in err
    status, _, err = _run(tmp_path, capsys, SEQUENCE, "--batch", "0")
    assert status == 1 and "error: --batch must be at least 1, got 0" in err


def test_repeat_is_one_row_unless_expanded(tmp_path, capsys):
    example = (ROOT / "examples" / "residual_mlp.net").read_text()
    folded = _json(tmp_path, capsys, example)
    names = [row["name"] for row in folded["rows"]]
    assert "trunk_1" in names and "trunk_2" not in names and "trunk_3.dense_1" not in names
    trunk = _row(folded, "trunk_1")
    assert trunk["copies"] == 3
    expanded = _json(tmp_path, capsys, example, "--expand")
    copies = [_row(expanded, f"trunk_{i}") for i in (1, 2, 3)]
    assert all(row["copies"] == 1 for row in copies)
    assert trunk["params"] == sum(row["params"] for row in copies) == 3 * 4256
    assert trunk["flops"] == sum(row["flops"] for row in copies)
    _, out, _ = _run(tmp_path, capsys, example)
    assert "ResidualDense ×3" in out and "--expand shows every copy" in out


def test_a_scan_body_is_counted_once_per_step():
    result = subprocess.run([sys.executable, "-m", "netdsl", "check", "--json",
                             str(ROOT / "examples" / "rnn_sequence.net")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rnn = _row(json.loads(result.stdout)["models"][0], "rnn")
    # Per step: x_t @ w_ih (2*1*16) + h @ w_hh (2*16*16) + two biases, the sum and tanh (4*16).
    assert rnn["flops"] == "608*T"


def _check_in(env_changes: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONIOENCODING", "PYTHONUTF8", "LANG", "LANGUAGE")
           and not k.startswith("LC_")}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-m", "netdsl", "check", *args], cwd=ROOT, env=env,
                          capture_output=True, timeout=120)


def test_ascii_where_stdout_cannot_print_box_drawing():
    # Python turns on UTF-8 mode under LC_ALL=C; with it off, stdout is ASCII.
    for env in ({"LC_ALL": "C"}, {"LC_ALL": "C", "PYTHONUTF8": "0"}):
        result = _check_in(env, "examples/residual_mlp.net")
        assert result.returncode == 0, (env, result.stderr.decode(errors="replace"))
        assert b"Traceback" not in result.stderr
        text = result.stdout.decode("utf-8")
        assert "Parameters:  13,444" in text
    assert result.stdout.isascii()
    assert "\n" + "-" * 40 in text and "ResidualDense x3" in text


def test_json_and_model_summary_agree(tmp_path, capsys):
    data = _json(tmp_path, capsys, MLP)
    text = netdsl.load(tmp_path / "m.net").summary()
    assert f"Parameters:  {data['parameters']['total']} " in text
    assert "training" in text and "inference" in text
    assert "arena" not in netdsl.load(tmp_path / "m.net").summary(memory=False)


def test_a_step_over_the_plan_limit_is_named_not_planned(tmp_path, capsys):
    data = _json(tmp_path, capsys, MLP, "--plan-limit", "30")
    assert list(data["steps"]) == ["inference"]          # its graph has fewer than 30 nodes
    assert data["not_planned"]["training"] > 30
    status, out, _ = _run(tmp_path, capsys, MLP, "--plan-limit", "30")
    assert status == 0
    nodes = data["not_planned"]["training"]
    assert f"training: not planned: its graph has at least {nodes:,} nodes" in out
    everything = _json(tmp_path, capsys, MLP, "--plan-limit", "0")
    assert set(everything["steps"]) == {"inference", "training"} and not everything["not_planned"]


def test_flops_per_example_of_a_layer_on_part_of_the_batch(tmp_path, capsys):
    # The critic sees B // 4 rows: per example it costs a quarter of a row's FLOPs.
    text = MLP.replace("logits = x |> Dense(8) |> relu |> Dense(3)",
                       "part = reshape(x, [B // 4, 16])\n    "
                       "logits = part |> Dense(3) as critic").replace("i64[B]", "i64[B // 4]")
    data = _json(tmp_path, capsys, text, "--batch", "8")
    assert _row(data, "critic")["flops"] == (2 * 16 * 3 + 3) // 4 + 1        # 99 / 4, rounded


def test_dim_of_the_batch_is_the_batch_size(tmp_path, capsys):
    data = _json(tmp_path, capsys, RAW, "--dim", "B=6")
    assert data["batch"] == {"dim": "B", "size": 6, "from": "--dim B"}
    # Both, agreeing, are fine; disagreeing, one error (--batch used to win silently).
    assert _json(tmp_path, capsys, RAW, "--dim", "B=6", "--batch", "6")["batch"]["size"] == 6
    status, out, err = _run(tmp_path, capsys, RAW, "--dim", "B=6", "--batch", "4")
    assert status == 1 and out == "" and err == ("error: --dim B=6 and --batch 4 disagree: B "
                                                 "is the batch dim of model Raw\n"
                                                 "hint: give one of them\n")
    assert data["steps"]["inference"]["flops"] == 2 * 6 * 3 * 5
    assert data["dims"] == {}
