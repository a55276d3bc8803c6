"""The claim-by-claim scorecard: its statistics, its verdict rules, and the verdicts of the stored runs."""
import glob
import json
import math
from pathlib import Path

import numpy as np
import pytest

from resnet_book import scorecard
from resnet_book.scorecard import Claim, QuotedClaim, ValueClaim, evaluate

REPO = Path(__file__).resolve().parents[1]


def _student_t_cdf(t: float, df: int) -> float:
    x = np.linspace(-200.0, t, 400_001)
    pdf = (math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))) * (1 + x ** 2 / df) ** (-(df + 1) / 2)
    return float(np.trapezoid(pdf, x))


@pytest.mark.parametrize("df", [2, 3, 4, 6, 10, 30])
def test_t_critical_is_the_two_sided_five_percent_quantile(df):
    assert _student_t_cdf(scorecard.t_critical(df), df) == pytest.approx(0.975, abs=2e-4)


def test_t_critical_rounds_degrees_of_freedom_down_and_refuses_less_than_one():
    assert scorecard.t_critical(3.9) == scorecard.t_critical(3) > scorecard.t_critical(4)
    with pytest.raises(ValueError, match="at least 1"):
        scorecard.t_critical(0.5)


def test_welch_matches_the_textbook_formula():
    a, b = [10.0, 11.0, 12.5], [8.0, 8.5, 9.5, 9.0]
    w = scorecard.welch(a, b)
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    assert w.difference == pytest.approx(np.mean(b) - np.mean(a))
    assert w.t == pytest.approx((np.mean(b) - np.mean(a)) / math.sqrt(va + vb))
    assert w.df == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3))
    with pytest.raises(ValueError, match="at least two values"):
        scorecard.welch([1.0], [1.0, 2.0])


def test_binomial_se_of_a_thousand_image_test_set_at_half_error_is_1_6_points():
    assert 100 * scorecard.binomial_se(0.5, 1000) == pytest.approx(1.58, abs=0.01)
    with pytest.raises(ValueError):
        scorecard.binomial_se(1.5, 10)


def _run(label, budget, source, seed, error, experiment="exp", metric="test_error"):
    final = {"train_error": error / 100, "test_error": error / 100}
    return {"experiment": experiment, "run_id": f"{label}_{budget}_seed{seed}", "label": label, "seed": seed,
            "status": "complete", "config": {"model": label}, "budget": {"name": budget},
            "data": {"source": source}, "final": final}


def _runs(label, budget, source, errors, **kw):
    return [_run(label, budget, source, s, e, **kw) for s, e in enumerate(errors)]


CHAIN = Claim("c", "deeper is better", "here", chain=("a20", "a32", "a44"))


def test_a_clear_paper_budget_ordering_is_reproduced_at_paper_scale():
    runs = (_runs("a20", "paper", "cifar10", [9.0, 9.1, 8.9]) + _runs("a32", "paper", "cifar10", [8.0, 8.1, 7.9])
            + _runs("a44", "paper", "cifar10", [7.0, 7.2, 6.9]))
    (v,) = evaluate([CHAIN], runs)
    assert v.verdict == "reproduced at paper scale"
    assert [(c.a, c.b) for c in v.comparisons] == [("a20", "a44"), ("a20", "a32"), ("a32", "a44")]
    assert "cifar10" in v.evidence[0] and "paper budget" in v.evidence[0]


def test_part_of_the_claims_range_at_paper_scale_is_reproduced_in_part_and_says_which_part():
    runs = _runs("a20", "paper", "cifar10", [9.0, 9.1, 8.9]) + _runs("a32", "paper", "cifar10", [8.0, 8.1, 7.9])
    (v,) = evaluate([CHAIN], runs)
    assert v.verdict == "reproduced in part at paper scale"
    assert v.basis == "a20 → a32 (paper budget, cifar10, 3 seeds each)"
    pairs = Claim("p", "b beats a", "here", pairs=(("a20", "b20"), ("a32", "b32")))
    runs = _runs("a20", "paper", "cifar10", [9.0, 9.1, 8.9]) + _runs("b20", "paper", "cifar10", [8.0, 8.1, 7.9, 8.2])
    (v,) = evaluate([pairs], runs)
    assert (v.verdict, v.basis) == ("reproduced in part at paper scale", "a20 vs b20 (paper budget, cifar10, 3 or 4 seeds each)")
    assert "on a20 vs b20 (paper budget" in str(scorecard.Report([v]))


