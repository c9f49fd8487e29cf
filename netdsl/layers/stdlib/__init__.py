"""The standard library written in netdsl: blocks every program can use (RNN, ...).

Each `.net` file here is parsed once, when a program first names one of its blocks; its blocks
are visible in every program, after the program's own definitions (a user block of the same
name wins).  Which file defines which block comes from a scan of the files for `block Name`
at the start of a line, not from a parse (the three files took ~30 ms to parse, paid by every
program that named an unknown-so-far name, XOR's `Dense` included); a test checks the scan
against the parse.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

_BLOCK_LINE = re.compile(r"^block\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


@lru_cache(maxsize=1)
def stdlib_index() -> dict[str, Path]:
    """Block name -> the standard library file that defines it."""
    index = {}
    for path in sorted(Path(__file__).parent.glob("*.net")):
        for name in _BLOCK_LINE.findall(path.read_text(encoding="utf-8")):
            index.setdefault(name, path)
    return index


def stdlib_block(name: str):
    """The standard library's BlockDef called `name`, or None."""
    path = stdlib_index().get(name)
    return None if path is None else _file_blocks(path).get(name)


def stdlib_blocks() -> dict:
    """Block name -> BlockDef for every block of the standard library."""
    blocks = {}
    for path in sorted(set(stdlib_index().values())):
        for name, block in _file_blocks(path).items():
            blocks.setdefault(name, block)
    return blocks


@lru_cache(maxsize=None)
def _file_blocks(path: Path) -> dict:
    """Block name -> BlockDef for the blocks of one standard library file (parsed once)."""
    from ...frontend import ast
    from ...frontend.parse_cache import parse_file
    from ...frontend.values import BlockDef
    module = parse_file(path)
    return {item.name: BlockDef(item, module.path) for item in module.items
            if isinstance(item, ast.Block)}
