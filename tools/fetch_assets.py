"""Fetch the JavaScript the rendered book needs, so it works with no internet.

MathJax (maths), RequireJS and the Jupyter widget manager (``@jupyter-widgets/html-manager``,
static widgets) come from the npm registry as pinned tarballs, checked against their published
sha512 integrity, and are unpacked into ``build/offline-assets/vendor/``.  The book's
``_config.yml`` serves that folder from the site root (``html_extra_path``) and points Sphinx and
myst-nb at it instead of CDNs.  It is deliberately not under ``_static``: Jupyter Book 1 injects
every ``.js`` file found there into every page.

Only Python's standard library is used (no node/npm needed); tarballs are cached in
``.cache/npm`` so later builds are offline.
"""
from __future__ import annotations

import base64
import hashlib
import io
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "offline-assets" / "vendor"
CACHE = ROOT / ".cache" / "npm"
REGISTRY = "https://registry.npmjs.org"

# name, version, sha512 integrity (from `npm view NAME@VERSION dist.integrity`), files to keep
PACKAGES = [
    ("mathjax", "3.2.2",
     "Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
     {"es5/": "mathjax/es5/"}),
    ("requirejs", "2.3.7",
     "DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
     {"require.js": "require.js"}),
    ("@jupyter-widgets/html-manager", "1.0.15",
     "5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
     {"dist/": "html-manager/dist/"}),
]
# Our own files served beside them.
LOCAL = {ROOT / "tools" / "web" / "widget-manager-setup.js": "widget-manager-setup.js"}


def _tarball(name: str, version: str, integrity: str) -> bytes:
    base = name.split("/")[-1]
    cached = CACHE / f"{base}-{version}.tgz"
    if cached.exists():
        blob = cached.read_bytes()
    else:
        url = f"{REGISTRY}/{name}/-/{base}-{version}.tgz"
        print(f"fetching {url}", file=sys.stderr)
        with urllib.request.urlopen(url, timeout=120) as r:
            blob = r.read()
    digest = base64.b64encode(hashlib.sha512(blob).digest()).decode()
    if digest != integrity:
        cached.unlink(missing_ok=True)
        raise SystemExit(f"{name}@{version}: sha512 mismatch (got {digest}); refusing to use it")
    CACHE.mkdir(parents=True, exist_ok=True)
    if not cached.exists():
        tmp = cached.with_suffix(".part")
        tmp.write_bytes(blob)
        tmp.replace(cached)
    return blob


def main() -> int:
    stamp = OUT / ".versions"
    wanted = "\n".join([f"{n}@{v}" for n, v, _, _ in PACKAGES] + [p.read_text() for p in LOCAL])
    if stamp.exists() and stamp.read_text() == wanted:
        return 0
    if OUT.exists():
        shutil.rmtree(OUT)
    # An incremental Sphinx build with no changed page skips copying html_extra_path, so an old
    # copy in the built site would outlive this update: drop the built HTML (not the execution
    # cache), and the next build writes every page and these assets afresh.
    shutil.rmtree(ROOT / "_build" / "html", ignore_errors=True)
    for name, version, integrity, keep in PACKAGES:
        with tarfile.open(fileobj=io.BytesIO(_tarball(name, version, integrity)), mode="r:gz") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                rel = member.name.split("/", 1)[1]  # strip "package/"
                for src, dst in keep.items():
                    if rel == src or (src.endswith("/") and rel.startswith(src)):
                        target = OUT / (dst + rel[len(src):] if src.endswith("/") else dst)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(tar.extractfile(member).read())
    for src, dst in LOCAL.items():
        shutil.copyfile(src, OUT / dst)
    stamp.write_text(wanted)
    print(f"offline assets ready in {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
