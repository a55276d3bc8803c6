"""Figures show each label at one budget and data source, name them, and never pool them."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from resnet_book import plots  # noqa: E402
from resnet_book.results import Runs  # noqa: E402


def _record(label, budget, source, seed, level, device="NVIDIA H100 80GB HBM3"):
    steps = [1000, 2000, 3000] if budget == "paper" else [50, 100, 150]
    curve = [level + 0.1, level + 0.05, level]
    return {"experiment": "e", "run_id": f"{label}_{budget}_seed{seed}", "label": label, "seed": seed,
            "status": "complete", "config": {"model": label}, "budget": {"name": budget},
            "data": {"source": source}, "provenance": {"device": device},
            "model": {"depth": int(label.lstrip("plainres"))},
            "curves": {"step": steps, "train_error": curve, "test_error": [c + 0.02 for c in curve]},
            "final": {"train_error": level, "test_error": level + 0.02}}


def _mixed():
    records = [_record(lab, "paper", "cifar10-jpeg", s, 0.1 + 0.01 * s) for lab in ("plain20", "plain32") for s in range(3)]
    records += [_record("plain56", "cpu", "cifar10-original", s, 0.7 + 0.01 * s, device="CPU (AMD EPYC, 2 threads)")
                for s in range(3)]
    return Runs("e", records)


def teardown_function():
    plt.close("all")


def test_caption_names_budget_and_source_per_group_of_labels():
    line = plots.provenance_line(_mixed())
    first, second = line.splitlines()
    assert first.startswith("plain20, plain32: data cifar10-jpeg · budget paper (paper recipe) · 3 seeds")
    assert second.startswith("plain56: data cifar10-original · budget cpu (reduced-scale)") and "CPU" in second
    one = Runs("e", [r for r in _mixed() if r["label"] == "plain56"])
    assert "\n" not in plots.provenance_line(one) and "plain56:" not in plots.provenance_line(one)


def test_a_label_whose_runs_mix_budgets_or_sources_is_refused():
    records = [_record("plain20", "paper", "cifar10-jpeg", 0, 0.1), _record("plain20", "paper", "cifar10", 1, 0.1)]
    with pytest.raises(ValueError, match="plain20 come from 2 budget/data-source pairs"):
        plots.final_errors(Runs("e", records))
    with pytest.raises(ValueError, match="one budget and source"):
        plots.error_curves(Runs("e", records))


def test_error_curves_give_each_budget_its_own_panel():
    fig = plots.error_curves(_mixed(), title="t")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["budget paper (paper recipe), cifar10-jpeg", "budget cpu (reduced-scale), cifar10-original"]
    one = plots.error_curves(Runs("e", [r for r in _mixed() if r["budget"]["name"] == "paper"]))
    assert len(one.axes) == 1


def test_fig6_curves_thin_train_bold_test_on_the_papers_axis():
    runs = Runs("e", [r for r in _mixed() if r["budget"]["name"] == "paper"])
    fig = plots.fig6_curves({"plain": runs, "ResNet": runs})
    left = fig.axes[0]
    assert left.get_ylim() == (0, 20) and left.get_xlabel() == "iter. (1e4)"
    widths = sorted({(line.get_linewidth(), line.get_linestyle()) for line in left.get_lines()})
    assert widths == [(0.9, "--"), (2.2, "-")]
    assert max(left.get_lines()[0].get_xdata()) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="mixes budgets"):
        plots.fig6_curves({"plain": _mixed()})


def test_depth_trend_has_a_panel_per_budget_and_open_markers_for_reduced_scale():
    fig = plots.depth_trend({"plain": _mixed()})
    paper, cpu = fig.axes
    assert "paper" in paper.get_title() and "cpu" in cpu.get_title()
    assert paper.get_lines()[0].get_markerfacecolor() != "white"
    assert cpu.get_lines()[0].get_markerfacecolor() == "white" and cpu.get_lines()[0].get_marker() == "s"
    assert "cifar10-original" in cpu.get_legend().get_texts()[0].get_text()


def test_final_errors_names_the_budget_under_each_bar_when_budgets_differ():
    fig = plots.final_errors(_mixed())
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["plain20\n(paper)", "plain32\n(paper)", "plain56\n(cpu)"]
    hatches = [p.get_hatch() for p in fig.axes[0].patches]
    assert hatches == [None, None, "//"]


def test_signal_profiles_draws_forward_and_backward_per_profile():
    stats = {"b1": {"act_std": 1.0, "grad_norm": 4.0}, "b2": {"act_std": 2.0, "grad_norm": 2.0}}
    fig = plots.signal_profiles({"init": stats, "trained": stats}, note="n")
    forward, backward = fig.axes[:2]
    assert list(forward.lines[0].get_ydata()) == [1.0, 2.0] and list(backward.lines[1].get_ydata()) == [4.0, 2.0]
    assert [t.get_text() for t in forward.get_legend().get_texts()] == ["init", "trained"]
    plt.close(fig)
