"""Fast source checks of the book's chapters, the faults the browser test (tests/test_book.py)
finds only after a full build: a visible code line wider than the text column, and a control
character in the text (a LaTeX string written without ``r"..."`` turns ``\\alpha`` into BEL +
``lpha``, which MathJax cannot typeset and the notebook export carries along)."""
import re
from pathlib import Path

import pytest
import yaml

BOOK = Path(__file__).resolve().parents[1] / "book"
COLUMN = 76
"""The project's limit for a visible code line: what fits the text column at a 1280-pixel window
in the browser test, with a character to spare for fonts that run wider."""
HIDDEN = {"remove-cell", "remove-input"}
"""Tags whose cell source the reader never sees (``hide-input`` is shown when expanded)."""
FENCE = re.compile(r"^```\{code-cell\}")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def chapters() -> list[Path]:
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    names = [toc["root"]] + [entry["file"] for entry in toc["chapters"]]
    return [BOOK / f"{name}.md" for name in names]


def code_cells(text: str) -> list[tuple[int, set[str], list[str]]]:
    """(first line number, tags, source lines) of every ``{code-cell}`` of a MyST chapter."""
    cells, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if not FENCE.match(lines[i]):
            i += 1
            continue
        start, i, tags, body = i + 1, i + 1, set(), []
        while i < len(lines) and lines[i].startswith(":"):   # :tags: [...] and other options
            if lines[i].startswith(":tags:"):
                tags |= {t.strip() for t in lines[i].split(":", 2)[2].strip(" []").split(",") if t.strip()}
            i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append((i + 1, lines[i]))
            i += 1
        cells.append((start, tags, body))
        i += 1
    return cells


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_visible_code_fits_the_column(chapter):
    wide = [f"{chapter.name}:{n}: {len(line)} characters: {line.strip()[:60]}"
            for _, tags, body in code_cells(chapter.read_text()) if not tags & HIDDEN
            for n, line in body if len(line) > COLUMN]
    assert not wide, "\n".join(wide)


@pytest.mark.parametrize("chapter", sorted(BOOK.glob("*.md")), ids=lambda p: p.stem)
def test_chapter_has_no_control_characters(chapter):
    found = [f"{chapter.name}:{n}: {CONTROL.search(line).group()!r} in {line.strip()[:60]!r}"
             for n, line in enumerate(chapter.read_text().splitlines(), 1) if CONTROL.search(line)]
    assert not found, "\n".join(found)


def test_the_lint_sees_cells_and_tags():
    """The parser finds a hidden and a visible cell, and a wide line in the visible one only."""
    text = "\n".join(["```{code-cell} ipython3", ":tags: [remove-cell]", "x" * 90, "```", "",
                      "```{code-cell} ipython3", "y = 1", "z" * 80, "```"])
    cells = code_cells(text)
    assert [(tags, len(body)) for _, tags, body in cells] == [({"remove-cell"}, 1), (set(), 2)]
    assert [len(line) for _, tags, body in cells if not tags & HIDDEN for _, line in body] == [5, 80]
    assert CONTROL.search("\x07lpha") and not CONTROL.search("\\alpha\tx")
