"""Small Sphinx fixes that keep the rendered book working offline and error-free.

* sphinx-thebe registers its inline configuration script twice under Jupyter Book 1, which makes
  the browser raise "Identifier 'THEBE_JS_URL' has already been declared" on every page; identical
  script entries are de-duplicated when each page is rendered.
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


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
