"""Parsed `.net` files kept as JSON, so that a command run again on the same files skips Lark.

`parse_file(path)` is parser.parse_file with a cache: the file's AST, stored the first time it
parses without errors under the hash of its text and of everything that decides the parse (the
grammar, netdsl/frontend's sources, source.py, Lark's version).  A later process that reads the
same text loads that AST and never imports Lark.  Measured on the 2-core development machine
(fresh processes, XOR): importing Lark ~65 ms, its tables from JSON ~23 ms, the parse ~5 ms;
loading the cached AST ~1-2 ms.  That is a tenth of `netdsl train`'s warm start (~0.9 s).

Entries live in the compile cache's directory (userdirs: $NETDSL_CACHE_DIR, else the user's
cache directory; the user's own, mode 0700), under `parsed/`.  They hold JSON, which cannot
run code, behind a checksum of the entry's name and text, and are decoded strictly: only AST
node classes, each with its exact number of fields, each field of its annotated type.
Anything else (a damaged, truncated or foreign file, a FIFO, one under another entry's name,
another format) is a miss: the file is parsed and the entry written again, atomically.  The
file's display name is not part of an entry: spans and `Module.path` take the name the file is
read under.  Files with syntax errors are never cached: they parse every time, so their
errors are reported as before.
Where the cache directory cannot be used, files are parsed uncached.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from ..source import SourceError, Span, read_source, read_source_bytes
from . import ast

FORMAT = "netdsl-ast-1"          # bump when the encoding below changes
# A cached AST is read only up to this size: a 256 KB source (source.MAX_SOURCE_BYTES) makes
# a few MB of JSON.
MAX_ENTRY_BYTES = 64 * 1024 * 1024

_NODE_CLASSES = {cls.__name__: cls for cls in vars(ast).values()
                 if isinstance(cls, type) and issubclass(cls, ast.Node)
                 and dataclasses.is_dataclass(cls)}
_FIELDS = {name: tuple(field.name for field in dataclasses.fields(cls))
           for name, cls in _NODE_CLASSES.items()}
_fingerprint: str | None = None


def _accepts(annotation: str):
    """A test of a value against a field's annotation as ast.py writes it (`Expr | None`,
    `tuple[Name, ...]`, `int | float`, `Span | None`): what a decoded field must pass."""
    tests = []
    for alternative in (part.strip() for part in annotation.split("|")):
        if alternative.startswith("tuple[") and alternative.endswith(", ...]"):
            item = _accepts(alternative[len("tuple["):-len(", ...]")])
            tests.append(lambda value, item=item: type(value) is tuple and all(map(item, value)))
        elif alternative == "None":
            tests.append(lambda value: value is None)
        elif alternative in ("str", "int", "float", "bool"):
            kind = {"str": str, "int": int, "float": float, "bool": bool}[alternative]
            tests.append(lambda value, kind=kind: type(value) is kind)
        elif alternative == "Span":
            tests.append(lambda value: type(value) is Span)
        else:                         # a node class, or a Union of them (Expr, Stmt, Item)
            kinds = tuple(getattr(getattr(ast, alternative), "__args__",
                                  (getattr(ast, alternative),)))
            tests.append(lambda value, kinds=kinds: isinstance(value, kinds))
    return lambda value: any(test(value) for test in tests)


_TESTS = {name: tuple(_accepts(str(field.type)) for field in dataclasses.fields(cls))
          for name, cls in _NODE_CLASSES.items()}


def parse_file(path: str | Path) -> ast.Module:
    """Parse a .net file (parser.parse_file), from the cache when its text was parsed before.
    Raises SourceError for a file that cannot be read, netdsl.errors.Error for syntax errors."""
    name, text = read_source(path)
    entry = entry_path(text)
    if entry is not None:
        module = load(entry, name)
        if module is not None:
            return module
    from .parser import parse
    module = parse(text, name)
    if entry is not None:
        save(module, entry)
    return module


def entry_path(text: str) -> Path | None:
    """The cache file for this text, or None when nothing may be cached (no usable cache
    directory, or netdsl's frontend sources cannot be read for the key)."""
    from ..errors import Error
    from ..userdirs import cache_location, private_dir
    fingerprint = frontend_fingerprint()
    if fingerprint is None:
        return None
    try:
        directory = private_dir(cache_location(), "cache directory") / "parsed"
        directory.mkdir(mode=0o700, exist_ok=True)
    except (Error, OSError):
        return None
    digest = hashlib.sha256()
    for part in (FORMAT, fingerprint, text):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return directory / f"{digest.hexdigest()[:40]}.json"


def frontend_fingerprint() -> str | None:
    """Hash of what decides a parse: the grammar, netdsl/frontend/*.py, source.py and Lark's
    version (its package's __init__.py, read without importing Lark); None if any is missing."""
    global _fingerprint
    if _fingerprint is None:
        import importlib.util

        from .grammar_file import find_grammar
        here = Path(__file__).resolve().parent
        try:
            lark_spec = importlib.util.find_spec("lark")
            files = [find_grammar(), here.parent / "source.py",
                     Path(lark_spec.origin), *sorted(here.glob("*.py"))]
            digest = hashlib.sha256()
            for path in files:
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
        except (OSError, AttributeError, TypeError, ValueError, ImportError):
            return None
        _fingerprint = digest.hexdigest()
    return _fingerprint


# ---- the encoding ----------------------------------------------------------------------------
# An entry is a line with its checksum (_checksum), then the JSON.  A node is
# {"n": class name, "f": [its fields' values, in dataclasses.fields order]}; a span is
# {"s": [line, column, end_line, end_column]} (its file is the name the file is read under); a
# tuple is a JSON list; strings, numbers, booleans and None are themselves.  Module.path is
# stored as null.


def encode(module: ast.Module) -> str:
    """The JSON text of a parsed module; ValueError if it holds anything the encoding cannot
    (a span into another file, a value of another type)."""
    return json.dumps({"format": FORMAT, "module": _encode(module, module.path)},
                      separators=(",", ":"))


def _encode(value, file: str):
    if isinstance(value, ast.Node):
        values = [_encode(getattr(value, name), file) for name in _FIELDS[type(value).__name__]]
        if isinstance(value, ast.Module):
            values[_FIELDS["Module"].index("path")] = None
        return {"n": type(value).__name__, "f": values}
    if isinstance(value, Span):
        if value.file != file:
            raise ValueError("a span into another file")
        return {"s": [value.line, value.column, value.end_line, value.end_column]}
    if isinstance(value, tuple):
        return [_encode(item, file) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(f"cannot store {type(value).__name__} in a parsed file")


def decode(text: str, name: str) -> ast.Module:
    """The module that `encode` wrote, its spans in the file `name`; ValueError (or
    RecursionError) for anything else."""
    def hook(mapping: dict):
        if mapping.keys() == {"n", "f"}:
            fields = _FIELDS.get(mapping["n"])
            values = mapping["f"]
            if fields is None or not isinstance(values, list) or len(values) != len(fields):
                raise ValueError("not a node of netdsl's AST")
            arguments = {field: _tuples(value) for field, value in zip(fields, values)}
            if mapping["n"] == "Module":
                arguments["path"] = name
            if not all(test(arguments[field]) for test, field in zip(_TESTS[mapping["n"]],
                                                                    fields)):
                raise ValueError("a field of the wrong type")
            return _NODE_CLASSES[mapping["n"]](**arguments)
        if mapping.keys() == {"s"}:
            numbers = mapping["s"]
            if not (isinstance(numbers, list) and len(numbers) == 4 and
                    all(type(number) is int for number in numbers)):
                raise ValueError("not a span")
            return Span(name, *numbers)
        if mapping.keys() == {"format", "module"}:
            return mapping
        raise ValueError("not a parsed file")

    payload = json.loads(text, object_hook=hook)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or \
            not isinstance(payload.get("module"), ast.Module):
        raise ValueError("not a parsed file of this format")
    return payload["module"]


def _tuples(value):
    """JSON lists back to tuples."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


# ---- files -----------------------------------------------------------------------------------


def load(entry: Path, name: str) -> ast.Module | None:
    """The module cached in `entry`, read under the file name `name`; None on a miss (no
    such entry, or one that does not decode or whose checksum does not match)."""
    try:
        # As a source file is read: non-blocking, a regular file only (a FIFO in its place must
        # not hang the run), at most MAX_ENTRY_BYTES.
        data = read_source_bytes(entry, MAX_ENTRY_BYTES)
        checksum, _, text = data.partition(b"\n")
        if checksum != _checksum(entry, text):
            return None
        return decode(text.decode("utf-8"), name)
    except (SourceError, OSError, ValueError, TypeError, RecursionError):  # damaged, foreign
        return None


def save(module: ast.Module, entry: Path) -> None:
    """Write `module` to `entry` atomically, when it decodes back to the very same tree."""
    from .lark_tables import write_atomically
    try:
        text = encode(module)
        if not same_tree(decode(text, module.path), module):
            return
    except (ValueError, TypeError, RecursionError):
        return
    data = text.encode("utf-8")
    write_atomically(entry, _checksum(entry, data) + b"\n" + data)


def _checksum(entry: Path, data: bytes) -> bytes:
    """The first line of an entry: the hash of its name and its JSON, so that a damaged file,
    or one under another entry's name, is a miss rather than another program's tree."""
    return hashlib.sha256(entry.name.encode() + b"\0" + data).hexdigest().encode()


def same_tree(a, b) -> bool:
    """Equal, spans included (AST equality ignores spans)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, ast.Node):
        return all(same_tree(getattr(a, name), getattr(b, name))
                   for name in _FIELDS[type(a).__name__])
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a:
        return b != b                                     # NaN
    return a == b


__all__ = ["decode", "encode", "entry_path", "frontend_fingerprint", "load", "parse_file",
           "save"]
