"""Open every page of the built book in headless Chromium, offline.

Fails on: any request that leaves localhost, a JavaScript page error, a local resource that does
not load, an image that does not display, maths that MathJax did not typeset, a widget that does
not render, a widget control that does not change the figure it shows (the static book switches
precomputed frames, `widgets.frame_selector`), a table printed as text instead of rendered as a
table, a solution toggle that does not open, content wider than the page at 1280 px (desktop)
and 390 px (phone) that would need horizontal scrolling (at 1280 px every table also fits its own
box; on a phone a table may scroll inside it), or a word or number in a table cell split across
two lines at either width.

Run after the book is built (`make test` does both). Under CI (CI=true) it must run; elsewhere it
is skipped, with a notice, where Debian's Chromium is not installed.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import time
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


def _lines_shown_elsewhere(page_path: str) -> set[str]:
    """Stripped lines of the page's notebook outside its solution regions (a solution may share an
    ordinary line such as ``with torch.no_grad():`` with the chapter's own code)."""
    import nbformat

    source = SITE.parent.parent / Path(page_path).with_suffix(".ipynb")
    if not source.exists():
        return set()
    shown = set()
    for c in nbformat.read(source, as_version=4).cells:
        text = c.source
        if "### BEGIN SOLUTION" in text:
            head, rest = text.split("### BEGIN SOLUTION", 1)
            text = head + rest.split("### END SOLUTION", 1)[-1]
        shown.update(line.strip() for line in text.splitlines())
    return shown


# A short fingerprint of what a frame widget shows now: the bytes of its image, or its HTML.
FRAME_SHOWN = r"""async (box) => {
  const img = box.querySelector('img');
  if (img) {
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let h = 2166136261;
    for (const b of bytes) { h = Math.imul(h ^ b, 16777619) >>> 0; }
    return `image ${bytes.length} bytes, hash ${h}`;
  }
  const content = box.querySelector('.widget-html-content');
  return content ? `html ${content.innerHTML}` : 'nothing';
}"""

# Elements wider than their box (a horizontal scrollbar) or reaching past the page's right edge.
# A table sits in a box of its own that scrolls sideways (`.resnet-book-table` for tables.Table,
# `.pst-scrollable-table-container` for Markdown tables); where `tablesMayScroll` (a phone) a table
# wider than its box is allowed to scroll inside it, as long as the box fits the page; elsewhere
# (desktop) every table must fit its box.
TOO_WIDE = r"""(tablesMayScroll) => {
  const width = document.documentElement.clientWidth, out = [];
  if (document.documentElement.scrollWidth > width + 1)
    out.push(`the page is ${document.documentElement.scrollWidth}px wide in a ${width}px window`);
  const main = document.querySelector('main') || document.body;
  const TABLE_BOX = '.resnet-book-table, .pst-scrollable-table-container';
  for (const e of main.querySelectorAll(`pre, table, ${TABLE_BOX}, img, .cell_output, .output, .jupyter-widgets, div.math, mjx-container[display="true"]`)) {
    if (e.closest('.mobile-header, .bd-sidebar-primary, .bd-sidebar-secondary')) continue;
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const name = e.tagName.toLowerCase() + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : '');
    const text = (e.innerText || e.getAttribute('src') || '').slice(0, 60).replace(/\s+/g, ' ');
    const box = e.tagName === 'TABLE' ? e.parentElement.closest(TABLE_BOX) : null;
    if (box && getComputedStyle(box).overflowX !== 'visible' && r.width > box.clientWidth + 1) {
      if (!tablesMayScroll)
        out.push(`${name} is wider than its box (${Math.round(r.width)}px in ${box.clientWidth}px) and scrolls inside it: ${text}`);
      continue;  // the box itself is checked as one of the elements
    }
    if (e.matches(TABLE_BOX) && e.querySelector('table')) {
      if (r.right > width + 1)
        out.push(`${name} reaches past the page's right edge (${Math.round(r.right)}px > ${width}px): ${text}`);
      continue;
    }
    if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible')
      out.push(`${name} scrolls sideways (${e.scrollWidth}px in ${e.clientWidth}px): ${text}`);
    else if (r.right > width + 1)
      out.push(`${name} reaches past the page's right edge (${Math.round(r.right)}px > ${width}px): ${text}`);
  }
  return out;
}"""

