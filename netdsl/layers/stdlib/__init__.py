"""The standard library written in netdsl: blocks every program can use (RNN, ...).

Each `.net` file here is parsed once; its blocks are visible in every program, after the
program's own definitions (a user block of the same name wins).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def stdlib_blocks() -> dict:
    """Block name -> BlockDef for every block of the standard library."""
    from ...frontend.parser import parse_file
    from ...frontend import ast
    from ...frontend.values import BlockDef
    blocks = {}
    for path in sorted(Path(__file__).parent.glob("*.net")):
        module = parse_file(path)
        for item in module.items:
            if isinstance(item, ast.Block):
                blocks[item.name] = BlockDef(item, module.path)
    return blocks
