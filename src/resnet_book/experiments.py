"""The book's named experiments: which models, seeds and budget each needs, as data.

``reproduce("degradation")`` trains every run an experiment needs that is not stored yet, resumes
runs from their checkpoints, and can stop at a time limit (GPU time often comes in ~10-minute
slots) to be continued by calling it again.

Two things keep the runs cheap and comparable:

* an experiment that needs a run another experiment already stored (same configuration, e.g.
  ResNet-56 at seed 0 in ``reversal`` and ``zero-init``) copies that record, marked
  ``reused_from``, instead of training it again -- the same seed gives the same numbers anyway;
* ``analyses`` measure the trained network before it is thrown away (checkpoints are not kept):
  ``lesion`` (Veit et al. 2016, :func:`analysis.lesion_study` on the run's test images),
  ``profile`` (per-block output std and gradient norm, :func:`analysis.activation_stats`, on 256
  training images in train mode -- the measurement chapter 1 makes at initialisation) and
  ``responses`` (paper Fig. 7: std of every 3x3 layer's output after BN, before ReLU/addition,
  :func:`analysis.layer_responses`, on 1000 test images in eval mode).

When an experiment asks for an analysis that a stored run lacks, ``reproduce`` trains that run
again, checks that the re-run ends with exactly the stored final metrics (training is deterministic
for a given seed on the same kind of device), and only then adds the analysis to the stored record,
with the re-run's provenance under ``analysis_added``. A re-run that does not match is reported and
nothing is written.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path


from . import analysis, results
from .data import cache_dir, load_cifar10
from .train import BUDGETS, TrainConfig, dataset_for, error_rate, train


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    runs: tuple[tuple[str, dict], ...]  # (label, TrainConfig fields)
    seeds: tuple[int, ...] = (0, 1, 2)
    budget: str = "cpu"
    analyses: dict[str, tuple[str, ...]] = field(default_factory=dict)  # label -> names in ANALYSES

    def __post_init__(self):
        labels = {label for label, _ in self.runs}
        for label, names in self.analyses.items():
            if label not in labels or not set(names) <= set(ANALYSES):
                raise ValueError(f"{self.name}: analyses {label!r}: {names} (labels {sorted(labels)}, "
                                 f"analyses {sorted(ANALYSES)})")

    def configs(self, budget: str | None = None, seeds: tuple[int, ...] | None = None) -> list[tuple[str, TrainConfig]]:
        budget = budget or self.budget
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; allowed: {', '.join(BUDGETS)}")
        return [(label, TrainConfig(budget=budget, seed=s, **fields))
                for label, fields in self.runs for s in (seeds if seeds is not None else self.seeds)]


def _depths(prefix: str, depths=(20, 32, 44, 56)) -> tuple[tuple[str, dict], ...]:
    return tuple((f"{prefix}{d}", {"model": f"{prefix}{d}"}) for d in depths)


def _lesion(model, config: TrainConfig, ds, normalize) -> dict:
    return analysis.lesion_study(model, lambda m: error_rate(m, ds.test_images, ds.test_labels, normalize),
                                 seed=config.seed)


def _profile(model, config: TrainConfig, ds, normalize) -> dict:
    device = next(model.parameters()).device
    x, y = normalize(ds.train_images[:256]).to(device), ds.train_labels[:256].to(device)
    saved = copy.deepcopy(model.state_dict())  # train mode updates the BN running statistics
    model.train()
    stats = analysis.activation_stats(model, x, y)
    model.load_state_dict(saved)
    return stats


def _responses(model, config: TrainConfig, ds, normalize) -> dict:
    device = next(model.parameters()).device
    return analysis.layer_responses(model, normalize(ds.test_images[:1000]).to(device), which="bn")


ANALYSES = {"lesion": _lesion, "profile": _profile, "responses": _responses}
_BOTH = ("lesion", "profile")


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment("smoke", "the code path end to end, in seconds (CI)",
                   (("plain8", {"model": "plain8"}), ("resnet8", {"model": "resnet8"})), seeds=(0, 1), budget="smoke"),
        Experiment("degradation", "plain-20/32/44/56 on CIFAR-10: deeper plain nets train worse (paper Fig. 6 left)",
                   _depths("plain"), analyses={"plain20": ("responses",), "plain56": (*_BOTH, "responses")}),
        Experiment("reversal", "ResNet-20/32/44/56 on CIFAR-10: deeper residual nets train better (paper Fig. 6 middle)",
                   _depths("resnet"), analyses={"resnet20": ("responses",), "resnet56": (*_BOTH, "responses")}),
        Experiment("preactivation", "original vs pre-activation unit, ResNet-56 (Identity Mappings, Table 2/Fig. 6)",
                   (("resnet56", {"model": "resnet56"}), ("preresnet56", {"model": "preresnet56"}))),
        # Option A's zero-padded channels and a zero-initialised last BN add 0 + 0: those channels never
        # train (analysis.dead_channels; chapter 5). `zero-init` is kept as that lesson; `zero-init-b`
        # is the comparison itself, with projection shortcut (option B) where the shape changes.
        Experiment("zero-init", "standard init vs zero-initialised last BN of each residual branch, ResNet-56 "
                   "with option A (the zero-initialised net's padded channels stay dead: see zero-init-b)",
                   (("resnet56", {"model": "resnet56"}),
                    ("resnet56-zero-init", {"model": "resnet56", "zero_init_residual": True}))),
        Experiment("zero-init-b", "standard init vs zero-initialised last BN of each residual branch, ResNet-56 "
                   "with projection shortcuts where the shape changes (option B: no channel is dead)",
                   (("resnet56-B", {"model": "resnet56", "shortcut": "B"}),
                    ("resnet56-B-zero-init", {"model": "resnet56", "shortcut": "B", "zero_init_residual": True}))),
        Experiment("bottleneck", "basic blocks vs bottleneck blocks at equal multiply-adds: ResNet-56 (option A) vs the "
                   "83-layer CIFAR bottleneck net (option B, as the follow-up's ResNet-164), 1.5% apart in multiply-adds",
                   (("resnet56", {"model": "resnet56"}), ("bottleneck83", {"model": "bottleneck83"}))),
        Experiment("shortcuts", "shortcut options A/B/C on ResNet-32 (paper Table 3, CIFAR scale)",
                   tuple((f"resnet32-{o}", {"model": "resnet32", "shortcut": o}) for o in "ABC")),
    )
}


def get(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; allowed: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def reproduce(
    name: str,
    *,
    budget: str | None = None,
    seeds: tuple[int, ...] | None = None,
    time_limit: float | None = None,
    data_root: str | None = None,
    device: str | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    results_root: str | os.PathLike | None = None,
    progress: bool = True,
    log=print,
) -> dict:
    """Run what ``name`` still needs; return counts of runs ``stored``/``trained``/``skipped`` and
    whether it ``finished`` (False when the time limit paused a run: call again to continue)."""
    exp = get(name)
    configs = exp.configs(budget, seeds)
    deadline = time.time() + time_limit if time_limit else None
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir else cache_dir() / "checkpoints"
    todo = [(label, c) for label, c in configs if not results.has_run(name, c.run_id(), results_root)]
    summary = {"stored": len(configs) - len(todo), "trained": 0, "reused": 0, "extended": 0, "mismatched": 0,
               "finished": True}
    remaining = []
    for label, config in todo:
        found = _stored_elsewhere(name, config, exp.analyses.get(label, ()), results_root)
        if found is None:
            remaining.append((label, config, None))
            continue
        record = {**found, "experiment": name, "label": label, "reused_from": f"{found['experiment']}/{found['run_id']}"}
        path = results.save_run(record, root=results_root)
        summary["reused"] += 1
        log(f"{name}: {config.run_id()} is stored as {record['reused_from']}; copied to {path}")
    # stored runs that lack an analysis this experiment asks for: train again, check, add it
    for label, config in configs:
        wanted = exp.analyses.get(label, ())
        if not wanted or not results.has_run(name, config.run_id(), results_root):
            continue
        stored = json.loads(results.record_path(name, config.run_id(), results_root).read_text(encoding="utf-8"))
        missing = tuple(a for a in wanted if a not in stored.get("analysis", {}))
        if missing:
            remaining.append((label, config, (stored, missing)))
    todo = remaining
    if todo:
        data = load_cifar10(data_root)
    for i, (label, config, extend) in enumerate(todo, 1):
        if deadline is not None and time.time() >= deadline:
            summary["finished"] = False
            break
        ckpt = ckpt_root / name / f"{config.run_id()}.pt"
        why = f" (again, to add {', '.join(extend[1])})" if extend else ""
        log(f"[{i}/{len(todo)}] {name}: {config.run_id()}{why}" + (" (resuming)" if ckpt.exists() else ""))
        rec, model = train(config, data=data, device=device, checkpoint=ckpt, resume=True, deadline=deadline,
                           progress=progress, experiment=name, label=label, return_model=True)
        if rec["status"] != "complete":
            log(f"time limit reached at iteration {rec['step']}; checkpoint kept at {ckpt}. Run again to continue.")
            summary["finished"] = False
            break
        names = extend[1] if extend else exp.analyses.get(label, ())
        if extend and rec["final"] != extend[0]["final"]:
            ckpt.unlink(missing_ok=True)
            summary["mismatched"] += 1
            log(f"  the re-run of {config.run_id()} ended with {rec['final']}, not the stored {extend[0]['final']} "
                f"(another device or library version?); {', '.join(names)} not added. Delete "
                f"{results.record_path(name, config.run_id(), results_root)} to replace the run with one that has them.")
            continue
        if names:
            ds, normalize = dataset_for(config, data)  # the run's own images, prepared once for all analyses
            measured = {a: ANALYSES[a](model, config, ds, normalize) for a in names}
        if extend:
            stored = extend[0]
            stored.pop("schema", None)
            stored["analysis"] = {**stored.get("analysis", {}), **measured}
            stored.setdefault("analysis_added", []).append(
                {"analyses": list(names), "final_identical": True, "rerun_provenance": rec["provenance"]})
            path = results.save_run(stored, root=results_root, overwrite=True)
            summary["extended"] += 1
            log(f"  same final metrics as stored; added {', '.join(names)} -> {path}")
        else:
            if names:
                rec["analysis"] = measured
            path = results.save_run(rec, root=results_root)
            summary["trained"] += 1
            log(f"  test error {rec['final']['test_error']:.4f}, train error {rec['final']['train_error']:.4f} "
                f"-> {path}")
        ckpt.unlink(missing_ok=True)
    summary["stored"] += summary["trained"] + summary["reused"]
    summary["total"] = len(configs)
    return summary


def store_run(record: dict, *, root=None, checkpoint: Path | None = None, again: str = "the same command",
              overwrite: bool = False) -> Path:
    """``results.save_run``; when the store fails after training, keep the run: the record is written
    to the cache (``unstored/``) and the error says where it is, that the checkpoint is kept and how
    to store the run."""
    try:
        return results.save_run(record, root=root, overwrite=overwrite)
    except results.ResultsError as err:
        target = results.record_path(record["experiment"], record["run_id"], root)
        spare = cache_dir() / "unstored" / record["experiment"] / f"{record['run_id']}.json"
        try:
            results.atomic_write_text(spare, json.dumps({"schema": results.SCHEMA, **record}, indent=1) + "\n")
            kept = f"the trained run's record was written to {spare}: copy it to {target}"
        except results.ResultsError:
            kept = "the record could not be kept either"
        ckpt = (f"; the last checkpoint {checkpoint} is kept, and {again} with a writable --results "
                f"continues from it and stores the run" if checkpoint is not None and Path(checkpoint).exists() else "")
        raise results.ResultsError(f"{err}; {kept}{ckpt}") from None


def _stored_elsewhere(name: str, config: TrainConfig, analyses, root) -> dict | None:
    """A complete record of ``config`` stored by another experiment (with ``analyses``), if any."""
    folder = results.results_root(root)
    want = json.loads(json.dumps(dataclasses.asdict(config)))
    for path in sorted(folder.glob(f"*/{config.run_id()}.json")) if folder.is_dir() else []:
        if path.parent.name == name:
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if (record.get("status") == "complete" and record.get("config") == want and "reused_from" not in record
                and set(analyses) <= set(record.get("analysis", {}))):
            return record
    return None


def describe() -> str:
    lines = []
    for e in EXPERIMENTS.values():
        labels = ", ".join(label for label, _ in e.runs)
        lines.append(f"{e.name:14s} {e.description}\n{'':14s} runs: {labels}; seeds {list(e.seeds)}; budget {e.budget}")
    return "\n".join(lines)

