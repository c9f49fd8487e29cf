"""Checkpoints: parameter arrays by dotted name in .npz (or .safetensors), written atomically.

A checkpoint maps names such as `fc1.weight` to arrays (LANGUAGE.md section 9) and may carry a
small JSON-able `meta` dict (model name, epoch, ...).  In .npz the meta is stored as a JSON
string under the reserved key `__netdsl_meta__`; in .safetensors it is the header's metadata.
Files go through `files.write_atomically`, so a failure or a kill never leaves a half-written
checkpoint (or a stray temporary file) behind, and the old checkpoint stays as it was.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Collection, Iterable, Mapping, NamedTuple

import numpy as np

from ..errors import Diagnostic, Error, did_you_mean
from ..source import Span
from .files import check_output, write_atomically

META_KEY = "__netdsl_meta__"
# The optimisers' state (Adam's m and v, momentum buffers) is stored beside the weights under
# this prefix, so that a checkpoint holds a whole training run yet loads as just the weights.
OPTIMIZER_PREFIX = "optimizer/"
EXTENSIONS = (".npz", ".safetensors")
_SAFETENSORS_HINT = "pip install 'netdsl[safetensors]'"
PARTIAL_HINT = ("to load only the parameters the model has and skip the others, pass --partial "
                "(Python: model.load_weights(path, partial=True))")
_DTYPE_NAMES = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "i32": np.int32,
                "i64": np.int64, "bool": np.bool_}


class Checkpoint(NamedTuple):
    """What `load_checkpoint` returns: the weights by name, and the meta dict (may be empty).
    The optimisers' state saved beside them is `load_optimizer_state`'s."""

    weights: dict[str, np.ndarray]
    meta: dict[str, Any]


class LoadedWeights(NamedTuple):
    """What `load_weights` returns: a model's weights (checked and cast), the checkpoint's
    names it left out (only with partial=True; in the checkpoint's order), and the checkpoint's meta dict."""

    weights: dict[str, np.ndarray]
    skipped: list[str]
    meta: dict[str, Any]


def write_npz(handle: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """An .npz archive of `arrays` (what numpy.savez writes) to an open binary file.

    numpy.savez takes the names as keywords, so an array named `file` or `allow_pickle` (a
    model's `out file = ...`) collides with its own arguments; this takes a mapping.
    """
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def check_checkpoint_output(path: str | Path, span: Span | None = None) -> Path:
    """Fail before training when a checkpoint could not be written to path."""
    path = check_output(path, "checkpoint", EXTENSIONS, span)
    if _format(path, span) == "safetensors":
        _safetensors("save", "writing", span)
    return path


def _format(path: Path, span: Span | None) -> str:
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise Error(f"checkpoint {path} must end in .npz or .safetensors", span)
    return suffix[1:]


def save_checkpoint(path: str | Path, weights: dict[str, np.ndarray], meta: dict[str, Any] | None = None,
                    span: Span | None = None,
                    optimizer: dict[str, np.ndarray] | None = None) -> None:
    """Write weights (and meta, and the optimisers' state) to .npz or .safetensors, chosen by
    the extension."""
    path = Path(path)
    kind = _format(path, span)
    arrays = {}
    stored = [(name, value) for name, value in weights.items()]
    for name, value in (optimizer or {}).items():
        stored.append((OPTIMIZER_PREFIX + name if isinstance(name, str) else name, value))
    for name, value in stored:
        if not isinstance(name, str) or name == META_KEY or \
                (name.startswith(OPTIMIZER_PREFIX) and name in weights):
            raise Error(f"cannot save parameter named {name!r} in a checkpoint", span)
        arrays[name] = np.asarray(value, order="C")  # ascontiguousarray would make 0-d arrays 1-d
        if arrays[name].dtype.kind not in "biuf":
            raise Error(f"parameter '{name}' has non-numeric type {arrays[name].dtype}", span)
    try:
        meta_text = json.dumps(meta or {}, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise Error(f"checkpoint meta must be JSON data: {error}", span) from None
    if kind == "npz":
        def content(handle: BinaryIO) -> None:
            write_npz(handle, {**arrays, META_KEY: np.array(meta_text)})
    else:
        save = _safetensors("save", "writing", span)

        def content(handle: BinaryIO) -> None:
            handle.write(save(arrays, metadata={"netdsl": meta_text}))
    write_atomically(path, content, "checkpoint", EXTENSIONS, span)


def _safetensors(function: str, verb: str, span: Span | None):
    try:
        import safetensors.numpy as module
    except ImportError:
        raise Error(f"{verb} .safetensors checkpoints needs the safetensors package", span,
                    hint=_SAFETENSORS_HINT) from None
    return getattr(module, function)


def load_checkpoint(path: str | Path, span: Span | None = None) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` (or any .npz / .safetensors of arrays)."""
    arrays, meta, _ = _read_checkpoint(Path(path), span)
    return Checkpoint({name: value for name, value in arrays.items()
                       if not name.startswith(OPTIMIZER_PREFIX)}, meta)


def load_optimizer_state(path: str | Path, span: Span | None = None) -> dict[str, np.ndarray]:
    """The optimisers' state a checkpoint holds (`opt.<param>.<slot>` -> array; empty if none):
    what `netdsl train --out` saved from every objective's optimiser."""
    arrays, _, _ = _read_checkpoint(Path(path), span)
    return {name[len(OPTIMIZER_PREFIX):]: value for name, value in arrays.items()
            if name.startswith(OPTIMIZER_PREFIX)}


def _read_checkpoint(path: Path, span: Span | None,
                     wanted: Collection[str] | None = None) -> tuple[dict, dict, list[str]]:
    """(weights, meta, names left out): only the names in `wanted` are read, when given."""
    kind = _format(path, span)
    if not path.is_file():
        raise Error(f"checkpoint not found: {path}", span)
    meta_text = "{}"
    try:
        if kind == "npz":
            if not zipfile.is_zipfile(path):    # np.load would read it as .npy or pickle
                raise Error(f"cannot read checkpoint {path}: it is not an .npz archive (a zip "
                            "file)", span, hint="the file may be truncated or not a checkpoint")
            with np.load(path, allow_pickle=False) as archive:
                # An .npz member is read on access: the arrays left out are never read.
                names = [key for key in archive.files if key != META_KEY]
                weights = {key: archive[key] for key in names
                           if wanted is None or key in wanted}
                if META_KEY in archive.files:
                    meta_text = str(archive[META_KEY])
        else:
            weights, names, meta_text = _read_safetensors(path, span, wanted)
    except Error:
        raise
    except Exception as error:  # each format library raises its own types for corrupt files
        raise Error(f"cannot read checkpoint {path}: {str(error).strip() or type(error).__name__}", span,
                    hint="the file may be truncated or not a checkpoint") from None
    try:
        meta = json.loads(meta_text)
    except ValueError:
        meta = {}
    skipped = [name for name in names
               if name not in weights and not name.startswith(OPTIMIZER_PREFIX)]
    return weights, meta if isinstance(meta, dict) else {}, skipped


def load_weights(path: str | Path, expected: dict[str, tuple[tuple, Any]], partial: bool = False,
                 model: str | None = None, span: Span | None = None) -> LoadedWeights:
    """A model's weights from a checkpoint, checked against `expected` (see check_weights).

    With `partial`, the checkpoint may hold more than the model needs (a VAE's checkpoint for
    its decoder): only the model's names are read, the others are returned as `skipped`.
    A missing or mis-shaped name is an error either way.
    """
    path = Path(path)
    weights, meta, skipped = _read_checkpoint(path, span, expected if partial else None)
    weights = {name: value for name, value in weights.items()
               if not name.startswith(OPTIMIZER_PREFIX)}
    checked = check_weights(weights, expected, span, source=str(path), model=model, meta=meta)
    return LoadedWeights(checked, skipped, meta)


def scope_counts(names: Iterable[str]) -> list[tuple[str, int]]:
    """Names grouped by their first dotted part: [("enc1.*", 2), ("step", 1)], first seen first."""
    counts: dict[str, int] = {}
    for name in names:
        scope = name.split(".", 1)[0] + ".*" if "." in name else name
        counts[scope] = counts.get(scope, 0) + 1
    return list(counts.items())


def describe_scopes(names: Iterable[str], limit: int = 12) -> str:
    """`enc1.* (2), mu.* (2), ...`: the scope groups of names, the first `limit` of them."""
    groups = scope_counts(names)
    text = ", ".join(f"{scope} ({count})" for scope, count in groups[:limit])
    return text + (f", and {len(groups) - limit} more" if len(groups) > limit else "")


def describe_partial_load(loaded: LoadedWeights, model: str) -> str:
    """The line `--partial` prints: how many arrays were loaded, and what was skipped."""
    count = len(loaded.weights)
    text = f"loaded {count} array{'s' if count != 1 else ''} for {model}"
    if not loaded.skipped:
        return text + "; skipped none (the checkpoint holds exactly the model's arrays)"
    return (f"{text}; skipped {len(loaded.skipped)} not in it: "
            f"{describe_scopes(loaded.skipped)}")


def _read_safetensors(path: Path, span: Span | None,
                      wanted: Collection[str] | None) -> tuple[dict, list[str], str]:
    """(the arrays in `wanted`, or all; every name; the netdsl meta text) through the
    safetensors package's own reader, which reads a tensor only when asked for it."""
    _safetensors("load_file", "reading", span)          # the package, or its install hint
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as handle:
        names = list(handle.keys())
        weights = {name: handle.get_tensor(name) for name in names
                   if wanted is None or name in wanted}
        meta_text = (handle.metadata() or {}).get("netdsl", "{}")
    return weights, names, meta_text


def _shape_text(dtype: Any, shape: tuple) -> str:
    name = next((key for key, value in _DTYPE_NAMES.items() if np.dtype(value) == np.dtype(dtype)),
                str(np.dtype(dtype)))
    return f"{name}[{', '.join(str(d) for d in shape)}]"


def check_weights(loaded: dict[str, np.ndarray], expected: dict[str, tuple[tuple, Any]],
                  span: Span | None = None, source: str | None = None,
                  model: str | None = None,
                  meta: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Check names and shapes against the model; return the weights cast to the model's dtypes.

    `expected` maps each parameter name to (shape, dtype); dtype is a NumPy dtype or "f32" etc.
    Every missing, extra or mis-shaped name is one diagnostic of a single Error.  Floats are
    cast between float widths; a float/int mismatch is an error.  When nothing is missing, the
    extra names are one diagnostic, grouped by scope, whose hint is partial loading: that is a
    checkpoint of a larger model (`model` names the smaller one in the message).  When the
    checkpoint's `meta` names another model and the names do not fit, that is the one error.
    """
    where = f" in {source}" if source else ""
    problems: list[Diagnostic] = []
    missing = [name for name in expected if name not in loaded]
    extra = [name for name in loaded if name not in expected]
    result: dict[str, np.ndarray] = {}
    only_extra = bool(extra and not missing)     # a larger model's checkpoint: partial loads it
    if only_extra:
        problems.append(Diagnostic(
            f"{source or 'the weights'} {'has' if source else 'have'} {len(extra)} "
            f"parameter{'s' if len(extra) != 1 else ''} that {model or 'the model'} does not "
            f"have: {describe_scopes(extra)}", span, PARTIAL_HINT))
        extra = []
    for name in missing:
        shape, dtype = expected[name]
        suggestion = did_you_mean(name, extra)
        problems.append(Diagnostic(f"parameter '{name}' ({_shape_text(_dtype(dtype), tuple(shape))}) "
                                   f"is missing{where}", span, suggestion))
    for name in extra:
        array = np.asarray(loaded[name])
        suggestion = did_you_mean(name, missing)
        problems.append(Diagnostic(f"unexpected parameter '{name}' ({_shape_text(array.dtype, array.shape)})"
                                   f"{where}: the model has no such parameter", span, suggestion))
    for name, (shape, dtype) in expected.items():
        if name not in loaded:
            continue
        array, want = np.asarray(loaded[name]), _dtype(dtype)
        if tuple(array.shape) != tuple(shape):
            problems.append(Diagnostic(
                f"parameter '{name}' has shape {list(array.shape)}{where} but the model expects "
                f"{list(shape)}", span))
        elif array.dtype != want and (array.dtype.kind == "f") != (want.kind == "f"):
            problems.append(Diagnostic(
                f"parameter '{name}' is {_shape_text(array.dtype, array.shape)}{where} but the "
                f"model expects {_shape_text(want, shape)}", span))
        else:
            result[name] = array.astype(want, copy=False)
    if problems:
        saved_for = (meta or {}).get("model")
        if model and isinstance(saved_for, str) and saved_for != model \
                and not (only_extra and len(problems) == 1):
            raise _other_model(saved_for, model, source, span, len(missing),
                               len([name for name in loaded if name not in expected]))
        raise Error(problems)
    return result


def _other_model(saved_for: str, model: str, source: str | None, span: Span | None,
                 missing: int, extra: int) -> Error:
    """One error for a checkpoint of another model, instead of one per parameter."""
    parts = [f"{missing} of {model}'s parameters missing" if missing else "",
             f"{extra} that {model} does not have" if extra else ""]
    counts = ", ".join(part for part in parts if part) or "parameters of other shapes"
    return Error(f"{'checkpoint ' + source if source else 'this checkpoint'} is for model "
                 f"{saved_for}, not {model} ({counts})", span,
                 hint=f"load it with model {saved_for} (--model {saved_for}; Python: "
                      f"netdsl.load(path, \"{saved_for}\")), or train {model} to get its own")


def _dtype(dtype: Any) -> np.dtype:
    return np.dtype(_DTYPE_NAMES.get(dtype, dtype)) if isinstance(dtype, str) else np.dtype(dtype)
