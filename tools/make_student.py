"""Student versions of the chapter notebooks, made by nbgrader's own pipeline.

``python tools/make_student.py`` puts the chapters into an nbgrader course (``_build/nbgrader``,
assignment ``resnet-book``), runs ``nbgrader generate_assignment`` and copies the released
notebooks to ``_build/student/``.  nbgrader replaces every ``### BEGIN SOLUTION`` region of a code
cell by ``raise NotImplementedError()``, every ``{solution}`` block of a markdown cell (wrapped in
``<!-- ### BEGIN SOLUTION -->`` markers by ``tools/sync_notebooks.py``) by "YOUR ANSWER HERE",
locks the autograded check cells and records their checksums in the course's gradebook, so an
instructor can go on with ``nbgrader autograde resnet-book`` in ``_build/nbgrader``.  The book's
tags that hide solutions behind a toggle are dropped from the student copies.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "student"
COURSE = ROOT / "_build" / "nbgrader"
ASSIGNMENT = "resnet-book"


def chapters() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def nbgrader(course: Path, *args: str, env: dict | None = None, timeout: float = 3600) -> subprocess.CompletedProcess:
    """Run one nbgrader command on the course at ``course`` (its gradebook is ``course/gradebook.db``)."""
    bindir = Path(sys.executable).parent  # nbgrader calls `alembic` from PATH
    env = {**os.environ, **(env or {}), "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(bindir / "nbgrader"), *args, f"--CourseDirectory.root={course}",
           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"]
    r = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}")
    return r


def generate(notebooks: list[Path], course: Path, assignment: str = ASSIGNMENT) -> Path:
    """``nbgrader generate_assignment`` over ``notebooks``; returns the release folder."""
    source = course / "source" / assignment
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for nb in notebooks:
        shutil.copy(nb, source / nb.name)
    nbgrader(course, "generate_assignment", assignment, "--force")
    return course / "release" / assignment


def untag(path: Path, target: Path) -> None:
    """Copy a released notebook without the book's solution-hiding tags."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = [t for t in cell.metadata.get("tags", []) if t not in ("solution", "hide-input")
                or "colab-setup" in cell.metadata.get("tags", [])]
        if "tags" in cell.metadata:
            cell.metadata["tags"] = tags
        if cell.metadata.get("mystnb", {}).get("code_prompt_show") == "Show solution":
            del cell.metadata["mystnb"]
    nbformat.write(nb, target)


def main() -> int:
    COURSE.mkdir(parents=True, exist_ok=True)
    release = generate(chapters(), COURSE)
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    for path in sorted(release.glob("*.ipynb")):
        untag(path, OUT / path.name)
    print(f"{len(list(OUT.glob('*.ipynb')))} student notebook(s) in {OUT.relative_to(ROOT)} "
          f"(nbgrader course: {COURSE.relative_to(ROOT)}, assignment {ASSIGNMENT!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
