"""The compile cache is safe to share with nobody and to damage: a private directory (0700, others'
or world-writable ones refused), modules checked against their source before anything runs,
and every kind of damage discarded with one note and compiled again, in a fresh process, to the
reference's numbers."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend_helpers import mlp_graph, random_arrays, training_graph
from netdsl import userdirs
from netdsl.backends import cache as cache_module
from netdsl.backends import compile_graph
from netdsl.backends.reference import run as reference_run
from netdsl.errors import Error

ROOT = Path(__file__).resolve().parents[2]
NOTE = "note: discarded a damaged compile cache entry "
POSIX = hasattr(os, "geteuid")
ROOT_USER = POSIX and os.geteuid() == 0

SCRIPT = """
import json, sys
sys.path.insert(0, {helpers!r})
from backend_helpers import mlp_graph, random_arrays, training_graph
from netdsl.backends import compile_graph
from netdsl.backends.numba_cpu import CodegenOptions
graph = training_graph(mlp_graph((3, 2)), "sgd")
compiled = compile_graph(graph, options=CodegenOptions(parallel_min={parallel_min}))
arrays = random_arrays(graph, batch=4)
loss = float(compiled.run(arrays)["loss"])
report = compiled.report
print(json.dumps({{"hit": report.cache_hit, "llvm": report.llvm_compiles, "loss": loss,
                  "params": {{name: arrays[name].tolist() for name in graph.state_updates}},
                  "path": report.module_path}}))
"""


def _compile(cache: Path, parallel_min: int = 10**9) -> tuple[dict, list[str]]:
    """Compile the small training step in a fresh process; its results and its note lines."""
    env = {**os.environ, "NETDSL_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    code = SCRIPT.format(helpers=str(Path(__file__).parent), parallel_min=parallel_min)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    return json.loads(result.stdout.strip().splitlines()[-1]), notes


def _assert_reference_numbers(run: dict) -> None:
    graph = training_graph(mlp_graph((3, 2)), "sgd")
    arrays = random_arrays(graph, batch=4)
    np.testing.assert_allclose(run["loss"], float(reference_run(graph, arrays)["loss"]),
                               rtol=1e-5)
    for name in graph.state_updates:
        np.testing.assert_allclose(np.array(run["params"][name], np.float32), arrays[name],
                                   rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def good_cache(tmp_path_factory) -> Path:
    """A cache holding the small model's entry, compiled once in a subprocess."""
    directory = tmp_path_factory.mktemp("good") / "cache"
    first, notes = _compile(directory)
    assert not first["hit"] and not notes
    return directory


def _copy(good: Path, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(good, cache, symlinks=True)
    return cache


def _module(cache: Path) -> Path:
    """The driver's module (the others hold shared loop nests and segments)."""
    (module,) = [path for path in cache.glob("nd_*.py")
                 if not path.read_text().startswith('"""netdsl generated segment')]
    return module


def _numba_file(cache: Path, suffix: str) -> Path:
    """The step driver's index (.nbi) or data (.nbc) file: what a cache hit loads."""
    (path,) = (cache / "__pycache__").glob(f"nd_*.step-*{suffix}")
    return path


def _damage_file(path: Path, how: str) -> None:
    good = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif how == "garbage":
        path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, len(good), np.uint8)))
    elif how == "directory":
        path.unlink()
        (path / "inside").mkdir(parents=True)
    else:
        raise AssertionError(how)


DAMAGE = {
    "module empty": lambda cache: _damage_file(_module(cache), "empty"),
    "module truncated": lambda cache: _damage_file(_module(cache), "truncated"),
    "module garbage": lambda cache: _damage_file(_module(cache), "garbage"),
    "module a directory": lambda cache: _damage_file(_module(cache), "directory"),
    # Valid Python of the same size that is not what the key names: a digest mismatch.
    "module edited": lambda cache: _module(cache).write_text(
        _module(cache).read_text().replace("import math", "import json", 1)),
    "module a symbolic link": lambda cache: _symlink_module(cache),
    "index empty": lambda cache: _damage_file(_numba_file(cache, ".nbi"), "empty"),
    "index truncated": lambda cache: _damage_file(_numba_file(cache, ".nbi"), "truncated"),
    "index garbage": lambda cache: _damage_file(_numba_file(cache, ".nbi"), "garbage"),
    "index a directory": lambda cache: _damage_file(_numba_file(cache, ".nbi"), "directory"),
    "data empty": lambda cache: _damage_file(_numba_file(cache, ".nbc"), "empty"),
    "data truncated": lambda cache: _damage_file(_numba_file(cache, ".nbc"), "truncated"),
    "data garbage": lambda cache: _damage_file(_numba_file(cache, ".nbc"), "garbage"),
    "data a directory": lambda cache: _damage_file(_numba_file(cache, ".nbc"), "directory"),
    "__pycache__ a file": lambda cache: _pycache_file(cache),
}


