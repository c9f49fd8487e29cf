"""benchmarks/fit.py: the whole-runs table runs end to end on tiny runs (--smoke), its
ratios are those of its own columns, and only its section of RESULTS.md is written."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
try:
    from report import section
finally:
    sys.path.remove(str(ROOT / "benchmarks"))

NUMBER = r"(\d+(?:\.\d+)?(?:e[+-]\d+)?)"
HEADING = "## Whole runs"
OTHERS = "# netdsl benchmark results\n\n## Machine\n\n- cpu\n\n## Targets\n\n| a | b |\n"


def test_smoke_times_the_three_runs(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text(OTHERS)
    done = subprocess.run([sys.executable, "-m", "benchmarks.fit", "--smoke", "--threads", "1",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = out.read_text()
    assert text.startswith(OTHERS)                        # the other sections untouched
    body = section(text, HEADING)
    assert body in done.stdout
    assert re.search(r"1 thread\(s\): \d+\.\d\d / \d+\.\d\d / \d+\.\d\d → \d+\.\d\d", body)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in body.splitlines()
            if re.match(r"\| (xor|mlp|lenet):", line)]
    assert [row[0].split(":")[0] for row in rows] == ["xor", "mlp", "lenet"]
    for cells in rows:
        title, threads, steps, rounds, fit, setup, first_setup, alone, ratio, loop = cells[:10]
        assert threads == "1" and rounds == "2"
        epochs, examples, batch = (int(n.replace(",", "")) for n in
                                   re.findall(r"\d[\d,]*", title.split(":")[1]))
        assert int(steps.replace(",", "")) == epochs * -(-examples // batch)
        fit_ms = float(re.fullmatch(NUMBER + r" \(.*\)", fit).group(1))
        assert 0 < float(setup) < fit_ms
        assert float(first_setup) > 0                     # a freshly loaded model's first fit
        # the ratios are those of the columns (rounded as printed)
        assert abs(float(ratio.rstrip("×")) - fit_ms / float(alone)) <= \
            0.01 * float(ratio.rstrip("×")) + 0.006
        assert float(loop.rstrip("×")) < float(ratio.rstrip("×"))
