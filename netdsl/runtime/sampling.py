"""Sampling from a generative model: drawing its latents, and writing what it produced.

`draw_latents` gives the inputs a sampling model (a VAE's decoder, a GAN's generator) was not
given: each float input from N(0, 1), its first (batch) dim = n, seeded per input name, so the
same seed gives the same latents whatever the other inputs are.

`save_samples` writes the model's outputs, and the latents that made them, to an .npz, then a
picture chosen by the first output's shape (`choose_picture`):

* [N, C, H, W] with C = 1 or 3, or [N, H, W] (floats): a grid of images, values clipped to
  [0, 1], about sqrt(N) columns;
* [N, 2] (floats): a scatter plot;
* [N, T] integers: token ids, decoded to one line of text per sample when a vocabulary is given;
* anything else: only the .npz, and a line saying why there is no picture.

Pictures need matplotlib (the `plot` extra); without it the .npz is still written.  Every file
goes through `files.write_atomically`, so a failure leaves no half-written file.
"""
from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from ..errors import Error
from ..ir.graph import Graph
from ..ir.types import Sym, evaluate_dim
from .checkpoint import write_npz
from .files import check_output, write_atomically

MAX_SAMPLES = 100_000               # n: more is a mistake (or a memory error), not a sample
MAX_LATENT_ELEMENTS = 2 ** 28       # all drawn latents together: 1 GiB of f32
MAX_GRID_IMAGES = 1024              # a grid shows at most this many; the .npz holds them all
MAX_GRID_PIXELS = 2 ** 26
TEXT_LINES_SHOWN = 10               # token samples printed; the .txt holds them all
PICTURE_SUFFIXES = (".png", ".svg", ".pdf")
OUTPUT_SUFFIXES = PICTURE_SUFFIXES + (".npz", ".txt")
PLOT_HINT = "pip install 'netdsl[plot]'"


def check_count(n: object, name: str = "n") -> int:
    """n as an int in [1, MAX_SAMPLES], or an Error."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise Error(f"the number of samples must be a whole number, got {n!r}")
    if not 1 <= n <= MAX_SAMPLES:
        raise Error(f"the number of samples must be in [1, {MAX_SAMPLES:,}], got {n}",
                    hint=f"pass {name} between 1 and {MAX_SAMPLES:,}")
    return int(n)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise Error(f"the seed must be a whole number >= 0, got {seed!r}")
    return int(seed)


def draw_latents(graph: Graph, n: int, seed: int,
                 given: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """N(0, 1) arrays for the float inputs of `graph` not in `given` (module doc).

    The first dim of each is the batch: n, or an Error when the given inputs bind it to
    another size.  Another symbolic dim must be bound by a given input.  An integer or bool
    input without data is an Error naming every such input.
    """
    from ..backends.reference import bind_dims
    n, seed = check_count(n), _check_seed(seed)
    wanted = [value for value in graph.inputs
              if not value.name.startswith("__") and value.name not in given]
    not_drawn = [value for value in wanted if not value.dtype.is_float]
    if not_drawn:
        names = ", ".join(f"'{value.name}' ({value.type})" for value in not_drawn)
        raise Error(f"no data for input{'s' if len(not_drawn) > 1 else ''} {names}: sampling "
                    f"draws only float inputs", graph.input_spans.get(not_drawn[0].name),
                    hint="give the integer inputs (netdsl sample --input x.npz, or "
                         "Model.sample(..., inputs={...}))")
    bindings = bind_dims(graph, {name: np.asarray(array) for name, array in given.items()})
    for value in wanted:        # the batch dims first: a later axis may use the same symbol
        first = value.shape[0] if value.shape else None
        if isinstance(first, Sym) and first.is_single_symbol:
            symbol = first.terms[0][0][0]       # as bind_dims names it
            batch = bindings.setdefault(symbol, n)
            if batch != n:
                raise Error(f"{n} samples asked for, but the given inputs make the batch dim "
                            f"{symbol} of '{value.name}' {batch}",
                            graph.input_spans.get(value.name),
                            hint=f"give inputs with {n} rows, or ask for {batch} samples")
    latents, total = {}, 0
    for value in wanted:
        try:
            shape = tuple(evaluate_dim(dim, bindings) for dim in value.shape)
        except KeyError as unbound:
            raise Error(f"cannot draw latent '{value.name}' ({value.type}): its dim "
                        f"{unbound.args[0]} is not the batch dim and no given input sets it",
                        graph.input_spans.get(value.name),
                        hint="give an input that has that dim, or declare the latent with "
                             "a fixed size") from None
        total += math.prod(shape)
        if total > MAX_LATENT_ELEMENTS:
            raise Error(f"the latents of {n} samples would have {total:,} elements, more than "
                        f"{MAX_LATENT_ELEMENTS:,}", graph.input_spans.get(value.name),
                        hint="ask for fewer samples")
        # One generator per input name: adding an input does not change the others' draws.
        rng = np.random.default_rng(np.random.SeedSequence(
            [seed, zlib.crc32(value.name.encode("utf-8"))]))
        width = np.float64 if value.dtype.numpy == np.float64 else np.float32
        latents[value.name] = rng.standard_normal(shape, dtype=width).astype(value.dtype.numpy)
    return latents


# -- what to draw ------------------------------------------------------------------------------
class Picture(NamedTuple):
    """How the samples are shown: kind "grid", "scatter", "text" or None, of which output, and
    (for None) why there is no picture."""

    kind: str | None
    output: str
    reason: str = ""


def choose_picture(outputs: Mapping[str, np.ndarray], vocab_known: bool = False) -> Picture:
    """The picture for the first output's shape and type (module doc)."""
    if not outputs:
        return Picture(None, "", "the model has no outputs")
    name, array = next(iter(outputs.items()))
    array = np.asarray(array)
    shape, kind = list(array.shape), array.dtype.kind
    if kind == "f" and (array.ndim == 3 or (array.ndim == 4 and array.shape[1] in (1, 3))):
        return Picture("grid", name)
    if kind == "f" and array.ndim == 2 and array.shape[1] == 2:
        return Picture("scatter", name)
    if kind in "iu" and array.ndim == 2:
        if vocab_known:
            return Picture("text", name)
        return Picture(None, name, f"'{name}' holds token ids {shape} but no vocabulary was "
                                   f"given to decode them (--vocab)")
    return Picture(None, name, f"'{name}' is {array.dtype}{shape}: a picture is drawn for "
                               f"[N, C, H, W] (C = 1 or 3) or [N, H, W] images, [N, 2] points, "
                               f"or [N, T] token ids")


