"""Keep every notebook's Colab cells identical and derived from `_config.yml`.

Each notebook (in notebooks/ and book/) gets, right after its title cell:
* a markdown cell tagged ``colab-badge``: an "Open in Colab" badge for that notebook;
* a code cell tagged ``colab-setup``: in Colab it clones the repository at ``resnet_book.install_ref``
  (shallow), installs the library from the clone and points ``RESNET_BOOK_RESULTS`` at the clone's
  stored results; elsewhere it does nothing.  The badge, the book's launch button
  (``repository.branch``) and this cell name the same ref; a test checks that the ref exists.

Exercise cells are laid out for nbgrader, derived from the cells themselves (so it stays true when
exercises are added):
* ``{exercise}`` and ``{solution}`` blocks are fenced with colons (``:::{exercise}``; the book renders
  them as before, and Jupyter shows their text instead of a raw code block);
* every ``{solution}`` block is a markdown cell of its own, and no markdown cell holds two
  ``{exercise}`` statements: the statement cell is *read-only* for nbgrader (locked);
* a code cell with ``### BEGIN SOLUTION`` / ``### END SOLUTION`` is a *solution* cell (``grade_id``
  = the label of the exercise above it), tagged ``solution`` and ``hide-input`` so the rendered book
  shows it behind a "Show solution" toggle;
* the code cell after it, which calls ``exercises.check_*``, is an *autograded test* cell, locked,
  worth the points of ``POINTS`` (1 if none);
* the ``{solution}`` cell of a discussion exercise is a manually graded *answer* cell (1 point), its
  block wrapped in ``<!-- ### BEGIN SOLUTION -->`` / ``<!-- ### END SOLUTION -->`` (HTML comments:
  invisible in the book and in Jupyter), so nbgrader replaces it by "YOUR ANSWER HERE";
* the ``{solution}`` cell that explains a code exercise (graded by its check) is tagged
  ``solution-explanation``; ``tools/make_student.py`` drops it from the student notebooks.
So a student notebook shows each exercise as its read-only statement followed by its own answer
cell: the code to write (then the locked check), or "YOUR ANSWER HERE".
Code cells that draw a figure with ``resnet_book.plots`` get alt text (``mystnb.image.alt``: the
figure's ``title=``, else the section it is in), so the book's images are not described by a hash.
Outputs are stripped. ``--check`` changes nothing and exits 1 if a notebook is out of date.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]


def settings() -> tuple[str, str]:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    return cfg["repository"]["url"].rstrip("/"), cfg["resnet_book"]["install_ref"]


CLONE = "/content/resnet-book"


def setup_source() -> str:
    url, ref = settings()
    return (
        "# Colab setup (the same in every notebook; written by `make sync-notebooks`).\n"
        f"# In Google Colab this fetches the book at `{ref}` (the library and its stored results) and\n"
        "# installs the library; elsewhere it does nothing.\n"
        "import os, subprocess, sys\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    clone = \"{CLONE}\"\n"
        "    if not os.path.isdir(clone):\n"
        "        subprocess.run([\"git\", \"clone\", \"-q\", \"--depth\", \"1\", \"--branch\",\n"
        f"                        \"{ref}\", \"{url}\", clone], check=True)\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", clone], check=True)\n"
        "    os.environ[\"RESNET_BOOK_RESULTS\"] = os.path.join(clone, \"data\", \"results\")"
    )


def badge_source(path: Path) -> str:
    url, ref = settings()
    slug = url.split("github.com/", 1)[1]
    rel = path.resolve().relative_to(ROOT).as_posix()
    # The badge image is served by the book itself (no request leaves the site).
    image = Path("../" * (len(Path(rel).parts) - 1) + "book/images/colab-badge.svg").as_posix()
    if rel.startswith("book/"):
        image = "images/colab-badge.svg"
    return (f"[![Open in Colab]({image})]"
            f"(https://colab.research.google.com/github/{slug}/blob/{ref}/{rel})")


BEGIN_MD, END_MD = "<!-- ### BEGIN SOLUTION -->", "<!-- ### END SOLUTION -->"
DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<kind>exercise|solution)\}(?P<rest>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
                       re.S | re.M)
SOLUTION_BLOCK = re.compile(r"^(`{3,}|:{3,})\{solution\}.*?^\1[ \t]*$", re.S | re.M)
EXERCISE_BLOCK = re.compile(r"^(`{3,}|:{3,})\{exercise\}.*?^\1[ \t]*$", re.S | re.M)
LABEL = re.compile(r"^:label:\s*(\S+)", re.M)
SOLUTION_LABEL = re.compile(r"\{solution\}\s*(\S+)")
SOLUTION_TAGS = ("solution", "hide-input")
# A {solution} block that explains a code exercise (its check grades the code): dropped from the
# student notebooks by tools/make_student.py, so no answer cell sits under a code exercise.
EXPLANATION_TAG = "solution-explanation"
# Points of the autograded checks (default 1): the exercises marked two or three stars on the
# instructors' page (book/for-instructors.md).
POINTS = {"ex1-identity": 2, "ex2-zero": 2, "ex3-lesion": 2, "ex5-params": 2,
          "ex2-build-block": 2, "ex2-build-resnet": 3, "ex4-build-bottleneck": 2,
          "ex5-padded-zero": 2, "ex6-jpeg": 2}


def _nbgrader(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if grade:
        meta["points"] = points
    return meta


def colon_fences(source: str) -> str:
    """``{exercise}`` and ``{solution}`` blocks fenced with colons (MyST's colon fence, which the
    book renders the same): Jupyter shows their text as Markdown, not as a raw code block."""
    def fence(m: re.Match) -> str:
        inner = [len(x) for x in re.findall(r"^(:{3,})", m["body"], re.M)]
        colons = ":" * max(3, max(inner, default=0) + 1)
        body = m["body"] if m["body"].endswith("\n") or not m["body"] else m["body"] + "\n"
        return f"{colons}{{{m['kind']}}}{m['rest']}\n{body}{colons}"
    return DIRECTIVE.sub(fence, source)


def split_exercise_cell(source: str) -> list[tuple[str, str]]:
    """A markdown cell's text in pieces ``(kind, text)``: every ``{solution}`` block alone
    (``"solution"``), and the rest cut so that no piece holds two ``{exercise}`` statements
    (``"text"``); empty pieces are dropped."""
    source = "\n".join(line for line in source.split("\n") if line not in (BEGIN_MD, END_MD))
    source = colon_fences(source)
    pieces, pos = [], 0
    for m in SOLUTION_BLOCK.finditer(source):
        pieces.append(("text", source[pos:m.start()]))
        pieces.append(("solution", m.group(0)))
        pos = m.end()
    pieces.append(("text", source[pos:]))
    out = []
    for kind, text in pieces:
        if kind == "text":
            starts = [m.start() for m in EXERCISE_BLOCK.finditer(text)][1:]
            for a, b in zip([0, *starts], [*starts, len(text)]):
                out.append(("text", text[a:b]))
        else:
            out.append((kind, text))
    return [(kind, text.strip("\n")) for kind, text in out if text.strip()]


def split_exercise_cells(nb) -> None:
    """Each exercise's statement and each solution in a cell of its own (idempotent)."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "markdown" or ("{solution}" not in cell.source and "{exercise}" not in cell.source):
            cells.append(cell)
            continue
        for n, (_, text) in enumerate(split_exercise_cell(cell.source)):
            piece = copy.deepcopy(cell) if n == 0 else nbformat.v4.new_markdown_cell(
                metadata={k: copy.deepcopy(v) for k, v in cell.metadata.items() if k == "tags"})
            piece.source = text
            cells.append(piece)
    nb.cells = cells


