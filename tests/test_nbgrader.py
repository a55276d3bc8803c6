"""nbgrader round trip (issues 14 and 24): the chapters carry real nbgrader metadata, `nbgrader
generate_assignment` makes student versions with no solution text left (code or prose), one
assignment per chapter, where every exercise is its read-only statement followed by its own answer
cell, and `nbgrader autograde` gives right answers full marks and wrong or untouched ones zero.

Autograding executes notebooks. Whole chapters take minutes each on a 2-core CPU (the chapter's
live cells), so autograde runs on a chapter's exercise section (its cells from "## Exercises" on,
after one cell with the imports the solutions use); `test_student_notebooks_run_up_to_the_exercises`
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
import sync_notebooks  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("nbgrader", path=str(Path(sys.executable).parent)) is None,
                                reason="nbgrader is not installed (pip install -e '.[test]')")
CODE_REGION = re.compile(r"### BEGIN SOLUTION.*?### END SOLUTION", re.S)
PROSE_REGION = sync_notebooks.SOLUTION_BLOCK  # every {solution} block, answer or explanation
EXPLANATION = sync_notebooks.EXPLANATION_TAG


def _meta(cell):
    return cell.metadata.get("nbgrader", {})


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
        if c.cell_type == "markdown":
            # {exercise}/{solution} blocks are colon-fenced: Jupyter shows their text, not a code block
            assert not re.search(r"^`{3,}\{(exercise|solution)\}", c.source, re.M), f"cell {i}"
            n_solutions, n_statements = c.source.count("{solution}"), c.source.count("{exercise}")
            assert n_solutions + n_statements <= 1, f"cell {i}: one statement or one solution per cell"
            if n_statements:
                assert _meta(c) == {**_meta(c), "locked": True, "solution": False, "grade": False}, f"cell {i}"
            if n_solutions and EXPLANATION in c.metadata.get("tags", []):
                assert not _meta(c) and "BEGIN SOLUTION" not in c.source
            elif n_solutions:
                assert _meta(c)["solution"] and _meta(c)["grade"] and _meta(c)["points"] == 1
                assert c.source.startswith("<!-- ### BEGIN SOLUTION -->")
        if not _meta(c):
            assert "BEGIN SOLUTION" not in c.source


def test_check_points_follow_the_stars_on_the_instructors_page():
    """A code exercise's check is worth as many points as the instructors' page gives it stars
    ("Each check is worth 1 point (2 or 3 for the exercises with two or three stars)"), and the
    page lists every exercise of the notebooks."""
    page = (REPO / "book" / "for-instructors.md").read_text()
    listed = {}  # the exercise list: "- **2.2 Title**: code, ★★☆, 15 min; ..." (stars on its first two lines)
    for m in re.finditer(r"^- \*\*(\d\.\d) [^\n★☆]*(?:\n[^\n★☆]*)?([★☆]{3})", page, re.M):
        listed.setdefault(m[1], m[2].count("★"))
    for path in CHAPTERS:
        cells = nbformat.read(path, as_version=4).cells
        for i, c in enumerate(cells):
            statement = re.search(r"\{exercise\} (\d\.\d) .*?^:label: (\S+)", c.source, re.M | re.S)
            if c.cell_type != "markdown" or not statement:
                continue
            number, label = statement.groups()
            assert number in listed, f"exercise {number} is missing from book/for-instructors.md"
            checks = [_meta(d)["points"] for d in cells if _meta(d).get("grade_id") == f"{label}-check"]
            if checks:
                assert checks == [listed[number]], f"exercise {number}: points and stars differ"


def test_sync_splits_cells_and_fences_with_colons():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_markdown_cell("## Exercises\n\n```{exercise} 9.1 Code\n:label: ex9-code\n\nWrite f.\n```"),
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
        nbformat.v4.new_code_cell("exercises.check_f(f)"),
        nbformat.v4.new_markdown_cell("````{solution} ex9-code\n:class: dropdown\n\n```python\nf()\n```\n````\n\n"
                                      "```{exercise} 9.2 Talk\n:label: ex9-talk\n\nWhy?\n```\n\n"
                                      "```{exercise} 9.3 More\n:label: ex9-more\n\nHow?\n```\n\n"
                                      "```{solution} ex9-talk\nBecause.\n```\n\n```{solution} ex9-more\nSo.\n```")])
    sync_notebooks.grading_metadata(nb)
    kinds = [(c.cell_type, _meta(c).get("grade_id"), EXPLANATION in c.metadata.get("tags", [])) for c in nb.cells]
    assert kinds == [("markdown", None, False), ("markdown", "statement-ex9-code", False), ("code", "ex9-code", False),
                     ("code", "ex9-code-check", False), ("markdown", None, True),
                     ("markdown", "statement-ex9-talk", False), ("markdown", "statement-ex9-more", False),
                     ("markdown", "answer-ex9-talk", False), ("markdown", "answer-ex9-more", False)]
    assert nb.cells[4].source == ":::{solution} ex9-code\n:class: dropdown\n\n```python\nf()\n```\n:::"
    assert nb.cells[7].source == "<!-- ### BEGIN SOLUTION -->\n:::{solution} ex9-talk\nBecause.\n:::\n<!-- ### END SOLUTION -->"
    again = [c.source for c in nb.cells]
    sync_notebooks.grading_metadata(nb)
    assert [c.source for c in nb.cells] == again, "sync must be idempotent"


def _solution_lines(nb) -> set[str]:
    """Substantial lines that occur only inside solution regions."""
    text = "\n".join(c.source for c in nb.cells)
    outside = set(PROSE_REGION.sub("", CODE_REGION.sub("", text)).splitlines())
    inside = {line.strip() for region in (*CODE_REGION.findall(text), *PROSE_REGION.findall(text))
              for line in region.splitlines()}
    return {line for line in inside if len(line) >= 12 and "SOLUTION" not in line
            and not any(line in o for o in outside) and line not in ("```", ":class: dropdown")}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """`make student` into a temporary course: one assignment per chapter."""
    tmp = tmp_path_factory.mktemp("student")
    made = make_student.release(tmp / "course", tmp / "student")
    assert [p.name for p in made] == [p.name for p in CHAPTERS]
    for path in CHAPTERS:  # one notebook per assignment: a chapter's submission is graded alone
        assert [p.name for p in (tmp / "course" / "release" / path.stem).glob("*.ipynb")] == [path.name]
    return tmp / "student"


def test_generate_assignment_leaves_no_solution_text(release):
    for path in CHAPTERS:
        full = nbformat.read(path, as_version=4)
        student = nbformat.read(release / path.name, as_version=4)
        explanations = [c for c in full.cells if EXPLANATION in c.metadata.get("tags", [])]
        assert len(student.cells) == len(full.cells) - len(explanations)
        text = "\n".join(c.source for c in student.cells)
        assert "SOLUTION" not in text and "{solution}" not in text, path.name
        leaked = [line for line in _solution_lines(full) if line in text]
        assert not leaked, f"{path.name}: solution text survives in the student version: {leaked[:3]}"
        n_code = sum(c.source.count("### BEGIN SOLUTION") for c in full.cells if c.cell_type == "code")
        assert text.count("raise NotImplementedError()") == n_code
        assert text.count("YOUR ANSWER HERE") == full_prose_regions(full) > 0
        assert text.count("{exercise}") == "\n".join(c.source for c in full.cells).count("{exercise}")
        assert all(c.metadata["nbgrader"]["locked"] for c in student.cells if _meta(c).get("grade") and c.cell_type == "code")
        assert not [t for c in student.cells for t in c.metadata.get("tags", []) if t in ("solution", "hide-input")
                    and "colab-setup" not in c.metadata.get("tags", [])]


def test_each_exercise_is_its_statement_then_its_own_answer_cell(release):
    for path in CHAPTERS:
        cells = nbformat.read(release / path.name, as_version=4).cells
        for i, c in enumerate(cells):
            if "{exercise}" in c.source:
                assert c.cell_type == "markdown" and _meta(c)["locked"] and not _meta(c)["solution"], (path.name, i)
                label = _meta(c)["grade_id"].removeprefix("statement-")
                answer = cells[i + 1]
                assert _meta(answer).get("solution"), f"{path.name}: exercise {label} has no answer cell after it"
                if answer.cell_type == "code":  # a code exercise: its code, then its locked check
                    assert _meta(answer)["grade_id"] == label and "raise NotImplementedError()" in answer.source
                    assert _meta(cells[i + 2])["grade_id"] == f"{label}-check"
                    following = [d for d in cells[i + 3:i + 4] if "YOUR ANSWER HERE" in d.source]
                    assert not following, f"{path.name}: an answer cell under code exercise {label}"
                else:
                    assert _meta(answer)["grade_id"] == f"answer-{label}" and answer.source == "YOUR ANSWER HERE"
            if "YOUR ANSWER HERE" in c.source:
                assert "{exercise}" in cells[i - 1].source, f"{path.name} cell {i}: an answer cell without its statement"


def full_prose_regions(nb) -> int:
    return sum(c.source.count("<!-- ### BEGIN SOLUTION -->") for c in nb.cells)


def exercise_section(path: Path, target: Path) -> None:
    """The chapter's exercise section as a notebook: the chapter's imports (which the exercises
    use), then every cell from the "## Exercises" heading on (metadata and all, as nbgrader sees them)."""
    nb = nbformat.read(path, as_version=4)
    start = next(i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and re.search(r"^## Exercises", c.source, re.M))
    imports = [line for c in nb.cells if c.cell_type == "code" and "colab-setup" not in c.metadata.get("tags", [])
               for line in c.source.splitlines() if re.match(r"(import|from) \S+", line)]
    setup = nbformat.v4.new_code_cell("\n".join(dict.fromkeys(["import torch", "from resnet_book import exercises",
                                                                *imports])))
    setup.pop("id", None)
    nb.cells = [setup, *nb.cells[start:]]
    nbformat.write(nb, target)


ROUND_TRIP = next(p for p in CHAPTERS if p.name.startswith("02-"))  # code, build-it and discussion exercises


def _answered(source: Path, target: Path, right: int) -> None:
    """The instructor's notebook with only its first ``right`` code solutions kept; the others
    answered wrongly (their solution region replaced by ``pass``)."""
    nb = nbformat.read(source, as_version=4)
    n = 0
    for c in nb.cells:
        if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source:
            if n >= right:
                c.source = re.sub(r"^([ \t]*)### BEGIN SOLUTION.*?### END SOLUTION", r"\1pass", c.source, flags=re.S | re.M)
            n += 1
    nbformat.write(nb, target)


def test_autograde_round_trip_of_one_chapter(tmp_path):
    """generate_assignment, then autograde of one chapter's assignment: the right answers score
    full marks, wrong and untouched ones zero, one right answer its own points; the chapter is
    graded alone (another chapter's assignment in the course is not asked for), and what the
    graded notebooks record of a failed check is its message, no frame of the check."""
    from nbgrader.api import Gradebook

    course, sections = tmp_path / "course", tmp_path / "sections"
    sections.mkdir()
    other = CHAPTERS[-1]
    for path in (ROUND_TRIP, other):
        exercise_section(path, sections / path.name)
        make_student.generate([sections / path.name], course, path.stem)
    assignment = ROUND_TRIP.stem
    source = course / "source" / assignment / ROUND_TRIP.name
    released = course / "release" / assignment / ROUND_TRIP.name
    first_points = next(_meta(c)["points"] for c in nbformat.read(source, as_version=4).cells if _meta(c).get("grade"))
    submissions = {"right": lambda t: shutil.copy(source, t), "untouched": lambda t: shutil.copy(released, t),
                   "wrong": lambda t: _answered(source, t, 0), "one-right": lambda t: _answered(source, t, 1)}
    for student, write in submissions.items():
        target = course / "submitted" / student / assignment
        target.mkdir(parents=True)
        write(target / ROUND_TRIP.name)
    assert make_student.submitted(course) == [assignment]
    log = make_student.autograde(course, make_student.submitted(course))
    assert "missing" not in log.lower() and other.stem not in log, log[-2000:]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = {s: gb.find_submission_notebook(ROUND_TRIP.stem, assignment, s) for s in submissions}
        assert nb["right"].max_code_score >= 4
        assert nb["right"].code_score == nb["right"].max_code_score, "a solution fails its check"
        assert nb["right"].needs_manual_grade  # the written answers are graded by hand
        for student in ("untouched", "wrong"):
            assert nb[student].code_score == 0 and nb[student].written_score == 0, student
        assert nb["one-right"].code_score == first_points
    graded = nbformat.read(course / "autograded" / "wrong" / assignment / ROUND_TRIP.name, as_version=4)
    # a check cell records the check's message; a later cell that uses the wrong answer may fail
    # on it in the learner's own way (exercise 2.7 measures with the learner's function)
    errors = [o for c in graded.cells if "exercises.check_" in c.source
              for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and all(o.ename == "ExerciseError" for o in errors)
    for o in errors:
        shown = "\n".join(o.traceback)
        assert "exercises.py" not in shown and "Correct" not in shown and o.evalue in shown, shown


def test_sync_gives_figures_alt_text():
    """Figures drawn by resnet_book.plots get alt text from their title (myst-nb's
    `mystnb.image.alt`), else from their section; other cells get none."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Counting paths"),
        nbformat.v4.new_code_cell("plots.path_lengths(54)"),
        nbformat.v4.new_code_cell('fig = plots.fit_curves(fits, title=f"Fitting relu(x + {a} g(x))", note=note)'),
        nbformat.v4.new_code_cell("print(plots.provenance_line(runs))")])
    nb.cells[3].metadata["mystnb"] = {"image": {"alt": "stale"}}
    sync_notebooks.figure_alt_text(nb)
    alts = [c.metadata.get("mystnb", {}).get("image", {}).get("alt") for c in nb.cells]
    assert alts == [None, "Figure in the section \u201cCounting paths\u201d, drawn by resnet_book.plots.path_lengths",
                    "Figure: Fitting relu(x + \u2026 g(x))", None]
    for path in CHAPTERS:  # the chapters are synced: every figure cell has its alt text
        for c in nbformat.read(path, as_version=4).cells:
            if c.cell_type == "code" and sync_notebooks.figure_alt(c.source, None):
                assert c.metadata["mystnb"]["image"]["alt"].startswith("Figure"), (path.name, c.source[:80])


def test_a_chapter_is_named_by_number_or_assignment():
    second = CHAPTERS[1].stem
    for name in ("2", "02", second, f"notebooks/{second}.ipynb"):
        assert make_student.resolve(name) == second
    with pytest.raises(SystemExit, match=r"no chapter '9': give a number \(1-6\)"):
        make_student.resolve("9")