# Words and numbers in table cells that the browser split across two lines ("networ/k", "3,644,493,82/4",
# "+0.6/%"): each whitespace-separated token of a cell's text must lie on one line, except that a
# word (not a number) may break after a hyphen, dash or slash ("cifar10-/jpeg"). A token's lines
# are the distinct tops of its Range's client rects; the break is found character by character.
BROKEN_WORDS = r"""() => {
  const NUMBER = /^[\d+\-−–.,%×±()]*\d[\d+\-−–.,%×±()]*$/;
  const rects = (node, start, end) => {
    const range = document.createRange();
    range.setStart(node, start);
    range.setEnd(node, end);
    return [...range.getClientRects()].filter(r => r.width > 0);
  };
  const out = [];
  const main = document.querySelector('main') || document.body;
  for (const cell of main.querySelectorAll('td, th')) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest('mjx-container, script, style')) continue;
      for (const m of node.data.matchAll(/\S+/g)) {
        const all = rects(node, m.index, m.index + m[0].length);
        if (!all.length || all.every(r => Math.abs(r.top - all[0].top) < all[0].height / 2)) continue;
        let at = 0, top = null;
        for (let k = 0; k < m[0].length; k++) {
          const [r] = rects(node, m.index + k, m.index + k + 1);
          if (!r) continue;
          if (top !== null && r.top > top + r.height / 2) { at = k; break; }
          top = r.top;
        }
        if (at > 0 && /[-–—\/]/.test(m[0][at - 1]) && !NUMBER.test(m[0])) continue;
        out.push(at > 0 ? `${m[0].slice(0, at)}/${m[0].slice(at)}` : m[0]);
      }
    }
  }
  return out;
}"""

# Output that looks like a table printed as text: three or more lines with numbers in two or more
# columns separated by runs of spaces.
TEXT_TABLES = r"""() => [...document.querySelectorAll('.cell_output pre, .output pre')]
  .map(e => e.innerText)
  .filter(t => t.split('\n').filter(line => /\S {2,}\S.* {2,}\S/.test(line) && /\d/.test(line)).length >= 3)
  .map(t => t.slice(0, 100))"""


def _shown_after_change(box, previous: str, timeout_s: float = 5.0) -> str:
    """What ``box`` shows once it differs from ``previous`` (the frame is drawn asynchronously),
    or still ``previous`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = box.evaluate(FRAME_SHOWN)
        if now != previous or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def _check_frames(page, page_path: str) -> int:
    """Every frame widget (a control over a Stack of precomputed frames): each step of its
    control (every option of a dropdown, every position of a slider) changes the frame shown.
    Returns how many widgets were checked."""
    boxes = page.locator(".resnet-book-frames")
    for i in range(boxes.count()):
        box = boxes.nth(i)
        box.scroll_into_view_if_needed()
        select, handle = box.locator("select"), box.locator(".noUi-handle")
        if select.count():
            readout = select.first
            steps = [lambda k=k: select.first.select_option(index=k) for k in range(select.locator("option").count())]
        else:
            assert handle.count() == 1, f"frame widget {i} on {page_path} has neither a dropdown nor a slider"
            readout = box.locator(".widget-readout").first
            handle.first.focus()
            steps = [lambda: handle.first.press("Home")] + [lambda: handle.first.press("ArrowRight")] * 12
        values, shown = [], []
        for step in steps:
            step()
            value = readout.evaluate("e => e.value || e.innerText")
            if values and value == values[-1]:  # the slider is at its last position
                break
            now = _shown_after_change(box, shown[-1]) if shown else box.evaluate(FRAME_SHOWN)
            assert not shown or now != shown[-1], (
                f"frame widget {i} on {page_path}: moving the control from {values[-1]!r} to {value!r} "
                f"did not change the figure shown")
            values.append(value)
            shown.append(now)
        assert len(values) >= 2, f"frame widget {i} on {page_path}: the control could not be moved ({values})"
    return boxes.count()


def pages() -> list[str]:
    skip = ("_static/", "_sources/", "vendor/", "_images/")
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html") if not p.relative_to(SITE).as_posix().startswith(skip))


def test_there_are_pages_to_check():
    if not SITE.exists():
        _skip_or_fail("the book is not built")
    assert "book/intro.html" in pages() and "book/reproducing.html" in pages()


def _toc_pages() -> list[str]:
    """Every page of the table of contents (``_toc.yml``), as the site's paths."""
    import yaml

    toc = yaml.safe_load((SITE.parent.parent / "_toc.yml").read_text())
    docs = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [f"{doc}.html" for doc in docs]


