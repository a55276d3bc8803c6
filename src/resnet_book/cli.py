"""``python -m resnet_book train | reproduce | measure-published | bench | list``.

Examples::

    python -m resnet_book train --model resnet56 --budget cpu --seed 0
    python -m resnet_book train --model resnet56 --budget cpu --seed 0 --resume
    python -m resnet_book reproduce degradation --time-limit 540
    python -m resnet_book reproduce table6 --budget paper --parallel 8 --time-limit 540
    python -m resnet_book measure-published --data ../shared/data/cifar10-original
    python -m resnet_book bench --model resnet20
    torchrun --nproc_per_node=2 -m resnet_book train --model resnet20 --budget paper
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import results
from .data import DATA_ENV, DataNotFoundError, cache_dir, data_source, load_cifar10
from .train import BUDGETS, CheckpointError, TrainConfig, TrainingDiverged, check_time_limit, pick_device, train

# --precision fp16 on the CPU, measured with run_bench (ResNet-20, batch 128, one thread, fp32 and fp16 alternating in
# one process) on the shared 2-core AMD EPYC that builds the book, 2026-12-06: fp16 4.3 images/s in both rounds,
# fp32 97 and 18.5 (the machine's load changed); issue 24 measured a whole smoke run at 116 s against 19-45 s.
FP16_CPU_SLOWDOWN = "4 to 22 times"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m resnet_book", description="Train and measure the ResNet book's models.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--data", help=f"CIFAR-10 location (image folder or torchvision root); default ${DATA_ENV} or download")
        sp.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
        sp.add_argument("--results", help="results directory (default: the repository's data/results)")
        sp.add_argument("--quiet", action="store_true", help="no progress bar")

    t = sub.add_parser("train", help="train one model")
    t.add_argument("--model", required=True, help="e.g. resnet20, plain56, preresnet110 (see `list`)")
    t.add_argument("--budget", default="cpu", choices=list(BUDGETS), help="how much of the paper's recipe")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--shortcut", choices=["A", "B", "C"])
    t.add_argument("--zero-init-residual", action="store_true")
    t.add_argument("--norm", default="batch", choices=["batch", "none"], help="'none': no BatchNorm layers (CIFAR nets)")
    t.add_argument("--normalization", default="per_pixel", choices=["per_pixel", "per_channel"])
    t.add_argument("--val-size", type=int, default=0, help="held-out validation images (paper: 5000)")
    t.add_argument("--lr", type=float, help="initial learning rate (default: the budget's, 0.1 x batch/128)")
    t.add_argument("--warmup", default="auto", choices=["auto", "on", "off"])
    t.add_argument("--iterations", type=int, help="override the budget's iteration count")
    t.add_argument("--batch-size", type=int, help="override the budget's batch size")
    t.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 on GPUs with native bf16, fp16 + GradScaler on older GPUs (T4), fp32 on the CPU")
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.add_argument("--cuda-graph", action="store_true",
                   help="CUDA only: capture each training iteration (forward, backward, SGD) in one CUDA graph")
    t.add_argument("--experiment", default="train", help="results subfolder (default: train)")
    t.add_argument("--checkpoint", help="checkpoint file (default: the cache's checkpoints/<experiment>/<run>.pt)")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint if there is one")
    t.add_argument("--time-limit", type=float, help="seconds; then checkpoint and stop (continue with --resume)")
    t.add_argument("--no-save", action="store_true", help="print the result instead of storing it")
    common(t)

    r = sub.add_parser("reproduce", help="run every model/seed an experiment needs (skips stored runs)")
    r.add_argument("experiment")
    r.add_argument("--budget", choices=list(BUDGETS), help="default: the experiment's")
    r.add_argument("--seeds", type=int, nargs="+", help="default: the experiment's")
    r.add_argument("--time-limit", type=float, help="seconds; then checkpoint and stop (run again to continue)")
    r.add_argument("--checkpoints", help="checkpoint folder (default: the cache's checkpoints/)")
    r.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="train N runs at a time in worker processes on the one device (CUDA: under MPS if it can be "
                        "started; CPU: the threads are split between the workers)")
    r.add_argument("--weights", help="kept-weights folder (default: data/weights beside the results)")
    common(r)

    from .published import KINDS
    from .weights import PUBLISHED

    m = sub.add_parser("measure-published", help="measure the published, fully trained ResNets (third-party "
                       "weights) on the test set and store the results (skips kinds already stored)")
    m.add_argument("--kinds", nargs="+", choices=KINDS, help="default: all, the slowest (lesions) last")
    m.add_argument("--jpeg", help="the JPEG copy, on which `accuracy` also tests the nets (default: the folder "
                   "cifar10-jpeg beside the --data folder)")
    m.add_argument("--nets", nargs="+", choices=PUBLISHED, default=list(PUBLISHED), help="default: all four")
    m.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    m.add_argument("--overwrite", action="store_true", help="measure and store again kinds already stored")
    common(m)

    b = sub.add_parser("bench", help="our trainer vs a torchvision DataLoader + transforms loop, images/s")
    b.add_argument("--model", default="resnet20")
    b.add_argument("--batch-size", type=int, default=128)
    b.add_argument("--steps", type=int, default=30)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--workers", type=int, help="baseline DataLoader workers (default: min(4, cores))")
    b.add_argument("--compile", action="store_true", help="torch.compile our model (compiled during warm-up)")
    b.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="ours: as the trainer (auto = bf16 on GPUs with native bf16, fp16 + GradScaler on older GPUs, fp32 on the CPU); the baseline is always fp32")
    b.add_argument("--json", help="also write the result to this file")
    common(b)

    sub.add_parser("list", help="models, budgets and experiments")
    return p


def train_config(a) -> TrainConfig:
    return TrainConfig(model=a.model, budget=a.budget, seed=a.seed, shortcut=a.shortcut,
                       zero_init_residual=a.zero_init_residual, norm=a.norm, normalization=a.normalization,
                       val_size=a.val_size, lr=a.lr, warmup=a.warmup, iterations=a.iterations,
                       batch_size=a.batch_size, precision=a.precision, compile=a.compile)


def checkpoint_path(a, config: TrainConfig) -> Path:
    if a.checkpoint:
        return Path(a.checkpoint).expanduser()
    return cache_dir() / "checkpoints" / a.experiment / data_source(a.data) / f"{config.run_id()}.pt"


def _cmd_train(a) -> int:
    config = train_config(a)
    source = data_source(a.data)  # cheap: nothing is decoded
    if not a.no_save and results.has_run(a.experiment, config.run_id(), a.results, source=source):
        raise FileExistsError(f"{results.record_path(a.experiment, config.run_id(), a.results, source=source)} is "
                              f"already stored; delete it or pass another --experiment to train again")
    ckpt = a.checkpoint_file
    deadline = time.time() + a.time_limit if a.time_limit else None
    rec = train(config, data_root=a.data, device=a.device, checkpoint=ckpt, resume=a.resume, deadline=deadline,
                cuda_graph=a.cuda_graph,
                progress=not a.quiet, experiment=a.experiment)
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_rank() != 0:
        return 0
    if rec["status"] != "complete":
        print(f"paused at iteration {rec['step']}; checkpoint at {ckpt}; continue with --resume", file=sys.stderr)
        return 0
    f = rec["final"]
    print(f"{config.run_id()}: train error {f['train_error']:.4f}, test error {f['test_error']:.4f} "
          f"({rec['data']['source']}, budget {config.budget}, {rec['provenance']['device']}, "
          f"{rec['provenance']['wall_time_s']:.0f} s)")
    if a.no_save:
        print(json.dumps(rec["final"]))
    else:
        from .experiments import store_run

        print(f"stored {store_run(rec, root=a.results, checkpoint=ckpt, again='the same command with --resume')}")
    ckpt.unlink(missing_ok=True)
    return 0


def _cmd_reproduce(a) -> int:
    from .experiments import reproduce

    s = reproduce(a.experiment, budget=a.budget, seeds=tuple(a.seeds) if a.seeds else None, time_limit=a.time_limit,
                  data_root=a.data, device=a.device, checkpoint_dir=a.checkpoints, results_root=a.results,
                  weights_root=a.weights, parallel=a.parallel, progress=not a.quiet)
    state = "complete" if s["finished"] and s["stored"] == s["total"] else "unfinished (run the same command again)"
    extra = "".join(f", {s[k]} {k}" for k in ("reused", "extended", "mismatched") if s.get(k))
    print(f"{a.experiment}: {s['stored']}/{s['total']} runs stored, {s['trained']} trained now{extra}; {state}")
    if s.get("mps"):
        print(s["mps"])
    for f in s["failed"]:
        print(f"failed: {f['run_id']}: {f['error']}", file=sys.stderr)
    if s["failed"]:
        print(f"error: {len(s['failed'])} run(s) failed (the others went on); fix the cause and run the same "
              f"command again: stored runs are skipped, a failed run resumes from its checkpoint", file=sys.stderr)
        return 1
    return 0


def _cmd_measure_published(a) -> int:
    import torch

    from . import published

    if a.threads < 1:
        raise ValueError(f"--threads must be a positive number; got {a.threads}")
    torch.set_num_threads(a.threads)
    kinds = sorted((k for k in published.KINDS if k in (a.kinds or published.KINDS)), key=lambda k: k == "lesions")
    source = data_source(a.data)
    todo = [k for k in kinds if a.overwrite or not published.path(k, source=source, root=a.results).is_file()]
    for k in kinds:
        if k not in todo:
            print(f"{k}: already stored ({published.path(k, source=source, root=a.results)}); --overwrite measures it again")
    if not todo:
        return 0
    jpeg = None
    if "accuracy" in todo:
        jpeg = a.jpeg or (Path(a.data or os.environ.get(DATA_ENV, "")).parent / "cifar10-jpeg")
        if not Path(jpeg).is_dir():
            raise ValueError(f"accuracy also tests the nets on the JPEG copy: {jpeg} is not a folder; pass --jpeg FOLDER")
        jpeg = load_cifar10(jpeg, progress=not a.quiet)
    data = load_cifar10(a.data, progress=not a.quiet)
    device = pick_device(a.device)
    log = (lambda m: None) if a.quiet else (lambda m: print(m, flush=True))
    for k in todo:
        # net by net, the largest first, progress stored after each (an interrupted run goes on from there)
        final = published.path(k, source=source, root=a.results)
        part = final.with_suffix(".partial.json")
        done = [json.loads(part.read_text(encoding="utf-8"))] if part.is_file() and not a.overwrite else []
        for net in sorted(a.nets, key=lambda n: -int(n.removeprefix("resnet"))):
            if any(net in r["nets"] for r in done):
                continue
            done.append(published.measure(k, data=data, nets=(net,), also_on=jpeg if k == "accuracy" else None,
                                          device=device, log=log))
            if len(done) > 1:
                done = [published.merge(done)]
            published.store(done[0], root=a.results, partial=True)
        rec = done[0]
        where = published.store(rec, root=a.results, overwrite=a.overwrite)
        part.unlink(missing_ok=True)
        print(f"{k}: stored {where} ({', '.join(rec['nets'])}; {rec['provenance']['wall_time_s']:.0f} s)", flush=True)
    return 0


def _cmd_bench(a) -> int:
    from .bench import run_bench

    data = load_cifar10(a.data)
    check_batch_size(a.batch_size, len(data.train_labels), f"the training set of {data.source}")
    r = run_bench(data, model=a.model, batch_size=a.batch_size, steps=a.steps, warmup=a.warmup,
                  device=None if a.device == "auto" else a.device, workers=a.workers, compile=a.compile,
                  precision=a.precision)
    print(f"{r['model']}, batch {r['batch_size']}, {r['steps']} timed steps on {r['device']} (torch {r['torch']})")
    print(f"  ours     {r['ours_images_per_s']:10.1f} images/s  ({r['ours']})")
    print(f"  baseline {r['baseline_images_per_s']:10.1f} images/s  ({r['baseline']})")
    print(f"  ratio    {r['ratio']:10.2f}x")
    if a.json:
        results.atomic_write_text(Path(a.json), json.dumps(r, indent=1) + "\n")
    return 0


def _cmd_list(a) -> int:
    from .experiments import describe
    from .models.registry import EXAMPLES, NAME_PATTERNS

    print("models:  ", ", ".join(NAME_PATTERNS), "-- e.g.", ", ".join(EXAMPLES))
    print("budgets:")
    for b in BUDGETS.values():
        print(f"  {b.name:7s} {b.description}")
    print("experiments:")
    print("\n".join("  " + line for line in describe().splitlines()))
    return 0


def check_device(spec: str) -> None:
    """Refuse a ``--device`` this machine does not have, before any data is loaded."""
    import torch

    if spec in (None, "auto"):
        return
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"unknown device {spec!r}; allowed: auto, cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("no CUDA device is available here; use --device cpu or run on a machine with an NVIDIA GPU")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"--device {spec}: this machine has {n} CUDA device(s) (cuda:0 to cuda:{n - 1})")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("no MPS device (Apple GPU) is available here; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {spec!r} is not supported; allowed: auto, cpu, cuda, cuda:N, mps")


def check_writable(folder: str | os.PathLike, *, what: str = "results folder", option: str = "--results") -> None:
    """Refuse a folder that cannot be written, before training starts: the nearest existing folder
    on the path must be a folder in which a file can be created (a probe, deleted at once)."""
    target = Path(folder).expanduser()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        state = "is a file" if existing == target else f"cannot be created: {existing} is a file"
        raise results.ResultsError(f"{what} {target} {state}; pass {option} a folder (it is created if missing)")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".resnet-book-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        where = "" if existing == target else f" (its nearest existing parent {existing})"
        raise results.ResultsError(f"{what} {target}{where} is not writable ({err.strerror or err}); "
                                   f"pass {option} a folder you can write to") from None


def check_checkpoint_path(path: str | os.PathLike) -> None:
    """Refuse a checkpoint file that could not be written, before training starts."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise results.ResultsError(f"--checkpoint {path} is a folder; pass a file name, e.g. {path / 'run.pt'}")
    try:
        check_writable(path.parent, what="checkpoint folder", option="--checkpoint a file in")
    except results.ResultsError as err:
        raise results.ResultsError(f"--checkpoint {path}: {err}") from None


