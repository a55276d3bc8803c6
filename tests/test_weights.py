"""Kept weights (resnet_book.weights) and the table6 experiment, at smoke scale."""
import dataclasses
import json

import pytest
import torch

from resnet_book import experiments, results, weights
from resnet_book.data import load_cifar10
from resnet_book.experiments import Experiment, reproduce
from resnet_book.train import BUDGETS, TrainConfig, dataset_for, error_rate, train

ALL = ("lesion", "profile", "responses")


def test_table6_is_the_papers_set_of_runs():
    t6 = experiments.get("table6")
    labels = [label for label, _ in t6.runs]
    assert labels == [f"plain{d}" for d in (20, 32, 44, 56, 110)] + [f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202)]
    seeds = {label: t6.seeds_for(label) for label in labels}
    assert seeds["resnet110"] == (0, 1, 2, 3, 4) and seeds["resnet1202"] == (0,) and seeds["plain56"] == (0, 1, 2)
    configs = t6.configs()
    assert len(configs) == 9 * 3 + 5 + 1 and {c.budget for _, c in configs} == {"paper"}
    # the paper's warm-up for 110 layers and more, and only there
    assert {label for label, c in configs if c.uses_warmup} == {"plain110", "resnet110", "resnet1202"}
    assert all(t6.analyses[label] == ALL for label in labels if label != "resnet1202")
    assert t6.keep_weights
    # a --budget override keeps the same runs at another budget
    assert [(label, c.seed) for label, c in t6.configs("smoke")] == [(label, c.seed) for label, c in configs]
    assert {c.budget for _, c in t6.configs("smoke")} == {"smoke"}


def test_weights_rule_commits_the_small_nets_and_caches_the_large_ones():
    t6 = experiments.get("table6")
    sizes = {label: weights.fp16_bytes(dataclasses.asdict(TrainConfig(**f))) for label, f in t6.runs}
    # exact: 2 bytes per parameter and BN running mean/var, 8 per BN batch counter (resnet20: 269,722 parameters, 19 BN layers, 688 BN channels)
    assert sizes["resnet20"] == 2 * (269_722 + 2 * 688) + 8 * 19
    assert sizes["resnet1202"] > 38_000_000 and sizes["resnet1202"] > weights.REPO_LIMIT_BYTES
    where = experiments._weights_locations(t6)
    repo = [label for (_, label), loc in where.items() if loc == "repo"]
    assert sorted(repo) == sorted(f"{k}{d}" for k in ("plain", "resnet") for d in (20, 32, 44, 56))
    assert sum(sizes[label] for label in repo) <= weights.REPO_LIMIT_BYTES
    # the rule is greedy from the smallest: the next one would not have fitted
    assert sum(sizes[label] for label in repo) + sizes["resnet110"] > weights.REPO_LIMIT_BYTES