class SamplePaths(NamedTuple):
    """The files `-o` names: the .npz always, the picture and text only when -o is not .npz."""

    npz: Path
    picture: Path | None
    text: Path | None


def sample_paths(out: str | Path) -> SamplePaths:
    """`samples.png` -> samples.npz, samples.png, samples.txt; `x.npz` -> only x.npz."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise Error(f"cannot write samples to {out}: unsupported extension '{out.suffix}'",
                    hint=f"use one of: {', '.join(OUTPUT_SUFFIXES)}")
    if suffix == ".npz":
        return SamplePaths(out, None, None)
    picture = out if suffix in PICTURE_SUFFIXES else out.with_suffix(".png")
    return SamplePaths(out.with_suffix(".npz"), picture, out.with_suffix(".txt"))


def check_sample_paths(paths: SamplePaths) -> None:
    """Fail before any work when a file of `paths` could not be written."""
    check_output(paths.npz, "samples", (".npz",))
    for path in (paths.picture, paths.text):
        if path is not None:
            check_output(path, "samples")


def save_samples(paths: SamplePaths, outputs: Mapping[str, np.ndarray],
                 latents: Mapping[str, np.ndarray] | None = None,
                 vocab: Sequence[str] | None = None, title: str = "") -> list[str]:
    """Write the .npz (the latents and every output by name), then the picture; return the
    lines to print (what was written, or why there is no picture)."""
    arrays = {**(latents or {}), **outputs}     # an output's name wins over an input's
    write_atomically(paths.npz, lambda handle: write_npz(handle, arrays), "samples", (".npz",))
    lines = [f"wrote {', '.join(arrays)} to {paths.npz}"]
    picture = choose_picture(outputs, vocab is not None)
    if paths.picture is None:                   # -o x.npz: the arrays only
        return lines
    array = np.asarray(outputs[picture.output]) if picture.kind else None
    if picture.kind == "text":
        text = token_text(array, vocab)
        write_atomically(paths.text, text, "samples")
        shown = text.splitlines()[:TEXT_LINES_SHOWN]
        more = len(array) - len(shown)
        return lines + shown + ([f"... and {more} more"] if more > 0 else []) + \
            [f"wrote {len(array)} decoded samples of '{picture.output}' to {paths.text}"]
    if picture.kind is None:
        return lines + [f"no picture: {picture.reason}"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return lines + [f"no picture: drawing samples needs matplotlib ({PLOT_HINT})"]
    if picture.kind == "grid":
        shown = draw_grid(paths.picture, array)
        what = f"a grid of {shown} images" + (f" (the first of {len(array)})"
                                              if shown < len(array) else "")
    else:
        draw_scatter(paths.picture, array, title or f"{len(array)} samples of "
                                                   f"'{picture.output}'")
        what = f"a scatter plot of {len(array)} points"
    return lines + [f"wrote {what} of '{picture.output}' to {paths.picture}"]


# -- pictures ----------------------------------------------------------------------------------
def image_grid(images: np.ndarray) -> np.ndarray:
    """[N, C, H, W] (C = 1 or 3) or [N, H, W] -> one [rows*H', cols*W'(, 3)] image in [0, 1]:
    about sqrt(N) columns, a 1-pixel gray border; NaN is 0, +inf 1, -inf 0."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 3:
        images = images[:, None]
    images = np.clip(np.nan_to_num(images, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    count, channels, height, width = images.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    canvas = np.full((rows * (height + 1) + 1, columns * (width + 1) + 1, channels), 0.5)
    for index in range(count):
        top, left = 1 + (index // columns) * (height + 1), 1 + (index % columns) * (width + 1)
        canvas[top:top + height, left:left + width] = images[index].transpose(1, 2, 0)
    # Small images (8x8 digits) would make a thumbnail: scale up by whole pixels.
    scale = max(1, min(8, 512 // max(canvas.shape[0], canvas.shape[1])))
    canvas = canvas.repeat(scale, axis=0).repeat(scale, axis=1)
    return canvas[..., 0] if channels == 1 else canvas


def draw_grid(path: Path, images: np.ndarray) -> int:
    """Write the grid of (at most MAX_GRID_IMAGES of) `images`; return how many it shows."""
    from matplotlib.image import imsave
    per_image = max(1, math.prod(images.shape[1:]))
    shown = max(1, min(len(images), MAX_GRID_IMAGES, MAX_GRID_PIXELS // per_image))
    grid = image_grid(images[:shown])
    image_format = path.suffix.lower().lstrip(".")
    write_atomically(path, lambda handle: imsave(handle, grid, vmin=0.0, vmax=1.0, cmap="gray",
                                                 format=image_format), "samples")
    return shown


def draw_scatter(path: Path, points: np.ndarray, title: str) -> None:
    """Write a scatter plot of [N, 2] points (rows with NaN or inf left out)."""
    # The Figure/Agg classes directly, not pyplot: no global backend switch, no GUI window.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    points = np.asarray(points, dtype=np.float64)
    finite = points[np.isfinite(points).all(axis=1)]
    figure = Figure(figsize=(5, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    size = float(np.clip(4000 / max(len(finite), 1), 1, 20))
    axes.scatter(finite[:, 0], finite[:, 1], s=size, alpha=0.6, linewidths=0)
    left_out = len(points) - len(finite)
    axes.set_title(title + (f" ({left_out} not finite, left out)" if left_out else ""))
    axes.set_aspect("equal", adjustable="datalim")
    axes.grid(True, alpha=0.3)
    image_format = path.suffix.lower().lstrip(".")
    write_atomically(path, lambda handle: figure.savefig(handle, format=image_format),
                     "samples")


def token_text(ids: np.ndarray, vocab: Sequence[str]) -> str:
    """One line per row of [N, T] ids: id i is vocab[i]; an id outside it is U+FFFD."""
    def token(i: int) -> str:
        return vocab[i] if 0 <= i < len(vocab) else "\ufffd"
    # A newline or a tab inside a sample would break the one-line-per-sample layout.
    return "".join("".join(token(int(i)) for i in row).replace("\n", "\\n").replace("\t", "\\t")
                   + "\n" for row in np.asarray(ids))