CIFAR10_TRAIN_IMAGES = 50_000


def training_images(budget, val_size: int = 0) -> int:
    """How many images a run with ``budget`` trains on (CIFAR-10: 50,000, less the validation split)."""
    return min(budget.train_size or CIFAR10_TRAIN_IMAGES, CIFAR10_TRAIN_IMAGES - val_size)


def check_val_size(config: TrainConfig) -> None:
    """A validation split is evaluated as often as the test set: at most as many images as it (the
    ``paper`` budget's 10,000 allows the paper's 45k/5k split), so a budget keeps its cost."""
    budget = config.effective_budget
    limit = budget.test_size or 10_000
    if config.val_size < 0 or config.val_size > limit:
        evals = -(-budget.iterations // budget.eval_every)
        raise ValueError(f"--val-size must be 0 to {limit:,} with the {budget.name!r} budget, which tests on "
                         f"{limit:,} images (a validation split is evaluated as often, {evals} times in this run); "
                         f"got {config.val_size:,}. The paper's 45k/5k split is --budget paper --val-size 5000")


def check_batch_size(batch_size: int, images: int, where: str) -> None:
    if batch_size > images:
        raise ValueError(f"--batch-size {batch_size:,} is larger than {where} ({images:,} images); allowed: 1 to "
                         f"{images:,}")


def _available_memory(dev) -> int | None:
    """Bytes free for a run on ``dev`` (None if unknown)."""
    import torch

    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0]
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_batch_fits(model: str, batch_size: int, device: str, precision: str, **model_kwargs) -> None:
    """Refuse a batch whose activations cannot fit in the device's free memory.  The estimate is
    what one 32x32 image's forward pass writes (every layer's output, as float32, or 16-bit under
    autocast on a GPU); the backward pass of a training step peaks at about that (measured: 2.0 MB
    per image for ResNet-20 on the CPU, 2.3 MB estimated)."""
    import torch

    from .analysis import count_activations
    from .models.registry import build_model

    dev = pick_device(device)
    free = _available_memory(dev)
    if free is None:
        return
    floats = count_activations(build_model(model, **model_kwargs), torch.zeros(1, 3, 32, 32))
    per_image = floats * (2 if dev.type == "cuda" and precision != "fp32" else 4)
    if per_image * batch_size > free:
        raise ValueError(f"--batch-size {batch_size:,} does not fit: {model}'s activations need about "
                         f"{per_image * batch_size / 2**30:.1f} GiB at that batch ({per_image / 2**20:.1f} MiB per image), "
                         f"and {dev.type} has {free / 2**30:.1f} GiB free; allowed here: up to about "
                         f"{max(1, free // per_image):,}")


