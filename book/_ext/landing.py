"""The site's ``index.html`` as a landing page instead of a bare redirect.

The book's root page is ``book/intro``, so sphinx-external-toc would write ``index.html`` as a
one-line ``<meta http-equiv="Refresh">`` to it (only where no ``index.html`` exists). Here
``index.html`` is rendered with the theme's page layout, like Sphinx's search page: the book's
title, one paragraph on what it is, and every page of the table of contents under its part's
caption, with a link to start reading.
"""
from __future__ import annotations

import html


def _parts(app) -> list[tuple[str, list[str]]]:
    """``[(caption, [docname, ...])]`` in the table of contents' order."""
    site_map = getattr(app.env, "external_site_map", None)
    if site_map is None:
        return [("", list(app.env.toctree_includes.get(app.config.root_doc, [])))]
    parts = []
    for subtree in site_map[site_map.root.docname].subtrees:
        docs = [item for item in subtree.items if isinstance(item, str)]
        parts.append((subtree.caption or "", docs))
    return parts


def _landing(app):
    if app.builder.format != "html" or app.config.root_doc == "index":
        return
    builder, titles = app.builder, app.env.titles
    root = app.config.root_doc

    def link(doc: str) -> str:
        title = titles[doc].astext() if doc in titles else doc
        return f'<a href="{html.escape(builder.get_target_uri(doc))}">{html.escape(title)}</a>'

    sections = []
    for caption, docs in _parts(app):
        items = "".join(f"<li>{link(d)}</li>" for d in ([root] if not sections else []) + docs)
        heading = f"<h2>{html.escape(caption)}</h2>" if caption else ""
        sections.append(f'<section class="landing-part">{heading}<ul>{items}</ul></section>')
    name = app.config.html_title if app.config.project == "Project name not set" else app.config.project
    project = html.escape(name or "")
    body = (f'<h1>{project}</h1>'
            "<p>A reading of He, Zhang, Ren and Sun, <em>Deep Residual Learning for Image Recognition</em> "
            "(CVPR 2016) and its follow-up <em>Identity Mappings in Deep Residual Networks</em> (ECCV 2016), "
            "with code that reruns their CIFAR-10 experiments. Each chapter is a notebook: it builds "
            "the networks with the book's library, trains them, and reads the paper's claims against runs "
            "stored with their provenance (budget, data, device, commit). Runs at reduced scale are "
            "labelled as such.</p>"
            f'<p><a class="btn btn-primary" href="{html.escape(builder.get_target_uri(root))}">Start reading</a></p>'
            + "".join(sections))
    yield "index", {"title": "Home", "body": body}, "page.html"


def setup(app):
    app.connect("html-collect-pages", _landing)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
