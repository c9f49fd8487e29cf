"""The parse cache (frontend/parse_cache.py): cached ASTs equal fresh parses, spans and file
names included; damaged, foreign or planted entries are misses; files with syntax errors are
never cached; a process whose files are all cached does not import Lark."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netdsl.errors import Error
from netdsl.frontend import ast, parse_cache
from netdsl.frontend.parser import parse
from netdsl.source import display_name

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "examples").glob("*.net"), *(ROOT / "benchmarks" / "models").glob(
    "*.net"), *(ROOT / "netdsl" / "layers" / "stdlib").glob("*.net")])
XOR = (ROOT / "examples" / "xor.net").read_text()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NETDSL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "parsed"


def _spans(node) -> list:
    return [(type(n).__name__, n.span, getattr(n, "name_span", None), getattr(n, "key_span", None))
            for n in ast.walk(node)]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_shipped_file_round_trips_spans_included(path):
    module = parse(path.read_text(), "some/name.net")
    again = parse_cache.decode(parse_cache.encode(module), "some/name.net")
    assert again == module and parse_cache.same_tree(again, module)
    assert _spans(again) == _spans(module)
    renamed = parse_cache.decode(parse_cache.encode(module), "other.net")
    assert renamed.path == "other.net" and renamed.span.file == "other.net"
    assert all(span.file == "other.net" for entry in _spans(renamed) for span in entry[1:]
               if span is not None)


def test_second_parse_loads_the_entry(cache_dir, tmp_path, monkeypatch):
    source = tmp_path / "xor.net"
    source.write_text(XOR)
    first = parse_cache.parse_file(source)
    entries = list(cache_dir.glob("*.json"))
    assert len(entries) == 1
    import netdsl.frontend.parser as parser

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed again")
    monkeypatch.setattr(parser, "parse", no_parse)
    second = parse_cache.parse_file(source)
    assert parse_cache.same_tree(second, first)
    # The same text under another name: the same entry, spans in the new file.
    other = tmp_path / "copy.net"
    other.write_text(XOR)
    copied = parse_cache.parse_file(other)
    assert copied.items == first.items and copied.path.endswith("copy.net")
    assert copied.items[0].span.file == copied.path
    assert len(list(cache_dir.glob("*.json"))) == 1


@pytest.mark.parametrize("content", [
    b"", b"not json", b"\xff\xfe", b'{"format": "netdsl-ast-0", "module": null}',
    b'{"format": "netdsl-ast-1", "module": {"n": "Path", "f": ["/etc/passwd"]}}',
    b'{"format": "netdsl-ast-1", "module": {"n": "Module", "f": [null]}}',
    b'{"format": "netdsl-ast-1", "module": {"n": "Module", "f": [[], null, {"s": [1, 2]}]}}',
    b'{"format": "netdsl-ast-1", "module": {"n": "Name", "f": [null, "x"]}}',
    b'{"format": "netdsl-ast-1", "module": {"__class__": "Module"}}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"format": "netdsl-ast-1", "module": {"n": "Module", "f": [null, "abc", null]}}',
    b'{"format": "netdsl-ast-1", "module": {"n": "Module", "f": [null, [{"n": "Import", '
    b'"f": [null, 7]}], null]}}',
    b'{"format": "netdsl-ast-1", "module": {"n": "Module", "f": [null, [{"n": "Name", '
    b'"f": [null, "x"]}], null]}}',
], ids=["empty", "text", "not-utf8", "old-format", "foreign-class", "few-fields", "bad-span",
        "not-a-module", "other-keys", "deep", "items-a-string", "path-a-number",
        "an-expression-as-an-item"])
def test_a_damaged_or_foreign_entry_is_a_miss_and_is_replaced(cache_dir, tmp_path, content):
    source = tmp_path / "xor.net"
    source.write_text(XOR)
    expected = parse(XOR, display_name(source))
    entry = parse_cache.entry_path(XOR)
    entry.write_bytes(content)
    if content.startswith(b"{"):          # foreign content with a right checksum
        entry.write_bytes(parse_cache._checksum(entry, content) + b"\n" + content)
    module = parse_cache.parse_file(source)
    assert parse_cache.same_tree(module, expected)
    assert parse_cache.same_tree(parse_cache.load(entry, expected.path), expected)  # rewritten


def test_a_changed_or_misplaced_entry_is_a_miss(cache_dir, tmp_path):
    source = tmp_path / "xor.net"
    source.write_text(XOR)
    parse_cache.parse_file(source)
    entry = parse_cache.entry_path(XOR)
    data = entry.read_bytes()
    number = data.index(b"]},", data.index(b'{"n":"Number"')) + 3     # its value, after its span
    assert data[number:number + 1].isdigit()
    changed = data[:number] + (b"7" if data[number:number + 1] != b"7" else b"6") + \
        data[number + 1:]                                  # one literal of the model changed
    entry.write_bytes(changed)
    assert parse_cache.load(entry, "xor.net") is None
    other = parse_cache.entry_path(XOR + "# another program\n")
    other.write_bytes(data)                 # a whole entry under another text's name
    assert parse_cache.load(other, "xor.net") is None


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_an_entry_that_is_not_a_file_is_a_miss(cache_dir, tmp_path, kind):
    source = tmp_path / "xor.net"
    source.write_text(XOR)
    entry = parse_cache.entry_path(XOR)
    os.mkfifo(entry) if kind == "fifo" else entry.mkdir()
    module = parse_cache.parse_file(source)            # no hang on the FIFO
    assert parse_cache.same_tree(module, parse(XOR, display_name(source)))


def test_syntax_errors_are_never_cached(cache_dir, tmp_path):
    source = tmp_path / "bad.net"
    source.write_text("model M {\n    in x: f32[B, 2\n}\n")
    for _ in range(2):
        with pytest.raises(Error) as raised:
            parse_cache.parse_file(source)
        assert "bad.net:2:" in str(raised.value.diagnostics[0].span)
    assert not list(cache_dir.glob("*.json"))


def test_an_unusable_cache_directory_parses_uncached(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)                       # writable by others: refused by private_dir
    monkeypatch.setenv("NETDSL_CACHE_DIR", str(shared))
    source = tmp_path / "xor.net"
    source.write_text(XOR)
    assert parse_cache.same_tree(parse_cache.parse_file(source),
                                 parse(XOR, display_name(source)))
    assert not (shared / "parsed").exists()


def test_the_key_covers_the_frontend_and_the_text(cache_dir, monkeypatch):
    first = parse_cache.entry_path(XOR)
    assert parse_cache.entry_path(XOR + "\n") != first
    monkeypatch.setattr(parse_cache, "_fingerprint", "another netdsl")
    assert parse_cache.entry_path(XOR) != first


def test_a_cached_run_does_not_import_lark(tmp_path):
    source = tmp_path / "xor.net"
    source.write_text(XOR)
    program = ("import sys, netdsl\n"
               f"netdsl.load({str(source)!r})\n"
               "print('lark' in sys.modules)\n")
    env = dict(os.environ, NETDSL_CACHE_DIR=str(tmp_path / "cache"))
    runs = [subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                           text=True, cwd=str(tmp_path)) for _ in range(2)]
    assert [run.stdout.strip() for run in runs] == ["True", "False"], runs[-1].stderr


def test_entries_are_json_of_nodes_only(cache_dir, tmp_path):
    source = tmp_path / "xor.net"
    source.write_text(XOR)
    parse_cache.parse_file(source)
    checksum, payload = next(cache_dir.glob("*.json")).read_text().split("\n", 1)
    payload = json.loads(payload)
    assert len(checksum) == 64
    assert payload["format"] == parse_cache.FORMAT and payload["module"]["n"] == "Module"
