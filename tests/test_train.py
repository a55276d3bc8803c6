import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from resnet_book import results
from resnet_book.train import (BUDGETS, CheckpointError, TrainConfig, TrainingDiverged, check_time_limit, deadline_after,
                               learning_rate, load_checkpoint, train)

SMOKE = dict(model="resnet8", budget="smoke")


def test_same_seed_gives_identical_metrics(tiny):
    a = train(TrainConfig(**SMOKE, seed=1), data=tiny, progress=False)
    b = train(TrainConfig(**SMOKE, seed=1), data=tiny, progress=False)
    c = train(TrainConfig(**SMOKE, seed=2), data=tiny, progress=False)
    assert a["curves"] == b["curves"] and a["final"] == b["final"]
    assert a["final"] != c["final"]


def test_record_has_full_provenance(tiny):
    r = train(TrainConfig(**SMOKE, val_size=100), data=tiny, progress=False, experiment="exp", label="lbl")
    assert r["status"] == "complete" and r["label"] == "lbl"
    assert r["data"]["source"] == "synthetic" and r["data"]["train_size"] == 300 and r["data"]["val_size"] == 100
    for key in ("device", "torch", "git_commit", "wall_time_s", "precision", "started", "finished"):
        assert key in r["provenance"]
    assert r["budget"]["name"] == "smoke" and r["seed"] == 0 and r["throughput_images_per_s"] > 0
    n = BUDGETS["smoke"].iterations // BUDGETS["smoke"].eval_every
    assert r["curves"]["step"] == [BUDGETS["smoke"].eval_every * (i + 1) for i in range(n)]
    assert all(v is not None for v in r["curves"]["val_error"]) and "val_error" in r["final"]
    # conv1+bn 464, stage1 4,672, stage2 13,952, stage3 55,552, fc 650
    assert r["model"]["parameters"] == 75_290


