"""The stored runs the book reads: the twelve imported paper-budget runs are complete, filed under
the experiment they belong to, unchanged against their source, and give the source README's means."""
import json
import statistics
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "data" / "results"
SOURCE = REPO.parent / "shared" / "runs" / "paper-scale-h100"

# the source README's table: final train / test error, mean ± std over seeds 0-2 (%)
README = {"plain20": ((2.33, 0.11), (13.53, 0.31)), "plain32": ((2.21, 0.18), (13.44, 0.27)),
          "resnet20": ((1.53, 0.05), (12.29, 0.31)), "resnet32": ((0.46, 0.05), (11.45, 0.27))}
FOLDER = {"plain20": "degradation", "plain32": "degradation", "resnet20": "reversal", "resnet32": "reversal"}


def _paper_runs(label):
    paths = sorted((RESULTS / FOLDER[label] / "cifar10-jpeg").glob(f"{label}_paper_seed*.json"))
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


@pytest.mark.parametrize("label", sorted(README))
def test_paper_scale_runs_are_stored_complete_and_give_the_readme_means(label):
    runs = _paper_runs(label)
    assert sorted(r["seed"] for r in runs) == [0, 1, 2]
    for r in runs:
        assert r["experiment"] == FOLDER[label] and r["label"] == label
        assert r["budget"]["name"] == "paper" and r["budget"]["iterations"] == 64_000 and r["step"] == 64_000
        assert r["status"] == "complete" and r["data"]["source"] == "cifar10-jpeg"
        assert r["data"]["train_size"] == 50_000 and r["data"]["test_size"] == 10_000
        assert r["imported_from"]["original_experiment"] == "paper-scale"
        assert "a35b67f" in r["imported_from"]["how"] and r["provenance"]["git_commit"].startswith("a35b67f")
        assert len(r["curves"]["step"]) == 64 and r["curves"]["step"][-1] == 64_000
    for metric, (mean, std) in zip(("train_error", "test_error"), README[label]):
        values = [100 * r["final"][metric] for r in runs]
        assert round(statistics.mean(values), 2) == mean, metric
        assert round(statistics.stdev(values), 2) == std, metric


@pytest.mark.skipif(not SOURCE.is_dir(), reason="the shared source folder of the paper-scale runs is not here")
def test_paper_scale_runs_are_unchanged_against_their_source():
    sources = sorted(SOURCE.glob("*_paper_seed*.json"))
    assert len(sources) == 12
    for path in sources:
        original = json.loads(path.read_text(encoding="utf-8"))
        stored = json.loads((RESULTS / FOLDER[original["label"]] / "cifar10-jpeg" / path.name).read_text(encoding="utf-8"))
        note = stored.pop("imported_from")
        assert note["path"].endswith(path.name)
        assert stored.pop("experiment") == FOLDER[original["label"]]
        assert original.pop("experiment") == note["original_experiment"]
        assert stored == original


# --- what the chapters' prose says about stored cpu-budget runs: if the runs change, these fail and
# the prose must be re-read (each test names the chapter and the sentence it guards)

def _final(experiment, label, metric, source="cifar10-original"):
    from resnet_book import results
    runs = results.load(experiment, budget="cpu", source=source, root=RESULTS).where(label=label)
    assert sorted(r["seed"] for r in runs) == [0, 1, 2], f"{experiment}/{label}: three seeds stored on {source}"
    return [100 * r["final"][metric] for r in runs]


@pytest.mark.parametrize("metric", ["train_error", "test_error"])
def test_chapter_2_zero_init_with_option_b_every_run_lower_and_within_seed_noise(metric):
    """Ch. 2: "every zero-initialised ResNet-56 ends below every standard one, in training and in test
    error, and the three zero-initialised runs spread less ... still within seed noise"."""
    from resnet_book import scorecard
    standard, zero = _final("zero-init-b", "resnet56-B", metric), _final("zero-init-b", "resnet56-B-zero-init", metric)
    assert max(zero) < min(standard)
    assert statistics.stdev(zero) < statistics.stdev(standard)
    assert not scorecard.welch(standard, zero).significant


def test_chapter_6_jpeg_effect_at_the_cpu_budget_is_not_measurable():
    """Ch. 6: "final test errors are higher, not lower, at every depth (by 1.3 to 3.7 points), their
    training errors move both ways, and no difference is beyond seed noise"."""
    from resnet_book import results, scorecard
    effects = scorecard.source_effects(list(results.load("reversal", budget="all", root=RESULTS)), budget="cpu")
    test = [e for e in effects if e.metric == "test_error"]
    train = [e for e in effects if e.metric == "train_error"]
    assert len(test) == len(train) == 4  # ResNet-20/32/44/56 on both copies
    assert not any(e.test.significant for e in effects)
    assert all(e.test.difference > 0 for e in test)
    assert (round(min(e.test.difference for e in test), 1), round(max(e.test.difference for e in test), 1)) == (1.3, 3.7)
    assert min(e.test.difference for e in train) < 0 < max(e.test.difference for e in train)


def test_chapter_4_bottleneck83_behind_resnet56_at_the_cpu_budget_within_seed_noise():
    """Ch. 4: "the bottleneck net ends behind ResNet-56 in every seed, by about 12 points of training
    error on average, with a wide spread: one run ends close to chance (90%), one close to ResNet-56
    ... still within seed noise by Welch's t"."""
    from resnet_book import scorecard
    bottleneck, resnet = _final("bottleneck", "bottleneck83", "train_error"), _final("bottleneck", "resnet56", "train_error")
    assert min(bottleneck) > max(resnet)
    w = scorecard.welch(resnet, bottleneck)
    assert round(w.difference) == 12 and not w.significant
    assert max(bottleneck) > 80 and min(bottleneck) - max(resnet) < 5
