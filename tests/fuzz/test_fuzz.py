"""The differential tester itself: generation, the oracle, the shrinker, and a CI campaign.

The campaign (test_generated_programs_agree) checks a fixed set of programs, one mode each,
in two worker processes; NETDSL_FUZZ_PROGRAMS sets how many (default 100, about
2 minutes on two busy cores); a second one (NETDSL_FUZZ_SCAN_PROGRAMS, default 24) programs
with loops in most of them.  Longer runs are
`python -m netdsl.fuzz --minutes 30`.
"""
from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import netdsl
from netdsl.fuzz.campaign import run_campaign
from netdsl.fuzz.generate import Config, generate
from netdsl.fuzz.menu import LOSSES, MENU
from netdsl.fuzz.oracle import Options, check, check_source, header, read_header
from netdsl.fuzz.shrink import shrink

GENERATED = 300


def _programs(count: int = GENERATED):
    return [generate(seed) for seed in range(count)]


def test_generation_is_deterministic():
    assert generate(11).text() == generate(11).text()
    assert generate(11).text() != generate(12).text()


def test_every_generated_program_lowers_and_runs_on_the_reference():
    """Generated programs are well typed: the front end accepts all of them, and the
    reference interpreter computes finite outputs and losses on their data."""
    from netdsl.backends.reference import run
    with tempfile.TemporaryDirectory() as folder:
        for seed, program in enumerate(_programs(150)):
            path = Path(folder) / f"p{seed}.net"
            path.write_text(program.text())
            try:
                model = netdsl.load(path)
            except netdsl.Error as error:
                pytest.fail(f"seed {seed} was rejected:\n{program.text()}\n{error}")
            graph = model.graph
            arrays = model._arrays(graph, model.init(seed), program.data_spec().arrays(
                graph.inputs), step=1)
            results = run(graph, arrays)
            for name, value in results.items():
                assert np.all(np.isfinite(value)), f"seed {seed}: {name} is not finite"


def test_generator_covers_the_menu():
    """Across a few hundred programs every menu entry and every loss is applied, and the
    features the issue names occur: size-1 axes, a value read by several statements, symbolic
    dims, scan bodies that capture outer values."""
    entries: Counter = Counter()
    size_one = fan_out = symbolic = 0
    for program in _programs():
        entries.update(program.entries)
        size_one += any(1 in v.shape for v in program.values.values())
        reads = Counter(name for s in program.stmts for name in s.reads)
        fan_out += any(count > 1 for count in reads.values())
        symbolic += "T" in program.text()
    missing = [name for name, _, _ in MENU + LOSSES if not entries[name]]
    assert not missing, f"never applied: {missing}"
    assert size_one > GENERATED // 2 and fan_out > GENERATED // 2 and symbolic > GENERATED // 5


def test_the_scan_focus_makes_loops_common():
    """`--focus scan` weights the menu towards loops: most of its programs have one, against
    about one in ten unfocused, and a seed's focused program is still the same each time."""
    from netdsl.fuzz.campaign import FOCUSES
    focused = Config(weights=FOCUSES["scan"])
    with_loops = sum("scan" in generate(seed, focused).tags for seed in range(40))
    without = sum("scan" in generate(seed).tags for seed in range(40))
    assert with_loops >= 20 and with_loops >= 3 * without, (with_loops, without)
    assert generate(5, focused).text() == generate(5, Config(weights=FOCUSES["scan"])).text()

def test_oracle_reports_a_planted_bug(monkeypatch):
    """The tester can fail: a wrong reduction in the loop IR is a mismatch."""
    from dataclasses import replace
    from netdsl.ops.registry import get_op
    text = ("model Planted {\n    in x: f32[B, 4]\n    param w: f32[4] = uniform(0.5, 1.5)\n"
            "    out s = sum(x * w, axis=1)\n    loss mean(square(s))\n}\n")
    data, options = read_header("# fuzz-data: " + _data_json(B=3) + "\n")
    assert check_source(text, data, Options(modes=("forward",))) is None
    rule = get_op("sum").reduction
    monkeypatch.setattr(get_op("sum"), "reduction", replace(rule, combine="{0} + 2 * {1}"))
    finding = check_source(text, data, Options(modes=("forward",), cache_dir=_fresh_cache()))
    assert finding is not None and finding.kind == "mismatch:forward", finding


def test_shrinker_keeps_the_failure_and_drops_the_rest(monkeypatch):
    """A planted bug in `min`'s starting value: the shrunk program still fails the same way
    and keeps only what the failure needs."""
    from dataclasses import replace
    from netdsl.ops.registry import get_op
    rule = get_op("min").reduction
    monkeypatch.setattr(get_op("min"), "reduction", replace(rule, identity=lambda dtype: 0))
    seed = next(s for s in range(2000) if _min_feeds_output(generate(s, Config(statements=8))))
    program = generate(seed, Config(statements=8))
    options = Options(modes=("forward",), cache_dir=_fresh_cache())
    finding = check(program, options)
    assert finding is not None and finding.kind == "mismatch:forward"
    small, again = shrink(program, options, finding, budget=40)
    assert again.kind == finding.kind
    assert len(small.stmts) < len(program.stmts)
    assert any(stmt.tag == "reduce:min" for stmt in small.stmts)
    text = small.text(header(small.data_spec(), options))
    data, read_options = read_header(text)
    assert check_source(text, data, read_options) is not None    # the file alone reproduces it