def test_schedule_is_the_papers():
    paper = BUDGETS["paper"]
    cfg = TrainConfig(model="resnet110", budget="paper")
    assert paper.milestones == (32_000, 48_000) and paper.iterations == 64_000 and paper.batch_size == 128
    assert [learning_rate(cfg, paper, s, False) for s in (0, 31_999, 32_000, 48_000)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    assert learning_rate(cfg, paper, 10, True) == pytest.approx(0.01)
    assert cfg.uses_warmup and not TrainConfig(model="resnet56").uses_warmup


def test_learning_rate_follows_the_linear_scaling_rule():
    # the paper's 0.1 at batch 128, scaled with the batch (Goyal et al. 2017): cpu's batch 64 gets 0.05
    for b in BUDGETS.values():
        assert b.lr == pytest.approx(0.1 * b.batch_size / 128), b.name
    assert TrainConfig(budget="cpu").base_lr == pytest.approx(0.05)
    assert TrainConfig(budget="cpu", batch_size=128).base_lr == pytest.approx(0.1)
    assert TrainConfig(budget="cpu", lr=0.2).base_lr == 0.2
    assert TrainConfig(budget="cpu", seed=1).run_id() == "resnet20_cpu_seed1"
    assert TrainConfig(budget="cpu", lr=0.1).run_id() == "resnet20_lr0.1_cpu_seed1".replace("seed1", "seed0")


def test_warmup_ends_when_training_error_drops_below_80_percent(tiny):
    cfg = TrainConfig(**SMOKE, warmup="on", iterations=40)
    r = train(cfg, data=tiny, progress=False)
    end = r["warmup_ended_at"]
    assert end is not None and 1 <= end < 20
    steps, lrs = r["curves"]["step"], r["curves"]["lr"]
    assert all(lr == pytest.approx(cfg.base_lr / 10) for s, lr in zip(steps, lrs) if s <= end)
    assert all(lr == pytest.approx(cfg.base_lr) for s, lr in zip(steps, lrs) if end < s <= 20)
    assert train(TrainConfig(**SMOKE), data=tiny, progress=False)["warmup_ended_at"] is None


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(tiny, tmp_path):
    ckpt = tmp_path / "run.pt"
    cfg = TrainConfig(**SMOKE, lr=1e6, iterations=24)
    with pytest.raises(TrainingDiverged, match="the loss became") as info:
        train(cfg, data=tiny, checkpoint=ckpt, progress=False)
    assert 1 <= info.value.iteration <= 24 and f"by iteration {info.value.iteration} " in str(info.value)
    if ckpt.exists():  # whatever was kept is a good checkpoint
        state = load_checkpoint(ckpt, cfg)
        assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
        assert str(ckpt) in str(info.value)


def test_checkpoint_mismatch_and_corruption_are_refused(tiny, tmp_path):
    ckpt = tmp_path / "run.pt"
    cfg = TrainConfig(**SMOKE, iterations=16)
    r = train(cfg, data=tiny, checkpoint=ckpt, progress=False, deadline=0)
    assert r["status"] == "paused" and ckpt.exists()
    with pytest.raises(CheckpointError, match="seed: checkpoint 0 vs now 5"):
        train(TrainConfig(**SMOKE, iterations=16, seed=5), data=tiny, checkpoint=ckpt, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="pass resume=True"):
        train(cfg, data=tiny, checkpoint=ckpt, progress=False)
    good = ckpt.read_bytes()
    for damaged, why in ((good[: len(good) // 2], "truncated"), (b"", "truncated"),
                         (b"not a checkpoint", "not a checkpoint written by this library")):
        ckpt.write_bytes(damaged)
        with pytest.raises(CheckpointError) as info:
            train(cfg, data=tiny, checkpoint=ckpt, resume=True, progress=False)
        msg = str(info.value)
        # one message: which file, what is wrong, what to do -- and none of torch's advice
        assert str(ckpt) in msg and why in msg and "Delete it to start this run over" in msg, msg
        assert "weights_only" not in msg and "issue" not in msg and info.value.__cause__ is None, msg
        assert ckpt.read_bytes() == damaged  # left in place


def test_paused_then_resumed_equals_uninterrupted(tiny, tmp_path):
    cfg = TrainConfig(**SMOKE)
    full = train(cfg, data=tiny, progress=False)
    ckpt = tmp_path / "run.pt"
    part = train(cfg, data=tiny, checkpoint=ckpt, progress=False, deadline=time.time() + 0.5)
    while part["status"] == "paused":
        part = train(cfg, data=tiny, checkpoint=ckpt, resume=True, progress=False, deadline=time.time() + 0.5)
    assert part["final"] == full["final"] and part["curves"] == full["curves"]
    assert_pieces_cover_the_run(part, cfg.effective_budget.iterations)
    assert len(full["provenance"]["pieces"]) == 1 and not full["provenance"]["resumed"]


def assert_pieces_cover_the_run(record, iterations):
    """Every piece of a run is recorded: where it started and ended, on what, with which code."""
    prov = record["provenance"]
    pieces = prov["pieces"]
    assert prov["resumed"] == (len(pieces) > 1)
    assert pieces[0]["start_step"] == 0 and pieces[-1]["end_step"] == iterations == record["step"]
    for a, b in zip(pieces, pieces[1:]):
        assert a["end_step"] == b["start_step"] and a["finished"] <= b["started"]
    for p in pieces:
        assert p["started"] <= p["finished"] and p["wall_time_s"] >= 0
        for key in ("device", "torch", "git_commit", "precision", "cuda_graph"):
            assert key in p, key
    assert prov["started"] == pieces[0]["started"] and prov["finished"] == pieces[-1]["finished"]
    assert prov["wall_time_s"] == pytest.approx(sum(p["wall_time_s"] for p in pieces), abs=0.01)


@pytest.mark.parametrize("bad", [0, -5, -0.1, float("nan"), float("inf"), "60", True])
def test_a_time_limit_must_be_a_positive_number_of_seconds(bad):
    with pytest.raises(ValueError, match="positive number of seconds"):
        check_time_limit(bad)
    with pytest.raises(ValueError, match="positive number of seconds"):
        deadline_after(bad)


def test_a_time_limit_gives_a_deadline():
    assert check_time_limit(None) is None and deadline_after(None) is None
    assert check_time_limit(2) == 2.0
    assert time.time() + 9 < deadline_after(10) <= time.time() + 10


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(budget="huge"), "allowed: smoke, cpu, paper"),
        (dict(model="resnet21"), "6n\\+2"),
        (dict(warmup="maybe"), "auto, on, off"),
        (dict(iterations=0), "positive integer"),
        (dict(precision="fp8"), "auto, fp32, bf16, fp16"),
    ],
)
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def _cli(*args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "resnet_book", *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tiny_folder, tmp_path):
    common = ["train", "--model", "resnet8", "--budget", "smoke", "--iterations", "48", "--data", str(tiny_folder), "--quiet"]
    p = _cli(*common, "--results", str(tmp_path / "a"))
    assert p.wait(timeout=300) == 0, p.stderr.read()
    ckpt = tmp_path / "ckpt.pt"
    p = _cli(*common, "--results", str(tmp_path / "b"), "--checkpoint", str(ckpt))
    deadline = time.time() + 300
    while not ckpt.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert ckpt.exists() and not (tmp_path / "b").exists(), "the run should have been killed mid-way"
    p = _cli(*common, "--results", str(tmp_path / "b"), "--checkpoint", str(ckpt), "--resume")
    assert p.wait(timeout=300) == 0, p.stderr.read()
    (a,) = results.load("train", root=tmp_path / "a").records
    (b,) = results.load("train", root=tmp_path / "b").records
    assert a["final"] == b["final"] and a["curves"] == b["curves"]
    assert not ckpt.exists()  # a finished run removes its checkpoint
    # the record lists both pieces: the killed one up to its last checkpoint, and the resumed one
    assert_pieces_cover_the_run(b, 48)
    assert len(b["provenance"]["pieces"]) == 2 and 0 < b["provenance"]["pieces"][1]["start_step"] < 48
    assert_pieces_cover_the_run(a, 48)


