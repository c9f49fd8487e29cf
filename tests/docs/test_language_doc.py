"""docs/language.md, the language reference, is tested: every example in it is checked by the
real `netdsl check`, and every registered name is documented (and used in a checked example).

Conventions of the document's fenced blocks:

* ```` ```netdsl ```` — a whole `.net` file; `netdsl check` must accept it.
* ```` ```netdsl file=NAME ```` — the same, saved as NAME (default `example.net`) in one
  folder shared by every block of the document, so that a later block can `import "NAME"`.
  The folder also holds `data/`, the repository's `examples/data` (for `data = "data/and.csv"`).
* ```` ```netdsl file=NAME library ```` — a file of blocks and consts for others to import
  (`check` wants a model): not checked alone, but some other example must import it.
* ```` ```netdsl error ```` — a file `netdsl check` must refuse (exit status 1); the next
  fenced block (```` ```text ````) is exactly what it prints on stderr.

Other blocks (```` ```sh ````, ```` ```text ````) are not run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from netdsl.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "language.md"
FENCE = re.compile(r"^```(\S*)(.*)$")


@dataclass
class Block:
    line: int                   # of the opening fence, 1-based
    language: str
    options: tuple[str, ...]
    text: str

    @property
    def file(self) -> str:
        named = [o.split("=", 1)[1] for o in self.options if o.startswith("file=")]
        return named[0] if named else "example.net"

    @property
    def is_error(self) -> bool:
        return "error" in self.options

    @property
    def is_library(self) -> bool:
        return "library" in self.options


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        start, body = index, []
        index += 1
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise AssertionError(f"docs/language.md:{start + 1}: the block is never closed")
        blocks.append(Block(start + 1, opening.group(1), tuple(opening.group(2).split()),
                            "\n".join(body) + "\n"))
        index += 1
    return blocks


BLOCKS = fenced_blocks(DOC.read_text(encoding="utf-8"))
EXAMPLES = [b for b in BLOCKS if b.language == "netdsl"]
CHECKED = [b for b in EXAMPLES if not b.is_library]


def expected_error(block: Block) -> str:
    """The text block after an error example: what check prints."""
    following = BLOCKS[BLOCKS.index(block) + 1:]
    assert following and following[0].language == "text", \
        f"docs/language.md:{block.line}: an error example is followed by a ```text block"
    return following[0].text


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One folder for the document's files: the named ones written first (for imports)."""
    here = tmp_path_factory.mktemp("language_doc")
    (here / "data").symlink_to(ROOT / "examples" / "data", target_is_directory=True)
    for block in EXAMPLES:
        if block.file != "example.net":
            (here / block.file).write_text(block.text, encoding="utf-8")
    return here


@pytest.mark.parametrize("block", CHECKED, ids=lambda b: f"line{b.line}")
def test_example_checks(block: Block, folder: Path, monkeypatch, capsys):
    monkeypatch.chdir(folder)
    (folder / block.file).write_text(block.text, encoding="utf-8")
    status = main(["check", "-q", block.file])
    captured = capsys.readouterr()
    if block.is_error:
        assert status == 1, f"docs/language.md:{block.line}: check accepted an error example"
        assert captured.err.strip() == expected_error(block).strip()
    else:
        assert status == 0, f"docs/language.md:{block.line}:\n{captured.err}"
        assert captured.err == ""


def test_examples_exist():
    assert len(CHECKED) >= 40
    assert any(b.is_error for b in CHECKED)


@pytest.mark.parametrize("library", [b for b in EXAMPLES if b.is_library],
                         ids=lambda b: f"line{b.line}")
def test_every_library_file_is_imported(library: Block):
    assert library.file != "example.net"
    assert any(f'import "{library.file}"' in b.text for b in CHECKED), \
        f"docs/language.md:{library.line}: no checked example imports {library.file}"


# ---------------------------------------------------------------------------------------------
# Completeness: what the registries hold is in the document, in its section, and in an example.


