"""The parser's table cache: JSON in the user's own cache directory, never a pickle from the
shared temporary directory; damaged or unusable caches only cost a rebuild."""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import lark
import pytest

from netdsl import userdirs
from netdsl.frontend import lark_tables
from netdsl.frontend.parser import NewlineFilter, build_parser, find_grammar

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.net"))


class _Planted:
    """Unpickling this creates `marker` (and nothing else)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _old_lark_cache_name(strict: bool) -> str:
    """The file lark's cache=True read for the options netdsl used to give it."""
    options = "".join(k + str(v) for k, v in dict(
        parser="lalr", lexer="basic", strict=strict, propagate_positions=True,
        maybe_placeholders=True, cache=True).items())
    text = find_grammar().read_text(encoding="utf-8") + options + lark.__version__ + \
        str(sys.version_info[:2])
    digest = hashlib.sha256(text.encode("utf8")).hexdigest()
    return ".lark_cache_%s_%s_%s_%s.tmp" % (getpass.getuser(), digest, *sys.version_info[:2])


@pytest.fixture
def user_cache(tmp_path, monkeypatch) -> Path:
    """A fresh user cache directory for the parser tables."""
    directory = tmp_path / "user-cache" / "netdsl"
    monkeypatch.setattr(userdirs, "user_cache_location", lambda: directory)
    return directory


def test_a_pickle_planted_in_the_shared_temp_directory_is_never_loaded(tmp_path):
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    marker = tmp_path / "PLANTED"
    for strict in (True, False):
        payload = pickle.dumps(_Planted(marker))
        (shared / _old_lark_cache_name(strict)).write_bytes(b"x\n" + payload + payload)
    env = {**os.environ, "TMPDIR": str(shared), "XDG_CACHE_HOME": str(tmp_path / "xdg"),
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "netdsl", "check", "examples/xor.net"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert sorted(p.name for p in shared.iterdir()) == sorted(
        _old_lark_cache_name(s) for s in (True, False))          # nothing written there either


def test_tables_are_json_in_a_private_directory_and_parse_like_the_grammar(user_cache):
    cached = build_parser()                   # builds from the grammar and saves the tables
    files = list(user_cache.glob("lark_*.json"))
    assert len(files) == 1
    assert json.loads(files[0].read_text())["format"] == lark_tables.FORMAT
    if hasattr(os, "geteuid"):
        assert stat.S_IMODE(os.stat(user_cache).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(files[0]).st_mode) & 0o077 == 0
    loaded = build_parser()                   # loads them
    fresh = build_parser(cache=False)
    assert loaded.options.strict == fresh.options.strict
    for path in EXAMPLES:
        text = path.read_text()
        assert loaded.parse(text) == fresh.parse(text) == cached.parse(text), path.name


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "other format",
                                    "not json tables", "directory"])
def test_damaged_tables_are_rebuilt(user_cache, damage):
    build_parser()
    (path,) = user_cache.glob("lark_*.json")
    good = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "other format":
        path.write_text(json.dumps({"format": "something else", "data": {}, "memo": {}}))
    elif damage == "not json tables":
        path.write_text(json.dumps({"format": lark_tables.FORMAT, "data": {"x": 1},
                                    "memo": [1, 2]}))
    else:
        path.unlink()
        path.mkdir()
    parser = build_parser()
    text = EXAMPLES[0].read_text()
    assert parser.parse(text) == build_parser(cache=False).parse(text)
    if damage != "directory":                 # replaced by good tables (a directory stays)
        again = lark_tables._load(path, dict(propagate_positions=True,
                                             postlex=NewlineFilter()))
        assert again is not None and again.parse(text) == parser.parse(text)


def test_an_unsafe_cache_directory_is_not_used(user_cache):
    if not hasattr(os, "geteuid"):
        pytest.skip("POSIX permissions")
    user_cache.mkdir(parents=True)
    os.chmod(user_cache, 0o777)
    parser = build_parser()
    assert list(user_cache.iterdir()) == []   # nothing written into a world-writable directory
    text = EXAMPLES[0].read_text()
    assert parser.parse(text) == build_parser(cache=False).parse(text)


def test_tables_planted_with_a_pickle_are_not_unpickled(user_cache, tmp_path):
    """Even the private directory's table file is read as JSON only: a pickle there is damage."""
    build_parser()
    (path,) = user_cache.glob("lark_*.json")
    marker = tmp_path / "PLANTED"
    path.write_bytes(pickle.dumps(_Planted(marker)))
    build_parser()
    assert not marker.exists()


def test_json_encoding_keeps_tuples_and_keys():
    value = {"a": (1, [2, (3,)]), 4: {"(": 5}, (6, 7): None, "{": {"x": ()}}
    text = json.dumps(lark_tables._encode(value))
    assert json.loads(text, object_hook=lark_tables._decode) == value
