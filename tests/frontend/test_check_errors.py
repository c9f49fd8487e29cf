"""Golden tests: the exact message `netdsl check` prints for each kind of user mistake.

Each `golden_check/<case>.net` has a `<case>.txt` holding the expected stderr.  A missing golden
file is a failure.  After a deliberate change to a message, regenerate with
NETDSL_UPDATE_GOLDEN=1 (exactly "1"), read the diff, and run the tests again without it: a run
that rewrites golden files fails every case it rewrote, so it can never count as a pass.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from netdsl.cli import main

GOLDEN = Path(__file__).parent / "golden_check"
CASES = sorted(p.stem for p in GOLDEN.glob("*.net"))
UPDATE = os.environ.get("NETDSL_UPDATE_GOLDEN") == "1"


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
    if UPDATE:
        before = expected.read_text() if expected.exists() else None
        expected.write_text(err)
        change = "unchanged" if before == err else "new" if before is None else "CHANGED"
        pytest.fail(f"NETDSL_UPDATE_GOLDEN=1: wrote {expected.name} ({change}); read the "
                    f"diff, then run again without NETDSL_UPDATE_GOLDEN")
    assert expected.exists(), (f"no golden file {expected.name}: write it with "
                               f"NETDSL_UPDATE_GOLDEN=1 and read it before committing")
    assert err == expected.read_text()


def test_every_golden_file_has_its_case():
    """A golden file whose .net case was renamed or deleted is checked by nothing."""
    orphans = sorted(p.name for p in GOLDEN.glob("*.txt") if p.stem not in CASES)
    assert not orphans, f"golden files without a case: {orphans}"


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