def test_index_is_a_landing_page_not_a_redirect(server, browser):
    """``index.html`` is a page of its own (book/_ext/landing.py), not a redirect: the browser stays
    on it, its heading is the book's title, and its body links to every page of the table of
    contents, every chapter included."""
    import yaml

    title = yaml.safe_load((SITE.parent.parent / "_config.yml").read_text())["title"]
    assert "http-equiv=\"refresh\"" not in (SITE / "index.html").read_text().lower(), "index.html is a redirect"
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(f"{server}/index.html", wait_until="load")
    page.wait_for_load_state("networkidle")
    assert urlparse(page.url).path in ("/", "/index.html"), f"index.html sent the browser to {page.url}"
    assert title in [h.strip() for h in page.locator("h1").all_inner_texts()], "the book's title is not the heading"
    hrefs = page.eval_on_selector_all(".landing-part a[href]", "links => links.map(a => a.href)")
    linked = {urlparse(h).path.lstrip("/") for h in hrefs}
    missing = [p for p in _toc_pages() if p not in linked]
    assert not missing, f"index.html links to none of {missing}"
    assert [p for p in _toc_pages() if p.startswith("notebooks/")], "no chapter in the table of contents"
    ctx.close()


@pytest.mark.parametrize("page_path", pages() or ["index.html"])
def test_page_works_offline(server, browser, page_path):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
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
        # Frame widgets: moving each control changes the figure shown, with no kernel.
        _check_frames(page, page_path)
    # Tables: rendered as tables, not printed as aligned text.
    text_tables = page.evaluate(TEXT_TABLES)
    # Nothing needs horizontal scrolling at desktop width, and every table fits its box.
    too_wide = page.evaluate(TOO_WIDE, False)
    # No word or number in a table is split across lines.
    broken_words = page.evaluate(BROKEN_WORDS)
    # Figures and images: all loaded and displayed.
    broken = page.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    # What the page shows before any toggle is opened (prose answers may quote the solution code).
    visible_text = page.evaluate("() => document.body.innerText")
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
    elsewhere = _lines_shown_elsewhere(page_path)
    for line in (line for src in expected for line in src.splitlines()
                 if len(line.strip()) > 12 and line.strip() not in elsewhere):
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
    assert not text_tables, f"{page_path} prints tables as text (return a resnet_book.tables.Table): {text_tables}"
    assert not too_wide, f"{page_path} at 1280 px needs horizontal scrolling: {too_wide}"
    assert not broken_words, f"{page_path} at 1280 px splits words or numbers in table cells: {broken_words}"


@pytest.mark.parametrize("page_path", pages() or ["index.html"])
def test_page_fits_a_phone(server, browser, page_path):
    """At 390 px (a phone), no table, code cell, figure or widget makes the page scroll sideways (a
    table may scroll inside its own box), and no word or number in a table is split across lines."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1, is_mobile=True,
                              has_touch=True)
    page = ctx.new_page()
    page.route("**/*", lambda r: r.continue_() if urlparse(r.request.url).hostname in ("127.0.0.1", None)
               or r.request.url.startswith(("data:", "blob:")) else r.abort())
    page.goto(f"{server}/{page_path}", wait_until="load")
    page.wait_for_load_state("networkidle")
    n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    if n_views:
        page.wait_for_function(
            f"() => document.querySelectorAll('.jupyter-widgets.widget-container, .jupyter-widgets.widget-inline-hbox').length >= {n_views}",
            timeout=20_000)
    if page.locator("span.math, div.math").count():
        page.wait_for_function(
            "() => [...document.querySelectorAll('span.math, div.math')].every(e => e.querySelector('mjx-container'))",
            timeout=20_000)
    too_wide = page.evaluate(TOO_WIDE, True)
    broken_words = page.evaluate(BROKEN_WORDS)
    ctx.close()
    assert not too_wide, f"{page_path} at 390 px needs horizontal scrolling: {too_wide}"
    assert not broken_words, f"{page_path} at 390 px splits words or numbers in table cells: {broken_words}"
