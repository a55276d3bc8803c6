"""ipywidgets explorers for the book (core ipywidgets only, so they work in Colab and in the
rendered book's static widget view).

Every explorer is one :func:`frame_selector`: the options are finite, so each option's frame (a
figure or a table) is rendered once, when the cell runs, and the control is ``jslink``-ed to the
selected index of a ``Stack`` holding the frames.  Switching frames therefore happens in the page
itself: in the static book (no kernel), in Jupyter and in Colab alike.
"""
from __future__ import annotations

import html
import io
import itertools
from collections.abc import Callable, Iterable, Mapping

from . import results

CONTROLS = ("slider", "dropdown")


def _frame(content):
    """A widget showing ``content``: a matplotlib figure (as a PNG ``Image``, then closed), an
    object with ``_repr_html_`` (a table) or an HTML string (as an ``HTML`` widget)."""
    import ipywidgets as W

    if hasattr(content, "savefig"):
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        content.savefig(buf, format="png")
        plt.close(content)
        return W.Image(value=buf.getvalue(), format="png", layout=W.Layout(max_width="100%", height="auto"))
    if hasattr(content, "_repr_html_"):
        content = content._repr_html_()
    if isinstance(content, str):
        return W.HTML(value=content, layout=W.Layout(max_width="100%"))
    raise TypeError(f"a frame must be a matplotlib figure, an object with _repr_html_ or an HTML string, "
                    f"not {type(content).__name__}")


def frame_selector(options: Mapping | Iterable, make_frame: Callable, *, description: str = "choose",
                   value=None, control: str = "slider"):
    """A control over ``options`` that switches between precomputed frames in the page.

    ``options``: the labels shown by the control, or a mapping from label to the argument passed to
    ``make_frame`` (a list of labels passes each label itself).  ``make_frame(argument)`` returns a
    matplotlib figure, a table (anything with ``_repr_html_``) or an HTML string; it is called once
    per option, now.  ``value`` is the label shown first (default the first); ``control`` is
    ``"slider"`` (a ``SelectionSlider``) or ``"dropdown"``.

    The control's ``index`` is ``jslink``-ed to the ``selected_index`` of a ``Stack`` of the frames,
    so the figure follows the control without a kernel (the rendered book's saved widget state).
    """
    import ipywidgets as W

    options = dict(options) if isinstance(options, Mapping) else {label: label for label in options}
    labels = list(options)
    if not labels:
        raise ValueError("frame_selector needs at least one option")
    if control not in CONTROLS:
        raise ValueError(f"control {control!r} is not one of {CONTROLS}")
    value = labels[0] if value is None else value
    if value not in options:
        raise ValueError(f"value {value!r} is not one of the options: {labels}")
    frames = [_frame(make_frame(argument)) for argument in options.values()]
    index = labels.index(value)
    if control == "slider":
        pick = W.SelectionSlider(options=labels, value=value, description=description, continuous_update=True,
                                 layout=W.Layout(width="100%", max_width="480px"),
                                 style={"description_width": "initial"})
    else:
        pick = W.Dropdown(options=labels, value=value, description=description,
                          layout=W.Layout(width="auto", max_width="100%"), style={"description_width": "initial"})
    stack = W.Stack(frames, selected_index=index, layout=W.Layout(max_width="100%"))
    W.jslink((pick, "index"), (stack, "selected_index"))
    box = W.VBox([pick, stack], layout=W.Layout(max_width="100%"))
    box.add_class("resnet-book-frames")
    return box


def figure_selector(figures: Mapping, *, description: str = "choose", value=None, control: str = "slider"):
    """:func:`frame_selector` over figures already made: ``figures`` maps each label to its figure."""
    return frame_selector(figures, lambda figure: figure, description=description, value=value, control=control)


def runs_table(runs: results.Runs, metric: str = "test_error"):
    """A :class:`~resnet_book.tables.Table`: one row per label with mean ± std of ``metric`` over
    seeds, the number of seeds and the runs' budget, data source and device."""
    from .tables import Table, mean_std

    rows = []
    for label, s in runs.summary(metric).items():
        rs = runs.groups()[label]
        rows.append([label, mean_std(s), s["n"],
                     ", ".join(sorted({r["budget"]["name"] for r in rs})),
                     ", ".join(sorted({r["data"]["source"] for r in rs})),
                     ", ".join(sorted({results.device_label(r["provenance"]["device"]) for r in rs}))])
    return Table(["run", f"{metric.replace('_', ' ')} (%)", "seeds", "budget", "data", "device"], rows,
                 empty=f"No stored runs for {runs.experiment!r} yet.")


def runs_table_html(runs: results.Runs, metric: str = "test_error") -> str:
    """:func:`runs_table` as HTML."""
    return runs_table(runs, metric)._repr_html_()


def results_browser(experiment_names, *, root=None, metric: str = "test_error"):
    """A dropdown of experiments and the table of their stored runs (mean ± std over seeds)."""
    return frame_selector(list(experiment_names), lambda name: runs_table(results.load(name, root=root), metric),
                          description="experiment", control="dropdown")


def label_choices(labels: Iterable[str]) -> dict[str, list[str]]:
    """The selections :func:`curve_explorer` offers: all labels, each one alone, and each pair."""
    labels = list(labels)
    choices = {"all": labels} if len(labels) > 1 else {}
    choices.update({label: [label] for label in labels})
    if len(labels) > 2:
        choices.update({f"{a} vs {b}": [a, b] for a, b in itertools.combinations(labels, 2)})
    return choices


def curve_explorer(runs: results.Runs, *, title: str | None = None):
    """A dropdown of model selections (all, each alone, each pair: :func:`label_choices`) whose
    training/test error curves are overlaid, precomputed by :func:`frame_selector`."""
    from . import plots

    labels = sorted(runs.groups(), key=plots.depth_key)
    if not labels:
        import ipywidgets as W

        return W.HTML(f"<p>No stored runs for <code>{html.escape(runs.experiment)}</code> yet.</p>")
    return frame_selector(label_choices(labels), lambda chosen: plots.error_curves(runs, chosen, title=title),
                          description="models", control="dropdown")