def test_a_budget_where_the_control_goes_the_claims_way_too_does_not_count():
    claim = Claim("d", "deeper plain nets are worse", "here", chain=("p44", "p20"), control=("r44", "r20"))
    plain = _runs("p20", "cpu", "cifar10", [50.0, 51.0, 49.0]) + _runs("p44", "cpu", "cifar10", [70.0, 71.0, 69.0])
    (v,) = evaluate([claim], plain)
    assert v.verdict == "reduced scale only" and v.basis == "p44 → p20 (cpu budget, cifar10, 3 seeds each)"
    resnets_flat = _runs("r20", "cpu", "cifar10", [40.0, 42.0, 38.0]) + _runs("r44", "cpu", "cifar10", [41.0, 39.0, 40.5])
    assert evaluate([claim], plain + resnets_flat)[0].verdict == "reduced scale only"
    resnets_worse = _runs("r20", "cpu", "cifar10", [40.0, 41.0, 39.0]) + _runs("r44", "cpu", "cifar10", [55.0, 54.0, 56.0])
    (v,) = evaluate([claim], plain + resnets_worse)
    assert v.verdict == "not reproduced"
    assert any(e.startswith("cpu budget: not counted") and "(r20 − r44 = -15.00 points, t = " in e for e in v.evidence)
    facts = scorecard.Report([v]).facts()
    assert (facts["d-cpu-control"], facts["d-cpu-min"], facts["d-cpu-max"]) == ("15.0", "20.0", "20.0")
    assert scorecard.Report([v])["d"] is v
    with pytest.raises(ValueError, match="at least two labels"):
        Claim("x", "x", "x", chain=("a", "b"), control=("c",))


def test_the_stored_cpu_runs_do_not_count_for_the_degradation_because_the_resnets_degrade_too():
    from resnet_book import experiments, results
    records = [r for name in experiments.EXPERIMENTS for r in results.load(name, budget="all", root=REPO / "data/results")]
    (v,) = evaluate([c for c in scorecard.CLAIMS if c.key == "degradation"], records)
    assert v.verdict == "not reproduced"
    (confound,) = [e for e in v.evidence if "not counted" in e]
    assert "beyond seed noise (resnet20 − resnet56 = -14.20 points, t = -6.9, 3+3 seeds)" in confound


def test_within_noise_at_paper_scale_but_clear_at_cpu_is_reduced_scale_only():
    runs = (_runs("a20", "paper", "cifar10-jpeg", [9.0, 8.0, 9.5]) + _runs("a32", "paper", "cifar10-jpeg", [8.5, 9.2, 8.7])
            + _runs("a20", "cpu", "cifar10-jpeg", [60.0, 61.0, 59.0]) + _runs("a44", "cpu", "cifar10-jpeg", [50.0, 51.0, 49.5]))
    (v,) = evaluate([CHAIN], runs)
    assert v.verdict == "reduced scale only"
    assert any("within noise" in e for e in v.evidence) and any("a32" in e and "no runs at this budget" in e for e in v.evidence)


def test_the_opposite_at_paper_scale_is_not_reproduced_whatever_the_cpu_runs_say():
    runs = (_runs("a20", "paper", "cifar10", [7.0, 7.1, 6.9]) + _runs("a32", "paper", "cifar10", [8.0, 8.1, 7.9])
            + _runs("a20", "cpu", "cifar10", [60.0, 61.0, 59.0]) + _runs("a32", "cpu", "cifar10", [50.0, 51.0, 49.5]))
    (v,) = evaluate([CHAIN], runs)
    assert v.verdict == "not reproduced"
    assert [c.outcome for c in v.comparisons if c.budget == "paper"] == ["opposite"]


