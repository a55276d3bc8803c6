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

``reproduce(..., parallel=N)`` trains N runs at a time in worker processes
(:mod:`resnet_book.scheduler`): on CUDA under CUDA MPS when the machine allows starting it, on the
CPU with the threads split between the workers. Each worker trains one run at a time; every run
is stored by this process as soon as it ends, and a run that fails (or whose worker dies) is
reported at the end without stopping the others; its checkpoint is kept for the next call.

An experiment with ``keep_weights`` also keeps the final weights of seed 0 of each model, in fp16,
with a checksum manifest (:mod:`resnet_book.weights`); :func:`resnet_book.weights.load_weights`
builds the trained network from them.

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

import torch

from . import analysis, results, scheduler, weights
from .data import cache_dir, data_source, load_cifar10
from .train import BUDGETS, TrainConfig, dataset_for, deadline_after, error_rate, train


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    runs: tuple[tuple[str, dict], ...]  # (label, TrainConfig fields)
    seeds: tuple[int, ...] = (0, 1, 2)
    budget: str = "cpu"
    analyses: dict[str, tuple[str, ...]] = field(default_factory=dict)  # label -> names in ANALYSES
    label_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # label -> its seeds, where not `seeds`
    keep_weights: bool = False  # keep the final weights of seed 0 of every label (resnet_book.weights)

    def __post_init__(self):
        labels = {label for label, _ in self.runs}
        for label, names in self.analyses.items():
            if label not in labels or not set(names) <= set(ANALYSES):
                raise ValueError(f"{self.name}: analyses {label!r}: {names} (labels {sorted(labels)}, "
                                 f"analyses {sorted(ANALYSES)})")
        for label, seeds in self.label_seeds.items():
            if label not in labels or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
                raise ValueError(f"{self.name}: label_seeds {label!r}: {seeds!r} (labels {sorted(labels)}; "
                                 f"seeds are non-negative integers)")

    def seeds_for(self, label: str) -> tuple[int, ...]:
        """The seeds ``label`` is trained with (``label_seeds`` where given, else ``seeds``)."""
        return self.label_seeds.get(label, self.seeds)

    def configs(self, budget: str | None = None, seeds: tuple[int, ...] | None = None) -> list[tuple[str, TrainConfig]]:
        """Every run as ``(label, config)``; ``seeds`` replaces the seeds of every label."""
        budget = budget or self.budget
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; allowed: {', '.join(BUDGETS)}")
        return [(label, TrainConfig(budget=budget, seed=s, **fields))
                for label, fields in self.runs for s in (seeds if seeds is not None else self.seeds_for(label))]


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
_TABLE6 = (*_depths("plain", (20, 32, 44, 56, 110)), *_depths("resnet", (20, 32, 44, 56, 110, 1202)))


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
        # Paper Table 6 at the paper's budget. ResNet-110 gets 5 seeds (the paper reports its best and
        # mean of 5 runs), ResNet-1202 one; warmup="auto" gives every 110+ layer net the paper's warm-up
        # (lr 0.01 until the training error is below 80%, about 400 iterations, then 0.1). ResNet-1202
        # skips the lesion study: one test-set pass per each of its 600 blocks.
        Experiment("table6", "paper Table 6: plain and ResNet 20/32/44/56/110 and ResNet-1202 at the paper's budget, "
                   "with the chapters' analyses and the final weights of seed 0 of each net kept",
                   _TABLE6, budget="paper", label_seeds={"resnet110": (0, 1, 2, 3, 4), "resnet1202": (0,)},
                   analyses={label: (*_BOTH, "responses") if label != "resnet1202" else ("profile", "responses")
                             for label, _ in _TABLE6},
                   keep_weights=True),
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
    weights_root: str | os.PathLike | None = None,
    parallel: int = 1,
    progress: bool = True,
    log=print,
) -> dict:
    """Run what ``name`` still needs, ``parallel`` runs at a time; return counts of runs
    ``stored``/``trained``/``reused``/``extended``/``mismatched``, the runs that ``failed`` (with
    one line each: the others went on) and whether it ``finished`` (False when the time limit
    paused a run or left runs unstarted, or a run failed: call again to continue).

    Only runs stored for the data source that ``data_root`` holds count: runs on another source
    (say ``cifar10-jpeg`` when training on ``cifar10-original``) are trained again and stored
    beside them, under ``<experiment>/<source>/``."""
    exp = get(name)
    configs = exp.configs(budget, seeds)
    deadline = deadline_after(time_limit)
    weights_root = weights.weights_root(weights_root, results_root)
    source = data_source(data_root)  # cheap: nothing is decoded
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir else cache_dir() / "checkpoints"
    todo = [(label, c) for label, c in configs if not results.has_run(name, c.run_id(), results_root, source=source)]
    summary = {"stored": len(configs) - len(todo), "trained": 0, "reused": 0, "extended": 0, "mismatched": 0,
               "finished": True, "failed": []}
    remaining = []
    for label, config in todo:
        found = _stored_elsewhere(name, config, exp.analyses.get(label, ()), results_root, source)
        if found is None or _keeps_weights(exp, config):  # kept weights come from a run of this experiment
            remaining.append((label, config, None))
            continue
        record = {**found, "experiment": name, "label": label, "reused_from": f"{found['experiment']}/{found['run_id']}"}
        path = results.save_run(record, root=results_root)
        summary["reused"] += 1
        log(f"{name}: {config.run_id()} is stored as {record['reused_from']}; copied to {path}")
    # stored runs that lack an analysis (or kept weights) this experiment asks for: train again, check, add it
    for label, config in configs:
        wanted = exp.analyses.get(label, ())
        need_weights = _keeps_weights(exp, config) and not weights.recorded(name, config.run_id(), weights_root, source=source)
        if not (wanted or need_weights) or not results.has_run(name, config.run_id(), results_root, source=source):
            continue
        stored = json.loads(results.record_path(name, config.run_id(), results_root, source=source)
                            .read_text(encoding="utf-8"))
        missing = tuple(a for a in wanted if a not in stored.get("analysis", {})) + (("weights",) if need_weights else ())
        if missing:
            remaining.append((label, config, (stored, missing)))
    _run_all(name, exp, remaining, summary, deadline=deadline, data_root=data_root, source=source, device=device,
             ckpt_root=ckpt_root, results_root=results_root, weights_root=weights_root, parallel=parallel,
             progress=progress, log=log)
    summary["stored"] += summary["trained"] + summary["reused"]
    summary["total"] = len(configs)
    return summary