def test_table6_shaped_experiment_at_smoke_scale(tiny_folder, tmp_path, monkeypatch):
    exp = Experiment("t6", "table6 in miniature", (("plain8", {"model": "plain8"}), ("resnet8", {"model": "resnet8"})),
                     seeds=(0,), label_seeds={"resnet8": (0, 1)}, budget="smoke",
                     analyses={"plain8": ALL, "resnet8": ALL}, keep_weights=True)
    monkeypatch.setattr(experiments, "EXPERIMENTS", {"t6": exp})
    small = weights.fp16_bytes(dataclasses.asdict(TrainConfig(model="plain8")))
    monkeypatch.setattr(weights, "REPO_LIMIT_BYTES", small)  # room for one: plain8 in the repo, resnet8 in the cache
    kw = dict(data_root=str(tiny_folder), results_root=tmp_path / "res", checkpoint_dir=tmp_path / "ck",
              weights_root=tmp_path / "weights", progress=False, log=lambda *a: None)
    s = reproduce("t6", **kw)
    assert s["finished"] and s["trained"] == s["stored"] == s["total"] == 3 and not s["failed"]
    runs = results.load("t6", root=tmp_path / "res")
    assert all(set(r["analysis"]) == set(ALL) for r in runs)

    manifest = json.loads((tmp_path / "weights" / "MANIFEST.json").read_text())
    files = manifest["files"]
    src = "cifar10-imagefolder"  # the data source, as in the results' folders
    assert sorted(files) == [f"t6/{src}/plain8_smoke_seed0", f"t6/{src}/resnet8_smoke_seed0"]  # seed 0 only
    plain_entry, entry = files[f"t6/{src}/plain8_smoke_seed0"], files[f"t6/{src}/resnet8_smoke_seed0"]
    assert plain_entry["location"] == "repo" and entry["location"] == "cache"
    assert (tmp_path / "weights" / "t6" / src / "plain8_smoke_seed0.pt").exists()
    cached = weights.cache_weights_dir() / "t6" / src / "resnet8_smoke_seed0.pt"
    assert cached.exists() and not (tmp_path / "weights" / "t6" / src / "resnet8_smoke_seed0.pt").exists()
    assert entry["path"] == f"t6/{src}/resnet8_smoke_seed0.pt" and entry["data_source"] == src
    assert entry["sha256"] == weights.sha256(cached) and entry["bytes"] == cached.stat().st_size
    assert entry["config"]["model"] == "resnet8" and entry["run_id"] == "resnet8_smoke_seed0" and "rule" in manifest
    state = torch.load(cached, weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())

    # loading gives the trained network: the same run trained here, rounded to fp16, gives identical outputs
    config = TrainConfig(model="resnet8", budget="smoke")
    data = load_cifar10(tiny_folder)
    rec, model = train(config, data=data, progress=False, return_model=True)
    stored = {r["run_id"]: r for r in runs}["resnet8_smoke_seed0"]
    assert rec["final"] == stored["final"]
    reference = weights.build_for(rec["config"])
    reference.load_state_dict(weights.fp16_state_dict(model))
    loaded = weights.load_weights("t6", "resnet8", root=tmp_path / "weights")
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), reference.eval()(x))
    ds, normalize = dataset_for(config, data)
    assert error_rate(loaded, ds.test_images, ds.test_labels, normalize) == entry["test_error_fp16"]

    # resumable: nothing left to do
    again = reproduce("t6", **kw)
    assert again["trained"] == again["extended"] == 0 and again["stored"] == 3

    # a damaged or missing file is refused, never loaded
    damaged = bytearray(cached.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    cached.write_bytes(bytes(damaged))
    with pytest.raises(weights.WeightsError, match="damaged or not the file the manifest names"):
        weights.load_weights("t6", "resnet8", root=tmp_path / "weights")
    cached.unlink()
    with pytest.raises(weights.WeightsError, match="is not here"):
        weights.load_weights("t6", "resnet8", root=tmp_path / "weights")
    with pytest.raises(weights.WeightsError, match=f"kept: plain8 seed 0 \\(smoke, {src}\\), resnet8 seed 0"):
        weights.load_weights("t6", "resnet8", seed=1, root=tmp_path / "weights")
    assert isinstance(weights.load_weights("t6", "plain8", root=tmp_path / "weights"), torch.nn.Module)


def test_stored_runs_without_kept_weights_get_them_from_a_matching_rerun(tiny_folder, tmp_path, monkeypatch):
    plain = Experiment("w", "", (("resnet8", {"model": "resnet8"}),), seeds=(0,), budget="smoke")
    monkeypatch.setattr(experiments, "EXPERIMENTS", {"w": plain})
    kw = dict(data_root=str(tiny_folder), results_root=tmp_path / "res", checkpoint_dir=tmp_path / "ck",
              weights_root=tmp_path / "weights", progress=False, log=lambda *a: None)
    assert reproduce("w", **kw)["trained"] == 1
    monkeypatch.setitem(experiments.EXPERIMENTS, "w", dataclasses.replace(plain, keep_weights=True))
    s = reproduce("w", **kw)
    assert s["extended"] == 1 and s["trained"] == 0
    (run,) = results.load("w", root=tmp_path / "res")
    assert run["analysis_added"][0]["weights_kept"] and run["analysis_added"][0]["analyses"] == []
    assert isinstance(weights.load_weights("w", "resnet8", root=tmp_path / "weights"), torch.nn.Module)
    assert BUDGETS["smoke"].iterations == len(run["curves"]["step"]) * BUDGETS["smoke"].eval_every
