"""Syntax-error tests: the exact message for each labelled mistake (golden files), and the
consistency of the table of mistakes.

Each tests/frontend/golden/<case>.net is parsed under the file name `<case>.net`; the str() of
the resulting netdsl.Error must equal <case>.txt.  To regenerate the goldens after a deliberate
change of wording, run `NETDSL_UPDATE_GOLDEN=1 python -m pytest tests/frontend`, then review
the diff.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from netdsl.errors import Error
from netdsl.frontend import parse
from netdsl.frontend.syntax_errors import MISTAKES, _example_failure, expected_text, match_mistake

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.net"))


def error_text(case: str) -> str:
    """What the user sees for golden/<case>.net."""
    text = (GOLDEN / f"{case}.net").read_text(encoding="utf-8")
    with pytest.raises(Error) as caught:
        parse(text, f"{case}.net")
    return str(caught.value) + "\n"


@pytest.mark.parametrize("case", CASES)
def test_golden_error(case: str):
    actual = error_text(case)
    expected_path = GOLDEN / f"{case}.txt"
    if os.environ.get("NETDSL_UPDATE_GOLDEN") == "1":
        expected_path.write_text(actual, encoding="utf-8")
    assert expected_path.exists(), f"no {expected_path.name}; run with NETDSL_UPDATE_GOLDEN=1"
    assert actual == expected_path.read_text(encoding="utf-8")


def test_every_golden_has_its_net_file():
    assert {p.stem for p in GOLDEN.glob("*.txt")} == set(CASES)


@pytest.mark.parametrize("label", sorted(MISTAKES))
def test_every_example_makes_its_own_mistake(label: str):
    """Each example of the table fails to parse and is recognised as its own label, so no two
    labels claim the same parser state for the same token."""
    for example in MISTAKES[label].examples:
        failure = _example_failure(example)
        assert failure is not None, f"example parses: {example!r}"
        assert match_mistake(failure) == label, example


def test_errors_have_location_quote_and_caret():
    with pytest.raises(Error) as caught:
        parse("model M {\n    y = f(a,,b)\n}\n", "m.net")
    lines = str(caught.value).splitlines()
    assert lines[0] == "m.net:2:13: error: stray ','"
    assert lines[1] == "    y = f(a,,b)"
    assert lines[2] == "            ^"


def test_independent_errors_are_all_reported_in_order():
    text = "model M {\n    a = 1 2\n    b = 3\n    c = )\n    d = (4\n}\n"
    with pytest.raises(Error) as caught:
        parse(text, "m.net")
    spans = [(d.span.line, d.span.column) for d in caught.value.diagnostics]
    assert spans == [(2, 11), (4, 9), (5, 9)]
    assert str(caught.value).endswith("3 errors")


def test_a_broken_header_stops_recovery():
    # Going on after a broken `model` line would report its body as stray statements.
    with pytest.raises(Error) as caught:
        parse("model M:\n    x = 1\n    y = 2\n}\n", "m.net")
    assert len(caught.value.diagnostics) == 1


def test_expected_tokens_are_spelled_for_users():
    assert expected_text({"RPAR"}) == "expected ')'"
    assert expected_text({"NAME", "RPAR"}) == "expected a name or ')'"
    assert expected_text({"_NL", "COMMA", "RSQB"}) == "expected one of ',', ']', end of line"
    everything = {"NAME", "INT", "FLOAT", "STRING", "LPAR", "LSQB", "PLUS", "MINUS", "TRUE",
                  "FALSE", "NONE", "SCAN"}
    assert expected_text(everything | {"RPAR"}) == "expected an expression or ')'"