def _min_feeds_output(program) -> bool:
    """A `min` reduction over positive values (where a starting value of 0 is wrong) whose
    result is an output (so the forward graph computes it)."""
    return any(s.tag == "reduce:min" and s.outputs and program.values[s.reads[0]].lo > 0
               for s in program.stmts)


def _data_json(**bindings) -> str:
    import json
    return json.dumps({"bindings": bindings, "seed": 0, "ranges": {}})


def _fresh_cache() -> str:
    return tempfile.mkdtemp(prefix="netdsl-fuzz-test-")


@pytest.mark.skipif(os.environ.get("NETDSL_FUZZ_PROGRAMS") == "0", reason="disabled")
def test_generated_programs_agree():
    """The CI campaign: a fixed seed, one mode per program, two worker processes."""
    count = int(os.environ.get("NETDSL_FUZZ_PROGRAMS", "100"))
    lines: list[str] = []
    summary = run_campaign(seed=20261201, programs=count, jobs=2, statements=6, rotate=True,
                           shrink=False, report=lines.append)
    print(summary.format())
    assert summary.tried == count
    assert not summary.failures, "\n".join(lines) + "\n" + summary.format() + \
        "\nreproduce with: python -m netdsl.fuzz --show SEED --statements 6"


@pytest.mark.skipif(os.environ.get("NETDSL_FUZZ_SCAN_PROGRAMS") == "0", reason="disabled")
def test_generated_loop_programs_agree():
    """A campaign focused on loops (`--focus scan`): the loop passes (scan_hoist, the reuse of
    the forward loop's values by the gradient loop, the rows split) on many more programs than
    the campaign above gives them.  NETDSL_FUZZ_SCAN_PROGRAMS sets how many (default 24)."""
    count = int(os.environ.get("NETDSL_FUZZ_SCAN_PROGRAMS", "24"))
    lines: list[str] = []
    summary = run_campaign(seed=20261205, programs=count, jobs=2, statements=8, rotate=True,
                           shrink=False, report=lines.append, focus="scan")
    print(summary.format())
    assert summary.tried == count and summary.by_tag["scan"] >= count // 2
    assert not summary.failures, "\n".join(lines) + "\n" + summary.format() + \
        "\nreproduce with: python -m netdsl.fuzz --focus scan --show SEED --statements 8"

def _cuda_ready() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return True
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:                           # noqa: BLE001 -- no driver, no device
        return False


@pytest.mark.skipif(not _cuda_ready(), reason="no CUDA device and NUMBA_ENABLE_CUDASIM is off")
def test_generated_programs_agree_on_cuda():
    """The campaign against the cuda target (the simulator in CI: small programs)."""
    count = int(os.environ.get("NETDSL_FUZZ_CUDA_PROGRAMS", "40"))
    lines: list[str] = []
    summary = run_campaign(seed=20261202, programs=count, jobs=2, statements=6, rotate=True,
                           shrink=False, report=lines.append, target="cuda")
    print(summary.format())
    assert summary.tried == count
    assert not summary.failures, "\n".join(lines) + "\n" + summary.format() + \
        "\nreproduce with: python -m netdsl.fuzz --target cuda --show SEED --statements 6"


def test_a_dying_worker_is_a_finding_for_its_program_only(monkeypatch):
    """A program whose generated code kills the worker (rc 139) is reported as crash:process,
    the others still run; the campaign goes on with a fresh pool."""
    import fuzz_helpers
    from netdsl.fuzz import campaign
    monkeypatch.setattr(campaign, "check_seed", fuzz_helpers.crashing_check)
    results = list(campaign._results(0, 2, 6, None, False, None, 6))
    kinds = {r.seed: (r.finding.kind if r.finding else None) for r in results}
    assert kinds == {s: ("crash:process" if s == fuzz_helpers.CRASHING_SEED else None)
                     for s in range(6)}


def test_a_refusal_is_the_same_finding_only_with_the_same_complaint():
    """The shrinker keeps a smaller program only where it fails the same way: for a refusal
    (error:*), with the same complaint, whatever names and numbers it quotes."""
    from netdsl.fuzz.oracle import Finding
    refused = Finding("error:grad", "error: cannot compile: dimension 2*B*T is not the "
                      "dimension of any input, so it is unknown at run time (B, T)", "grad")
    assert refused.same_kind(Finding("error:grad", "error: cannot compile: dimension 4*T is "
                                     "not the dimension of any input (T)", "grad"))
    assert not refused.same_kind(Finding("error:grad", "error: model 'Fuzz' has no loss to "
                                         "train", "grad"))
    mismatch = Finding("mismatch:train", "step 1: w: cpu 1.0 != reference 2.0", "train")
    assert mismatch.same_kind(Finding("mismatch:train", "after 2 steps: v: cpu 3 != 4", "train"))
