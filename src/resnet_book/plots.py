"""One figure style for the book. Every figure states its data source, budget and device.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies);
lines also differ in style where two quantities share an axis, as in the paper's Fig. 6:
thin dashed lines are training error, bold lines test error.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .results import Runs, mean_curve
from .train import BUDGETS

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def style() -> None:
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
        "legend.frameon": False, "axes.prop_cycle": plt.cycler(color=OKABE_ITO),
    })


BUDGET_ORDER = ("paper", "cpu", "smoke")  # largest first
BUDGET_MARKERS = {"paper": "o", "cpu": "s", "smoke": "^"}  # filled for paper, open for reduced scale


def _budget_rank(budget: str) -> tuple[int, str]:
    return (BUDGET_ORDER.index(budget) if budget in BUDGET_ORDER else len(BUDGET_ORDER), budget)


def scale_name(budget: str) -> str:
    return f"{budget} ({'paper recipe' if budget == 'paper' else 'reduced-scale'})"


def stratum(records: list[dict], label: str = "") -> tuple[str, str]:
    """The one (budget, data source) of a label's runs; a statistic over runs of several budgets or
    sources would pool them, so that is refused."""
    found = {(r["budget"]["name"], r["data"]["source"]) for r in records}
    if len(found) != 1:
        raise ValueError(f"the runs of {label or 'one label'} come from {len(found)} budget/data-source pairs "
                         f"({', '.join(f'{b}/{s}' for b, s in sorted(found))}); a figure shows one per label: "
                         f"load them with one budget and source")
    return found.pop()


def _strata(groups: dict[str, list[dict]], labels) -> dict[tuple[str, str], list[str]]:
    """Labels by their (budget, source), largest budget first."""
    out: dict[tuple[str, str], list[str]] = {}
    for label in labels:
        out.setdefault(stratum(groups[label], label), []).append(label)
    return dict(sorted(out.items(), key=lambda kv: (_budget_rank(kv[0][0]), kv[0][1])))


def provenance_line(runs: Runs, labels: Sequence[str] | None = None) -> str:
    """The caption line: data source, budget, seeds and device, per group of labels that share a
    budget and source ('data cifar10-jpeg · budget cpu (reduced-scale) · 3 seeds, mean ± std · CPU';
    with several budgets or sources, one such line per group, naming its labels)."""
    if not len(runs):
        return f"no stored runs for {runs.experiment!r}"
    groups = runs.groups()
    labels = [lab for lab in (labels or sorted(groups, key=depth_key)) if lab in groups]
    parts = []
    strata = _strata(groups, labels)
    for (budget, source), members in strata.items():
        records = [r for lab in members for r in groups[lab]]
        seeds = sorted({len(groups[lab]) for lab in members})
        seed_text = (f"{seeds[0]} seed{'s' if seeds[0] != 1 else ''}" if len(seeds) == 1
                     else f"{min(seeds)}-{max(seeds)} seeds")
        devices = sorted({r["provenance"]["device"].split(" (")[0] for r in records})
        line = (f"data {source} · budget {scale_name(budget)} · {seed_text}, mean ± std · "
                f"device {', '.join(devices)}")
        parts.append(line if len(strata) == 1 else f"{', '.join(members)}: {line}")
    return "\n".join(parts)


CAPTION_FONTSIZE = 8.5  # the smallest caption that stays legible when a figure is shown at page width


def _footer(fig, note: str = "", *, title: str | None = None, fontsize: float = CAPTION_FONTSIZE,
            bottom: float = 0.03) -> None:
    """The caption every figure carries (data, budget, device) at the bottom left, the figure's
    overall ``title`` if any, and a layout that leaves room for the caption.

    The caption is set in at least :data:`CAPTION_FONTSIZE` points and wrapped to the figure's
    width; the room left below the axes is the larger of ``bottom`` (figure fraction) and what the
    wrapped lines need."""
    import textwrap

    if title:
        fig.suptitle(title)
    if not note:
        fig.tight_layout()
        return
    fontsize = max(fontsize, CAPTION_FONTSIZE)
    width_in, height_in = fig.get_size_inches()
    chars = max(40, int(0.98 * width_in * 72 / (0.5 * fontsize)))  # average glyph about half an em
    lines = [w for line in note.splitlines() for w in (textwrap.wrap(line, chars) or [""])]
    fig.text(0.01, 0.005, "\n".join(lines), fontsize=fontsize, color="#444444", ha="left", va="bottom",
             linespacing=1.2)
    needed = (len(lines) * 1.2 * fontsize + 4) / 72 / height_in
    fig.tight_layout(rect=(0, max(bottom, needed), 1, 1))


def _mean_curve(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    curve = mean_curve(records, key)
    return np.asarray(curve["step"]), np.asarray(curve["mean"], dtype=float), np.asarray(curve["std"], dtype=float)


def require_runs(runs: Runs) -> Runs:
    """``runs``, or one loud :class:`~resnet_book.results.ResultsError` when there are none: a
    figure is never drawn empty (e.g. in Colab before the setup cell fetched the stored results)."""
    if not len(runs):
        from .results import RESULTS_ENV, ResultsError, results_root

        raise ResultsError(
            f"no stored runs of {runs.experiment!r} under {results_root()}: nothing to draw. In Colab, run the "
            f"notebook's first code cell (it fetches the book's stored results); elsewhere run from the repository, "
            f"or set {RESULTS_ENV} to its data/results folder, or train them "
            f"(python -m resnet_book reproduce {runs.experiment}).")
    return runs


def _labels_and_axes(runs: Runs, labels, ax, figsize):
    style()
    groups = runs.groups()
    labels = [lab for lab in (labels or sorted(groups, key=depth_key)) if lab in groups]
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    return groups, labels, fig, ax


def _draw_curves(ax, groups, labels, show, colours):
    for label in labels:
        colour = colours[label]
        for key in show:
            steps, mean, std = _mean_curve(groups[label], key)
            test = key != "train_error"
            ax.plot(steps, 100 * mean, color=colour, lw=2.0 if test else 0.9, ls="-" if test else "--",
                    label=f"{label} ({'test' if test else 'train'})")
            ax.fill_between(steps, 100 * (mean - std), 100 * (mean + std), color=colour, alpha=0.15, lw=0)
    ax.set_xlabel("iteration")
    ax.set_ylabel("error (%)")
    ax.legend(ncol=2, fontsize=7)


def error_curves(runs: Runs, labels: Sequence[str] | None = None, *, title: str | None = None,
                 show: Sequence[str] = ("train_error", "test_error"), ax=None):
    """Training (thin, dashed) and test (bold) error against iterations, mean ± std over seeds.
    Labels of different budgets (or data sources) get one panel each, titled with it."""
    groups = require_runs(runs).groups()
    labels = [lab for lab in (labels or sorted(groups, key=depth_key)) if lab in groups]
    strata = _strata(groups, labels)
    colours = {lab: OKABE_ITO[i % len(OKABE_ITO)] for i, lab in enumerate(labels)}
    style()
    if ax is not None or len(strata) <= 1:
        groups, labels, fig, ax = _labels_and_axes(runs, labels, ax, (6.4, 4.0))
        _draw_curves(ax, groups, labels, show, colours)
        if title:
            ax.set_title(title)
        _footer(fig, provenance_line(runs, labels))
        return fig
    fig, axes = plt.subplots(1, len(strata), figsize=(4.6 * len(strata), 4.0))
    for a, ((budget, source), members) in zip(axes, strata.items()):
        _draw_curves(a, groups, members, show, colours)
        a.set_title(f"budget {scale_name(budget)}, {source}", fontsize=9)
    n = len(provenance_line(runs, labels).splitlines())
    _footer(fig, provenance_line(runs, labels), title=title, bottom=0.035 * n)
    return fig


def fig6_curves(panels: dict[str, Runs], *, title: str | None = None, ylim: tuple[float, float] = (0, 20)):
    """Paper Fig. 6 from stored runs: one panel per entry (e.g. plain, ResNet), training error thin
    and dashed, test error bold, mean line and ± std band over seeds, iterations in units of 1e4
    and the paper's 0-20% error axis.  Each panel's runs must share one budget and data source."""
    style()
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.0, 4.3 * len(panels)), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    lines = []
    for ax, (name, runs) in zip(axes, panels.items()):
        groups = require_runs(runs).groups()
        labels = sorted(groups, key=depth_key)
        strata = _strata(groups, labels)
        if len(strata) != 1:
            raise ValueError(f"panel {name!r} mixes budgets or data sources ({', '.join(f'{b}/{s}' for b, s in strata)}); "
                             f"a Fig. 6 panel shows one")
        (budget, source), = strata
        for i, label in enumerate(labels):
            colour = OKABE_ITO[i % len(OKABE_ITO)]
            for key, lw, ls in (("train_error", 0.9, "--"), ("test_error", 2.2, "-")):
                steps, mean, std = _mean_curve(groups[label], key)
                x = np.asarray(steps) / 1e4
                ax.plot(x, 100 * mean, color=colour, lw=lw, ls=ls,
                        label=label if key == "test_error" else None)
                ax.fill_between(x, 100 * (mean - std), 100 * (mean + std), color=colour, alpha=0.18, lw=0)
        ax.set_ylim(*ylim)
        ax.set_xlabel("iter. (1e4)")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8, loc="upper right", title="bold: test, dashed: train", title_fontsize=7)
        lines.append(f"{name}: {provenance_line(runs)}")
    axes[0].set_ylabel("error (%)")
    _footer(fig, "\n".join(lines), title=title, bottom=0.035 * len(lines) + 0.01)
    return fig


def final_errors(runs: Runs, labels: Sequence[str] | None = None, *, metric: str = "train_error", ax=None,
                 title: str | None = None):
    """Final ``metric`` per label as bars with ± std error bars and the individual seeds as dots.
    Reduced-scale labels are hatched and every tick names its budget."""
    groups = require_runs(runs).groups()
    strata = _strata(groups, [lab for lab in (labels or groups) if lab in groups])
    groups, labels, fig, ax = _labels_and_axes(runs, labels, ax, (5.2 if len(strata) == 1 else 6.4, 3.4))
    budget_of = {lab: b for (b, _), members in strata.items() for lab in members}
    for i, label in enumerate(labels):
        vals = 100 * np.asarray([r["final"][metric] for r in groups[label]])
        ax.bar(i, vals.mean(), yerr=vals.std(ddof=1) if len(vals) > 1 else 0, color=OKABE_ITO[i % len(OKABE_ITO)],
               alpha=0.8, capsize=4, hatch=None if budget_of[label] == "paper" else "//", edgecolor="white")
        ax.plot(np.full(len(vals), i), vals, "o", color="black", ms=3)
    ax.set_xticks(range(len(labels)), [f"{lab}\n({budget_of[lab]})" for lab in labels] if len(strata) > 1 else labels)
    ax.set_ylabel(f"final {metric.replace('_', ' ')} (%)")
    if title:
        ax.set_title(title)
    note = provenance_line(runs, labels)
    _footer(fig, note, fontsize=6.5, bottom=0.04 * len(note.splitlines()))
    return fig


def layer_profile(profiles: dict[str, dict[str, float]], *, ylabel: str, title: str | None = None,
                  log: bool = True, note: str = ""):
    """One line per profile (e.g. 'plain-56 at init') over layer/block index."""
    style()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (name, values) in enumerate(profiles.items()):
        ax.plot(range(1, len(values) + 1), list(values.values()), marker="o", ms=2.5, lw=1.4,
                color=OKABE_ITO[i % len(OKABE_ITO)], ls="-" if i % 2 == 0 else "--", label=name)
    ax.set_xlabel("block (input → output)")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    _footer(fig, note)
    return fig


def budget_note(budget: str) -> str:
    b = BUDGETS[budget]
    return f"budget {b.name}: {b.description}"


def depth_key(label: str):
    """Sort key that puts 'plain20' before 'plain110' (family, then depth)."""
    digits = "".join(ch if ch.isdigit() else " " for ch in label).split()
    return (label.rstrip("0123456789-"), int(digits[0]) if digits else 0, label)


def fit_curves(fits, *, title: str | None = None, note: str = "", ax=None):
    """Relative error against step for identity-fitting runs (one line per variant)."""
    style()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 3.6))
    else:
        fig = ax.figure
    styles = {"plain": "--", "residual": "-", "residual, zero-init": ":"}
    for i, fit in enumerate(fits):
        # a perfect fit has error 0, which a log axis cannot show: clip at 1e-6 and say so
        err = np.maximum(np.asarray(fit.relative_error), 1e-6)
        ax.plot(fit.steps, err, ls=styles.get(fit.variant, "-"), lw=1.8, color=OKABE_ITO[i % len(OKABE_ITO)],
                label=f"{fit.variant} (weights moved {100 * fit.weight_change:.0f}%)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE / var(target)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    _footer(fig, (note + " · " if note else "") + "errors below 1e-6 drawn at 1e-6")
    return fig


def depth_trend(named_runs: dict[str, Runs], *, metric: str = "train_error", title: str | None = None):
    """Final ``metric`` (mean ± std over seeds) against depth, one line per family of runs.  Each
    budget gets its own panel (their errors are not on one scale), largest budget first; a family's
    points at one budget share one data source or are refused."""
    style()
    by_budget: dict[str, dict[str, list[tuple[int, float, float]]]] = {}
    lines = []
    for name, runs in named_runs.items():
        groups = require_runs(runs).groups()
        strata = _strata(groups, list(groups))
        for (budget, source), members in strata.items():
            points = by_budget.setdefault(budget, {}).setdefault(f"{name} ({source})", [])
            for label in members:
                vals = 100 * np.asarray([r["final"][metric] for r in groups[label]])
                points.append((groups[label][0]["model"]["depth"], vals.mean(),
                               vals.std(ddof=1) if len(vals) > 1 else 0.0))
        lines += [f"{name}, {line}" if len(strata) > 1 else f"{name}: {line}" for line in provenance_line(runs).splitlines()]
    budgets = sorted(by_budget, key=_budget_rank)
    fig, axes = plt.subplots(1, max(len(budgets), 1), figsize=(5.0 * max(len(budgets), 1), 3.6), squeeze=False)
    families = {}
    for ax, budget in zip(axes[0], budgets):
        for family, points in by_budget[budget].items():
            i = families.setdefault(family.split(" (")[0], len(families))
            depths, means, stds = zip(*sorted(points))
            ax.errorbar(depths, means, yerr=stds, marker=BUDGET_MARKERS.get(budget, "D"), capsize=3, lw=1.8,
                        color=OKABE_ITO[i % len(OKABE_ITO)], ls="-" if i % 2 == 0 else "--", label=family,
                        mfc=OKABE_ITO[i % len(OKABE_ITO)] if budget == "paper" else "white")
        ax.set_xlabel("depth (weighted layers)")
        ax.set_ylabel(f"final {metric.replace('_', ' ')} (%)")
        ax.set_title(f"budget {scale_name(budget)}", fontsize=9)
        ax.legend(fontsize=8)
    _footer(fig, "\n".join(lines), fontsize=6.5, title=title, bottom=0.035 * len(lines) + 0.01)
    return fig


def lesion_errors(studies: dict[str, list[dict]], *, title: str | None = None, note: str = ""):
    """Veit et al. (2016), Fig. 3 and 5 at our scale: test error when one block is dropped (left,
    per block; blocks that cannot be dropped are left out) and when k random blocks are dropped
    (right), mean ± std over the runs given for each name (the ``lesion`` analyses of stored runs)."""
    style()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.6, 3.6), gridspec_kw={"width_ratios": [1.6, 1]})
    for i, (name, runs) in enumerate(studies.items()):
        colour, ls = OKABE_ITO[i % len(OKABE_ITO)], "-" if i % 2 == 0 else "--"
        base = 100 * np.asarray([r["baseline"] for r in runs])
        blocks = list(runs[0]["single"])
        idx = [j for j, b in enumerate(blocks) if runs[0]["single"][b] is not None]
        vals = 100 * np.asarray([[r["single"][blocks[j]] for j in idx] for r in runs], dtype=float)
        x = np.asarray(idx) + 1
        ax1.errorbar(x, vals.mean(0), yerr=vals.std(0, ddof=1) if len(runs) > 1 else None, color=colour, ls=ls,
                     marker="o", ms=3, lw=1.4, capsize=2, label=f"{name}: one block dropped")
        ax1.axhline(base.mean(), color=colour, lw=0.8, ls=":", label=f"{name}: nothing dropped")
        ks = sorted(runs[0]["random_sets"], key=int)
        if ks:
            per_run = 100 * np.asarray([[np.mean(r["random_sets"][k]) for k in ks] for r in runs])
            kx = [0] + [int(k) for k in ks]
            mean = np.concatenate([[base.mean()], per_run.mean(0)])
            std = np.concatenate([[base.std(ddof=1) if len(runs) > 1 else 0],
                                  per_run.std(0, ddof=1) if len(runs) > 1 else np.zeros(len(ks))])
            ax2.errorbar(kx, mean, yerr=std, color=colour, ls=ls, marker="o", ms=3, lw=1.4, capsize=2, label=name)
    for ax in (ax1, ax2):
        ax.axhline(90, color="#888888", lw=0.8, ls="-.")
        ax.text(0.99, 90, "chance (90%)", fontsize=7, color="#666666", va="bottom", ha="right",
                transform=ax.get_yaxis_transform(), bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    ax1.set_ylim(top=max(ax1.get_ylim()[1], 95))
    ax2.set_ylim(top=max(ax2.get_ylim()[1], 95))
    ax1.set_xlabel("dropped block (input → output)")
    ax1.set_ylabel("test error (%)")
    ax2.set_xlabel("number of random blocks dropped")
    ax2.set_ylabel("test error (%)")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    _footer(fig, note, title=title, bottom=0.04)
    return fig


def layer_responses(responses: dict[str, list[dict[str, float]]], *, title: str | None = None, note: str = "",
                    log: bool = True):
    """Paper Fig. 7 from our runs: std of every 3x3 layer's response (after BN, before ReLU or
    addition) in network order (left) and sorted in descending order (right), mean ± std over the
    runs given for each name (the ``responses`` analyses of stored runs, one dict per run).  The
    std axis is logarithmic by default, so that a few large responses (plain-56's first layers at
    the cpu budget reach 10) do not flatten every other line."""
    style()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.6, 3.4))
    for i, (name, runs) in enumerate(responses.items()):
        colour, ls = OKABE_ITO[i % len(OKABE_ITO)], "-" if "plain" in name.lower() else "--"
        layers = list(runs[0])
        vals = np.asarray([[r[k] for k in layers] for r in runs], dtype=float)
        ranked = -np.sort(-vals, axis=1)  # each run sorted on its own, as the paper ranks one net
        x = np.arange(1, len(layers) + 1)
        for ax, v in ((ax1, vals), (ax2, ranked)):
            mean = v.mean(0)
            ax.plot(x, mean, color=colour, ls=ls, lw=1.3, label=name)
            if len(runs) > 1:
                sd = v.std(0, ddof=1)
                low = np.maximum(mean - sd, mean / 10) if log else mean - sd  # a log axis cannot show <= 0
                ax.fill_between(x, low, mean + sd, color=colour, alpha=0.15, lw=0)
    ax1.set_xlabel("3×3 layer (input → output)")
    ax2.set_xlabel("3×3 layer, sorted by response std")
    for ax in (ax1, ax2):
        ax.set_ylabel("std of layer response" + (" (log scale)" if log else ""))
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
    ax1.legend(fontsize=7)
    _footer(fig, note, title=title, bottom=0.04)
    return fig


def path_lengths(num_blocks: int, *, title: str | None = None):
    """How many of the 2**n paths through n residual blocks pass through k branches (Veit et al.
    2016, Fig. 6a at our depth): the binomial coefficients, as a share of all paths."""
    from .analysis import path_length_counts

    style()
    counts = np.asarray(path_length_counts(num_blocks), dtype=float)
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    ax.bar(range(num_blocks + 1), 100 * counts / counts.sum(), color=OKABE_ITO[0], alpha=0.85)
    ax.set_xlabel("path length (residual branches on the path)")
    ax.set_ylabel("share of all paths (%)")
    ax.set_title(title or f"The {2 ** num_blocks:.3g} paths through {num_blocks} residual blocks")
    fig.tight_layout()
    return fig


def stage_costs(breakdowns: dict[str, dict[str, dict[str, int]]], *, title: str | None = None, note: str = ""):
    """Parameters, multiply-adds and values written per stage, one group of bars per stage and one
    bar per model (the ``analysis.cost_breakdown`` of each).  Stages ``layer1`` ... ``layer4`` are
    labelled with paper Table 1's names, conv2_x ... conv5_x."""
    style()
    quantities = (("parameters", "parameters (millions)", 1e6), ("macs", "multiply-adds (billions)", 1e9),
                  ("activations", "values written (millions)", 1e6))
    stages = list(next(iter(breakdowns.values())))
    if any(list(b) != stages for b in breakdowns.values()):
        raise ValueError("the breakdowns have different stages; compare models of one family")
    names = {"stem": "stem", "head": "head"} | {s: f"conv{int(s[5:]) + 1}_x" for s in stages if s.startswith("layer")}
    # one panel per quantity, stacked, so the figure is legible at page width; the models' totals
    # go in each panel's title and one legend (in the first panel, whose left stages are small)
    # names the models
    fig, axes = plt.subplots(3, 1, figsize=(6.4, 7.4), sharex=True)
    width = 0.8 / len(breakdowns)
    x = np.arange(len(stages))
    for ax, (key, label, scale) in zip(axes, quantities):
        totals = []
        for i, (model, b) in enumerate(breakdowns.items()):
            ax.bar(x + (i - (len(breakdowns) - 1) / 2) * width, [b[s][key] / scale for s in stages], width,
                   color=OKABE_ITO[i % len(OKABE_ITO)], hatch="//" if i % 2 else None, edgecolor="white", label=model)
            totals.append(f"{model} {sum(v[key] for v in b.values()) / scale:.3g}")
        ax.set_ylabel(label.replace(" (", "\n("))
        ax.set_title("in all: " + ", ".join(totals), fontsize=9, loc="left")
        ax.margins(y=0.12)
    axes[-1].set_xticks(x, [names.get(s, s) for s in stages])
    axes[0].legend(loc="upper left", fontsize=9)
    _footer(fig, note, title=title, bottom=0.04)
    return fig