def test_no_runs_means_quoted_only_and_a_single_seed_is_not_a_statistic():
    runs = _runs("a20", "paper", "cifar10", [9.0]) + _runs("a32", "paper", "cifar10", [8.0])
    (v, q) = evaluate([CHAIN, QuotedClaim("q", "ImageNet", "Table 3")], runs)
    assert v.verdict == q.verdict == "quoted only"


def test_sources_are_never_pooled_and_the_original_pixels_are_preferred():
    jpeg = _runs("a20", "paper", "cifar10-jpeg", [7.0, 7.1, 6.9]) + _runs("a32", "paper", "cifar10-jpeg", [8.0, 8.1, 7.9])
    original = _runs("a20", "paper", "cifar10-original", [9.0, 9.1, 8.9]) + _runs("a32", "paper", "cifar10-original",
                                                                                   [8.0, 8.1, 7.9])
    (v,) = evaluate([CHAIN], jpeg + original)
    assert v.verdict == "reproduced in part at paper scale"
    assert {c.source for c in v.comparisons} == {"cifar10-original"}
    assert all(c.test.n_a == c.test.n_b == 3 for c in v.comparisons)
    # one label on each source only: nothing to compare at that budget
    (v,) = evaluate([CHAIN], jpeg[:3] + original[3:])
    assert v.verdict == "quoted only"


def test_a_run_stored_by_two_experiments_counts_once():
    runs = _runs("a20", "paper", "cifar10", [9.0, 9.1, 8.9]) + _runs("a32", "paper", "cifar10", [8.0, 8.1, 7.9])
    copies = [{**r, "experiment": "other", "reused_from": f"exp/{r['run_id']}"} for r in runs]
    (v,) = evaluate([CHAIN], runs + copies)
    assert v.comparisons[0].test.n_a == 3


def test_value_claims_compare_paper_budget_means_with_the_papers_and_ignore_reduced_budgets():
    claim = ValueClaim("v", "8.75%", "Table 6", "a20", 8.75, std=0.16)
    close = _runs("a20", "paper", "cifar10", [8.6, 8.9, 9.0])
    far = _runs("a20", "paper", "cifar10", [12.0, 12.3, 12.6])
    cpu = _runs("a20", "cpu", "cifar10", [8.7, 8.8, 8.75])
    assert evaluate([claim], close)[0].verdict == "reproduced at paper scale"
    (v,) = evaluate([claim], far)
    assert v.verdict == "not reproduced" and "+3.55 points" in v.evidence[0]
    assert scorecard.Report([v]).facts() == {"v-gap": "+3.5"} and v.basis == "a20 (paper budget, cifar10, 3 seeds)"
    assert evaluate([claim], cpu)[0].verdict == "quoted only"


def test_a_claim_needs_pairs_or_a_chain():
    with pytest.raises(ValueError, match="either pairs or a chain"):
        Claim("x", "x", "x")


def _stored_paper_scale_jpeg():
    records = [json.loads(Path(p).read_text()) for p in glob.glob(str(REPO / "data/results/**/*.json"), recursive=True)]
    records = [r for r in records if "run_id" in r]  # runs, not the measurements of data/results/published
    return [r for r in records if r["budget"]["name"] == "paper" and r["data"]["source"] == "cifar10-jpeg"
            and r["model"]["depth"] in (20, 32) and r["experiment"] in ("degradation", "reversal")]


def test_the_stored_paper_scale_runs_decide_two_claims_and_leave_the_degradation_open():
    verdicts = {v.claim.key: v for v in evaluate(scorecard.CLAIMS, _stored_paper_scale_jpeg())}
    # two depths of the five each claim covers: "in part", and the verdict names what it rests on
    assert verdicts["residual-trains-better"].verdict == "reproduced in part at paper scale"
    assert verdicts["deeper-resnets-better"].verdict == "reproduced in part at paper scale"
    assert verdicts["deeper-resnets-better"].basis == "resnet20 → resnet32 (paper budget, cifar10-jpeg, 3 seeds each)"
    (c,) = verdicts["deeper-resnets-better"].comparisons
    assert round(c.test.difference, 2) == -0.85 and c.outcome == "as claimed"
    (c,) = verdicts["degradation"].comparisons
    assert c.outcome == "within noise" and verdicts["degradation"].verdict == "not reproduced"
    assert verdicts["resnet20"].verdict == "not reproduced" and "12.29 ± 0.31" in verdicts["resnet20"].evidence[0]
    assert verdicts["resnet110"].verdict == verdicts["responses-smaller"].verdict == "quoted only"