def test_cli_errors_are_one_clear_line(tmp_path, tiny_folder):
    p = _cli("train", "--model", "resnet21", "--data", str(tiny_folder))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and err.strip().startswith("error:") and "6n+2" in err and "Traceback" not in err
    p = _cli("reproduce", "nonsense")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "allowed: smoke" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = _cli("train", "--model", "resnet8", "--budget", "smoke", "--iterations", "2", "--data", str(tiny_folder),
             "--results", str(blocker / "sub"), "--quiet")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "is a file" in err and "Traceback" not in err


def test_reproduce_skips_stored_runs_and_continues_after_a_time_limit(tiny_folder, tmp_path):
    from resnet_book.experiments import reproduce

    kw = dict(data_root=str(tiny_folder), results_root=tmp_path / "res", checkpoint_dir=tmp_path / "ck",
              progress=False, log=lambda *a: None)
    first = reproduce("smoke", time_limit=1e-9, **kw)
    assert not first["finished"] and first["trained"] == 0
    done = reproduce("smoke", **kw)
    assert done["finished"] and done["stored"] == done["total"] == 4
    again = reproduce("smoke", **kw)
    assert again["trained"] == 0 and again["stored"] == 4
    runs = results.load("smoke", root=tmp_path / "res")
    summary = runs.summary()
    assert set(summary) == {"plain8", "resnet8"} and summary["resnet8"]["n"] == 2
    assert runs.budgets == {"smoke"} and runs.sources == {"cifar10-imagefolder"}
    assert "budget smoke" in runs.describe()


def test_reproduce_runs_analyses_and_reuses_identical_runs(tiny_folder, tmp_path, monkeypatch):
    from resnet_book import experiments
    from resnet_book.experiments import Experiment, reproduce

    base = Experiment("base", "a plain and a residual net", (("plain8", {"model": "plain8"}), ("resnet8", {"model": "resnet8"})),
                      seeds=(0,), budget="smoke", analyses={"plain8": ("lesion", "profile"), "resnet8": ("lesion",)})
    other = Experiment("other", "resnet8 again, and a variant", (("resnet8", {"model": "resnet8"}),
                       ("resnet8-zero", {"model": "resnet8", "zero_init_residual": True})), seeds=(0,), budget="smoke")
    monkeypatch.setattr(experiments, "EXPERIMENTS", {"base": base, "other": other})
    kw = dict(data_root=str(tiny_folder), results_root=tmp_path / "res", checkpoint_dir=tmp_path / "ck",
              progress=False, log=lambda *a: None)
    assert reproduce("base", **kw)["trained"] == 2
    runs = {r["label"]: r for r in results.load("base", root=tmp_path / "res")}
    plain, res = runs["plain8"]["analysis"], runs["resnet8"]["analysis"]
    assert set(plain) == {"lesion", "profile"} and set(res) == {"lesion"}
    # plain-8: 3 blocks, 2 of which change shape and cannot be dropped; resnet-8: all 3 can
    assert [v is None for v in plain["lesion"]["single"].values()] == [False, True, True]
    assert all(v is not None for v in res["lesion"]["single"].values()) and len(res["lesion"]["single"]) == 3
    assert set(res["lesion"]["random_sets"]) == {"2"} and len(res["lesion"]["random_sets"]["2"]) == 3
    assert 0 <= res["lesion"]["baseline"] <= 1 and len(plain["profile"]) == 3
    assert all(v["grad_norm"] > 0 for v in plain["profile"].values())

    out = reproduce("other", **kw)
    assert out["reused"] == 1 and out["trained"] == 1 and out["stored"] == 2
    copied = {r["label"]: r for r in results.load("other", root=tmp_path / "res")}["resnet8"]
    assert copied["reused_from"] == "base/resnet8_smoke_seed0" and copied["experiment"] == "other"
    assert copied["final"] == runs["resnet8"]["final"] and copied["curves"] == runs["resnet8"]["curves"]
    # a run that needs an analysis the stored one lacks is trained, not copied
    monkeypatch.setitem(experiments.EXPERIMENTS, "third", Experiment(
        "third", "resnet8 with a profile", (("resnet8", {"model": "resnet8"}),), seeds=(0,), budget="smoke",
        analyses={"resnet8": ("profile",)}))
    assert reproduce("third", **kw)["trained"] == 1
    with pytest.raises(ValueError, match="analyses"):
        Experiment("bad", "", (("a", {"model": "resnet8"}),), analyses={"a": ("nonsense",)})