def learning_rate_schedule(configs: dict, *, warmup_end: int = 400, title: str | None = None, note: str = ""):
    """The learning rate of each :class:`~resnet_book.train.TrainConfig` at every iteration of its
    budget, from the trainer's own ``learning_rate``.  A warm-up, where the config uses one, is
    drawn as ending at ``warmup_end`` (in training it ends when the training error first falls
    below 80%; the paper reports about 400 iterations for ResNet-110)."""
    from .train import learning_rate

    style()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for i, (name, config) in enumerate(configs.items()):
        budget = config.effective_budget
        steps = np.arange(budget.iterations)
        lrs = [learning_rate(config, budget, int(s), config.uses_warmup and s < warmup_end) for s in steps]
        ax.step(steps, lrs, where="post", color=OKABE_ITO[i % len(OKABE_ITO)], lw=1.6,
                ls="-" if i % 2 == 0 else "--", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    _footer(fig, note)
    return fig


def _layer_text(entry: dict) -> str:
    if entry["kind"] == "Conv2d":
        k, stride = entry["kernel"], entry["stride"]
        return (f"{k}×{k} conv, {entry['in_channels']}→{entry['out_channels']}" + (f", /{stride}" if stride > 1 else ""))
    return {"BatchNorm2d": "BN", "ReLU": "ReLU"}.get(entry["kind"], entry["kind"])


def block_diagrams(blocks: dict[str, dict], *, title: str | None = None, note: str = ""):
    """Blocks side by side, drawn from :func:`analysis.branch_layers` traces (paper Fig. 5 style):
    the residual function's layers top to bottom, the shortcut on the right, the addition and the
    ReLU after it, and the output shape of each weight layer."""
    style()
    tallest = max(len(t["branch"]) for t in blocks.values()) + 2
    fig, axes = plt.subplots(1, len(blocks), figsize=(3.6 * len(blocks), max(5.2, 0.62 * tallest + 1.0)), squeeze=False)
    for ax, (name, trace) in zip(axes[0], blocks.items()):
        ax.set_axis_off()
        layers = trace["branch"]
        n = len(layers) + 2  # + addition + final ReLU
        ys = np.linspace(0.86, 0.12, n)
        box = dict(boxstyle="round,pad=0.3", lw=1.0)
        c_in = next(e["in_channels"] for e in layers if e["kind"] == "Conv2d")
        ax.text(0.42, 0.97, f"input: {c_in}-d", ha="center", va="center", fontsize=9)
        prev = 0.95
        for y, e in zip(ys, layers):
            colour = {"Conv2d": "#DCEBF5", "BatchNorm2d": "#FBE8C8", "ReLU": "#E3F1E8"}.get(e["kind"], "white")
            label = _layer_text(e)
            if e["kind"] == "Conv2d":
                label += f"\n→ {e['out_shape'][0]}×{e['out_shape'][1]}×{e['out_shape'][2]}"
            ax.annotate("", xy=(0.42, y + 0.028), xytext=(0.42, prev - 0.02), arrowprops=dict(arrowstyle="->", lw=0.8))
            ax.text(0.42, y, label, ha="center", va="center", fontsize=8, bbox={**box, "fc": colour})
            prev = y
        y_add, y_relu = ys[-2], ys[-1]
        ax.annotate("", xy=(0.42, y_add + 0.03), xytext=(0.42, prev - 0.03), arrowprops=dict(arrowstyle="->", lw=0.8))
        if trace["residual"]:
            ax.text(0.42, y_add, "+", ha="center", va="center", fontsize=13, bbox=dict(boxstyle="circle,pad=0.2", fc="white"))
            short = " + ".join(_layer_text(e) for e in trace["shortcut"]) or "identity"
            ax.plot([0.42, 0.9, 0.9], [0.95, 0.95, y_add], color="0.3", lw=1.0)
            ax.annotate("", xy=(0.47, y_add), xytext=(0.9, y_add), arrowprops=dict(arrowstyle="->", lw=1.0, color="0.3"))
            ax.text(0.93, (0.95 + y_add) / 2, short, rotation=90, ha="left", va="center", fontsize=8, color="0.2")
        ax.annotate("", xy=(0.42, y_relu + 0.03), xytext=(0.42, y_add - 0.03), arrowprops=dict(arrowstyle="->", lw=0.8))
        ax.text(0.42, y_relu, "ReLU", ha="center", va="center", fontsize=8, bbox={**box, "fc": "#E3F1E8"})
        ax.set_xlim(0, 1.05)
        ax.set_ylim(0.03, 1.0)
        ax.set_title(name, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    _footer(fig, note)
    return fig


def signal_profiles(profiles: dict[str, dict[str, dict[str, float]]], *, title: str | None = None, note: str = ""):
    """Forward and backward signal through a network, block by block (input → output): the std
    of each block's output (left) and the norm of the loss gradient with respect to it (right),
    one line per named :func:`resnet_book.analysis.activation_stats` result, log axes."""
    style()
    fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.4))
    for ax, key, label in ((axes[0], "act_std", "std of block output"),
                           (axes[1], "grad_norm", "‖∂loss/∂(block output)‖")):
        for i, (name, stats) in enumerate(profiles.items()):
            values = [v[key] for v in stats.values() if key in v]
            ax.plot(range(1, len(values) + 1), values, marker="o", ms=2.5, lw=1.4, label=name,
                    color=OKABE_ITO[i % len(OKABE_ITO)], ls="-" if i % 2 == 0 else "--")
        ax.set_yscale("log")
        ax.set_xlabel("block (input → output)")
        ax.set_ylabel(label)
    axes[0].set_title("forward", fontsize=10)
    axes[1].set_title("backward", fontsize=10)
    axes[0].legend(fontsize=7)
    _footer(fig, note, title=title, bottom=0.04)
    return fig