def test_response_claims_read_the_stored_responses_analysis_and_skip_runs_without_it():
    claim = Claim("r", "smaller responses", "Fig. 7", pairs=(("a20", "b20"),), metric="response_std")
    runs = _runs("a20", "paper", "cifar10", [1.0, 1.0, 1.0]) + _runs("b20", "paper", "cifar10", [1.0, 1.0, 1.0])
    assert evaluate([claim], runs)[0].verdict == "quoted only"  # no run stored the analysis
    for r, level in zip(runs, (1.0, 1.1, 0.9, 0.5, 0.55, 0.45)):
        r["analysis"] = {"responses": {"l1": level, "l2": level + 0.1, "l3": level - 0.1}}
    runs.append(_run("b20", "paper", "cifar10", 7, 0.1))  # no analysis: not a value
    (v,) = evaluate([claim], runs)
    assert v.verdict == "reproduced at paper scale"
    (c,) = v.comparisons
    assert c.test.n_b == 3 and c.test.difference == pytest.approx(-0.5) and "points" not in c.text()
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate([Claim("x", "x", "x", pairs=(("a20", "b20"),), metric="accuracy")], runs)


def test_source_effects_compare_the_same_label_across_sources_at_one_budget_only():
    runs = (_runs("a20", "cpu", "cifar10-jpeg", [50.0, 51.0, 52.0]) + _runs("a20", "cpu", "cifar10-original", [45.0, 46.0, 44.0])
            + _runs("a32", "cpu", "cifar10-jpeg", [50.0, 51.0]) + _runs("a20", "paper", "cifar10-original", [9.0, 9.1]))
    effects = scorecard.source_effects(runs, budget="cpu", metrics=("test_error",))
    (c,) = effects
    assert (c.a, c.b, c.source) == ("a20 on cifar10-jpeg", "a20 on cifar10-original", "cifar10-original")
    assert c.test.difference == pytest.approx(-6.0) and c.test.n_a == c.test.n_b == 3
    assert scorecard.source_effects(runs, budget="paper") == []


def test_source_effects_refuse_runs_on_subsets_drawn_by_index():
    runs = _runs("a20", "cpu", "cifar10-jpeg", [50.0, 51.0]) + _runs("a20", "cpu", "cifar10-original", [45.0, 46.0])
    for r in runs:
        r["data"].update(train_size=5000, test_size=1000)
    with pytest.raises(ValueError, match=r"subsets \(1000, 5000 images\) drawn by index"):
        scorecard.source_effects(runs, budget="cpu")
    assert scorecard.source_effects(runs, budget="paper") == []


def test_source_effects_compare_a_run_stored_by_several_experiments_once():
    base = _runs("r56", "cpu", "cifar10-jpeg", [50.0, 52.0, 54.0], experiment="reversal")
    other = _runs("r56", "cpu", "cifar10-original", [55.0, 56.0, 57.0], experiment="reversal")
    copies = [{**r, "experiment": "preactivation", "reused_from": f"reversal/{r['run_id']}"} for r in base + other]
    variant = _runs("r56z", "cpu", "cifar10-jpeg", [40.0, 41.0]) + _runs("r56z", "cpu", "cifar10-original", [30.0, 31.0])
    effects = scorecard.source_effects(base + other + copies + variant, budget="cpu", metrics=("test_error",))
    assert [c.a for c in effects] == ["r56 on cifar10-jpeg", "r56z on cifar10-jpeg"]  # r56 once, its copies not again
    assert [c.test.difference for c in effects] == pytest.approx([4.0, -10.0])
    assert [(c.test.n_a, c.test.n_b) for c in effects] == [(3, 3), (2, 2)]

