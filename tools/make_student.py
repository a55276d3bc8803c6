"""Student versions of the chapter notebooks, and their grading, by nbgrader's own pipeline.

``python tools/make_student.py`` (``make student``) builds an nbgrader course in ``_build/nbgrader``
with one assignment per chapter, named after its notebook (``02-residual-reformulation``, ...),
runs ``nbgrader generate_assignment`` on each and copies the released notebooks to
``_build/student/``.  nbgrader replaces every ``### BEGIN SOLUTION`` region of a code cell by
``raise NotImplementedError()`` and every ``{solution}`` answer cell (its block wrapped in
``<!-- ### BEGIN SOLUTION -->`` markers by ``tools/sync_notebooks.py``) by "YOUR ANSWER HERE",
locks the statements and the autograded check cells and records their checksums in the course's
gradebook.  The cells that explain a code exercise's solution (tagged ``solution-explanation``)
are left out, and the book's tags that hide solutions behind a toggle are dropped.

``python tools/make_student.py autograde [CHAPTER ...]`` (``make autograde``) grades what sits in
``_build/nbgrader/submitted/<student>/<assignment>/`` (every assignment with submissions, or the
chapters named by number or assignment name) with ``nbgrader autograde``, under the settings of
``nbgrader_config.py`` (the ``smoke`` budget, a cell timeout that fits a busy 2-core machine), and
prints each submission's score.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "student"
COURSE = ROOT / "_build" / "nbgrader"
EXPLANATION_TAG = "solution-explanation"  # see tools/sync_notebooks.py
BOOK_TAGS = ("solution", "hide-input")


def chapters() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def assignment_name(notebook: Path) -> str:
    """One assignment per chapter, named after its notebook: ``02-residual-reformulation``."""
    return notebook.stem


def resolve(chapter: str) -> str:
    """An assignment name from ``2``, ``02``, ``02-residual-reformulation`` or its notebook's file name."""
    names = [assignment_name(p) for p in chapters()]
    stem = Path(chapter).stem
    if stem in names:
        return stem
    if stem.isdigit():
        hits = [n for n in names if n.split("-", 1)[0].lstrip("0") == stem.lstrip("0")]
        if len(hits) == 1:
            return hits[0]
    raise SystemExit(f"no chapter {chapter!r}: give a number (1-{len(names)}) or one of {', '.join(names)}")


def nbgrader(course: Path, *args: str, env: dict | None = None, timeout: float = 3600) -> subprocess.CompletedProcess:
    """Run one nbgrader command on the course at ``course`` (its gradebook is ``course/gradebook.db``),
    with the repository's ``nbgrader_config.py`` (cell timeout, budget) read from the course folder."""
    bindir = Path(sys.executable).parent  # nbgrader calls `alembic` from PATH
    env = {**os.environ, **(env or {}), "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    course.mkdir(parents=True, exist_ok=True)
    config = course / "nbgrader_config.py"
    if not config.exists() or config.read_text() != (ROOT / "nbgrader_config.py").read_text():
        shutil.copy(ROOT / "nbgrader_config.py", config)
    cmd = [str(bindir / "nbgrader"), *args, f"--CourseDirectory.root={course}",
           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"]
    r = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}")
    return r


def source_version(path: Path, target: Path) -> None:
    """The instructor's notebook as nbgrader's source: without the cells that explain a code
    solution (a student notebook holds no answer cell under a code exercise)."""
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if EXPLANATION_TAG not in c.metadata.get("tags", [])]
    nbformat.write(answers_after_statements(nb), target)