def _set_tags(cell, add=(), remove=()) -> None:
    tags = [t for t in cell.metadata.get("tags", []) if t not in remove and t not in add] + list(add)
    if tags:
        cell.metadata["tags"] = tags
    else:
        cell.metadata.pop("tags", None)


def grading_metadata(nb) -> None:
    """nbgrader metadata on the exercise cells (see the module's docstring); other cells lose it."""
    split_exercise_cells(nb)
    label = None
    solution_ids, code_labels, last = set(), set(), None
    for cell in nb.cells:  # the labels of the code exercises
        if cell.cell_type == "markdown":
            last = (LABEL.findall(cell.source) or [last])[-1]
        elif "### BEGIN SOLUTION" in cell.source and last:
            code_labels.add(last)
    for i, cell in enumerate(nb.cells):
        old = cell.metadata.pop("nbgrader", {})
        if cell.cell_type == "markdown":
            labels = LABEL.findall(cell.source)
            _set_tags(cell, remove=(EXPLANATION_TAG,))
            if SOLUTION_BLOCK.search(cell.source):
                (answered,) = SOLUTION_LABEL.findall(cell.source)
                if answered in code_labels:  # explained here, graded by its check
                    _set_tags(cell, add=(EXPLANATION_TAG,))
                else:  # a manually graded answer cell (nbgrader grades markdown solution cells)
                    cell.source = f"{BEGIN_MD}\n{cell.source}\n{END_MD}"
                    cell.metadata["nbgrader"] = _nbgrader(f"answer-{answered}", solution=True, grade=True,
                                                          locked=False, points=1)
            elif EXERCISE_BLOCK.search(cell.source):  # the statement: read-only in the student notebook
                (stated,) = LABEL.findall(EXERCISE_BLOCK.search(cell.source).group(0)) or [f"cell-{i}"]
                cell.metadata["nbgrader"] = _nbgrader(f"statement-{stated}", solution=False, grade=False,
                                                      locked=True)
            label = labels[-1] if labels else label
            continue
        if "### BEGIN SOLUTION" in cell.source:
            if label is None or label in solution_ids:
                raise SystemExit(f"cell {i}: a code solution needs its own {{exercise}} (with a :label:) above it")
            solution_ids.add(label)
            cell.metadata["nbgrader"] = _nbgrader(label, solution=True, grade=False, locked=False)
            _set_tags(cell, add=SOLUTION_TAGS)
            cell.metadata["mystnb"] = {"code_prompt_show": "Show solution", "code_prompt_hide": "Hide solution"}
            check = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
            if check is None or check.cell_type != "code" or "exercises.check_" not in check.source:
                raise SystemExit(f"cell {i + 1}: the cell after a code solution must call its exercises.check_*")
            check.metadata["nbgrader"] = _nbgrader(f"{label}-check", solution=False, grade=True, locked=True,
                                                   points=POINTS.get(label, 1))
        elif old.get("grade") and "exercises.check_" in cell.source:
            cell.metadata["nbgrader"] = old  # set by the solution cell above; keep it
        elif "solution" in cell.metadata.get("tags", []):  # no longer a solution: undo what was set above
            _set_tags(cell, remove=SOLUTION_TAGS)
            cell.metadata.pop("mystnb", None)