def test_report_lists_every_claim_with_its_verdict_and_evidence():
    runs = _runs("a20", "paper", "cifar10", [9.0, 9.1, 8.9]) + _runs("a32", "paper", "cifar10", [8.0, 8.1, 7.9])
    report = scorecard.Report(evaluate([CHAIN, QuotedClaim("q", "ImageNet | top-1", "Table 3")], runs))
    text = report._repr_markdown_()
    assert ("- **deeper is better** (here): *reproduced in part at paper scale*, on a20 → a32 (paper budget, "
            "cifar10, 3 seeds each)\n") in text
    assert "  - paper budget (cifar10): a32 − a20 = -1.00 points" in text and "ImageNet \\| top-1" in text
    assert report.counts()["quoted only"] == 1 and "**" not in str(report)


def test_report_states_a_quoted_claims_note_once():
    text = str(scorecard.Report(evaluate([QuotedClaim("q", "ImageNet", "Table 3", note="not trained here")], [])))
    assert text.count("not trained here") == 1


def test_shared_source_is_the_preferred_source_every_label_has():
    from resnet_book.results import Runs

    plain = Runs("p", _runs("plain20", "cpu", "cifar10-jpeg", [50, 51]) + _runs("plain56", "cpu", "cifar10-jpeg", [70, 71]))
    res = Runs("r", _runs("resnet20", "cpu", "cifar10-jpeg", [45, 46]) + _runs("resnet56", "cpu", "cifar10-jpeg", [60, 61])
               + _runs("resnet20", "cpu", "cifar10-original", [40, 41]))
    assert scorecard.shared_source(plain, res, budget="cpu") == "cifar10-jpeg"  # resnet56 has no original runs
    res.records += _runs("resnet56", "cpu", "cifar10-original", [55, 56])
    plain.records += _runs("plain20", "cpu", "cifar10-original", [48, 49]) + _runs("plain56", "cpu", "cifar10-original", [66, 67])
    assert scorecard.shared_source(plain, res, budget="cpu") == "cifar10-original"
    assert scorecard.shared_source(plain, res, budget="paper") is None


def test_runs_add_up_to_one_collection_across_experiments():
    from resnet_book.results import Runs

    plain = Runs("degradation", _runs("plain20", "cpu", "cifar10-original", [50, 51]))
    res = Runs("reversal", _runs("resnet20", "cpu", "cifar10-original", [45, 44]))
    both = plain + res
    assert both.experiment == "degradation + reversal" and len(both) == 4
    assert sorted(both.groups()) == ["plain20", "resnet20"] and len(plain) == 2  # operands untouched
    comparison = scorecard.compare_labels(both, [("plain20", "resnet20")], metrics=("train_error",))
    assert [(c.a, c.b, c.values_b) for c in comparison] == [("plain20", "resnet20", (45.0, 44.0))]
    with pytest.raises(TypeError):
        plain + plain.records


# --- the chapters' comparison tables ------------------------------------------------------------

def _curve_run(label, seed, train, test, budget="cpu", source="cifar10-original"):
    """A stored run whose curves are evaluated at 50, 100, 150 (errors as fractions)."""
    return {"experiment": "exp", "run_id": f"{label}_{budget}_seed{seed}", "label": label, "seed": seed,
            "status": "complete", "config": {"model": label}, "budget": {"name": budget},
            "data": {"source": source}, "provenance": {"device": "CPU"},
            "curves": {"step": [50, 100, 150], "train_error": list(train), "test_error": list(test)},
            "final": {"train_error": train[-1], "test_error": test[-1]}}


def _two_depths():
    from resnet_book.results import Runs
    return Runs("exp", [_curve_run("plain20", 0, [0.88, 0.80, 0.50], [0.9, 0.8, 0.52]),
                        _curve_run("plain20", 1, [0.84, 0.70, 0.52], [0.9, 0.7, 0.54]),
                        _curve_run("plain56", 0, [0.90, 0.86, 0.70], [0.9, 0.9, 0.70]),
                        _curve_run("plain56", 1, [0.90, 0.84, 0.72], [0.9, 0.9, 0.74])])


def test_display_name_and_first_below():
    assert [scorecard.display_name(x) for x in ("plain20", "resnet56-B", "preresnet56", "bottleneck83")] == \
        ["plain-20", "ResNet-56-B", "pre-act ResNet-56", "bottleneck83"]
    runs = _two_depths().groups()
    assert [scorecard.first_below(r) for r in runs["plain20"] + runs["plain56"]] == [100, 50, 150, 100]
    assert scorecard.first_below(runs["plain56"][0], 0.5) is None


