"""Write student versions of the chapter notebooks into _build/student/.

Uses the nbgrader markers: in code cells, everything between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` is replaced by ``raise NotImplementedError(...)``; in markdown cells, the
sphinx-exercise ``{solution}`` blocks are removed. Outputs are stripped. The instructor's notebooks
(with solutions) stay the source of truth; the student versions are build products.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "student"
SOLUTION_CODE = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)", re.S | re.M)
SOLUTION_MD = re.compile(r"^(`{3,}|:{3,})\{solution\}.*?^\1[ \t]*$\n?", re.S | re.M)
STUB = '{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError("Exercise not implemented yet: write your answer here")\n'


def student_version(nb):
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = SOLUTION_CODE.sub(lambda m: STUB.format(indent=m.group(1)), cell.source)
            cell.outputs, cell.execution_count = [], None
        elif cell.cell_type == "markdown":
            cell.source = SOLUTION_MD.sub("", cell.source).rstrip() + "\n" if "{solution}" in cell.source else cell.source
    return nb


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = student_version(nbformat.read(path, as_version=4))
        target = OUT / path.name
        nbformat.write(nb, target)
        written.append(target)
    print(f"{len(written)} student notebook(s) in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
