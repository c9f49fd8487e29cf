"""The standard library's block index (layers/stdlib): which file defines which block comes
from a scan for `block Name` lines, and must be what parsing the files gives."""
from __future__ import annotations

from netdsl.frontend import ast
from netdsl.frontend.parser import parse_file
from netdsl.layers.stdlib import stdlib_block, stdlib_blocks, stdlib_index


def test_index_is_what_the_parse_finds():
    parsed = {}
    for path in sorted(set(stdlib_index().values())):
        for item in parse_file(path).items:
            if isinstance(item, ast.Block):
                assert item.name not in parsed, f"{item.name} defined twice"
                parsed[item.name] = path
    assert parsed == stdlib_index()
    assert {"LSTM", "GRU", "RNN", "TransformerEncoderLayer"} <= set(parsed)
    assert set(stdlib_blocks()) == set(parsed)


def test_a_block_is_found_by_name_and_parsed_once():
    first = stdlib_block("LSTM")
    assert first is not None and first is stdlib_block("LSTM")
    assert stdlib_blocks()["LSTM"] is first
    assert stdlib_block("Dense") is None and stdlib_block("lstm") is None
