"""Built-in data sets (xor, spirals, digits, mnist, sequences, tokens, lookup, chars) and a
reader for MNIST's IDX files.

Every loader returns `dict[str, np.ndarray]` keyed by the input names the examples use:

    xor       x f32[4, 2], y f32[4, 1]
    spirals   x f32[N, 2], y i64[N]             three interleaved spiral arms (CS231n)
    digits    image f32[1797, 1, 8, 8] in [0, 1], label i64[1797]   (needs scikit-learn)
    mnist     image f32[N, 1, 28, 28] in [0, 1], label i64[N]       (from a folder of IDX files)
    sequences x f32[N, T, 1], label i64[N]          is the running sum positive at the end
    tokens    x i64[N, T], label i64[N]             the first token (memory over T steps)
    lookup    x i64[N, T], label i64[N]             does the first token occur again (attention)
    chars     x i64[N, T], y i64[N, T]              windows of a text file, next-char labels
                                                    (runtime/text_data.py)
    ring      x f32[N, 2]                           eight Gaussians on a circle (a GAN's test)
    moons     x f32[N, 2]                           two interleaving half circles (diffusion)
                                                    (both runtime/point_data.py)

The built-in `mnist` looks for its folder in `<base_dir>/mnist`, `<base_dir>/data/mnist`,
`$NETDSL_DATA/mnist` and `~/.cache/netdsl/mnist`; nothing is downloaded.
"""
from __future__ import annotations

import gzip
import inspect
import os
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import Error, did_you_mean
from ..source import Span
from .point_data import moons, ring
from .text_data import chars, check_count

# IDX type codes (third byte of the magic number) and the big-endian dtype each one means.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}

# The two halves of MNIST: (part, image file stem, label file stem).  Kaggle copies spell the
# stems with a dot ("train-images.idx3-ubyte"), so both spellings are accepted.
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def xor() -> dict[str, np.ndarray]:
    """The four XOR examples: `x` f32[4, 2], `y` f32[4, 1]."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    return {"x": x, "y": y}


def spirals(n: int = 300, seed: int = 0, classes: int = 3, noise: float = 0.2) -> dict[str, np.ndarray]:
    """CS231n's spiral data: `n` points in `classes` arms, `x` f32[n, 2], `y` i64[n]."""
    if not isinstance(n, (int, np.integer)) or n < classes:
        raise Error(f"spirals needs n >= {classes} examples, got {n!r}")
    if not isinstance(classes, (int, np.integer)) or classes < 1:
        raise Error(f"spirals needs a positive number of classes, got {classes!r}")
    rng = np.random.default_rng(seed)
    points, labels = [], []
    # array_split spreads a remainder over the first classes, so any n works.
    for label, count in enumerate(np.array_split(np.arange(n), classes)):
        count = len(count)
        radius = np.linspace(0.0, 1.0, count)
        theta = np.linspace(label * 4.0, (label + 1) * 4.0, count) + rng.standard_normal(count) * noise
        points.append(np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1))
        labels.append(np.full(count, label, dtype=np.int64))
    return {"x": np.concatenate(points).astype(np.float32), "y": np.concatenate(labels)}