FIGURE_CALL = re.compile(r"\bplots\.(\w+)\(")
NOT_FIGURES = {"provenance_line", "depth_key", "budget_note", "scale_name", "stratum", "style", "require_runs"}
TITLE = re.compile(r"""\btitle=(f?)("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")
HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.M)


def figure_alt(source: str, section: str | None) -> str | None:
    """Alt text for the figure a code cell draws with ``resnet_book.plots``: its ``title=`` (an
    f-string's fields shown as "…"), else the section it is drawn in; None if it draws none."""
    drawn = [f for f in FIGURE_CALL.findall(source) if f not in NOT_FIGURES]
    if not drawn:
        return None
    m = TITLE.search(source)
    if m:
        text = m.group(2)[1:-1].replace('\\"', '"').replace("\\'", "'")
        if m.group(1):
            text = re.sub(r"\{[^{}]*\}", "…", text)
        return f"Figure: {text}"
    where = f" in the section \u201c{section}\u201d" if section else ""
    return f"Figure{where}, drawn by resnet_book.plots.{drawn[-1]}"


def figure_alt_text(nb) -> None:
    """Figures drawn by the library get alt text (myst-nb's ``mystnb.image.alt``), not the image's hash."""
    section = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            headings = HEADING.findall(cell.source)
            section = headings[-1].strip() if headings else section
            continue
        mystnb = cell.metadata.get("mystnb", {})
        image = {k: v for k, v in mystnb.get("image", {}).items() if k != "alt"}
        alt = figure_alt(cell.source, section)
        if alt:
            image["alt"] = alt
        if image:
            mystnb["image"] = image
        else:
            mystnb.pop("image", None)
        if mystnb:
            cell.metadata["mystnb"] = mystnb
        else:
            cell.metadata.pop("mystnb", None)


def notebooks() -> list[Path]:
    return sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("book/*.ipynb")])


def _tagged(nb, tag):
    return [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]


def synced(path: Path):
    nb = nbformat.read(path, as_version=4)
    for tag in ("colab-badge", "colab-setup"):
        for i in reversed(_tagged(nb, tag)):
            del nb.cells[i]
    # The title stands alone in the first cell, so the badge sits right under it.
    title, _, rest = nb.cells[0].source.partition("\n")
    if rest.strip():
        nb.cells[0].source = title
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(rest.strip()))
    badge = nbformat.v4.new_markdown_cell(badge_source(path), metadata={"tags": ["colab-badge"]})
    setup = nbformat.v4.new_code_cell(setup_source(), metadata={"tags": ["colab-setup", "hide-input"]})
    nb.cells[1:1] = [badge, setup]
    grading_metadata(nb)
    figure_alt_text(nb)
    for c in nb.cells:
        c.pop("id", None)
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nb.nbformat_minor = 4  # no cell ids: stable diffs
    return nb


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    stale = []
    for path in notebooks():
        new = nbformat.writes(synced(path)) + "\n"
        if path.read_text() != new:
            stale.append(path)
            if not ap.parse_args().check:
                path.write_text(new)
    if stale and ap.parse_args().check:
        print("out of date (run `make sync-notebooks`): " + ", ".join(str(p.relative_to(ROOT)) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