@dataclass(frozen=True)
class RunJob:
    """One run for a worker, with everything it needs (a worker looks nothing up)."""

    experiment: str
    label: str
    config: TrainConfig
    checkpoint: str
    analyses: tuple[str, ...] = ()
    expect_final: dict | None = None  # a re-run that adds analyses must end with exactly these metrics
    weights: str | None = None  # "repo" or "cache": keep the final weights (fp16) there (weights.file_for)
    weights_root: str | None = None
    device: str | None = None
    deadline: float | None = None
    progress: bool = False


def train_run(job: RunJob, data) -> dict:
    """Train (or resume) one run, then measure the trained network: its ``record``, the
    ``analysis`` results and the kept ``weights`` (sha256, bytes, test error with the fp16 weights)."""
    rec, model = train(job.config, data=data, device=job.device, checkpoint=job.checkpoint, resume=True,
                       deadline=job.deadline, progress=job.progress, experiment=job.experiment, label=job.label,
                       return_model=True)
    out = {"record": rec, "analysis": {}, "weights": None}
    if rec["status"] != "complete" or (job.expect_final is not None and rec["final"] != job.expect_final):
        return out
    if not (job.analyses or job.weights):
        return out
    ds, normalize = dataset_for(job.config, data)  # the run's own images, prepared once for all analyses
    if job.weights:
        path = weights.file_for(job.experiment, rec["run_id"], job.weights, job.weights_root,
                                source=rec["data"]["source"])
        saved = weights.save(model, path)
        kept = weights.build_for(rec["config"])  # what weights.load_weights gives a reader
        kept.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        kept = kept.to(next(model.parameters()).device)
        out["weights"] = {**saved, "file": str(path),
                          "test_error_fp16": error_rate(kept, ds.test_images, ds.test_labels, normalize)}
    out["analysis"] = {a: ANALYSES[a](model, job.config, ds, normalize) for a in job.analyses}
    return out


def _keeps_weights(exp: Experiment, config: TrainConfig) -> bool:
    return exp.keep_weights and config.seed == 0


def _weights_locations(exp: Experiment) -> dict[tuple[str, str], str]:
    """``weights.placement`` over every experiment that keeps weights (the rule is global)."""
    kept = [(e.name, label, dataclasses.asdict(TrainConfig(budget=e.budget, **fields)))
            for e in {**EXPERIMENTS, exp.name: exp}.values() if e.keep_weights for label, fields in e.runs]
    return weights.placement(kept)


