"""No traceback reaches a user: a bug in netdsl is one line on stderr and exit status 2, with the
traceback only under --debug (before or after the verb)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from netdsl import cli
from netdsl.commands import COMMANDS

LINE = re.compile(r"internal error in (?P<stage>[a-z ]+): (?P<what>.+); please report "
                  r"\(rerun with --debug for the traceback\)")


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.net"
    path.write_text(textwrap.dedent("""\
        model M {
            in x: f32[B, 4]
            out y = x |> Dense(2) |> relu
        }
    """))
    return path


@pytest.fixture
def broken_check(monkeypatch):
    """Replace the check verb by one that fails with a bug (not a netdsl.Error)."""
    def run(args):
        raise RuntimeError("invariant broken:\n  second line of detail")
    help_text, setup, _ = COMMANDS["check"]
    monkeypatch.setitem(COMMANDS, "check", (help_text, setup, run))


def test_internal_error_is_one_line_and_status_2(broken_check, model_file, capsys):
    assert cli.main(["check", str(model_file)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    match = LINE.fullmatch(lines[0])
    assert match, lines[0]
    assert match["stage"] == "check"        # raised outside netdsl's stages: the verb
    assert match["what"] == "RuntimeError: invariant broken: second line of detail"
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("argv", [["--debug", "check"], ["check", "--debug"]])
def test_debug_prints_the_traceback(broken_check, model_file, capsys, argv):
    assert cli.main(argv + [str(model_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "RuntimeError: invariant broken" in err
    assert LINE.fullmatch(err.splitlines()[-1])


def test_stage_is_where_in_netdsl_it_failed(monkeypatch, model_file, capsys):
    """A layer's apply is called from the lowering: the stage is `lower`, not the verb."""
    from netdsl.layers import core

    def apply(self, ctx, x):
        return {}["missing"]
    monkeypatch.setattr(core.Dense, "apply", apply)
    assert cli.main(["check", str(model_file)]) == 2
    line = capsys.readouterr().err.strip()
    assert LINE.fullmatch(line) and line.startswith("internal error in lower: KeyError: 'missing'")


def test_stage_of_parsing(monkeypatch, model_file, capsys):
    from netdsl.frontend import parse_cache

    def parse_file(path, *args, **kwargs):
        raise ValueError("")
    monkeypatch.setattr(parse_cache, "parse_file", parse_file)
    assert cli.main(["check", str(model_file)]) == 2
    assert capsys.readouterr().err.startswith("internal error in parse: ValueError; please")


def test_user_errors_keep_status_1_and_their_format(model_file, capsys):
    model_file.write_text("model M {\n    in x: f32[B, 4]\n    out y = x |> Dense(\"a\")\n}\n")
    assert cli.main(["--debug", "check", str(model_file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{model_file}:3:") and "Traceback" not in err


def test_keyboard_interrupt_is_status_130(monkeypatch, model_file, capsys):
    def run(args):
        raise KeyboardInterrupt
    help_text, setup, _ = COMMANDS["check"]
    monkeypatch.setitem(COMMANDS, "check", (help_text, setup, run))
    assert cli.main(["check", str(model_file)]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_a_crashing_process_prints_no_traceback(model_file):
    """The real console entry: a separate interpreter, its stderr and exit status."""
    script = textwrap.dedent(f"""
        import sys
        from netdsl import cli
        from netdsl.layers import core
        core.Dense.apply = lambda self, ctx, x: 1 / 0
        sys.exit(cli.main(["check", {str(model_file)!r}]))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "internal error in lower: ZeroDivisionError: division by zero; please report "
        "(rerun with --debug for the traceback)"]
