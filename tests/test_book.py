"""The book's sources: notebooks committed clean, Colab cells identical and derived from
_config.yml, the how-to-use page's budget table equal to the library's budgets."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from resnet_book.train import BUDGETS

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted([*REPO.glob("notebooks/*.ipynb"), *REPO.glob("book/*.ipynb")])
sys.path.insert(0, str(REPO / "tools"))
import sync_notebooks  # noqa: E402


def _cells(path):
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cells_are_identical_and_first(path):
    cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    assert "colab-badge" in cells[1]["metadata"]["tags"]
    assert "".join(cells[1]["source"]) == sync_notebooks.badge_source(path)
    assert "colab-setup" in cells[2]["metadata"]["tags"]
    assert "".join(cells[2]["source"]) == sync_notebooks.setup_source()
    # the only code before the setup cell is none: it runs first
    assert all(c["cell_type"] == "markdown" for c in cells[:2])


def test_setup_cell_installs_from_the_configured_repository_and_does_nothing_elsewhere():
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    src = sync_notebooks.setup_source()
    assert f'"{cfg["resnet_book"]["install_ref"]}", "{cfg["repository"]["url"]}"' in src
    assert "RESNET_BOOK_RESULTS" in src  # the stored results come with the clone
    namespace = {}
    exec(compile(src, "<setup>", "exec"), namespace)  # outside Colab: no install, no error
    assert "google.colab" not in sys.modules


def test_one_ref_for_badge_launch_button_and_setup_cell_and_it_exists():
    """Issue 14: the Colab badge, the book's launch button (repository.branch) and the setup cell
    name the same ref, and that ref exists in this repository with the notebooks in it."""
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    ref = cfg["resnet_book"]["install_ref"]
    assert cfg["repository"]["branch"] == ref, "the launch button opens repository.branch: make it install_ref"
    for path in NOTEBOOKS:
        assert f"/blob/{ref}/{path.relative_to(REPO).as_posix()})" in sync_notebooks.badge_source(path)
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: cannot look the ref up")
    found = None
    for candidate in (ref, f"refs/tags/{ref}", f"refs/remotes/origin/{ref}"):
        r = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"], cwd=REPO,
                           capture_output=True, text=True)
        if r.returncode == 0:
            found = r.stdout.strip()
            break
    assert found, f"install_ref {ref!r} is neither a branch nor a tag of this repository: Colab would fail to install"
    for path in NOTEBOOKS:
        rel = path.relative_to(REPO).as_posix()
        r = subprocess.run(["git", "cat-file", "-e", f"{found}:{rel}"], cwd=REPO, capture_output=True)
        assert r.returncode == 0, f"{rel} is not in {ref!r}: its Colab badge would open a missing file"


def test_sync_check_passes():
    r = subprocess.run([sys.executable, str(REPO / "tools" / "sync_notebooks.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_every_notebook_and_page_is_in_the_toc():
    toc = (REPO / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*(\S+)", toc)) | {yaml.safe_load(toc)["root"]}
    pages = {p.relative_to(REPO).with_suffix("").as_posix() for p in [*REPO.glob("book/*.md"), *NOTEBOOKS]}
    assert pages == listed


def test_budget_table_matches_the_library():
    text = (REPO / "book" / "how-to-use.md").read_text()
    for b in BUDGETS.values():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{b.name}` |"))
        assert f"{b.iterations:,} × {b.batch_size} | {b.lr:g} |" in row
        assert f"{b.train_size or 50_000:,}" in row and f"{b.test_size or 10_000:,}" in row


def test_figures_of_missing_runs_fail_loudly(tmp_path):
    """Issue 14: where no stored runs are found (Colab before its setup cell), a figure is never
    drawn empty: one error says where it looked and how to get the runs."""
    from resnet_book import plots, results

    empty = results.load("degradation", root=tmp_path)
    assert len(empty) == 0
    for draw in (plots.error_curves, plots.final_errors, lambda r: plots.fig6_curves({"plain": r}),
                 lambda r: plots.depth_trend({"plain": r})):
        with pytest.raises(results.ResultsError, match="no stored runs of 'degradation'.*first code cell"):
            draw(empty)