def test_reproduce_adds_a_missing_analysis_only_when_the_rerun_matches(tiny_folder, tmp_path, monkeypatch):
    from resnet_book import experiments
    from resnet_book.experiments import Experiment, reproduce

    kw = dict(data_root=str(tiny_folder), results_root=tmp_path / "res", checkpoint_dir=tmp_path / "ck",
              progress=False, log=lambda *a: None)
    runs = (("resnet8", {"model": "resnet8"}), ("plain8", {"model": "plain8"}))
    monkeypatch.setattr(experiments, "EXPERIMENTS", {"e": Experiment("e", "", runs, seeds=(0,), budget="smoke")})
    assert reproduce("e", **kw)["trained"] == 2
    path = results.record_path("e", "resnet8_smoke_seed0", tmp_path / "res", source="cifar10-imagefolder")
    before = json.loads(path.read_text())
    # the experiment now asks for layer responses of the ResNet: the run is trained again, its final
    # metrics must equal the stored ones, and only the analysis (with the re-run's provenance) is added
    monkeypatch.setitem(experiments.EXPERIMENTS, "e", Experiment("e", "", runs, seeds=(0,), budget="smoke",
                                                                 analyses={"resnet8": ("responses",)}))
    out = reproduce("e", **kw)
    assert out["extended"] == 1 and out["trained"] == 0 and out["mismatched"] == 0 and out["stored"] == 2
    after = json.loads(path.read_text())
    responses = after.pop("analysis")["responses"]
    added = after.pop("analysis_added")
    assert after == before  # nothing else changed: same curves, metrics, provenance
    # resnet8: 3 basic blocks x 2 BN layers, named like the model's modules
    assert list(responses) == [f"layer{i}.0.bn{j}" for i in (1, 2, 3) for j in (1, 2)]
    assert all(v > 0 for v in responses.values())
    assert added[0]["analyses"] == ["responses"] and added[0]["final_identical"] is True
    assert added[0]["rerun_provenance"]["torch"]
    assert reproduce("e", **kw)["extended"] == 0  # nothing left to add

    # a stored record the re-run cannot match is left exactly as it was
    tampered = {**before, "final": {**before["final"], "train_error": 0.123}}
    path.write_text(json.dumps(tampered))
    out = reproduce("e", **kw)
    assert out["mismatched"] == 1 and out["extended"] == 0
    assert json.loads(path.read_text()) == tampered
    assert not list((tmp_path / "ck").rglob("*.pt"))  # no checkpoint left behind


def test_results_store_is_atomic_and_never_overwrites(tmp_path):
    rec = {"experiment": "e", "run_id": "r", "config": {"model": "m"}, "final": {"test_error": 0.5},
           "provenance": {"device": "d"}, "budget": {"name": "smoke"}, "data": {"source": "s"}, "seed": 0}
    path = results.save_run(rec, root=tmp_path)
    assert json.loads(path.read_text())["final"]["test_error"] == 0.5
    with pytest.raises(FileExistsError, match="never overwritten"):
        results.save_run(rec, root=tmp_path)
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(ValueError, match="no slashes"):
        results.save_run({**rec, "experiment": "../evil"}, root=tmp_path)
    m, s = results.mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(1.0) and math.isnan(results.mean_std([])[0])


