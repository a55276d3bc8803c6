"""Colab, simulated (issue 14): a chapter's setup cell, run as in Colab, fetches the book at the
configured ref, installs the library, and the chapter then finds the stored runs.

In a temporary directory outside the repository, with a fresh virtual environment that reuses the
test environment's packages (Colab's preinstalled torch, matplotlib, ... ; a ``.pth`` line, since
``--system-site-packages`` would only reach the base interpreter's), the chapter's setup cell runs
with three textual changes: the repository URL becomes this repository as a ``file://`` URL (same
ref), ``/content`` becomes the temporary directory, and pip gets ``--no-deps --no-build-isolation``
(no internet here; Colab has the dependencies). A stub ``google.colab`` module makes the cell think
it is in Colab. The chapter is then executed with nbval from there, and a last cell checks that the
library came from the fresh install and the stored runs from the clone.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import sync_notebooks  # noqa: E402

CHAPTER = REPO / "notebooks" / "06-results.ipynb"
pytestmark = pytest.mark.slow


def _ref_exists(ref: str) -> bool:
    r = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=REPO, capture_output=True)
    return r.returncode == 0


def test_chapter_runs_as_in_colab(tmp_path):
    url, ref = sync_notebooks.settings()
    if not (REPO / ".git").exists() or not _ref_exists(ref):
        pytest.skip(f"needs a git checkout with ref {ref!r} (test_book checks that it exists)")
    if not os.environ.get("RESNET_BOOK_DATA") and not (REPO.parent / "shared" / "data" / "cifar10-jpeg").is_dir():
        pytest.skip("the chapter's live cells need CIFAR-10 (RESNET_BOOK_DATA)")
    content = tmp_path / "content"
    content.mkdir()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch, pip, nbval ...
    stub = tmp_path / "stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""Stand-in for Colab\'s module: its presence means "in Colab"."""\n')

    nb = nbformat.read(CHAPTER, as_version=4)
    setup = nb.cells[2]
    assert "colab-setup" in setup.metadata["tags"]
    src = setup.source
    for old, new in ((url, f"file://{REPO}"), (sync_notebooks.CLONE, str(content / "resnet-book")),
                     ('"install", "-q", clone', '"install", "-q", "--no-deps", "--no-build-isolation", clone')):
        assert old in src, f"the setup cell no longer contains {old!r}"
        src = src.replace(old, new)
    setup.source = f"import sys\nsys.path.insert(0, {str(tmp_path / 'stub')!r})\nimport google.colab\n" + src
    nb.cells.append(nbformat.v4.new_code_cell(
        "import os, resnet_book\n"
        "from resnet_book import results\n"
        f"assert resnet_book.__file__.startswith({str(venv)!r}), resnet_book.__file__\n"
        f"assert str(results.results_root()).startswith({str(content)!r}), results.results_root()\n"
        "assert len(results.load('degradation')) and len(results.load('reversal'))\n"))
    for c in nb.cells:
        c.pop("id", None)
    work = tmp_path / "work"
    work.mkdir()
    nbformat.write(nb, work / CHAPTER.name)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RESNET_BOOK_RESULTS", "VIRTUAL_ENV")}
    env.update(RESNET_BOOK_BUDGET="smoke", PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    env.setdefault("RESNET_BOOK_DATA", str(REPO.parent / "shared" / "data" / "cifar10-jpeg"))
    r = subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", CHAPTER.name],
                       cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert (content / "resnet-book" / "data" / "results").is_dir()
