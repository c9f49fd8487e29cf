"""The front-end fuzzer (netdsl.fuzz.frontend): its mutations, its classification of answers,
and a small fixed-seed campaign that must find nothing (every mutant is answered or refused
with a clean error).  Long runs: `python -m netdsl.fuzz.frontend --programs 10000`."""
from __future__ import annotations

import os
import random

from netdsl.fuzz import mutants
from netdsl.fuzz.frontend import classify, run_campaign
from netdsl.fuzz.mutants import mutant, mutate_tokens, tokenize

PROGRAMS = int(os.environ.get("NETDSL_FRONTEND_FUZZ_PROGRAMS", "300"))


def test_tokenize_round_trips():
    for text in mutants.SEEDS:
        assert "".join(value for _, value in tokenize(text)) == text


def test_mutations_are_deterministic_and_varied():
    texts = mutants.SEEDS
    first = [mutant(0, index, texts) for index in range(200)]
    assert first == [mutant(0, index, texts) for index in range(200)]
    kinds = {what for _, done in first for what in done}
    assert {"number", "name", "nesting", "bytes", "truncate", "recursion"} <= kinds
    assert sum(text not in texts for text, _ in first) > 180


def test_bytes_then_more_mutations():
    rng = random.Random(5)
    text = mutants.SEEDS[0]
    for _ in range(200):
        text, _ = mutate_tokens(rng, text, mutants.SEEDS[1])
    text.encode("utf-8", "surrogateescape")


def test_classify():
    assert classify(0, "table", "") is None
    assert classify(1, "", "m.net:1:2: error: no\n    x\n    ^") is None
    assert classify(1, "", "error: cannot open 'm.net': no such file") is None
    assert classify(2, "", "internal error in lower: KeyError: 'x'; please report") == "internal"
    assert classify(1, "", "Traceback (most recent call last):\n") == "traceback"
    assert classify(1, "", "something went wrong") == "format"
    assert classify(1, "", "m.net:1:2: error: x\nTraceback (most") == "traceback"
    assert classify(3, "", "") == "exit"


def test_a_small_campaign_finds_nothing(tmp_path):
    """A fixed set of mutants through `netdsl check`: no internal error, hang, memory blow-up
    or malformed error (the timeout is generous: CI machines are slower than a desk)."""
    summary = run_campaign(PROGRAMS, seed=0, jobs=2, timeout=10.0, memory=1536,
                           out=tmp_path / "findings", generated=50)
    assert summary.tried == PROGRAMS
    assert not summary.findings, summary.format() + "\n\n" + "\n\n".join(
        f"{f.kind} {f.mutations}:\n{f.output[-1500:]}" for f in summary.findings[:5])
    assert summary.statuses[1] > PROGRAMS // 2          # most mutants are errors...
    assert summary.statuses[0] > 0                      # ...and some are still programs


def test_a_hang_is_confirmed_by_a_second_longer_check(tmp_path, monkeypatch):
    """A check past the time limit is checked again with five times the time: a program that
    was only slow once (a busy machine) is no finding, one that hangs again is."""
    import time

    from netdsl.fuzz import frontend
    flag = tmp_path / "slow-once"

    def check(path):
        text = path.read_text()
        if text == "program 1":
            time.sleep(60)                          # hangs every time
        if text == "program 2" and not flag.exists():
            flag.write_text("")
            time.sleep(1.5)                         # slow only the first time
        return 0, "", "", 0.01

    monkeypatch.setattr(frontend, "_check", check)
    monkeypatch.setattr(frontend, "corpus", lambda generated: [])
    monkeypatch.setattr(frontend, "mutant", lambda seed, index, texts: (f"program {index}", []))
    # memory: a forked worker starts with the test process's memory, large late in a run.
    summary = run_campaign(4, seed=0, jobs=2, timeout=0.5, memory=1 << 20, out=None)
    assert summary.tried == 4
    assert [(f.index, f.kind) for f in summary.findings] == [(1, "hang")]
    assert flag.exists()
