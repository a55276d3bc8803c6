"""The chapters' visible code reads like the science: short cells, wrangling in the library.

A *visible* code cell is one the rendered book shows in full: not tagged ``hide-input``,
``remove-input`` or ``remove-cell`` (presentation-only cells fold behind a toggle; solution cells
are tagged ``hide-input`` too).  Each visible cell is one scientific act of at most 12 non-blank
lines of at most 100 characters, and each notebook shows at most 60 % of the visible code it showed
before the rework (main 01e62ff, counted the same way).

The book wraps a long code line instead of scrolling it (_static/book.css).  Its code column holds
75 characters at 1280 px and 87 at 1440 px (measured in Chromium, 14-px monospace), so a visible
line of up to 100 characters takes at most two rows on a laptop screen; lines that fit in one row
everywhere would cost more lines than the cell budget above allows.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
HIDDEN = {"hide-input", "remove-input", "remove-cell"}
MAX_CELL_LINES = 12
MAX_LINE_CHARS = 100
SHARE = 0.60
# visible non-blank code lines per notebook at main 01e62ff, before the rework
BEFORE = {
    "notebooks/01-degradation.ipynb": 103,
    "notebooks/02-residual-reformulation.ipynb": 108,
    "notebooks/03-gradient-highway.ipynb": 169,
    "notebooks/04-bottleneck.ipynb": 129,
    "notebooks/05-projection-shortcuts.ipynb": 134,
    "notebooks/06-results.ipynb": 160,
    "book/reproducing.ipynb": 58,
}
NOTEBOOKS = sorted(str(p.relative_to(REPO)) for p in [*REPO.glob("notebooks/*.ipynb"), *REPO.glob("book/*.ipynb")])


def visible_cells(path: Path) -> list[tuple[int, int]]:
    """(cell index, non-blank lines) of every visible code cell."""
    nb = nbformat.read(path, as_version=4)
    return [(i, sum(1 for line in cell.source.splitlines() if line.strip()))
            for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and not HIDDEN & set(cell.metadata.get("tags", []))]


def test_every_notebook_has_a_budget():
    assert sorted(BEFORE) == NOTEBOOKS, "a new notebook needs its visible-code budget here"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_visible_cells_are_short(name):
    long = [(i, n) for i, n in visible_cells(REPO / name) if n > MAX_CELL_LINES]
    assert not long, f"{name}: visible code cells longer than {MAX_CELL_LINES} lines (cell, lines): {long}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_visible_lines_fit_the_code_column(name):
    nb = nbformat.read(REPO / name, as_version=4)
    wide = [(i, len(line)) for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and not HIDDEN & set(cell.metadata.get("tags", []))
            for line in cell.source.splitlines() if len(line) > MAX_LINE_CHARS]
    assert not wide, f"{name}: visible code lines longer than {MAX_LINE_CHARS} characters (cell, length): {wide}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_visible_code_shrank(name):
    total = sum(n for _, n in visible_cells(REPO / name))
    limit = int(SHARE * BEFORE[name])
    assert total <= limit, f"{name}: {total} visible code lines, more than {limit} ({SHARE:.0%} of {BEFORE[name]})"


def test_the_count_sees_tags(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("a = 1\n\nb = 2\n"),
        nbformat.v4.new_code_cell("x\n" * 20, metadata={"tags": ["hide-input"]}),
        nbformat.v4.new_markdown_cell("text\n" * 30),
    ])
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert visible_cells(tmp_path / "n.ipynb") == [(0, 2)]
