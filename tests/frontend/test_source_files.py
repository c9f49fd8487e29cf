"""Reading source files and imports: only regular UTF-8 .net files within the size limit are
read, and an import that names anything else is an error at the import that quotes nothing
of what it names (netdsl/source.py, netdsl/frontend/loader.py)."""
from __future__ import annotations

import os
import time

import pytest

import netdsl
from netdsl.errors import Error
from netdsl.source import (MAX_SOURCE_BYTES, SourceError, decode_source, read_source_bytes,
                           register_source, source_line)

PLAIN = "model M {\n    in x: f32[B, 4]\n    out y = x |> relu\n}\n"


def check(tmp_path, text: str) -> str:
    """The error of loading model.net (whose text is `text`) from tmp_path."""
    path = tmp_path / "model.net"
    path.write_text(text)
    with pytest.raises(Error) as caught:
        netdsl.load(path)
    return str(caught.value)


def importing(tmp_path, target: str) -> str:
    return check(tmp_path, f'import "{target}"\n' + PLAIN)


@pytest.mark.parametrize("target", ["/etc/passwd", "/proc/self/environ", "/dev/zero",
                                    "/dev/null", "/proc/self/status", "model.txt"])
def test_only_net_files_are_imported(tmp_path, target, monkeypatch):
    monkeypatch.setenv("NETDSL_TEST_SECRET", "secret-value-2718")
    (tmp_path / "model.txt").write_text("root:x:0:0:secret-value-2718\n")
    started = time.perf_counter()
    text = importing(tmp_path, target)
    assert time.perf_counter() - started < 5
    assert f"1:1: error: cannot import '{target}': only .net files can be imported" in text
    assert "secret-value-2718" not in text and "root:" not in text
    assert text.count("error:") == 1


def test_a_net_symlink_to_another_file_is_refused(tmp_path):
    os.symlink("/etc/passwd", tmp_path / "lib.net")
    text = importing(tmp_path, "lib.net")
    assert "only .net files can be imported ('lib.net' resolves to /etc/passwd)" in text
    assert "root:" not in text


def test_fifos_devices_and_directories_are_refused_without_opening_them(tmp_path):
    os.mkfifo(tmp_path / "pipe.net")
    (tmp_path / "folder.net").mkdir()
    os.symlink("/dev/zero", tmp_path / "zero.net")
    assert "cannot import 'pipe.net': it is not a regular file" in importing(tmp_path, "pipe.net")
    assert "cannot import 'folder.net': it is a directory" in importing(tmp_path, "folder.net")
    assert "cannot import '.': it is a directory" in importing(tmp_path, ".")
    assert "only .net files" in importing(tmp_path, "zero.net")
    for name in ("pipe.net", "folder.net"):
        with pytest.raises(Error, match=f"error: cannot open '.*{name}'"):
            netdsl.load(tmp_path / name)


def test_empty_nul_and_looping_paths(tmp_path):
    assert "1:1: error: an import needs a path" in importing(tmp_path, "")
    assert "an import needs a path" in importing(tmp_path, "   ")
    assert "cannot contain a NUL character" in importing(tmp_path, "a\\x00b.net")
    os.symlink("b.net", tmp_path / "a.net")
    os.symlink("a.net", tmp_path / "b.net")
    assert "cannot import 'a.net'" in importing(tmp_path, "a.net")
    with pytest.raises(Error, match="cannot open .*symbolic links"):
        netdsl.load(tmp_path / "a.net")


def test_encoding_errors_name_the_byte(tmp_path):
    (tmp_path / "lib.net").write_bytes(b"const A = 1\nconst B = \xff\n")
    assert "cannot import 'lib.net': it is not UTF-8 text (byte 0xff at line 2, column 11)" in \
        importing(tmp_path, "lib.net")
    path = tmp_path / "main.net"
    path.write_bytes(b"model M {\n    in x: f32[B, 4] # \xc3\n}\n")
    with pytest.raises(Error) as caught:
        netdsl.load(path)
    assert "main.net:2:23: error: cannot open" in str(caught.value)
    assert "byte 0xc3 at line 2, column 23" in str(caught.value)
    # A byte-order mark is not an error.
    path.write_bytes(b"\xef\xbb\xbf" + PLAIN.encode())
    netdsl.load(path)


def test_size_limit(tmp_path):
    big = tmp_path / "big.net"
    big.write_text(PLAIN + "#" * MAX_SOURCE_BYTES)
    with pytest.raises(SourceError, match="larger than 256 KiB"):
        read_source_bytes(big)
    assert "cannot import 'big.net': it is larger than 256 KiB" in importing(tmp_path, "big.net")
    assert read_source_bytes(tmp_path / "model.net").startswith(b"import")


def test_decode_and_source_lines():
    assert decode_source(b"a\nb") == "a\nb"
    with pytest.raises(SourceError) as caught:
        decode_source(b"ab\ncd\x80")
    assert (caught.value.line, caught.value.column) == (2, 3)
    # Lines as the lexer counts them: a form feed or U+2028 does not end a line.
    register_source("lines.net", "one\x0cstill one\u2028still\r\ntwo\nthree")
    assert source_line("lines.net", 1) == "one\x0cstill one\u2028still"
    assert source_line("lines.net", 2) == "two"
    assert source_line("lines.net", 3) == "three"
    assert source_line("lines.net", 4) is None


def test_import_chains_are_bounded(tmp_path):
    for index in range(70):
        (tmp_path / f"f{index}.net").write_text(f'import "f{index + 1}.net"\nconst C{index} = 1\n')
    (tmp_path / "f70.net").write_text("const C70 = 1\n")
    text = importing(tmp_path, "f0.net")
    assert "imports nest more than 64 files deep" in text
    assert "Recursion" not in text


def test_a_good_import_still_works(tmp_path):
    (tmp_path / "lib.net").write_text("block Unit {\n    in x: f32[B, D]\n    out x |> relu\n}\n")
    path = tmp_path / "model.net"
    path.write_text('import "lib.net"\nmodel M {\n    in x: f32[B, 4]\n    out y = x |> Unit\n}\n')
    assert netdsl.load(path).graph.outputs["y"].type.shape[1] == 4


def test_a_failed_read_forgets_the_old_text(tmp_path):
    """Found by the front-end fuzzer: loading a file again after it became unreadable quoted
    the previous version's line under the new error (and a caret 150,000 columns out)."""
    path = tmp_path / "model.net"
    path.write_text("model M {\n    in x: f32[B, 4]\n    out y = nope\n}\n")
    with pytest.raises(Error, match="unknown name 'nope'"):
        netdsl.load(path)
    path.write_bytes(b"model M {\n    in x: f32[B, 4] # " + b"a" * 150_000 + b"\xff\n}\n")
    with pytest.raises(Error) as caught:
        netdsl.load(path)
    text = str(caught.value)
    assert ":2:150023: error: cannot open" in text
    assert "in x" not in text and len(text) < 400


def test_a_caret_past_the_end_of_its_line_stays_on_it():
    from netdsl.errors import Diagnostic
    from netdsl.source import Span
    register_source("short.net", "ab\n")
    text = Diagnostic("far", Span("short.net", 1, 90_000, 1, 90_001)).format()
    assert text.split("\n")[2] == "      ^"
