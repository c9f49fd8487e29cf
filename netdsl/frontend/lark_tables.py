"""Lark's LALR tables for the netdsl grammar, kept as JSON in the user's own cache directory.

Building the parser from the grammar costs ~0.7 s in a fresh process (grammar analysis, LALR
tables, strict mode's regex-collision checks), so it is cached.  Lark's own `cache=True` keeps a
pickle in the shared temporary directory ($TMPDIR/.lark_cache_<user>_<sha>_3_11.tmp) and loads
it before checking anything, so any local user could plant a file there that runs code on
`netdsl check`.  Here the tables (Lark's `memo_serialize` data: dicts, lists, tuples, strings,
numbers) are written as JSON, which cannot run code, into the user's own cache directory
(platformdirs, ~/.cache/netdsl; not $NETDSL_CACHE_DIR, which tests and CI point at fresh
directories, so that one table file serves every run), checked by userdirs.private_dir (the
user's own, mode 0700); if that directory is unusable the parser is built from the grammar,
uncached.  A table file that does not load (damaged, from another Lark) is rebuilt and replaced
atomically.

Measured on the loaded 2-core development machine (lark 1.3.1, load average ~6; medians of 15
interleaved runs each): the parser ready in a fresh process in 20 ms from Lark's pickle, 41 ms
from these JSON tables (JSON decoding ~10 ms more than unpickling, platformdirs' import ~8 ms),
699 ms built from the grammar; `python -m netdsl check examples/xor.net` 1.86 s with the pickle,
2.03 s with the JSON tables, 2.75 s with no cache.  So a cache is needed, and JSON costs ~20 ms.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from lark import Lark

FORMAT = "netdsl-lark-tables-1"     # bump when the encoding below changes


def cached_lark(grammar: str, options: dict, load_options: dict) -> Lark:
    """Lark(grammar, **options, **load_options) for LALR, its tables loaded from (or saved to)
    the cache directory.  `load_options` are those given again when loading (postlex, ...)."""
    path = table_path(grammar, options)
    if path is not None:
        parser = _load(path, load_options)
        if parser is not None:
            return parser
    parser = Lark(grammar, **options, **load_options)
    if path is not None:
        _save(parser, path)
    return parser


def table_path(grammar: str, options: dict) -> Path | None:
    """The table file for this grammar, these options and this Lark; None when netdsl's cache
    directory cannot be used (then nothing is cached)."""
    import lark

    from ..errors import Error
    from ..userdirs import private_dir, user_cache_location
    digest = hashlib.sha256()
    for part in (FORMAT, lark.__version__, repr(sorted(options.items())), grammar):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    try:
        directory = private_dir(user_cache_location(), "cache directory")
    except Error:
        return None
    return directory / f"lark_{digest.hexdigest()[:32]}.json"


def _load(path: Path, load_options: dict) -> Lark | None:
    try:
        with open(path, encoding="utf-8") as stream:
            payload = json.load(stream, object_hook=_decode)
        if payload.get("format") != FORMAT:
            return None
        return Lark._load_from_dict(payload["data"], payload["memo"], **load_options)
    except FileNotFoundError:
        return None
    except Exception:              # damaged or foreign: rebuilt from the grammar and replaced
        return None


def _save(parser: Lark, path: Path) -> None:
    from lark.grammar import Rule
    from lark.lark import _LOAD_ALLOWED_OPTIONS
    from lark.lexer import TerminalDef
    try:
        data, memo = parser.memo_serialize([TerminalDef, Rule])
        # What is given again on loading (the postlexer object, ...) is not stored, as Lark.save
        # leaves it out of its cache.
        data["options"] = {name: value for name, value in data["options"].items()
                           if name not in _LOAD_ALLOWED_OPTIONS}
        payload = {"format": FORMAT, "data": data, "memo": memo}
        text = json.dumps(_encode(payload), separators=(",", ":"))
        if json.loads(text, object_hook=_decode) != payload:
            return                         # something JSON cannot hold exactly: do not cache
    except (TypeError, ValueError, AttributeError, ImportError):
        return
    write_atomically(path, text.encode("utf-8"))


def write_atomically(path: Path, content: bytes) -> bool:
    """Write `content` to `path` through a temporary file in the same directory (fsync, then
    rename), so that no reader ever sees half a file; False if it could not be written."""
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        return True
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return False


# JSON has no tuples and only string keys: a tuple is {"(": [...]}, a dict with other keys (or
# with one of these two markers as its only key) is {"{": [[key, value], ...]}.


def _encode(value):
    if isinstance(value, tuple):
        return {"(": [_encode(item) for item in value]}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and not (len(value) == 1 and (
                "(" in value or "{" in value)):
            return {key: _encode(item) for key, item in value.items()}
        return {"{": [[_encode(key), _encode(item)] for key, item in value.items()]}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in the parser tables")


def _decode(mapping: dict):
    if len(mapping) == 1:
        if "(" in mapping:
            return tuple(mapping["("])
        if "{" in mapping:
            return {key: item for key, item in mapping["{"]}
    return mapping


__all__ = ["cached_lark", "table_path", "write_atomically"]
