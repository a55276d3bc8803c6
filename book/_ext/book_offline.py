"""Small Sphinx fixes that keep the rendered book working offline and error-free.

* sphinx-thebe registers its inline configuration script twice under Jupyter Book 1, which makes
  the browser raise "Identifier 'THEBE_JS_URL' has already been declared" on every page; identical
  script entries are de-duplicated when each page is rendered.
* sphinx-book-theme 1.3 on pydata-sphinx-theme 0.17 renders pydata's page header with its
  persistent search button, a second search box above the sidebar's: the header's persistent
  items are emptied here (and the then empty header is hidden by ``_static/book.css``).
"""
from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {}) or {}
        # inline scripts are identified by their body (their filename may be None or "")
        key = ("body", attrs["body"]) if attrs.get("body") else ("file", getattr(js, "filename", str(js)) or "",
                                                                  tuple(sorted(attrs.items())))
        if key in seen:
            continue
        seen.add(key)
        unique.append(js)
    context["script_files"] = unique


def _one_search_box(app, config):
    config.html_theme_options = {**(config.html_theme_options or {}), "navbar_persistent": []}


def setup(app):
    app.connect("config-inited", _one_search_box)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
