"""The front end: `.net` text → AST (`parse`, `parse_file`); the node classes are in `ast`.

`parse_file` keeps what it parsed in the cache (parse_cache.py).  `parse` (of a text) is
parser.parse, imported when first used: the parser imports Lark, which a run whose files are
all cached never needs."""
from . import ast
from .parse_cache import parse_file


def __getattr__(name: str):
    if name == "parse":
        from .parser import parse
        return parse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ast", "parse", "parse_file"]
