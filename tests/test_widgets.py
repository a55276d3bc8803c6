"""Tables and the frame-switching widgets: what the rendered book's static view relies on."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from resnet_book import widgets  # noqa: E402
from resnet_book.results import Runs  # noqa: E402
from resnet_book.tables import Table, mean_std, relative_change  # noqa: E402


def _figure(k):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, k])
    return fig


def test_table_renders_html_markdown_and_text_with_all_columns():
    t = Table(["depth", "paper (%)", "ours, plain (%)"], [[20, 8.75, "12.3 ± 0.4"], [110, 6.43, None]],
              caption="Table 6", note="data cifar10-jpeg")
    html = t._repr_html_()
    assert html.count("<tr>") == 3 and html.count("<th ") == 3 and "<caption>Table 6</caption>" in html
    assert "ours, plain (%)" in html and "12.3 ± 0.4" in html and "data cifar10-jpeg" in html
    md = t._repr_markdown_().splitlines()
    assert md[2] == "| depth | paper (%) | ours, plain (%) |" and md[3] == "|---:|---:|---:|"
    assert md[5] == "| 110 | 6.43 | – |"
    text = str(t).splitlines()
    assert text[1].split() == ["depth", "paper", "(%)", "ours,", "plain", "(%)"]
    assert t.column("depth") == ["20", "110"] and t.align == "rrr"


def test_table_keeps_numbers_and_one_word_cells_on_one_line():
    t = Table(["run", "note", "error (%)"], [["ResNet-110", "two words", "12.3 ± 0.4"]], align="llr")
    cells = t._repr_html_().split("<td")[1:]
    assert [c.startswith(' class="resnet-book-nowrap"') for c in cells] == [True, False, True]
    css = (Path(__file__).resolve().parents[1] / "_static" / "book.css").read_text()
    assert re.search(r"\.resnet-book-table td\.resnet-book-nowrap\s*\{[^}]*white-space:\s*nowrap", css), \
        "the book's CSS does not keep .resnet-book-nowrap cells on one line"


def test_table_aligns_text_left_and_escapes_html():
    t = Table(["run", "error"], [["<b>x</b>", 1.5]])
    assert t.align == "lr"
    assert "&lt;b&gt;x&lt;/b&gt;" in t._repr_html_()


def test_table_rejects_ragged_rows_and_bad_alignment():
    with pytest.raises(ValueError, match="row 1 has 1 cells but the table has 2 columns"):
        Table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="align must be"):
        Table(["a", "b"], [[1, 2]], align="lx")
    with pytest.raises(KeyError, match="no column 'c'"):
        Table(["a", "b"], [[1, 2]]).column("c")


def test_empty_table_says_so():
    t = Table(["a"], [], empty="No stored runs yet.")
    assert "<table" not in t._repr_html_() and "No stored runs yet." in t._repr_html_()
    assert t._repr_markdown_() == "No stored runs yet."


def test_relative_change_is_a_signed_percentage():
    assert relative_change(105.1, 100) == "+5.1%"
    assert relative_change(2752 + 270896, 270896, digits=2) == "+1.02%"
    assert relative_change(99.7, 100) == "-0.3%"
    assert relative_change(3, 3) == "+0.0%"
    with pytest.raises(ValueError, match="non-zero"):
        relative_change(1, 0)


def test_mean_std_formats_summaries():
    assert mean_std({"mean": 0.1234, "std": 0.0041, "n": 3}) == "12.3 ± 0.4"
    assert mean_std({"mean": 0.1234, "std": 0.0, "n": 1}) == "12.3 (1 seed)"
    assert mean_std(None) is None


def _png_hash(image) -> str:
    return hashlib.sha256(image.value).hexdigest()


def test_frame_selector_links_control_to_precomputed_frames():
    import ipywidgets as W

    calls = []

    def make(k):
        calls.append(k)
        return _figure(k)

    box = widgets.frame_selector({"one": 1, "two": 2, "three": 3}, make, description="k", value="two")
    pick, stack = box.children
    assert calls == [1, 2, 3], "each frame is rendered once, when the widget is made"
    assert isinstance(pick, W.SelectionSlider) and isinstance(stack, W.Stack)
    assert pick.value == "two" and stack.selected_index == 1
    assert len({_png_hash(img) for img in stack.children}) == 3, "frames differ"
    # the link is a widget model in the saved state (what the static book embeds), joining the
    # control's index to the stack's selected_index, so switching needs no kernel
    from ipywidgets.embed import embed_data

    state = embed_data(views=[box])["manager_state"]["state"]
    links = [m["state"] for m in state.values() if m["model_name"] == "LinkModel"
             and m["state"]["source"] == [f"IPY_MODEL_{pick.model_id}", "index"]]
    assert [link["target"] for link in links] == [[f"IPY_MODEL_{stack.model_id}", "selected_index"]]
    assert not plt.get_fignums(), "figures are closed once rendered"


def test_frame_selector_html_frames_and_dropdown():
    import ipywidgets as W

    box = widgets.frame_selector(["a", "b"], lambda s: Table(["x"], [[s]]), control="dropdown")
    pick, stack = box.children
    assert isinstance(pick, W.Dropdown) and stack.selected_index == 0
    assert ["<table" in f.value for f in stack.children] == [True, True]


def test_frame_selector_rejects_bad_arguments():
    with pytest.raises(ValueError, match="value 'z' is not one of the options"):
        widgets.frame_selector(["a"], lambda s: "<p>a</p>", value="z")
    with pytest.raises(ValueError, match="control 'knob' is not one of"):
        widgets.frame_selector(["a"], lambda s: "<p>a</p>", control="knob")
    with pytest.raises(TypeError, match="a frame must be"):
        widgets.frame_selector(["a"], lambda s: 3)


def _record(label, seed, err):
    return {"label": label, "seed": seed, "final": {"test_error": err, "train_error": err},
            "budget": {"name": "smoke", "iterations": 1, "batch_size": 1}, "data": {"source": "cifar10-jpeg"},
            "provenance": {"device": "CPU"}, "model": {"depth": 20}, "config": {"model": label},
            "curves": {"step": [0, 1], "train_error": [0.9, err], "test_error": [0.9, err]}}


def test_label_choices_and_curve_explorer():
    assert list(widgets.label_choices(["a", "b", "c"])) == ["all", "a", "b", "c", "a vs b", "a vs c", "b vs c"]
    assert list(widgets.label_choices(["a"])) == ["a"]
    runs = Runs("toy", [_record("plain20", 0, 0.2), _record("plain20", 1, 0.3), _record("plain56", 0, 0.4)])
    box = widgets.curve_explorer(runs)
    pick, stack = box.children
    assert list(pick.options) == ["all", "plain20", "plain56"] and len(stack.children) == 3


def test_runs_table_has_mean_std_and_provenance():
    runs = Runs("toy", [_record("plain20", 0, 0.2), _record("plain20", 1, 0.3)])
    t = widgets.runs_table(runs)
    assert t.columns[:3] == ["run", "test error (%)", "seeds"]
    assert t.rows == [["plain20", "25.0 ± 7.1", "2", "smoke", "cifar10-jpeg", "CPU"]]
    empty = widgets.runs_table(Runs("none", []))
    assert not empty.rows and "No stored runs for" in empty._repr_html_() and "none" in empty._repr_html_()


def test_glue_hands_the_value_to_myst_nb_without_showing_it(monkeypatch):
    import myst_nb.ext.glue as myst_glue

    from resnet_book.tables import glue
    shown = []
    monkeypatch.setattr(myst_glue, "ipy_display", lambda bundle, raw, metadata: shown.append((bundle, metadata)))
    glue("ch5-gap", "58.3 ± 1.8")
    (bundle, metadata), = shown
    assert metadata["scrapbook"]["name"] == "ch5-gap"
    assert bundle == {"application/papermill.record/text/plain": "'58.3 ± 1.8'"}
    for bad in ("", "two words", "a:b", 3):
        with pytest.raises(ValueError, match="name"):
            glue(bad, 1)


def test_glue_all_glues_each_fact_under_its_prefixed_name(monkeypatch):
    import myst_nb.ext.glue as myst_glue

    from resnet_book.tables import glue_all
    shown = []
    monkeypatch.setattr(myst_glue, "ipy_display", lambda bundle, raw, metadata: shown.append((bundle, metadata)))
    glue_all({"gap-min": "8", "gap-max": "19"}, prefix="ch2-cpu")
    assert [m["scrapbook"]["name"] for _, m in shown] == ["ch2-cpu-gap-min", "ch2-cpu-gap-max"]
    assert [b["application/papermill.record/text/plain"] for b, _ in shown] == ["'8'", "'19'"]