def test_compare_labels_at_a_step_and_at_the_end_and_its_table_and_facts():
    comps = scorecard.compare_labels(_two_depths(), [("plain20", "plain56"), ("plain20", "resnet20")],
                                     metrics=("train_error",), steps=(100, None))
    assert [(c.a, c.b, c.step) for c in comps] == [("plain20", "plain56", 100), ("plain20", "plain56", None)]
    assert comps[0].test.difference == pytest.approx(10.0) and comps[1].test.difference == pytest.approx(20.0)
    table = scorecard.comparison_table(comps)
    assert table.columns[:3] == ["comparison", "iteration", "error"]
    assert table.rows[0][:5] == ["plain-56 − plain-20", "100", "train", "85.00 ± 1.41", "75.00 ± 7.07"]
    assert table.column("iteration") == ["100", "end"]
    assert table.column("difference (points)")[1] == "+20.00*"  # t = 20 / sqrt(2) on 1 df: beyond noise
    facts = scorecard.comparison_facts(comps)
    assert facts["plain56-plain20-train-100-diff"] == "+10.00" and facts["plain56-plain20-train-100-noise"] == "within"
    assert facts["plain56-plain20-train-diff"] == "+20.00" and facts["plain56-plain20-train-noise"] == "beyond"
    assert (facts["plain56-plain20-train-first"], facts["plain56-plain20-train-second"]) == ("70.0, 72.0", "50.0, 52.0")
    assert facts["plain56-plain20-train-apart"] == "yes" and facts["plain56-plain20-train-100-apart"] == "yes"
    assert (facts["plain56-plain20-train-std-first"], facts["plain56-plain20-train-std-second"]) == ("1.4", "1.4")
    with pytest.raises(ValueError, match="not evaluated at step 75"):
        scorecard.compare_labels(_two_depths(), [("plain20", "plain56")], steps=(75,))


def test_comparisons_and_final_tables_refuse_mixed_budgets_or_sources():
    from resnet_book.results import Runs
    mixed = Runs("exp", [_curve_run("plain20", s, [0.5] * 3, [0.5] * 3) for s in (0, 1)]
                 + [_curve_run("plain56", s, [0.7] * 3, [0.7] * 3, source="cifar10-jpeg") for s in (0, 1)])
    with pytest.raises(ValueError, match="differ in budget or data source"):
        scorecard.compare_labels(mixed, [("plain20", "plain56")])
    with pytest.raises(ValueError, match="mix budgets or data sources"):
        scorecard.final_table(mixed)


def test_final_table_and_facts_give_means_and_per_seed_starts():
    table = scorecard.final_table(_two_depths(), first_below_level=0.85)
    assert table.column("network") == ["plain-20", "plain-56"]
    assert table.column("train error (%)") == ["51.0 ± 1.4", "71.0 ± 1.4"]
    assert table.column("first below 85% train error, per seed") == ["100, 50", "150, 100"]
    facts = scorecard.final_facts(_two_depths())
    assert (facts["plain56-train"], facts["plain56-test"], facts["plain56-first"], facts["plain56-seeds"]) == \
        ("71.0", "72.0", "150, 100", "2")


def test_family_gap_table_and_facts():
    from resnet_book.results import Runs
    plain = _two_depths()
    resnet = Runs("exp", [_curve_run(lab, s, [0.5, 0.4, e], [0.5, 0.4, e])
                          for lab, errs in (("resnet20", (0.45, 0.47)), ("resnet56", (0.60, 0.64)))
                          for s, e in enumerate(errs)])
    table = scorecard.family_gap_table(plain, resnet)
    assert table.column("plain − ResNet (points)") == ["+5.0", "+9.0"]
    facts = scorecard.family_gap_facts(plain, resnet)
    assert facts == {"gap-min": "5", "gap-max": "9", "gap-argmax": "56", "gap-argmin": "20",
                     "every-resnet-below": "yes", "plain-change": "+20.0", "resnet-change": "+16.0"}


