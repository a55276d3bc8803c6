"""ipywidgets explorers for the book (core ipywidgets only, so they work in Colab and in the
rendered book's static widget view)."""
from __future__ import annotations

import html

from . import results


def runs_table_html(runs: results.Runs, metric: str = "test_error") -> str:
    """An HTML table: one row per label with mean ± std of ``metric`` over seeds and provenance."""
    if not len(runs):
        return f"<p>No stored runs for <code>{html.escape(runs.experiment)}</code> yet.</p>"
    rows = []
    for label, s in runs.summary(metric).items():
        rs = runs.groups()[label]
        budget = ", ".join(sorted({r["budget"]["name"] for r in rs}))
        source = ", ".join(sorted({r["data"]["source"] for r in rs}))
        device = ", ".join(sorted({r["provenance"]["device"] for r in rs}))
        rows.append(f"<tr><td>{html.escape(label)}</td><td>{100 * s['mean']:.2f} ± {100 * s['std']:.2f}</td>"
                    f"<td>{s['n']}</td><td>{html.escape(budget)}</td><td>{html.escape(source)}</td>"
                    f"<td>{html.escape(device)}</td></tr>")
    head = (f"<tr><th>run</th><th>{metric.replace('_', ' ')} (%)</th><th>seeds</th><th>budget</th>"
            f"<th>data</th><th>device</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def results_browser(experiment_names, *, root=None, metric: str = "test_error"):
    """A dropdown of experiments and the table of their stored runs (mean ± std over seeds)."""
    import ipywidgets as W

    names = list(experiment_names)
    pick = W.Dropdown(options=names, value=names[0], description="experiment")
    table = W.HTML()

    def show(change=None):
        table.value = runs_table_html(results.load(pick.value, root=root), metric)

    pick.observe(show, names="value")
    show()
    return W.VBox([pick, table])


def curve_explorer(runs: results.Runs, *, title: str | None = None):
    """A multiple selection of models whose training/test error curves are overlaid.

    The figure is an ``Image`` widget (PNG bytes) rather than an ``Output`` widget, so it also
    shows in the rendered book's static widget view.  (Checkbox labels are avoided: the widget
    manager typesets them with the MathJax 2 API, which the book's MathJax 3 does not have.)
    """
    import io

    import ipywidgets as W
    import matplotlib.pyplot as plt

    from . import plots

    labels = sorted(runs.groups(), key=plots.depth_key)
    pick = W.SelectMultiple(options=labels, value=tuple(labels), rows=min(len(labels), 6),
                            description="models", layout=W.Layout(width="260px"))
    image = W.Image(format="png", layout=W.Layout(max_width="100%"))
    message = W.HTML()

    def draw(change=None):
        chosen = list(pick.value)
        message.value = "" if chosen else "<em>Select at least one model (Ctrl/Cmd-click to select several).</em>"
        if chosen:
            fig = plots.error_curves(runs, chosen, title=title)
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            plt.close(fig)
            image.value = buf.getvalue()

    pick.observe(draw, names="value")
    draw()
    return W.VBox([pick, message, image])


def figure_selector(figures: dict, *, description: str = "choose", value=None):
    """A slider over precomputed figures (e.g. one per value of a parameter), shown as PNG images
    so that the rendered book's static view shows the current one (``value``, default the first)."""
    import io

    import ipywidgets as W
    import matplotlib.pyplot as plt

    keys = list(figures)
    value = keys[0] if value is None else value
    if value not in figures:
        raise ValueError(f"value {value!r} is not one of the figures: {keys}")
    pngs = {}
    for key, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        pngs[key] = buf.getvalue()
    slider = W.SelectionSlider(options=keys, value=value, description=description, continuous_update=True,
                               layout=W.Layout(width="420px"))
    image = W.Image(value=pngs[value], format="png", layout=W.Layout(max_width="100%"))
    slider.observe(lambda change: setattr(image, "value", pngs[change["new"]]), names="value")
    return W.VBox([slider, image])
