"""Where the grammar file, netdsl.lark, is: kept apart from parser.py so that finding it (for
the parse cache's key, frontend/parse_cache.py) does not import Lark."""
from __future__ import annotations

from pathlib import Path

GRAMMAR_FILE = "netdsl.lark"
_PARSER_FILE = Path(__file__).resolve().parent / "parser.py"


def grammar_candidates(module_file: str | Path = _PARSER_FILE) -> list[Path]:
    """Where the grammar may be, in order: inside the installed package (the wheel
    force-includes it as netdsl/grammars/netdsl.lark), then in a source checkout.
    `module_file` is a module of netdsl/frontend."""
    here = Path(module_file).resolve().parent  # .../netdsl/frontend
    return [here.parent / "grammars" / GRAMMAR_FILE, here.parents[1] / "grammars" / GRAMMAR_FILE]


def find_grammar(module_file: str | Path = _PARSER_FILE) -> Path:
    """The path of netdsl.lark; FileNotFoundError naming every place looked at."""
    candidates = grammar_candidates(module_file)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError("netdsl grammar not found; looked at " +
                            ", ".join(str(p) for p in candidates))