def sections(text: str) -> dict[str, str]:
    """`## Title` -> the text up to the next `## ` heading."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


SECTIONS = sections(DOC.read_text(encoding="utf-8"))
# The checked examples without their comments: a name must be used, not mentioned.
PASSING = re.sub(r"#.*", "", "\n".join(b.text for b in CHECKED if not b.is_error))


def registered() -> dict[str, list[str]]:
    """Section title -> the names its registry holds."""
    from netdsl.commands import COMMANDS
    from netdsl.layers.base import FUNCTIONS, LAYERS
    from netdsl.layers.init import INITIALIZERS
    from netdsl.layers.stdlib import stdlib_blocks
    from netdsl.passes.optimizers import _OPTIONS
    from netdsl.runtime.datasets import BUILTIN_DATASETS
    from netdsl.runtime.metrics import METRICS
    from netdsl.runtime.schedules import SCHEDULES
    from netdsl.runtime.train_config import KEYS, OBJECTIVE_KEYS
    import netdsl.layers.losses as losses
    loss_names = [name for name, fn in FUNCTIONS.items() if fn.__module__ == losses.__name__]
    return {
        "Initialisers": sorted(INITIALIZERS),
        "Layers": sorted(set(LAYERS) | set(stdlib_blocks())),
        # normal and uniform are random tensors as well as initialisers (frontend/calls.py).
        "Functions": sorted(set(FUNCTIONS) - set(loss_names) | {"normal", "uniform"}),
        "Losses and regularisers": sorted(loss_names),
        "Metrics": sorted(METRICS),
        # The names as written; make_optimizer reads them case-insensitively.
        "Optimisers": sorted({"sgd": "SGD", "rmsprop": "RMSprop", "adam": "Adam",
                              "adamw": "AdamW"}[key] for key in _OPTIONS),
        "Schedules": sorted(SCHEDULES),
        "Train keys": sorted(set(KEYS) | set(OBJECTIVE_KEYS) | {"objective"}),
        "Data sets": sorted(BUILTIN_DATASETS),
        "Command line": sorted(COMMANDS),
    }


REGISTERED = registered()
CASES = [(section, name) for section, names in REGISTERED.items() for name in names]


@pytest.mark.parametrize("section, name", CASES, ids=[f"{s}:{n}" for s, n in CASES])
def test_every_registered_name_is_documented(section: str, name: str):
    assert section in SECTIONS, f"docs/language.md has no section '## {section}'"
    spelled = f"`netdsl {name}" if section == "Command line" else f"`{name}"
    assert re.search(re.escape(spelled) + r"[`( \]]", SECTIONS[section]), \
        f"'{name}' is registered but section '{section}' of docs/language.md does not document it"


EXAMPLE_FREE = {"Command line"}     # verbs are shown as shell lines, not .net files


@pytest.mark.parametrize("section, name", [c for c in CASES if c[0] not in EXAMPLE_FREE],
                         ids=[f"{s}:{n}" for s, n in CASES if s not in EXAMPLE_FREE])
def test_every_registered_name_is_in_a_checked_example(section: str, name: str):
    assert re.search(rf"(?<![\w.\"]){re.escape(name)}\b", PASSING), \
        f"'{name}' ({section}) appears in no checked example of docs/language.md"


def test_the_readme_and_help_point_at_the_reference(capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/language.md" in readme
    assert "../shared/LANGUAGE.md" not in readme
    help_text = build_parser().format_help()
    assert "language reference:" in help_text
    path = help_text.split("language reference:")[1].split()[0]
    assert Path(path).name == "language.md" and Path(path).is_file()


def test_every_link_inside_the_document_has_its_heading():
    text = DOC.read_text(encoding="utf-8")
    # GitHub's anchors: the heading in lower case, spaces to dashes, punctuation dropped.
    anchors = {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
               for title in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links
    assert [link for link in links if link not in anchors] == []