def _grade_id(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def answers_after_statements(nb):
    """Each discussion exercise's answer cell right after its statement (the book may put two
    statements first and their solutions after both)."""
    answers = {_grade_id(c).removeprefix("answer-"): c for c in nb.cells if _grade_id(c).startswith("answer-")}
    stated = {_grade_id(c).removeprefix("statement-") for c in nb.cells if _grade_id(c).startswith("statement-")}
    cells = []
    for c in nb.cells:
        if _grade_id(c).removeprefix("answer-") in stated and _grade_id(c).startswith("answer-"):
            continue  # placed after its statement
        cells.append(c)
        if _grade_id(c).startswith("statement-") and _grade_id(c).removeprefix("statement-") in answers:
            cells.append(answers[_grade_id(c).removeprefix("statement-")])
    nb.cells = cells
    return nb


def generate(notebooks: list[Path], course: Path, assignment: str) -> Path:
    """``nbgrader generate_assignment`` of one assignment holding ``notebooks``; returns its release folder."""
    source = course / "source" / assignment
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for nb in notebooks:
        source_version(nb, source / nb.name)
    nbgrader(course, "generate_assignment", assignment, "--force")
    return course / "release" / assignment


def untag(path: Path, target: Path) -> None:
    """Copy a released notebook without the book's solution-hiding tags."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = [t for t in cell.metadata.get("tags", []) if t not in BOOK_TAGS
                or "colab-setup" in cell.metadata.get("tags", [])]
        if "tags" in cell.metadata:
            cell.metadata["tags"] = tags
        if cell.metadata.get("mystnb", {}).get("code_prompt_show") == "Show solution":
            del cell.metadata["mystnb"]
    nbformat.write(nb, target)


def release(course: Path = COURSE, out: Path = OUT) -> list[Path]:
    """Every chapter as its own assignment; the student notebooks in ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    made = []
    for chapter in chapters():
        folder = generate([chapter], course, assignment_name(chapter))
        for path in sorted(folder.glob("*.ipynb")):
            untag(path, out / path.name)
            made.append(out / path.name)
    return made


def submitted(course: Path) -> list[str]:
    """The assignments that have at least one submission."""
    return sorted({p.name for p in course.glob("submitted/*/*") if p.is_dir() and any(p.glob("*.ipynb"))})


def scores(course: Path, assignment: str) -> list[tuple[str, str, float, float, bool]]:
    """``(student, notebook, score, max score, needs manual grading)`` for every graded submission."""
    from nbgrader.api import Gradebook

    out = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(assignment):
            for nb in sub.notebooks:
                out.append((sub.student_id, nb.name, nb.score, nb.max_score, nb.needs_manual_grade))
    return out


def autograde(course: Path, assignments: list[str]) -> str:
    """``nbgrader autograde`` of each assignment; prints the scores, returns nbgrader's log."""
    log = []
    for assignment in assignments:
        r = nbgrader(course, "autograde", assignment, "--force")
        log.append(r.stdout + r.stderr)
        for student, notebook, score, top, manual in scores(course, assignment):
            print(f"{assignment}  {student:<20} {notebook}: {score:g} of {top:g} points"
                  + ("  (answer cells still to grade by hand)" if manual else ""))
    return "\n".join(log)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command")
    sub.add_parser("release", help="make the student notebooks (the default)")
    grade = sub.add_parser("autograde", help="autograde the submissions under _build/nbgrader/submitted/")
    grade.add_argument("chapters", nargs="*", help="chapter numbers or assignment names (default: all submitted)")
    args = ap.parse_args(argv)
    if args.command == "autograde":
        assignments = [resolve(c) for c in args.chapters] or submitted(COURSE)
        if not assignments:
            raise SystemExit(f"nothing to grade: put each student's notebook in "
                             f"{(COURSE / 'submitted').relative_to(ROOT)}/<student>/<assignment>/ "
                             f"(assignments: {', '.join(assignment_name(p) for p in chapters())})")
        autograde(COURSE, assignments)
        return 0
    made = release()
    print(f"{len(made)} student notebook(s) in {OUT.relative_to(ROOT)}, one nbgrader assignment per chapter in "
          f"{COURSE.relative_to(ROOT)}: {', '.join(assignment_name(p) for p in chapters())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