def _run_all(name, exp, todo, summary, *, deadline, data_root, source, device, ckpt_root, results_root, weights_root,
             parallel, progress, log) -> None:
    """Train ``todo`` (``(label, config, extend)``), ``parallel`` at a time, storing each run as it ends."""
    if not todo:
        return
    places = _weights_locations(exp) if exp.keep_weights else {}
    jobs, extending = [], {}
    for label, config, extend in todo:
        rid = config.run_id()
        wanted = extend[1] if extend else exp.analyses.get(label, ()) + (("weights",) if _keeps_weights(exp, config) else ())
        keep = "weights" in wanted
        if extend:
            extending[rid] = extend
        jobs.append(RunJob(name, label, config, str(ckpt_root / name / source / f"{rid}.pt"),
                           analyses=tuple(a for a in wanted if a != "weights"),
                           expect_final=extend[0]["final"] if extend else None,
                           weights=places[(name, label)] if keep else None, weights_root=str(weights_root),
                           device=device, deadline=deadline, progress=progress and parallel == 1))
    data = load_cifar10(data_root, progress=progress)  # also fills the decoded-image cache the workers read
    if data.source != source:
        raise ValueError(f"{data_root or 'the default data'} probed as {source} but loaded as {data.source}")
    mps_started = False
    if parallel > 1:
        if scheduler.default_parallel_device(device) == "cuda":
            mps_started, summary["mps"] = scheduler.start_cuda_mps()
            log(f"{name}: {summary['mps']}")
        else:
            log(f"{name}: {parallel} worker processes, {scheduler.worker_threads(parallel)} CPU thread(s) each")
    n = len(jobs)

    count = [0]

    def started(job: RunJob, worker: int) -> None:
        count[0] += 1
        rid = job.config.run_id()
        why = f" (again, to add {', '.join(extending[rid][1])})" if rid in extending else ""
        on = f" on worker {worker}" if worker else ""
        log(f"[{count[0]}/{n}] {name}: {rid}{why}{on}" + (" (resuming)" if Path(job.checkpoint).exists() else ""))

    def finished(o: scheduler.Outcome) -> None:
        _store_outcome(o, summary, extending.get(o.job.config.run_id()), results_root=results_root,
                       weights_root=weights_root, log=log)

    try:
        outcomes = scheduler.run_jobs(
            jobs, train_run, parallel=parallel, on_outcome=finished, on_start=started,
            setup=(lambda: data) if parallel == 1 else load_cifar10, setup_args=() if parallel == 1 else (data_root,),
            stop=lambda: deadline is not None and time.time() >= deadline)
    finally:
        if mps_started:
            scheduler.stop_cuda_mps()
    if len(outcomes) < n or summary["failed"]:
        summary["finished"] = False


def _store_outcome(o, summary: dict, extend, *, results_root, weights_root, log) -> None:
    """Store what one run produced (in this process, so records and the manifest have one writer)."""
    job, rid = o.job, o.job.config.run_id()
    ckpt = Path(job.checkpoint)
    if not o.ok:
        summary["failed"].append({"run_id": rid, "label": job.label, "error": o.error})
        kept = f"; its checkpoint {ckpt} is kept" if ckpt.exists() else ""
        log(f"  {rid} FAILED: {o.error}{kept}")
        return
    rec = o.value["record"]
    if rec["status"] != "complete":
        log(f"  time limit reached: {rid} paused at iteration {rec['step']}; checkpoint kept at {ckpt}. "
            f"Run again to continue.")
        summary["finished"] = False
        return
    names = extend[1] if extend else ()
    if extend and rec["final"] != extend[0]["final"]:
        ckpt.unlink(missing_ok=True)
        summary["mismatched"] += 1
        log(f"  the re-run of {rid} ended with {rec['final']}, not the stored {extend[0]['final']} "
            f"(another device or library version?); {', '.join(names)} not added. Delete "
            f"{results.record_path(job.experiment, rid, results_root, source=results.record_source(rec))} to replace the run with one that has them.")
        return
    if o.value["weights"]:
        kept = dict(o.value["weights"])
        file = kept.pop("file")
        entry = weights.entry_for(rec, kept, job.weights, weights_root)
        weights.add_to_manifest(entry, weights_root)
        log(f"  kept its fp16 weights ({entry['bytes'] / 1e6:.2f} MB, {job.weights}): {file}")
    measured = o.value["analysis"]
    if extend:
        stored = extend[0]
        stored.pop("schema", None)
        if measured:
            stored["analysis"] = {**stored.get("analysis", {}), **measured}
        added = {"analyses": [a for a in names if a != "weights"], "final_identical": True,
                 "rerun_provenance": rec["provenance"]}
        if "weights" in names:
            added["weights_kept"] = True
        stored.setdefault("analysis_added", []).append(added)
        path = store_run(stored, root=results_root, checkpoint=ckpt, overwrite=True)
        summary["extended"] += 1
        log(f"  same final metrics as stored; added {', '.join(names)} -> {path}")
    else:
        if measured:
            rec["analysis"] = measured
        path = store_run(rec, root=results_root, checkpoint=ckpt)
        summary["trained"] += 1
        log(f"  test error {rec['final']['test_error']:.4f}, train error {rec['final']['train_error']:.4f} -> {path}")
    ckpt.unlink(missing_ok=True)


