"""Every shrunk program the differential tester found (tests/fuzz/regressions/*.net) agrees.

Each file carries its data (`# fuzz-data:`) and compile options (`# fuzz-options:`) in its
header, so the file alone reproduces what once failed; see netdsl/fuzz/oracle.py.
"""
from pathlib import Path

import pytest

from netdsl.fuzz.oracle import check_source, read_header

FILES = sorted((Path(__file__).parent / "regressions").glob("*.net"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_regression_program_agrees(path):
    text = path.read_text()
    data, options = read_header(text)
    assert data.bindings, f"{path.name} has no `# fuzz-data:` header"
    finding = check_source(text, data, options)
    assert finding is None, f"{path.name}: {finding.kind}: {finding.detail}"