def digits() -> dict[str, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits: `image` f32[N, 1, 8, 8] in [0, 1], `label` i64[N]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise Error("the 'digits' data set needs scikit-learn",
                    hint="pip install 'netdsl[datasets]'") from None
    bunch = load_digits()
    # Pixel values are 0..16 in this data set, hence the divisor.
    image = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    return {"image": image, "label": np.asarray(bunch.target, dtype=np.int64)}


def read_idx(path: str | Path, span: Span | None = None) -> np.ndarray:
    """Parse one IDX file (optionally gzipped) into an array of its stored dtype (native order)."""
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                raw = _read_idx_stream(handle, path, span)
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise Error(f"IDX file not found: {path}", span) from None
    except (OSError, EOFError, zlib.error) as error:
        raise Error(f"cannot read IDX file {path}: {error}", span,
                    hint="the file may be truncated or not gzip data; download it again") from None
    if len(raw) < 4:
        raise Error(f"{path} is not an IDX file: only {len(raw)} bytes", span)
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise Error(f"{path} is not an IDX file: bad magic number {raw[:4].hex()}", span,
                    hint="IDX files start with two zero bytes, a type code and the rank")
    rank, dtype = raw[3], _IDX_DTYPES[raw[2]]
    header_size = 4 + 4 * rank
    if rank == 0 or len(raw) < header_size:
        raise Error(f"{path} is a corrupt IDX file: its header is truncated or has rank {rank}", span)
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=rank, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_size
    if actual != expected:
        shape = "x".join(str(d) for d in dims)
        problem = "truncated" if actual < expected else "longer than its header says"
        raise Error(f"{path} is {problem}: a {shape} array needs {expected} bytes of data, "
                    f"the file has {actual}", span, hint="download the file again")
    data = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _read_idx_stream(handle, path: Path, span: Span | None) -> bytes:
    """A gzipped IDX file's bytes, decompressing no more than its header says it holds (plus
    one byte, to tell a longer file), so a small file that inflates to terabytes is refused."""
    head = handle.read(4)
    if len(head) < 4 or head[2] not in _IDX_DTYPES:
        return head                      # read_idx reports the bad magic number
    dims_raw = handle.read(4 * head[3])
    if len(dims_raw) < 4 * head[3]:
        return head + dims_raw
    dims = np.frombuffer(dims_raw, dtype=">u4")
    expected = int(np.prod([int(d) for d in dims], dtype=object)) * _IDX_DTYPES[head[2]].itemsize
    from .input_checks import memory_limit
    limit = memory_limit()
    if limit is not None and expected > limit:
        shape = "x".join(str(int(d)) for d in dims)
        raise Error(f"{path}: its header claims a {shape} array of {expected} bytes, more than "
                    f"this machine's memory", span, hint="download the file again")
    return head + dims_raw + handle.read(expected + 1)


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """The IDX file named `stem` in folder (plain, gzipped, or with Kaggle's dotted name)."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def is_mnist_folder(folder: str | Path) -> bool:
    """True when the folder holds at least one image/label pair of MNIST IDX files."""
    folder = Path(folder)
    return any(find_idx_file(folder, images) and find_idx_file(folder, labels)
               for images, labels in _MNIST_FILES.values())


def load_mnist(folder: str | Path, part: str = "train", span: Span | None = None) -> dict[str, np.ndarray]:
    """MNIST from its IDX files: `image` f32[N, 1, 28, 28] in [0, 1], `label` i64[N].

    `part` is "train" (60,000), "test" (t10k, 10,000) or "all" (both, train first).  A folder with
    only the t10k files gives those for "train", so a small copy still trains.
    """
    folder = Path(folder)
    if part not in ("train", "test", "all"):
        raise Error(f"unknown MNIST part '{part}'", span, hint="use 'train', 'test' or 'all'")
    if not folder.is_dir():
        raise Error(f"MNIST folder not found: {folder}", span)
    wanted = ["train", "test"] if part == "all" else [part]
    present = [name for name in _MNIST_FILES
               if find_idx_file(folder, _MNIST_FILES[name][0]) and find_idx_file(folder, _MNIST_FILES[name][1])]
    if part == "train" and "train" not in present and "test" in present:
        wanted = ["test"]
    images, labels = [], []
    for name in wanted:
        image_stem, label_stem = _MNIST_FILES[name]
        image_path, label_path = find_idx_file(folder, image_stem), find_idx_file(folder, label_stem)
        missing = [stem for stem, found in ((image_stem, image_path), (label_stem, label_path)) if not found]
        if missing:
            raise Error(f"MNIST folder {folder} has no {' or '.join(missing)} (or .gz)", span,
                        hint="it needs train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                             "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte")
        image, label = read_idx(image_path, span), read_idx(label_path, span)
        if image.ndim != 3 or label.ndim != 1:
            raise Error(f"{image_path.name} should be a rank-3 image file and {label_path.name} a "
                        f"rank-1 label file; got ranks {image.ndim} and {label.ndim}", span)
        if len(image) != len(label):
            raise Error(f"{image_path.name} has {len(image)} images but {label_path.name} has "
                        f"{len(label)} labels", span)
        images.append(image)
        labels.append(label)
    image = np.concatenate(images)
    # Raw MNIST pixels are bytes; float files are taken as already scaled.
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    return {"image": (image.astype(np.float32) / np.float32(scale))[:, None, :, :],
            "label": np.concatenate(labels).astype(np.int64)}


def mnist(base_dir: str | Path | None = None, part: str = "train") -> dict[str, np.ndarray]:
    """The built-in `mnist`: the first IDX folder found in the usual places (see module doc)."""
    candidates = mnist_search_paths(base_dir)
    for folder in candidates:
        if folder.is_dir() and is_mnist_folder(folder):
            return load_mnist(folder, part)
    searched = ", ".join(str(folder) for folder in candidates)
    raise Error("the 'mnist' data set needs the MNIST IDX files, which were not found",
                hint=f"put train-images-idx3-ubyte(.gz) and friends in one of: {searched}; "
                     "or write data = \"path/to/folder\"")


def mnist_search_paths(base_dir: str | Path | None) -> list[Path]:
    """Where the built-in `mnist` looks for its folder, in order."""
    paths = []
    if base_dir is not None:
        paths += [Path(base_dir) / "mnist", Path(base_dir) / "data" / "mnist"]
    if os.environ.get("NETDSL_DATA"):
        paths.append(Path(os.environ["NETDSL_DATA"]) / "mnist")
    paths.append(Path.home() / ".cache" / "netdsl" / "mnist")
    return paths


def sequences(n: int = 2000, length: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    """A synthetic sequence task: `x` f32[N, T, 1] uniform in [-1, 1]; `label` i64[N] is 1 when
    the running sum ends positive.  A recurrent model must carry the sum through time; an
    order-blind model can still learn it, but only a recurrent one learns it from steps alone."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, length, 1)).astype(np.float32)
    label = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    return {"x": x, "label": label}


def tokens(n: int = 2000, length: int = 12, vocab: int = 10, classes: int = 4,
           seed: int = 0) -> dict[str, np.ndarray]:
    """A synthetic token task that needs memory: `x` i64[N, T] ids in [1, vocab) (0 is left
    for padding); `label` i64[N] is the first token less one, in [0, classes).  Every later
    token is uniform over the whole vocabulary, so counting tokens tells little: a model must
    hold the first token through the eleven that follow."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, length))
    label = rng.integers(0, classes, size=n)
    x[:, 0] = label + 1
    return {"x": x.astype(np.int64), "label": label.astype(np.int64)}


def lookup(n: int = 10000, length: int = 16, vocab: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """A synthetic task that needs content-based attention: `x` i64[N, T] ids in [1, vocab)
    (0 is left for padding); `label` i64[N] is 1 when the first id occurs again among the
    other T - 1, which it does in half the examples, exactly once at a uniform position.

    Every position's id is uniform over the vocabulary in both classes (the first is uniform
    and the others are drawn the same way), so per-position or bag-of-ids features summed over
    T and read by a linear layer score chance: the label depends on comparing the first id with
    every other, which one attention head does."""
    n = check_count("lookup", "n", n, 2)
    length = check_count("lookup", "length", length, 3, 100_000)
    vocab = check_count("lookup", "vocab", vocab, 3, 1_000_000)
    if n * length > 2 ** 28:
        raise Error(f"lookup: n * length = {n * length} ids is more than 2**28")
    rng = np.random.default_rng(check_count("lookup", "seed", seed, 0, 2 ** 63 - 1))
    query = rng.integers(1, vocab, size=n)
    # The others are drawn without the query: q - 1 plus 1..vocab-2, cyclically over [1, vocab),
    # is uniform over the other ids.
    others = (query[:, None] - 1 + rng.integers(1, vocab - 1, size=(n, length - 1))) \
        % (vocab - 1) + 1
    label = rng.integers(0, 2, size=n)
    where = rng.integers(0, length - 1, size=n)
    hit = np.flatnonzero(label)
    others[hit, where[hit]] = query[hit]
    x = np.concatenate([query[:, None], others], axis=1)
    return {"x": x.astype(np.int64), "label": label.astype(np.int64)}


BUILTIN_DATASETS: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    "xor": xor,
    "sequences": sequences,
    "tokens": tokens,
    "lookup": lookup,
    "chars": chars,
    "ring": ring,
    "moons": moons,
    "spirals": spirals,
    "digits": digits,
    "mnist": mnist,
}


def load_builtin(name: str, span: Span | None = None, base_dir: str | Path | None = None,
                 options: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Load a built-in data set by name; `options` are its keyword arguments (e.g. spirals n)."""
    loader = BUILTIN_DATASETS.get(name)
    if loader is None:
        known = ", ".join(sorted(BUILTIN_DATASETS))
        suggestion = did_you_mean(name, BUILTIN_DATASETS)
        hint = f"{suggestion} " if suggestion else ""
        raise Error(f"unknown data set '{name}'", span,
                    hint=f"{hint}built-in data sets: {known}; or give a path to .npz, .npy, .csv or a folder")
    options = dict(options or {})
    accepted = [p for p in inspect.signature(loader).parameters if p != "base_dir"]
    for key in options:
        if key not in accepted:
            suggestion = did_you_mean(key, accepted)
            listed = ", ".join(accepted) if accepted else "none"
            raise Error(f"data set '{name}' has no option '{key}'", span,
                        hint=(suggestion + " " if suggestion else "") + f"options: {listed}")
    if "base_dir" in inspect.signature(loader).parameters:
        options["base_dir"] = base_dir      # mnist and chars resolve paths against the .net file
    try:
        return loader(**options)
    except Error as error:
        # Loaders do not know the .net position; attach it so the CLI can quote the line.
        if span is not None and all(d.span is None for d in error.diagnostics):
            for diagnostic in error.diagnostics:
                diagnostic.span = span
            raise Error(error.diagnostics) from None
        raise