def test_test_set_noise_table_gives_the_binomial_standard_error_per_budget():
    table = scorecard.test_set_noise({"cpu": (1000, 0.5), "paper": (10_000, 0.12)})
    assert table.column("standard error") == ["±1.6 points", "±0.3 points"]


def test_table6_beside_ours_one_column_per_budget_each_on_one_data_copy():
    from resnet_book.results import Runs

    res = Runs("reversal", _runs("resnet20", "paper", "cifar10-jpeg", [12.0, 12.5, 12.4])
               + _runs("resnet20", "cpu", "cifar10-original", [50.0, 52.0, 51.0])
               + _runs("resnet20", "cpu", "cifar10-jpeg", [40.0, 42.0])
               + _runs("resnet56", "cpu", "cifar10-original", [60.0, 62.0]))
    plain = Runs("degradation", _runs("plain20", "cpu", "cifar10-original", [57.0, 58.0, 59.0]))
    table = scorecard.table6_beside_ours(res, plain, paper_table={20: 8.75, 56: 6.97, 110: 6.43})
    assert table.columns == ["network", "paper, Table 6", "ours, paper budget, cifar10-jpeg",
                             "ours, cpu budget, cifar10-original"]
    assert table.rows == [["ResNet-20", "8.75", "12.30 ± 0.26", "51.0 ± 1.0"],
                          ["ResNet-56", "6.97", "–", "61.0 ± 1.4 (n=2)"],
                          ["ResNet-110", "6.43 best of 5; 6.61 ± 0.16 mean", "–", "–"],
                          ["plain-20", "– (Fig. 6)", "–", "58.0 ± 1.0"]]
    assert "paper: 3 seeds; cpu: 3 seeds" in table.note


def test_stored_runs_and_pairs_tables_read_one_budget_on_one_copy():
    root = REPO / "data" / "results"
    table = scorecard.stored_runs_table(["degradation"], budget="cpu", source="cifar10-original", root=root)
    assert table.rows[-1] == ["degradation", "plain56", "79.7 ± 1.1", "78.7 ± 0.4", "3"]
    assert "cpu budget on cifar10-original" in table.caption
    pairs = scorecard.pairs_table([("preactivation", "resnet56", "preactivation", "preresnet56"),
                                   ("preactivation", "resnet56", "nothing-stored", "x")],
                                  budget="cpu", source="cifar10-original", root=root)
    assert pairs.rows == [["preresnet56 − resnet56", "train", "-11.0", "-5.4", "3+3", "beyond"],
                          ["preresnet56 − resnet56", "test", "-8.7", "-3.5", "3+3", "beyond"]]


def test_final_errors_by_copy_give_each_budget_and_copy_its_own_row_and_yours_apart():
    root = REPO / "data" / "results"
    mine = _runs("plain56", "cpu", "cifar10", [70.0, 71.5])
    table = scorecard.final_errors_by_copy({"plain56": "degradation"}, yours=mine, root=root)
    assert [row[:4] for row in table.rows] == [["plain56", "stored", "cpu", "cifar10-jpeg"],
                                              ["plain56", "stored", "cpu", "cifar10-original"],
                                              ["plain56", "yours", "cpu", "cifar10"]]
    assert table.rows[-1][-1] == "70.0, 71.5"


def test_load_shared_reads_every_experiment_from_the_one_source_all_labels_have(tmp_path):
    from resnet_book import results

    for r in (_runs("plain56", "cpu", "cifar10-jpeg", [70, 71], experiment="p")
              + _runs("plain56", "cpu", "cifar10-original", [66, 67], experiment="p")
              + _runs("resnet56", "cpu", "cifar10-original", [55, 56], experiment="r")):
        r.update(provenance={"device": "CPU"})
        results.save_run(r, root=tmp_path)
    p, r = scorecard.load_shared("p", "r", budget="cpu", root=tmp_path)
    assert p.sources == r.sources == {"cifar10-original"} and len(p) == len(r) == 2
    with pytest.raises(ValueError, match="no data source holds 'paper' runs"):
        scorecard.load_shared("p", "r", budget="paper", root=tmp_path)


