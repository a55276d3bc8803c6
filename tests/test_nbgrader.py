"""nbgrader round trip (issue 14): the chapters carry real nbgrader metadata, `nbgrader
generate_assignment` makes student versions with no solution text left (code or prose), and
`nbgrader autograde` gives the solutions full marks and the untouched student version zero.

Autograding executes notebooks. Whole chapters take minutes each on a 2-core CPU (the chapter's
live cells), so autograde runs on each chapter's exercise section (its cells from "## Exercises"
on, after one cell with the imports the solutions use); `test_student_notebooks_run_up_to_the_exercises`
(test_exercises.py) runs the whole student chapters.
"""
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "notebooks").glob("*.ipynb"))
sys.path.insert(0, str(REPO / "tools"))
import make_student  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("nbgrader", path=str(Path(sys.executable).parent)) is None,
                                reason="nbgrader is not installed (pip install -e '.[test]')")
CODE_REGION = re.compile(r"### BEGIN SOLUTION.*?### END SOLUTION", re.S)
PROSE_REGION = re.compile(r"<!-- ### BEGIN SOLUTION -->.*?<!-- ### END SOLUTION -->", re.S)


def _meta(cell):
    return cell.metadata.get("nbgrader", {})


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_student.generate(CHAPTERS, tmp_path_factory.mktemp("course"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_exercise_cells_carry_nbgrader_metadata(path):
    cells = nbformat.read(path, as_version=4).cells
    ids = [_meta(c)["grade_id"] for c in cells if _meta(c)]
    assert len(ids) == len(set(ids)), "grade ids must be unique"
    for i, c in enumerate(cells):
        if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source:
            assert _meta(c)["solution"] and not _meta(c)["grade"]
            check = _meta(cells[i + 1])
            assert check["grade"] and check["locked"] and not check["solution"] and check["points"] >= 1
        if "{solution}" in c.source:
            assert c.cell_type == "markdown" and _meta(c)["solution"] and _meta(c)["grade"]
            assert c.source.count("{solution}") == c.source.count("<!-- ### BEGIN SOLUTION -->")
        if not _meta(c):
            assert "BEGIN SOLUTION" not in c.source


def _solution_lines(nb) -> set[str]:
    """Substantial lines that occur only inside solution regions."""
    text = "\n".join(c.source for c in nb.cells)
    outside = set(PROSE_REGION.sub("", CODE_REGION.sub("", text)).splitlines())
    inside = {line.strip() for region in (*CODE_REGION.findall(text), *PROSE_REGION.findall(text))
              for line in region.splitlines()}
    return {line for line in inside if len(line) >= 12 and "SOLUTION" not in line
            and not any(line in o for o in outside) and line not in ("```", ":class: dropdown")}


def test_generate_assignment_leaves_no_solution_text(release):
    for path in CHAPTERS:
        full = nbformat.read(path, as_version=4)
        student = nbformat.read(release / path.name, as_version=4)
        assert len(student.cells) == len(full.cells)
        text = "\n".join(c.source for c in student.cells)
        assert "SOLUTION" not in text and "{solution}" not in text, path.name
        leaked = [line for line in _solution_lines(full) if line in text]
        assert not leaked, f"{path.name}: solution text survives in the student version: {leaked[:3]}"
        n_code = sum(c.source.count("### BEGIN SOLUTION") for c in full.cells if c.cell_type == "code")
        n_prose = sum("{solution}" in c.source for c in full.cells)
        assert text.count("raise NotImplementedError()") == n_code
        assert n_prose and text.count("YOUR ANSWER HERE") == full_prose_regions(full)
        assert text.count("{exercise}") == "\n".join(c.source for c in full.cells).count("{exercise}")
        assert all(c.metadata["nbgrader"]["locked"] for c in student.cells if _meta(c).get("grade") and c.cell_type == "code")


def full_prose_regions(nb) -> int:
    return sum(c.source.count("<!-- ### BEGIN SOLUTION -->") for c in nb.cells)


def exercise_section(path: Path, target: Path) -> None:
    """The chapter's exercise section as a notebook: the imports the solutions use, then every cell
    from the "## Exercises" heading on (metadata and all, as nbgrader sees them)."""
    nb = nbformat.read(path, as_version=4)
    start = next(i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and re.search(r"^## Exercises", c.source, re.M))
    setup = nbformat.v4.new_code_cell("import torch\nfrom resnet_book import analysis, exercises")
    setup.pop("id", None)
    nb.cells = [setup, *nb.cells[start:]]
    nbformat.write(nb, target)


def test_autograde_gives_solutions_full_marks_and_the_untouched_version_zero(tmp_path):
    from nbgrader.api import Gradebook

    course, sections = tmp_path / "course", tmp_path / "sections"
    sections.mkdir()
    for path in CHAPTERS:
        exercise_section(path, sections / path.name)
    release = make_student.generate(sorted(sections.glob("*.ipynb")), course, "exercises")
    for student, folder in (("instructor", sections), ("untouched", release)):
        target = course / "submitted" / student / "exercises"
        target.mkdir(parents=True)
        for nb in folder.glob("*.ipynb"):
            shutil.copy(nb, target / nb.name)
    make_student.nbgrader(course, "autograde", "exercises", "--force", "--Execute.timeout=600")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for path in CHAPTERS:
            full = gb.find_submission_notebook(path.stem, "exercises", "instructor")
            blank = gb.find_submission_notebook(path.stem, "exercises", "untouched")
            assert full.max_code_score >= 2, path.name
            assert full.code_score == full.max_code_score, f"{path.name}: a solution fails its check"
            assert blank.code_score == 0 and blank.written_score == 0, path.name
            assert full.needs_manual_grade  # the written answers are graded by hand
