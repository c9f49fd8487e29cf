"""The built-in `chars` data set: a UTF-8 text file cut into windows for a character-level
language model.

    data       = chars(path="data/tiny_shakespeare.txt", length=64, stride=32, part="train")
    validation = chars(path="data/tiny_shakespeare.txt", length=64, part="validation")

gives `x` i64[N, length], the ids of `length` characters, and `y` i64[N, length], the id of the
character after each (x shifted by one).  Windows start every `stride` characters (default
`length`: no overlap).  `part` is "all", "train" (the first 1 - `holdout` of the text) or
"validation" (the rest), so the two never share a character of text to predict.

The vocabulary is derived deterministically from the whole file, never from one part: the
file's distinct characters sorted by code point, id i for `vocabulary(text)[i]`
(`char_vocabulary(path)` reads it back for sampling; nothing is saved beside the weights).
A model's Embedding and output sizes must be at least the vocabulary's size; a larger id is
refused by the id and label range checks before the first step.

The file is untrusted input: it must be a regular file of at most 64 MiB of UTF-8 text (an error
gives the line and column of the first byte that is not), long enough for one window, and the
windows must fit in memory; every option is checked, each problem an Error at the data key.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from ..errors import Error

# A text file bigger than this is refused before it is read (a character model here is small).
MAX_TEXT_BYTES = 64 * 1024 * 1024
# Windows x and y hold 16 bytes per position; refuse more than this many positions in all.
MAX_POSITIONS = 2 ** 28
PARTS = ("all", "train", "validation")


def check_count(dataset: str, name: str, value, low: int, high: int = 2 ** 31 - 1) -> int:
    """An integer option of a built-in data set, in [low, high], or an Error naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise Error(f"{dataset}: option {name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise Error(f"{dataset}: option {name} must be in [{low}, {high}], got {value}")
    return int(value)


def read_text(path: Path) -> str:
    """The UTF-8 text of a regular file of at most MAX_TEXT_BYTES (an Error otherwise)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise Error(f"text file not found: {path}",
                    hint="a relative path is resolved against the .net file's folder") from None
    except OSError as error:
        raise Error(f"cannot read {path}: {error.strerror or error}") from None
    if not stat.S_ISREG(info.st_mode):
        raise Error(f"{path} is not a regular file", hint="give the path of a UTF-8 text file")
    if info.st_size > MAX_TEXT_BYTES:
        raise Error(f"{path} has {info.st_size} bytes, more than the {MAX_TEXT_BYTES} a text "
                    f"data set may have", hint="cut the text to a smaller file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_TEXT_BYTES + 1)
    except OSError as error:
        raise Error(f"cannot read {path}: {error.strerror or error}") from None
    if len(raw) > MAX_TEXT_BYTES:             # it grew after the stat
        raise Error(f"{path} has more than the {MAX_TEXT_BYTES} bytes a text data set may have")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        before = raw[:error.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise Error(f"{path}:{line}:{column}: byte 0x{raw[error.start]:02x} is not UTF-8 text",
                    hint="save the file as UTF-8") from None


def vocabulary(text: str) -> list[str]:
    """The distinct characters of a text sorted by code point; id i is the i-th."""
    return sorted(set(text))


def char_vocabulary(path: str | Path) -> list[str]:
    """The vocabulary `chars` uses for this file (for decoding a model's samples)."""
    return vocabulary(read_text(Path(path)))


def encode(text: str, vocab: list[str]) -> np.ndarray:
    """The ids of a text's characters under `vocab` (every character must be in it)."""
    lookup = {char: index for index, char in enumerate(vocab)}
    missing = next((char for char in text if char not in lookup), None)
    if missing is not None:
        raise Error(f"character {missing!r} is not in the vocabulary")
    return np.fromiter((lookup[char] for char in text), dtype=np.int64, count=len(text))


def decode(ids, vocab: list[str]) -> str:
    """The text of a sequence of ids under `vocab`."""
    return "".join(vocab[int(i)] for i in np.asarray(ids).reshape(-1))


def chars(path=None, length: int = 64, stride: int | None = None, part: str = "all",
          holdout: float = 0.1, base_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """Windows of a text file: `x` i64[N, length] character ids, `y` the next ids (module doc)."""
    if not isinstance(path, str) or not path:
        raise Error("chars needs the text file: chars(path=\"file.txt\", length=64)")
    length = check_count("chars", "length", length, 1, 1_000_000)
    stride = length if stride is None else check_count("chars", "stride", stride, 1, 1_000_000)
    if part not in PARTS:
        raise Error(f"chars: option part must be one of {', '.join(PARTS)}, got {part!r}")
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) \
            or not 0.0 < holdout < 1.0:
        raise Error(f"chars: option holdout must be a number in (0, 1), got {holdout!r}")
    file = Path(path) if Path(path).is_absolute() or base_dir is None else Path(base_dir) / path
    text = read_text(file)
    vocab = vocabulary(text)
    ids = encode(text, vocab)
    cut = int(round(len(ids) * (1.0 - holdout)))
    if part == "train":
        ids = ids[:cut]
    elif part == "validation":
        ids = ids[cut:]
    # A window needs length + 1 characters: its inputs and the one after the last.
    if len(ids) < length + 1:
        which = "the file" if part == "all" else f"the {part} part ({len(ids)} characters)"
        raise Error(f"{file}: {which} is too short for one window of {length} characters "
                    f"and the one after it", hint="use a longer text or a smaller length")
    starts = np.arange(0, len(ids) - length, stride)
    if len(starts) * length > MAX_POSITIONS:
        raise Error(f"chars: {len(starts)} windows of {length} characters are more than "
                    f"{MAX_POSITIONS} positions", hint="use a larger stride or a smaller length")
    index = starts[:, None] + np.arange(length)[None, :]
    return {"x": ids[index], "y": ids[index + 1]}
