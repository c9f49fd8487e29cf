"""benchmarks/scaling.py: the MLP scaling table runs end to end at toy sizes (--smoke) and its
section of RESULTS.md is replaced without touching run.py's sections (and the reverse)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
try:
    from report import replace_section, section
finally:
    sys.path.remove(str(ROOT / "benchmarks"))

NUMBER = r"(\d+(?:\.\d+)?(?:e[+-]\d+)?)"
HEADING = "## Scaling: MLP training step against batch size and width"
RUN_SECTIONS = "# netdsl benchmark results\n\n## Machine\n\n- cpu\n\n## Targets\n\n| a | b |\n"


def test_the_scaling_section_is_replaced_and_the_others_kept():
    first = replace_section(RUN_SECTIONS, HEADING, HEADING + "\n\nold table\n")
    assert first.startswith(RUN_SECTIONS) and first.endswith(HEADING + "\n\nold table\n")
    second = replace_section(first, HEADING, HEADING + "\n\nnew table")
    assert "old table" not in second and second.count(HEADING) == 1
    assert second.startswith(RUN_SECTIONS) and second.endswith("new table\n")
    # a section in the middle: the next "## " section stays after it
    middle = replace_section("# t\n\n" + HEADING + "\n\nold\n\n## Targets\n\nx\n", HEADING,
                             HEADING + "\n\nnew")
    assert middle == "# t\n\n" + HEADING + "\n\nnew\n\n## Targets\n\nx\n"
    # run.py --write: its new text, with the scaling section of the old file kept
    kept = section(second, "## Scaling")
    assert kept == HEADING + "\n\nnew table"
    assert replace_section(RUN_SECTIONS, "## Scaling", kept) == second
    assert section(RUN_SECTIONS, "## Scaling") == ""


def test_smoke_times_both_sweeps(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text(RUN_SECTIONS)
    done = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--smoke", "--threads",
                           "1", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = out.read_text()
    assert text.startswith(RUN_SECTIONS)                 # run.py's sections untouched
    body = section(text, HEADING)
    assert body in done.stdout
    assert re.search(r"1 thread\(s\): \d+\.\d\d / \d+\.\d\d / \d+\.\d\d → \d+\.\d\d", body)
    torch = "no torch" not in body
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in body.splitlines()
            if re.match(r"\| \d+ \| \d+ × \d+ \|", line)]
    assert [(r[0], r[1]) for r in rows] == [("1", "1 × 16"), ("4", "4 × 16"),
                                            ("16", "4 × 16"), ("32", "4 × 32")]
    for cells in rows:
        assert cells[2] == "1"
        netdsl = re.fullmatch(NUMBER + r" \(.*\)", cells[3])
        assert netdsl and float(netdsl.group(1)) > 0, cells
        if torch:
            eager = re.fullmatch(NUMBER + r" \(.*\)", cells[4])
            assert eager and float(eager.group(1)) > 0, cells
            ratio = float(cells[5].rstrip("×"))
            assert abs(ratio - float(eager.group(1)) / float(netdsl.group(1))) <= \
                0.01 * ratio + 0.006, cells
            assert cells[6] == "1 / 1"                   # one round of one-step blocks
