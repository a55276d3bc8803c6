"""Keep every notebook's Colab cells identical and derived from `_config.yml`.

Each notebook (in notebooks/ and book/) gets, right after its title cell:
* a markdown cell tagged ``colab-badge``: an "Open in Colab" badge for that notebook;
* a code cell tagged ``colab-setup``: in Colab it installs the library from the repository URL at
  ``resnet_book.install_ref``; elsewhere it does nothing.
Outputs are stripped. ``--check`` changes nothing and exits 1 if a notebook is out of date.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]


def settings() -> tuple[str, str]:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    return cfg["repository"]["url"].rstrip("/"), cfg["resnet_book"]["install_ref"]


def setup_source() -> str:
    url, ref = settings()
    return (
        "# Colab setup (the same in every notebook; written by `make sync-notebooks`).\n"
        "# In Google Colab this installs the book's library at a fixed release; elsewhere it does nothing.\n"
        "import subprocess, sys\n"
        "if \"google.colab\" in sys.modules:\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                    \"resnet-book @ git+{url}@{ref}\"], check=True)"
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