def test_norm_none_trains_without_batchnorm(tiny):
    cfg = TrainConfig(model="plain8", budget="smoke", norm="none", iterations=8)
    r, model = train(cfg, data=tiny, progress=False, return_model=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert cfg.run_id() == "plain8_norm-none_it8_smoke_seed0" and r["config"]["norm"] == "none"
    with pytest.raises(ValueError, match="allowed: batch, none"):
        TrainConfig(norm="layer")
    with pytest.raises(ValueError, match="CIFAR networks only"):
        TrainConfig(model="resnet18", norm="none")


def test_runs_where_filters_by_label_budget_and_source():
    def rec(label, budget, source, seed):
        return {"label": label, "budget": {"name": budget}, "data": {"source": source}, "seed": seed,
                "final": {"test_error": 0.1 * seed}, "config": {"model": label}, "provenance": {"device": "d"}}

    runs = results.Runs("e", [rec("a", "cpu", "cifar10-jpeg", 0), rec("a", "paper", "cifar10", 1),
                              rec("b", "cpu", "cifar10-jpeg", 2)])
    assert [r["seed"] for r in runs.where(label="a")] == [0, 1]
    assert [r["seed"] for r in runs.where(budget="cpu", source="cifar10-jpeg")] == [0, 2]
    assert len(runs.where(label="a", budget="smoke")) == 0 and runs.where(label="b").experiment == "e"
    with pytest.raises(ValueError, match="allowed: budget, source, label"):
        runs.where(model="a")


def test_runs_analyses_gives_a_labels_stored_analyses_in_seed_order():
    def rec(label, seed, analysis):
        return {"label": label, "seed": seed, "config": {"model": label}, "analysis": analysis}

    runs = results.Runs("e", [rec("a", 1, {"profile": "p1"}), rec("a", 0, {"profile": "p0", "lesion": "l0"}),
                              rec("a", 2, {}), rec("b", 0, {"profile": "q"})])
    assert runs.analyses("profile", "a") == ["p0", "p1"] and runs.analyses("lesion", "a") == ["l0"]
    assert runs.analyses("profile", "c") == []


def test_experiments_overview_lists_every_experiment_with_its_runs_seeds_and_budget():
    from resnet_book import experiments
    items = experiments.overview().split("\n")
    assert [item.split("**")[1] for item in items] == list(experiments.EXPERIMENTS)
    table6 = items[list(experiments.EXPERIMENTS).index("table6")]
    assert table6.startswith("- **table6** (paper budget): ") and "`resnet1202`" in table6
    assert "seeds 0, 1, 2; resnet110: 0, 1, 2, 3, 4; resnet1202: 0." in table6
    assert table6.count("final weights of seed 0") == 1


def test_experiments_describe_gives_the_command_line_the_same_facts_as_the_overview():
    from resnet_book import experiments
    text = experiments.describe()
    names = [line.split()[0] for line in text.splitlines() if not line.startswith(" ")]
    assert names == list(experiments.EXPERIMENTS)
    table6 = text[text.index("table6"):]
    assert "seeds 0, 1, 2; resnet110: 0, 1, 2, 3, 4; resnet1202: 0; budget paper" in table6.splitlines()[1]


def test_mean_curve_averages_the_seeds_of_one_label_evaluation_by_evaluation():
    def rec(label, seed, train, budget="cpu", steps=(50, 100, 150)):
        return {"label": label, "run_id": f"{label}_{budget}_seed{seed}", "budget": {"name": budget},
                "data": {"source": "cifar10-jpeg"}, "seed": seed, "config": {"model": label},
                "provenance": {"device": "d"}, "final": {"train_error": train[-1]},
                "curves": {"step": list(steps), "train_error": train}}

    runs = results.Runs("e", [rec("a", 0, [0.9, 0.6, 0.5]), rec("a", 1, [0.7, 0.6, 0.3]), rec("b", 0, [0.8, 0.8, 0.8])])
    curve = runs.mean_curve("a", "train_error")
    assert curve["step"] == [50, 100, 150] and curve["n"] == 2
    assert curve["mean"] == pytest.approx([0.8, 0.6, 0.4])
    assert curve["std"] == pytest.approx([0.1414214, 0.0, 0.1414214])  # sample std (ddof 1)
    assert (curve["budget"], curve["source"]) == ("cpu", "cifar10-jpeg")
    one = runs.mean_curve("b", "train_error")
    assert one["mean"] == pytest.approx([0.8] * 3) and one["std"] == [0.0] * 3 and one["n"] == 1
    with pytest.raises(KeyError, match="no runs labelled 'c'.*'a', 'b'"):
        runs.mean_curve("c", "train_error")
    with pytest.raises(KeyError, match="no curve 'test_error'.*step, train_error"):
        runs.mean_curve("a", "test_error")
    shifted = results.Runs("e", [rec("a", 0, [0.9, 0.6, 0.5]), rec("a", 1, [0.7, 0.6, 0.3], steps=(10, 20, 30))])
    with pytest.raises(results.ResultsError, match="different steps"):
        shifted.mean_curve("a", "train_error")
    mixed = results.Runs("e", [rec("a", 0, [0.9, 0.6, 0.5]), rec("a", 1, [0.7, 0.6, 0.3], budget="paper")])
    with pytest.raises(results.ResultsError, match="mix budgets"):
        mixed.mean_curve("a", "train_error")


def test_load_shows_each_label_at_its_largest_budget_and_preferred_source(tmp_path):
    budgets = {"smoke": {"name": "smoke", "iterations": 30, "batch_size": 32},
               "cpu": {"name": "cpu", "iterations": 600, "batch_size": 64},
               "paper": {"name": "paper", "iterations": 64000, "batch_size": 128}}
    error = {("cpu", "cifar10-jpeg"): 0.5, ("paper", "cifar10-jpeg"): 0.2, ("cpu", "cifar10-original"): 0.4,
             ("paper", "cifar10-original"): 0.1, ("paper", "cifar10"): 0.15, ("smoke", "cifar10-original"): 0.9}

    def store(label, budget, source, seed):
        return results.save_run({"experiment": "e", "run_id": f"{label}_{budget}_seed{seed}", "label": label,
                                 "budget": budgets[budget], "data": {"source": source}, "seed": seed,
                                 "config": {"model": label}, "final": {"test_error": error[budget, source]},
                                 "provenance": {"device": "d"}}, root=tmp_path)

    for label in ("a", "b"):
        for seed in (0, 1, 2):
            store(label, "cpu", "cifar10-jpeg", seed)
    assert store("a", "cpu", "cifar10-jpeg", 3) == tmp_path / "e" / "cifar10-jpeg" / "a_cpu_seed3.json"
    store("a", "paper", "cifar10-jpeg", 0)  # a's largest budget is now paper; b stays at cpu
    runs = results.load("e", root=tmp_path)
    assert runs.basis() == {"a": {"budget": "paper", "source": "cifar10-jpeg"},
                            "b": {"budget": "cpu", "source": "cifar10-jpeg"}}
    summary = runs.summary()
    assert (summary["a"]["n"], summary["a"]["mean"], summary["a"]["budget"]) == (1, 0.2, "paper")
    assert (summary["b"]["n"], summary["b"]["mean"], summary["b"]["budget"]) == (3, 0.5, "cpu")
    assert "paper on cifar10-jpeg: a" in runs.describe() and "cpu on cifar10-jpeg: b" in runs.describe()
    # a smaller budget on a preferred source does not displace a larger one
    store("b", "smoke", "cifar10-original", 0)
    assert results.load("e", root=tmp_path).basis()["b"] == {"budget": "cpu", "source": "cifar10-jpeg"}
    # at the same budget, the original pixels are preferred to torchvision's copy, then to the JPEG copy
    for seed in (0, 1):
        store("b", "cpu", "cifar10-original", seed)
    store("a", "paper", "cifar10", 0)
    runs = results.load("e", root=tmp_path)
    assert runs.basis() == {"a": {"budget": "paper", "source": "cifar10"},
                            "b": {"budget": "cpu", "source": "cifar10-original"}}
    assert runs.summary()["b"]["mean"] == 0.4 and runs.summary()["b"]["n"] == 2
    store("a", "paper", "cifar10-original", 1)
    assert results.load("e", root=tmp_path).summary()["a"] | {"seeds": None} == {
        "mean": 0.1, "std": 0.0, "n": 1, "seeds": None, "budget": "paper", "source": "cifar10-original"}
    # forcing a budget and/or a source
    forced = results.load("e", root=tmp_path, budget="cpu")
    assert forced.basis() == {"a": {"budget": "cpu", "source": "cifar10-jpeg"},
                              "b": {"budget": "cpu", "source": "cifar10-original"}}
    jpeg = results.load("e", root=tmp_path, source="cifar10-jpeg")
    assert jpeg.basis() == {"a": {"budget": "paper", "source": "cifar10-jpeg"},
                            "b": {"budget": "cpu", "source": "cifar10-jpeg"}}
    both = results.load("e", root=tmp_path, budget="cpu", source="cifar10-jpeg")
    assert both.sources == {"cifar10-jpeg"} and both.budgets == {"cpu"} and len(both) == 7
    assert set(results.load("e", root=tmp_path, budget="paper", source="cifar10-original").groups()) == {"a"}
    with pytest.raises(ValueError, match="stored budgets: cpu, paper, smoke"):
        results.load("e", root=tmp_path, budget="huge")
    with pytest.raises(ValueError, match="stored sources: cifar10, cifar10-jpeg, cifar10-original"):
        results.load("e", root=tmp_path, source="cifar10-imagefolder")
    # everything, but statistics never pool budgets or sources
    everything = results.load("e", root=tmp_path, budget="all")
    assert len(everything) == 13
    with pytest.raises(results.ResultsError, match="never pool"):
        everything.summary()
    assert len(results.load("nothing", root=tmp_path)) == 0


def test_zero_init_experiments_option_a_is_the_lesson_and_option_b_has_no_dead_channels():
    from resnet_book import analysis, experiments
    from resnet_book.models import build_model

    def padded(exp):
        out = {}
        for label, c in experiments.get(exp).configs(seeds=(0,)):
            model = build_model(c.model, zero_init_residual=c.zero_init_residual,
                                **({"shortcut": c.shortcut} if c.shortcut else {}))
            out[label] = (c.zero_init_residual, len(analysis.zero_padded_channels(model)))
        return out

    # option A: the zero-initialised net opens stages 2 and 3 with zero-padded channels
    assert padded("zero-init") == {"resnet56": (False, 2), "resnet56-zero-init": (True, 2)}
    # the re-run: projection shortcuts where the shape changes, the same ResNet-56 otherwise
    assert padded("zero-init-b") == {"resnet56-B": (False, 0), "resnet56-B-zero-init": (True, 0)}
    assert {c.shortcut for _, c in experiments.get("zero-init-b").configs()} == {"B"}
    assert experiments.get("zero-init-b").seeds == (0, 1, 2) and experiments.get("zero-init-b").budget == "cpu"


def test_bottleneck_experiment_pairs_nets_of_equal_multiply_adds():
    from resnet_book import analysis, experiments
    from resnet_book.models import build_model

    exp = experiments.get("bottleneck")
    x = torch.zeros(1, 3, 32, 32)
    macs = {label: analysis.count_macs(build_model(c.model), x) for label, c in exp.configs(seeds=(0,))}
    assert set(macs) == {"resnet56", "bottleneck83"}
    assert abs(macs["bottleneck83"] / macs["resnet56"] - 1) < 0.02
    # ResNet-56 at seed 0 is the same configuration as in `reversal`, so reproduce reuses it
    assert dict(exp.configs())["resnet56"] == dict(experiments.get("reversal").configs())["resnet56"]


def test_trainer_equals_a_plain_loop(tiny):
    """The recipe written out as the plainest loop -- schedule, batch, forward, loss, backward, SGD,
    and every ``eval_every`` iterations the window's means and the test error -- gives the trainer's
    curves exactly, on any machine (the frozen numbers of test_train_golden.py need its pinned kernels)."""
    from resnet_book.data import TrainBatches
    from resnet_book.models import build_model
    from resnet_book.train import dataset_for, evaluate

    cfg = TrainConfig(model="resnet8", budget="smoke", seed=3, iterations=16)
    record = train(cfg, data=tiny, progress=False)
    budget = cfg.effective_budget
    ds, normalize = dataset_for(cfg, tiny)
    batches = TrainBatches(ds.train_images, ds.train_labels, normalize, batch_size=budget.batch_size, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model).to(memory_format=torch.channels_last)
    sgd = torch.optim.SGD(model.parameters(), lr=cfg.base_lr, momentum=0.9, weight_decay=1e-4)
    curves = {k: [] for k in ("step", "lr", "train_loss", "train_error", "test_loss", "test_error")}
    losses, errors = [], []
    for step in range(budget.iterations):
        lr = cfg.base_lr * 0.1 ** sum(step >= m for m in budget.milestones)  # /10 at 50% and 75%
        for group in sgd.param_groups:
            group["lr"] = lr
        x, y = batches.batch(step)
        logits = model(x.contiguous(memory_format=torch.channels_last))
        loss = torch.nn.functional.cross_entropy(logits, y)
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        losses.append(loss.item())
        errors.append(int((logits.argmax(1) != y).sum()) / len(y))
        if (step + 1) % budget.eval_every == 0:
            test_loss, test_error = evaluate(model, ds.test_images, ds.test_labels, normalize, autocast=contextlib.nullcontext)
            for key, value in (("step", step + 1), ("lr", lr), ("train_loss", sum(losses) / len(losses)),
                               ("train_error", sum(errors) / len(errors)), ("test_loss", test_loss),
                               ("test_error", test_error)):
                curves[key].append(value)
            losses, errors = [], []
    assert {k: record["curves"][k] for k in curves} == curves


def test_results_are_filed_by_data_source_and_misfiled_records_refused(tmp_path):
    rec = {"experiment": "e", "run_id": "r", "config": {"model": "m"}, "final": {"test_error": 0.5},
           "provenance": {"device": "d"}, "budget": {"name": "cpu"}, "data": {"source": "cifar10-original"}, "seed": 0}
    path = results.save_run(rec, root=tmp_path)
    assert path == tmp_path / "e" / "cifar10-original" / "r.json"
    assert results.has_run("e", "r", tmp_path, source="cifar10-original")
    assert not results.has_run("e", "r", tmp_path, source="cifar10-jpeg")  # another source's run does not count
    jpeg = results.save_run({**rec, "data": {"source": "cifar10-jpeg"}}, root=tmp_path)  # stored beside it
    assert jpeg.parent.name == "cifar10-jpeg" and len(results.load("e", root=tmp_path, budget="all")) == 2
    with pytest.raises(ValueError, match="data source"):
        results.save_run({k: v for k, v in rec.items() if k != "data"}, root=tmp_path)
    (tmp_path / "e" / "cifar10").mkdir()
    path.rename(tmp_path / "e" / "cifar10" / "r.json")
    with pytest.raises(results.ResultsError, match="records data source 'cifar10-original'"):
        results.load("e", root=tmp_path)
    (tmp_path / "e" / "cifar10" / "r.json").rename(tmp_path / "e" / "r.json")
    with pytest.raises(results.ResultsError, match="old layout"):
        results.load("e", root=tmp_path)


def test_repository_results_are_filed_under_their_data_source():
    from conftest import REPO

    root = REPO / "data" / "results"
    paths = sorted(root.glob("*/*/*.json"))
    assert paths and not list(root.glob("*/*.json"))
    for path in paths:
        record = json.loads(path.read_text(encoding="utf-8"))
        if path.parent.parent.name == "published":  # measurements of the published networks, one per kind
            assert (record["kind"], record["data"]["source"]) == (path.stem, path.parent.name)
            continue
        assert (record["experiment"], record["data"]["source"]) == (path.parent.parent.name, path.parent.name)


def test_cli_names_a_corrupt_checkpoint_and_refuses_cuda_graph_without_a_gpu(tmp_path, tiny_folder):
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"PK\x03\x04 half a zip file")
    common = ["train", "--model", "resnet8", "--budget", "smoke", "--iterations", "2", "--data", str(tiny_folder),
              "--results", str(tmp_path / "res"), "--quiet", "--device", "cpu"]
    p = _cli(*common, "--checkpoint", str(ckpt), "--resume")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 2 and err.startswith("error:") and str(ckpt) in err and "Delete it" in err, err
    assert "Traceback" not in err and "weights_only" not in err and len(err.strip().splitlines()) == 1, err
    p = _cli(*common, "--cuda-graph")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 2 and "cuda_graph needs a CUDA device" in err and "Traceback" not in err, err


def test_train_or_divergence_returns_the_record_or_the_divergence_and_the_table_says_which(monkeypatch):
    from resnet_book import train as train_mod

    def fake_train(config, **kwargs):
        if config.model == "resnet56":
            raise train_mod.TrainingDiverged("resnet56: the loss became nan by iteration 7 (lr 0.1); training stopped.", 7)
        return {"step": 24, "curves": {"train_loss": [2.31, 2.05]}, "final": {"train_error": 0.75}}

    monkeypatch.setattr(train_mod, "train", fake_train)
    outcomes = {m: train_mod.train_or_divergence(train_mod.TrainConfig(model=m, budget="smoke")) for m in ("plain56", "resnet56")}
    assert outcomes["resnet56"]["config"]["model"] == "resnet56" and outcomes["resnet56"]["diverged_at"] == 7
    t = train_mod.outcome_table(outcomes)
    assert t.rows == [["plain56", "trained, 24 iterations", "2.31", "2.05", "75.0"],
                      ["resnet56", "diverged at iteration 7", "–", "–", "–"]]