def store_run(record: dict, *, root=None, checkpoint: Path | None = None, again: str = "the same command",
              overwrite: bool = False) -> Path:
    """``results.save_run``; when the store fails after training, keep the run: the record is written
    to the cache (``unstored/``) and the error says where it is, that the checkpoint is kept and how
    to store the run."""
    try:
        return results.save_run(record, root=root, overwrite=overwrite)
    except results.ResultsError as err:
        source = results.record_source(record)
        target = results.record_path(record["experiment"], record["run_id"], root, source=source)
        spare = cache_dir() / "unstored" / record["experiment"] / source / f"{record['run_id']}.json"
        try:
            results.atomic_write_text(spare, json.dumps({"schema": results.SCHEMA, **record}, indent=1) + "\n")
            kept = f"the trained run's record was written to {spare}: copy it to {target}"
        except results.ResultsError:
            kept = "the record could not be kept either"
        ckpt = (f"; the last checkpoint {checkpoint} is kept, and {again} with a writable --results "
                f"continues from it and stores the run" if checkpoint is not None and Path(checkpoint).exists() else "")
        raise results.ResultsError(f"{err}; {kept}{ckpt}") from None


def _stored_elsewhere(name: str, config: TrainConfig, analyses, root, source: str) -> dict | None:
    """A complete record of ``config`` on data ``source`` stored by another experiment (with
    ``analyses``), if any."""
    folder = results.results_root(root)
    want = json.loads(json.dumps(dataclasses.asdict(config)))
    for path in sorted(folder.glob(f"*/{source}/{config.run_id()}.json")) if folder.is_dir() else []:
        if path.parent.parent.name == name:
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if (record.get("status") == "complete" and record.get("config") == want and "reused_from" not in record
                and record.get("data", {}).get("source") == source
                and set(analyses) <= set(record.get("analysis", {}))):
            return record
    return None


def _facts(e: Experiment) -> tuple[list[str], str, str]:
    """What ``describe`` and ``overview`` both show of one experiment: its run labels, its seeds
    (with any label's own seeds) and whether it keeps weights, as text."""
    labels = [label for label, _ in e.runs]
    seeds = ", ".join(map(str, e.seeds)) + "".join(f"; {label}: {', '.join(map(str, s))}"
                                                   for label, s in e.label_seeds.items())
    weights = "; keeps the final weights of seed 0" if e.keep_weights and "weights" not in e.description else ""
    return labels, seeds, weights


def describe() -> str:
    """Every experiment as text, for the command line (``list``)."""
    lines = []
    for e in EXPERIMENTS.values():
        labels, seeds, weights = _facts(e)
        lines.append(f"{e.name:14s} {e.description}\n{'':14s} runs: {', '.join(labels)}; seeds {seeds}; budget {e.budget}{weights}")
    return "\n".join(lines)


def overview() -> str:
    """Every experiment as a Markdown list, for the book (long descriptions read better as a list
    than as table cells on a narrow page): what it trains, its runs, seeds and budget."""
    items = []
    for e in EXPERIMENTS.values():
        labels, seeds, weights = _facts(e)
        runs = ", ".join(f"`{label}`" for label in labels)
        items.append(f"- **{e.name}** ({e.budget} budget): {e.description}{weights}. Runs {runs}; seeds {seeds}.")
    return "\n".join(items)

