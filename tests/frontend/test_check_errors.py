"""Golden tests: the exact message `netdsl check` prints for each kind of user mistake.

Each `golden_check/<case>.net` has a `<case>.txt` holding the expected stderr.  Regenerate with
NETDSL_UPDATE_GOLDEN=1 after a deliberate change to a message, and read the diff.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from netdsl.cli import main

GOLDEN = Path(__file__).parent / "golden_check"
CASES = sorted(p.stem for p in GOLDEN.glob("*.net"))


def run_check(capsys, monkeypatch, name: str) -> tuple[int, str, str]:
    monkeypatch.chdir(GOLDEN)
    status = main(["check", f"{name}.net"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("case", CASES)
def test_error_message_is_golden(case, capsys, monkeypatch):
    status, out, err = run_check(capsys, monkeypatch, case)
    assert status == 1, f"{case} should fail; printed:\n{out}{err}"
    assert out == "", "nothing is printed to stdout on failure"
    assert "Traceback" not in err
    expected = GOLDEN / f"{case}.txt"
    if os.environ.get("NETDSL_UPDATE_GOLDEN") or not expected.exists():
        expected.write_text(err)
    assert err == expected.read_text()


@pytest.mark.parametrize("case", CASES)
def test_error_points_into_the_source(case, capsys, monkeypatch):
    """Every diagnostic starts with file:line:col and quotes the line with a caret."""
    _, _, err = run_check(capsys, monkeypatch, case)
    first = err.splitlines()[0]
    assert ".net:" in first and ": error: " in first
    assert any(line.strip().startswith("^") for line in err.splitlines())


def test_several_independent_errors_are_all_reported(capsys, monkeypatch):
    _, _, err = run_check(capsys, monkeypatch, "several_errors")
    assert err.count(": error: ") == 3
    assert "3 errors" in err
