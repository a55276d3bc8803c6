"""Open every page of the built book in headless Chromium, offline.

Fails on: any request that leaves localhost, a JavaScript page error, a local resource that does
not load, an image that does not display, maths that MathJax did not typeset, a widget that does
not render, or a solution toggle that does not open.

Run after the book is built (`make test` does both). Under CI (CI=true) it must run; elsewhere it
is skipped, with a notice, where Debian's Chromium is not installed.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser

SITE = Path(__file__).resolve().parents[1] / "_build" / "html"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _skip_or_fail(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run the browser test)")
    pytest.skip(f"NOTICE: browser test skipped: {reason}")


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").exists():
        _skip_or_fail(f"no built book at {SITE}; run `make book` first")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    if exe is None:
        _skip_or_fail("Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def _code_solutions(page_path: str) -> list[str]:
    """The solution regions of the notebook a page was built from (empty for other pages)."""
    import nbformat

    source = SITE.parent.parent / Path(page_path).with_suffix(".ipynb")
    if not source.exists():
        return []
    cells = nbformat.read(source, as_version=4).cells
    return [c.source.split("### BEGIN SOLUTION", 1)[1].split("### END SOLUTION", 1)[0]
            for c in cells if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source]


def pages() -> list[str]:
    skip = ("_static/", "_sources/", "vendor/", "_images/")
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html") if not p.relative_to(SITE).as_posix().startswith(skip))


def test_there_are_pages_to_check():
    if not SITE.exists():
        _skip_or_fail("the book is not built")
    assert "book/intro.html" in pages() and "book/reproducing.html" in pages()


@pytest.mark.parametrize("page_path", pages() or ["index.html"])
def test_page_works_offline(server, browser, page_path):
    ctx = browser.new_context()
    page = ctx.new_page()
    external, errors, failed = [], [], []

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:", "about:")) or host in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})") if urlparse(r.url).hostname == "127.0.0.1" else None)
    page.on("response", lambda r: failed.append(f"{r.url} (HTTP {r.status})") if r.status >= 400 else None)
    page.goto(f"{server}/{page_path}", wait_until="load")
    page.wait_for_load_state("networkidle")

    # Maths: every math element holds MathJax output.
    n_math = page.locator("span.math, div.math").count()
    if n_math:
        page.wait_for_function(
            "() => [...document.querySelectorAll('span.math, div.math')].every(e => e.querySelector('mjx-container'))",
            timeout=20_000)
    # Widgets: each saved widget view is rendered by the widget manager.
    n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    if n_views:
        page.wait_for_function(
            f"() => document.querySelectorAll('.jupyter-widgets.widget-container, .jupyter-widgets.widget-inline-hbox').length >= {n_views}",
            timeout=20_000)
        # The widget bundle's icon fonts load only when a glyph is drawn; load them now so a wrong
        # font URL fails on every page with widgets, not only on pages whose widgets show icons.
        page.evaluate("""() => Promise.all(['900 16px "Font Awesome 5 Free"', '400 16px "Font Awesome 5 Free"',
                                             '16px "Font Awesome 5 Brands"', '16px FontAwesome']
                                            .map(f => document.fonts.load(f).catch(() => null)))""")
        page.wait_for_load_state("networkidle")
    # Figures and images: all loaded and displayed.
    broken = page.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    # Solutions: hidden until their toggle is clicked, then shown.
    solutions = page.locator("div.solution.dropdown")
    for i in range(solutions.count()):
        sol = solutions.nth(i)
        body = sol.locator("section").first
        assert not body.is_visible(), f"solution {i} on {page_path} is not hidden"
        # the chevron button that sphinx-togglebutton adds (the title itself holds a link to the exercise)
        toggle = sol.locator("button.toggle-button")
        assert toggle.count() == 1, f"solution {i} on {page_path} has no toggle button"
        toggle.click()
        body.wait_for(state="visible", timeout=5_000)
    # Code solutions (cells tagged `solution`, see tools/sync_notebooks.py): no solution code is
    # visible until its own toggle is opened; every chapter's solution cells are on its page.
    code_solutions = page.locator("div.cell.tag_solution")
    expected = _code_solutions(page_path)
    assert code_solutions.count() == len(expected), \
        f"{page_path}: {code_solutions.count()} hidden solution cells, the notebook has {len(expected)}"
    visible_text = page.evaluate("() => document.body.innerText")
    for line in (line for src in expected for line in src.splitlines() if len(line.strip()) > 12):
        assert line.strip() not in visible_text, f"{page_path}: solution code visible before its toggle: {line!r}"
    for i in range(code_solutions.count()):
        cell = code_solutions.nth(i)
        code = cell.locator(".cell_input")
        assert not code.is_visible(), f"code solution {i} on {page_path} is not hidden"
        toggle = cell.locator("summary")
        assert "solution" in toggle.first.inner_text().lower(), f"code solution {i} on {page_path}: toggle not labelled"
        toggle.first.click()
        code.wait_for(state="visible", timeout=5_000)
        assert "### BEGIN SOLUTION" in code.inner_text()
    ctx.close()

    assert not external, f"{page_path} made requests that leave localhost: {external}"
    assert not errors, f"{page_path} raised page errors: {errors}"
    assert not failed, f"{page_path} failed to load: {failed}"
    assert not broken, f"{page_path} has images that do not display: {broken}"