def _symlink_module(cache: Path) -> None:
    module = _module(cache)
    elsewhere = cache.parent / "elsewhere.py"
    elsewhere.write_bytes(module.read_bytes())         # even the right content, by a link
    module.unlink()
    module.symlink_to(elsewhere)


def _pycache_file(cache: Path) -> None:
    shutil.rmtree(cache / "__pycache__")
    (cache / "__pycache__").write_text("not a directory")


def _unreadable(path: Path) -> None:
    os.chmod(path, 0)


def _plant(cache: Path) -> None:
    module = _module(cache)
    marker = cache.parent / "PLANTED"
    module.write_text(f"open({str(marker)!r}, 'w').close()\n" + module.read_text())


# Not damage, or damage only where permissions hold (root reads an unreadable file anyway).
OTHER = {
    "module unreadable": lambda cache: _unreadable(_module(cache)),
    "index unreadable": lambda cache: _unreadable(_numba_file(cache, ".nbi")),
    "module missing": lambda cache: _module(cache).unlink(),
    "half-written temporary file": lambda cache: (cache / ".nd_killed.tmp").write_text(
        _module(cache).read_text()[:100]),
    "module planted": _plant,
}


@pytest.fixture(scope="module")
def runs(good_cache, tmp_path_factory) -> dict:
    """Every scenario: a copy of the good cache, damaged, compiled in a fresh process (four at
    a time); then the caches the damage kinds left, compiled once more."""
    from concurrent.futures import ThreadPoolExecutor
    caches = {}
    for name, damage in {**DAMAGE, **OTHER}.items():
        cache = _copy(good_cache, tmp_path_factory.mktemp("damaged"))
        damage(cache)
        caches[name] = cache
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = dict(zip(caches, pool.map(_compile, caches.values())))
    again = dict(zip(DAMAGE, _compile_each([caches[name] for name in DAMAGE])))
    return {name: (caches[name], *first[name], *again.get(name, (None, None)))
            for name in caches}


AGAIN = """
import contextlib, io, json, sys
sys.path.insert(0, {helpers!r})
from backend_helpers import mlp_graph, random_arrays, training_graph
from netdsl.backends import compile_graph
for directory in {caches!r}:
    graph = training_graph(mlp_graph((3, 2)), "sgd")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        compiled = compile_graph(graph, cache_dir=directory)
    # the next directory's module is loaded afresh, not reused from this one
    del sys.modules["netdsl_generated_" + compiled.report.key]
    arrays = random_arrays(graph, batch=4)
    loss = float(compiled.run(arrays)["loss"])
    print(json.dumps({{"hit": compiled.report.cache_hit, "llvm": compiled.report.llvm_compiles,
                      "loss": loss, "stderr": stderr.getvalue()}}))
"""


def _compile_each(caches: list[Path]) -> list[tuple[dict, list[str]]]:
    """Compile the small training step from each cache in turn, in one fresh process (to check
    the caches that damage left behind: a process each would cost seconds each)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = AGAIN.format(helpers=str(Path(__file__).parent), caches=[str(c) for c in caches])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    runs = [json.loads(line) for line in result.stdout.strip().splitlines()[-len(caches):]]
    return [(run, [line for line in run.pop("stderr").splitlines() if line.startswith("note:")])
            for run in runs]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_is_discarded_with_one_note_and_recompiled(runs, damage):
    _, run, notes, again, notes_again = runs[damage]
    _assert_reference_numbers(run)
    assert len(notes) == 1 and notes[0].startswith(NOTE) and notes[0].endswith(
        "; recompiling"), notes
    assert notes_again == [] and again["hit"] and again["llvm"] == 0     # repaired
    assert again["loss"] == run["loss"]


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
@pytest.mark.parametrize("which", ["module", "index"])
def test_unreadable_files_are_discarded(runs, which):
    _, run, notes, _, _ = runs[f"{which} unreadable"]
    _assert_reference_numbers(run)
    # root reads the file anyway: then nothing is damaged
    assert len(notes) == (0 if ROOT_USER else 1), notes


def test_a_missing_module_is_written_again_and_numba_still_hits(runs):
    cache, run, notes, _, _ = runs["module missing"]
    _assert_reference_numbers(run)
    assert notes == [] and run["llvm"] == 0           # Numba's index matches the same text
    assert _module(cache).is_file()


def test_a_half_written_temporary_file_is_ignored(runs):
    """What a run killed while writing leaves: a temporary file, never a half module."""
    _, run, notes, _, _ = runs["half-written temporary file"]
    assert notes == [] and run["hit"]


def test_a_module_planted_under_the_right_name_never_runs(runs):
    cache, run, notes, _, _ = runs["module planted"]
    assert not (cache.parent / "PLANTED").exists()
    assert len(notes) == 1 and NOTE in notes[0] and "bytes" in notes[0], notes
    _assert_reference_numbers(run)


def test_a_damaged_driver_index_recompiles_the_driver_alone(tmp_path):
    """Kernels of their own (parallel ones) keep their cache when the driver's is damaged."""
    cache = tmp_path / "cache"
    first, _ = _compile(cache, parallel_min=1)
    assert len(list((cache / "__pycache__").glob("*.nbi"))) > 1
    _damage_file(_numba_file(cache, ".nbi"), "garbage")
    run, notes = _compile(cache, parallel_min=1)
    assert len(notes) == 1 and ".step-" in notes[0]
    assert run["llvm"] == 1 and run["loss"] == first["loss"]
    _assert_reference_numbers(run)