def check_precision(precision: str, device: str) -> None:
    """fp16 autocast on a CPU: refused (CPUs have no fast fp16 arithmetic)."""

    if precision == "fp16" and pick_device(device).type == "cpu":
        raise ValueError("--precision fp16 on a CPU: CPUs have no fast fp16 arithmetic (ResNet-20's training step ran "
                         f"{FP16_CPU_SLOWDOWN} slower than in fp32 on the 2-core EPYC that built the book); "
                         "use fp32 (the default there), or bf16 on a CPU with avx512_bf16 or amx_bf16")


def _check_args(a) -> None:
    """Bad values of the common options, refused with one line before anything slow happens."""
    try:
        check_time_limit(getattr(a, "time_limit", None))
    except ValueError as err:
        raise ValueError(f"--time-limit: {err}") from None
    if getattr(a, "parallel", None) is not None and a.parallel < 1:
        raise ValueError(f"--parallel must be a positive number of worker processes; got {a.parallel}")
    if a.command == "bench":
        from .bench import check_bench_args

        check_bench_args(steps=a.steps, warmup=a.warmup, batch_size=a.batch_size, workers=a.workers)
        check_batch_size(a.batch_size, CIFAR10_TRAIN_IMAGES, "CIFAR-10's training set")
    if hasattr(a, "device"):
        check_device(a.device)
    if a.command in ("train", "bench"):
        check_precision(a.precision, a.device)
    if a.command == "bench":
        check_batch_fits(a.model, a.batch_size, a.device, a.precision)
    if a.command == "train":
        if a.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer (it seeds torch.manual_seed); got {a.seed}")
        config = train_config(a)
        check_val_size(config)
        budget = config.effective_budget
        check_batch_size(budget.batch_size, training_images(budget, config.val_size),
                         f"the {budget.name!r} budget's training set")
        check_batch_fits(config.model, budget.batch_size, a.device, a.precision,
                         **({"shortcut": config.shortcut} if config.shortcut else {}))
        a.checkpoint_file = checkpoint_path(a, config)
        check_checkpoint_path(a.checkpoint_file)
    if a.command in ("train", "reproduce", "measure-published") and not getattr(a, "no_save", False):
        check_writable(results.results_root(a.results))
    if a.command == "reproduce":
        from .experiments import get
        from .weights import weights_root

        if get(a.experiment).keep_weights:
            check_writable(weights_root(a.weights, a.results))


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    handlers = {"train": _cmd_train, "reproduce": _cmd_reproduce, "measure-published": _cmd_measure_published,
                "bench": _cmd_bench, "list": _cmd_list}
    try:
        _check_args(a)
        return handlers[a.command](a)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except (ValueError, DataNotFoundError, CheckpointError, results.ResultsError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; {_what_is_kept(a)}", file=sys.stderr)
        return 130


def _what_is_kept(a) -> str:
    """What an interrupted command leaves behind, as it is (a checkpoint is written every
    ``checkpoint_every`` iterations; before the first one there is none)."""
    if a.command == "train":
        ckpt = getattr(a, "checkpoint_file", None)
        if ckpt is not None and ckpt.exists():
            return f"the last checkpoint {ckpt} is kept (continue with the same command and --resume)"
        return "no checkpoint was written yet, so nothing is kept: run the same command to start again"
    if a.command == "reproduce":
        return ("the runs stored so far are kept, and each unfinished run's last checkpoint if one was written: run "
                "the same command again (stored runs are skipped, a checkpointed run continues)")
    if a.command == "measure-published":
        return ("every kind finished is stored, and an unfinished kind's finished networks are kept in its "
                "<kind>.partial.json: run the same command again to go on from there")
    return "nothing was stored"
