"""benchmarks/compile_ab.py: the paired differences it reports (the measurements themselves
compile models in fresh processes for minutes)."""
from __future__ import annotations

import pytest

from benchmarks.compile_ab import _spread, main, paired


def test_pairs_are_new_minus_base_round_by_round():
    result = paired([5.0, 6.0, 7.0, 6.5], [4.5, 6.2, 6.0, 6.0])
    assert result["rounds"] == 4
    assert result["median"] == pytest.approx(-0.5)      # -0.5, +0.2, -1.0, -0.5
    assert result["faster"] == 3
    assert result["p10"] <= result["median"] <= result["p90"]


def test_a_drifting_machine_cancels_in_the_pairs():
    """Both versions slower by the same 2 s in the later rounds: the medians apart move, the
    paired difference does not."""
    base = [3.0, 3.1, 5.0, 5.1]
    new = [2.7, 2.8, 4.7, 4.8]
    assert paired(base, new)["median"] == pytest.approx(-0.3)
    assert paired(base, new)["p90"] == pytest.approx(-0.3)


def test_no_pairs_and_one_value():
    assert paired([], []) == {"rounds": 0}
    assert paired([2.0], [1.5])["median"] == pytest.approx(-0.5)
    assert _spread([2.0]) == "2.00" and _spread([]) == "-"
    assert _spread([1.0, 2.0, 3.0]) == "2.00 (1.20-2.80)"


def test_an_unknown_model_is_refused():
    with pytest.raises(SystemExit) as raised:
        main(["HEAD", "--models", "vgg"])
    assert raised.value.code == 2
