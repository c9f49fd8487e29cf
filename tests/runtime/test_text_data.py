"""The built-in `chars` (text windows for a character model) and `lookup` (a task for attention)
data sets, and data sets called with options from a train section."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from netdsl import cli
from netdsl.errors import Error
from netdsl.runtime.data import load_data
from netdsl.runtime.datasets import load_builtin, lookup
from netdsl.runtime.text_data import char_vocabulary, chars, decode
from netdsl.runtime.train_config import CallValue
from netdsl.source import Span

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_chars_windows_are_the_text_and_the_next_character(text_file):
    data = chars(path=str(text_file), length=8, stride=3)
    vocab = char_vocabulary(text_file)
    assert vocab == sorted(set(TEXT))
    x, y = data["x"], data["y"]
    assert x.dtype == y.dtype == np.int64 and x.shape == y.shape
    assert x.shape == (len(range(0, len(TEXT) - 8, 3)), 8)
    for row, start in enumerate(range(0, len(TEXT) - 8, 3)):
        assert decode(x[row], vocab) == TEXT[start:start + 8]
        assert decode(y[row], vocab) == TEXT[start + 1:start + 9]


def test_chars_stride_defaults_to_the_length(text_file):
    x = chars(path=str(text_file), length=10)["x"]
    vocab = char_vocabulary(text_file)
    assert "".join(decode(row, vocab) for row in x) == TEXT[:10 * len(x)]
    assert 10 * len(x) + 1 <= len(TEXT) < 10 * (len(x) + 1) + 1


def test_chars_parts_split_the_text_and_share_the_vocabulary(text_file):
    vocab = char_vocabulary(text_file)
    train = chars(path=str(text_file), length=4, stride=1, part="train", holdout=0.25)
    held = chars(path=str(text_file), length=4, stride=1, part="validation", holdout=0.25)
    cut = round(len(TEXT) * 0.75)
    # Every target of the training part lies before the cut, every validation one after it.
    assert decode(train["y"][-1], vocab) == TEXT[cut - 4:cut]
    assert decode(held["x"][0], vocab) == TEXT[cut:cut + 4]
    # Ids index the whole file's vocabulary, even though this part lacks most characters.
    assert len(set(TEXT[cut:])) < len(vocab)
    assert decode(held["y"][-1], vocab) == TEXT[-4:]


def test_a_train_section_call_reads_the_text_relative_to_the_net_file(text_file):
    spec = CallValue("chars", (), {"path": text_file.name, "length": 5})
    data = load_data(spec, text_file.parent)
    np.testing.assert_array_equal(data["x"], chars(path=str(text_file), length=5)["x"])
    assert load_data(CallValue("lookup", (), {"n": 10}), ".")["x"].shape == (10, 16)


SPAN = Span("g.net", 3, 18, 3, 40)


@pytest.mark.parametrize("options, message", [
    ({"length": 4}, "chars needs the text file: chars(path=\"file.txt\", length=64)"),
    ({"path": "TEXT", "length": "4"}, "chars: option length must be a whole number, got '4'"),
    ({"path": "TEXT", "length": 0}, "chars: option length must be in [1, 1000000], got 0"),
    ({"path": "TEXT", "stride": 2.5}, "chars: option stride must be a whole number, got 2.5"),
    ({"path": "TEXT", "part": "test"},
     "chars: option part must be one of all, train, validation, got 'test'"),
    ({"path": "TEXT", "holdout": 1.0}, "chars: option holdout must be a number in (0, 1), got 1.0"),
    ({"path": "TEXT", "length": 200}, "TEXT: the file is too short for one window of 200 "
                                      "characters and the one after it"),
    ({"path": "TEXT", "length": 60, "part": "validation"},
     "TEXT: the validation part (8 characters) is too short for one window of 60 characters "
     "and the one after it"),
    ({"path": "missing.txt"}, "text file not found: DIR/missing.txt"),
    ({"path": "."}, "DIR is not a regular file"),
])
def test_chars_option_and_file_errors_name_the_data_key(text_file, options, message):
    folder = str(text_file.parent)
    options = {key: value.replace("TEXT", text_file.name) if isinstance(value, str) else value
               for key, value in options.items()}
    with pytest.raises(Error) as caught:
        load_builtin("chars", SPAN, base_dir=folder, options=options)
    expected = message.replace("TEXT", str(text_file)).replace("DIR", folder)
    assert caught.value.message == expected
    assert caught.value.diagnostics[0].span == SPAN


def test_unknown_options_and_positional_arguments_are_errors(text_file):
    with pytest.raises(Error) as caught:
        load_data(CallValue("chars", (), {"path": "t.txt", "lenght": 4}), ".", SPAN)
    assert caught.value.message == "data set 'chars' has no option 'lenght'"
    assert "did you mean 'length'?" in caught.value.diagnostics[0].hint
    with pytest.raises(Error) as caught:
        load_data(CallValue("chars", ("t.txt",), {}), ".", SPAN)
    assert caught.value.message == ("write the options of data set 'chars' by name: "
                                    "chars(option=value, ...)")


def test_bytes_that_are_not_utf8_are_located(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("line one\nab\u00e9c".encode("utf-8") + b"\xff rest\n")
    with pytest.raises(Error) as caught:
        chars(path=str(path), length=2)
    assert caught.value.message == f"{path}:2:5: byte 0xff is not UTF-8 text"


def test_the_cli_reports_a_bad_text_file_at_the_data_key(tmp_path, capsys):
    (tmp_path / "bad.txt").write_bytes(b"abc\n\xfe\n")
    net = tmp_path / "lm.net"
    net.write_text(textwrap.dedent("""\
        model LM {
            in  x: i64[B, T]
            in  y: i64[B, T]
            logits = x |> Embedding(8, 4) |> Dense(8)
            loss cross_entropy(logits, y)
        }
        train LM {
            data = chars(path="bad.txt", length=2)
        }
    """))
    assert cli.main(["train", str(net)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{net}:8:12: error: {tmp_path / 'bad.txt'}:2:1: byte 0xfe is not "
                          f"UTF-8 text\n"), err
    assert "Traceback" not in err


def test_lookup_labels_say_whether_the_first_id_occurs_again():
    data = lookup(n=2000, length=12, vocab=9, seed=3)
    x, label = data["x"], data["label"]
    assert x.shape == (2000, 12) and x.dtype == label.dtype == np.int64
    assert x.min() >= 1 and x.max() <= 8
    repeats = (x[:, 1:] == x[:, :1]).sum(axis=1)
    np.testing.assert_array_equal(repeats, label)            # once in positives, never else
    assert 0.45 < label.mean() < 0.55
    np.testing.assert_array_equal(lookup(n=50, seed=3)["x"], lookup(n=50, seed=3)["x"])
    assert not np.array_equal(lookup(n=50, seed=3)["x"], lookup(n=50, seed=4)["x"])


def test_lookup_has_no_per_position_clue():
    # Every position's id has the same distribution in both classes (within sampling noise),
    # so a sum of per-(position, id) features cannot tell the classes apart.
    data = lookup(n=40000, length=8, vocab=5, seed=0)
    for position in range(8):
        for cls in (0, 1):
            ids = data["x"][data["label"] == cls, position]
            freq = np.bincount(ids, minlength=5)[1:] / len(ids)
            assert np.abs(freq - 0.25).max() < 0.02, (position, cls, freq)


@pytest.mark.parametrize("options, message", [
    ({"n": 0}, "lookup: option n must be in [2, 2147483647], got 0"),
    ({"vocab": 2}, "lookup: option vocab must be in [3, 1000000], got 2"),
    ({"length": True}, "lookup: option length must be a whole number, got True"),
    ({"seed": -1}, "lookup: option seed must be in [0, 9223372036854775807], got -1"),
])
def test_lookup_option_errors(options, message):
    with pytest.raises(Error) as caught:
        load_builtin("lookup", SPAN, options=options)
    assert caught.value.message == message