def test_seed_differences_and_their_table():
    from resnet_book.results import Runs

    runs = Runs("e", _runs("pre", "cpu", "cifar10-original", [50, 54]) + _runs("std", "cpu", "cifar10-original", [60, 65]))
    other = Runs("z", _runs("zero", "cpu", "cifar10-original", [55, 57, 59]))
    diffs = scorecard.seed_differences((runs, "pre"), {"std": (runs, "std"), "zero": (other, "zero")})
    assert {k: {s: round(100 * d, 6) for s, d in v.items()} for k, v in diffs.items()} == \
        {"std": {0: 10.0, 1: 11.0}, "zero": {0: 5.0, 1: 3.0}}  # seed 2 has no partner
    table = scorecard.seed_differences_table(diffs, reference="pre")
    assert table.rows == [["std", "+10.0, +11.0", "+10.5", "0, 1"], ["zero", "+5.0, +3.0", "+4.0", "0, 1"]]
def _published_accuracy(errors, *, also_on=True, subset="all"):
    credit = "trained by a public re-implementation (akamaster/pytorch_resnet_cifar10), not by this book"
    nets = {name: {"test_error": {"cifar10-original": e, **({"cifar10-jpeg": j} if also_on else {})},
                   "published_error_pct": p, "paper_error_pct": t} for name, (e, j, p, t) in errors.items()}
    data = {"source": "cifar10-original", "images": 10_000, "subset": subset,
            **({"also_on": {"cifar10-jpeg": {"images": 10_000}}} if also_on else {})}
    return {"kind": "accuracy", "credit": credit, "data": data, "nets": nets}


def test_published_tables_keep_third_party_weights_apart_and_say_whose_they_are():
    record = _published_accuracy({"resnet20": (0.0827, 0.1897, 8.27, 8.75), "resnet56": (0.0661, 0.1702, 6.61, 6.97)})
    table = scorecard.published_beside_table6(record)
    assert table.rows == [["ResNet-20", "8.75", "8.27", "8.27"], ["ResNet-56", "6.97", "6.61", "6.61"]]
    assert "not by this book" in table.caption and "last epoch, not chosen on the test set" in table.note
    cost = scorecard.published_jpeg_cost(record)
    assert cost.columns == ["network", "cifar10-original", "cifar10-jpeg", "difference (points)"]
    assert cost.rows[0] == ["ResNet-20", "8.27", "18.97", "+10.70"] and "not by this book" in cost.caption
    facts = scorecard.published_facts(record)
    assert facts["resnet56-cifar10-jpeg"] == "17.02" and facts["resnet20-minus-table6"] == "-0.48"
    assert (facts["jpeg-cost-min"], facts["jpeg-cost-max"]) == ("10.4", "10.7")
    with pytest.raises(ValueError, match="full test sets of exactly two copies"):
        scorecard.published_jpeg_cost(_published_accuracy({"resnet20": (0.08, 0.19, 8.27, 8.75)}, subset="the first 500"))
    with pytest.raises(ValueError, match="stored 'accuracy' measurement"):
        scorecard.published_beside_table6({**record, "kind": "lesions"})
    live = _published_accuracy({"resnet20": (0.1, None, 8.27, 8.75)}, also_on=False, subset="the first 500 test images")
    assert "the first 500 test images of cifar10-original" in scorecard.published_beside_table6(live).note
    assert "jpeg-cost-min" not in scorecard.published_facts(live)




def _stored(records):
    from resnet_book.results import Runs
    for r in records:
        r["provenance"] = {"device": "cpu"}
        r["curves"] = {"step": [1, 2, 3], "train_error": [0.9, 0.5, r["final"]["train_error"]],
                       "test_error": [0.9, 0.6, r["final"]["test_error"]]}
    return Runs("exp", records)


def test_curve_order_counts_the_evaluations_where_one_mean_curve_is_below_another():
    runs = _stored(_runs("a", "cpu", "cifar10-original", [50, 52]) + _runs("b", "cpu", "cifar10-original", [40, 40]))
    t = scorecard.curve_order(runs, [("a", "b"), ("b", "a")])
    assert t.rows == [["a", "b", "0 of 3", "0 of 3"], ["b", "a", "1 of 3", "1 of 3"]]