# ---- the directory ---------------------------------------------------------------------------


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_directory_others_can_write_to_is_refused(tmp_path, mode):
    cache = tmp_path / "shared"
    cache.mkdir()
    os.chmod(cache, mode)
    with pytest.raises(Error, match="is writable by other users") as error:
        compile_graph(mlp_graph((2, 2)), cache_dir=cache)
    assert "chmod 700" in str(error.value)
    assert list(cache.iterdir()) == []


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
def test_a_directory_of_another_user_is_refused(tmp_path):
    if not ROOT_USER:
        pytest.skip("needs root to give a directory away")
    cache = tmp_path / "theirs"
    cache.mkdir(mode=0o700)
    os.chown(cache, 12345, 12345)
    with pytest.raises(Error, match="belongs to another user"):
        compile_graph(mlp_graph((2, 2)), cache_dir=cache)


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
def test_a_directory_in_a_folder_anyone_may_rename_in_is_refused(tmp_path):
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    os.chmod(open_folder, 0o777)                        # no sticky bit, unlike /tmp
    with pytest.raises(Error, match="others could replace it"):
        compile_graph(mlp_graph((2, 2)), cache_dir=open_folder / "cache")
    os.chmod(open_folder, 0o1777)                       # with it, as /tmp: accepted
    compile_graph(mlp_graph((2, 2)), cache_dir=open_folder / "cache")


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
def test_a_new_directory_is_private(tmp_path):
    cache = tmp_path / "new" / "cache"
    compiled = compile_graph(mlp_graph((2, 2)), cache_dir=cache)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    assert Path(compiled.report.module_path).parent == cache.resolve()
    assert stat.S_IMODE(os.stat(compiled.report.module_path).st_mode) & 0o077 == 0


def test_a_file_in_place_of_the_directory_is_an_error(tmp_path):
    (tmp_path / "cache").write_text("")
    with pytest.raises(Error, match="is not a directory"):
        compile_graph(mlp_graph((2, 2)), cache_dir=tmp_path / "cache")


def test_an_empty_cache_dir_variable_means_unset(tmp_path, monkeypatch):
    monkeypatch.setenv("NETDSL_CACHE_DIR", "")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(userdirs, "user_cache_location", lambda: tmp_path / "user" / "netdsl")
    assert userdirs.cache_location() == tmp_path / "user" / "netdsl"
    assert userdirs.cache_location("") == tmp_path / "user" / "netdsl"
    assert cache_module.cache_dir() == (tmp_path / "user" / "netdsl").resolve()
    assert list(tmp_path.glob("nd_*")) == []


def test_module_check_reads_nothing_but_a_regular_file(tmp_path):
    content = b"x = 1\n"
    path = tmp_path / "nd_k.py"
    assert cache_module.module_problem(path, content) == "missing"
    if hasattr(os, "mkfifo"):
        os.mkfifo(path)                                 # reading it would block forever
        assert "special file" in cache_module.module_problem(path, content)
        path.unlink()
    path.write_bytes(content)
    assert cache_module.module_problem(path, content) is None
    path.write_bytes(b"x = 2\n")
    assert "digest mismatch" in cache_module.module_problem(path, content)


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
def test_a_numba_cache_dir_others_can_write_to_is_refused(tmp_path, monkeypatch):
    """With NUMBA_CACHE_DIR set, Numba keeps the .nbi/.nbc pickles there instead."""
    from numba.core import config
    shared = tmp_path / "numba"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setattr(config, "CACHE_DIR", str(shared))
    with pytest.raises(Error, match="NUMBA_CACHE_DIR"):
        compile_graph(mlp_graph((2, 2)), cache_dir=tmp_path / "cache")
