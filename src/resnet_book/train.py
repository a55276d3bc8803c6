"""The paper's CIFAR-10 training recipe, with honest budgets, checkpoints and exact resume.

Recipe (paper Sec. 4.2): SGD, learning rate 0.1, momentum 0.9, weight decay 1e-4, batch 128,
learning rate divided by 10 at 32k and 48k iterations, stop at 64k; for ResNet-110 (and deeper)
a warm-up at 0.01 until the training error is below 80%, then back to 0.1.

Budgets (:data:`BUDGETS`) scale the recipe down honestly -- fewer iterations, a class-balanced
subset -- and keep its shape (the two learning-rate drops at 50% and 75% of training).  The
budget is recorded in every result.

Speed tricks, each named: the data lives on the device and is augmented there in batches
(:mod:`resnet_book.data`); on CUDA, bf16 autocast and channels_last memory format; optional
``torch.compile``; ``cudnn.benchmark`` unless deterministic.  The CPU path is the same code in fp32.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as nnf
from torch import nn

from . import data as data_mod
from . import distributed as dist_mod
from ._io import atomic_torch_save
from .models import build_model, parse_model_name
from .results import provenance

CHECKPOINT_FORMAT = 1
PAPER_LR, PAPER_BATCH = 0.1, 128
NORM_LAYERS = {"batch": nn.BatchNorm2d, "none": nn.Identity}


@dataclass(frozen=True)
class Budget:
    """How much of the paper's recipe a run gets."""

    name: str
    iterations: int
    batch_size: int
    train_size: int | None  # None: all 50k (or 45k with a validation split)
    test_size: int | None  # None: all 10k
    eval_every: int
    checkpoint_every: int
    description: str
    lr: float  # initial learning rate: the paper's 0.1 at batch 128, scaled linearly with the batch

    @property
    def milestones(self) -> tuple[int, int]:
        """Learning-rate drops at 50% and 75% of training (32k and 48k of 64k in the paper)."""
        return (self.iterations // 2, self.iterations * 3 // 4)


BUDGETS: dict[str, Budget] = {
    b.name: b
    for b in (
        Budget("smoke", 24, 32, 320, 200, 8, 8,
               "seconds on a CPU: exercises every code path; its numbers mean nothing", lr=0.025),
        Budget("cpu", 600, 64, 5_000, 1_000, 50, 100,
               "minutes on a laptop CPU: a 5k-image class-balanced subset, 600 iterations of batch 64 "
               "(about 7.7 epochs) at learning rate 0.05, the paper's schedule shape; a reduced-scale run",
               lr=0.05),
        Budget("paper", 64_000, 128, None, None, 1_000, 2_000,
               "the paper's recipe (Sec. 4.2): 64k iterations of batch 128 on all 50k training images, "
               "learning rate 0.1", lr=0.1),
    )
}


BUDGET_ENV = "RESNET_BOOK_BUDGET"


def live_budget() -> str:
    """The budget for cells that train live in a notebook: :data:`BUDGET_ENV` if set, else
    ``cpu`` on a GPU machine and ``smoke`` on a CPU (so every notebook runs in a minute or two)."""
    name = os.environ.get(BUDGET_ENV) or ("cpu" if torch.cuda.is_available() else "smoke")
    if name not in BUDGETS:
        raise ValueError(f"{BUDGET_ENV}={name!r} is not a budget; allowed: {', '.join(BUDGETS)}")
    return name


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable or belongs to another run."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run's numbers (it is stored with the result)."""

    model: str = "resnet20"
    budget: str = "cpu"
    seed: int = 0
    shortcut: str | None = None  # None: the model's default (A for CIFAR)
    zero_init_residual: bool = False
    norm: str = "batch"  # "batch": BN after every convolution (paper); "none": no normalisation layers
    normalization: str = "per_pixel"
    val_size: int = 0  # 5000 gives the paper's 45k/5k split
    data_seed: int = 0  # which subset/split; the same for every training seed
    lr: float | None = None  # None: the budget's (0.1 x batch/128, the linear scaling rule)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup: str = "auto"  # "auto": 0.01 until train error < 80% for depth >= 110 (paper); "on"; "off"
    iterations: int | None = None  # overrides the budget's
    batch_size: int | None = None  # overrides the budget's
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 elsewhere; "fp32"; "bf16"
    compile: bool = False

    def __post_init__(self):
        parse_model_name(self.model)
        if self.budget not in BUDGETS:
            raise ValueError(f"unknown budget {self.budget!r}; allowed: {', '.join(BUDGETS)}")
        if self.norm not in NORM_LAYERS:
            raise ValueError(f"unknown norm {self.norm!r}; allowed: {', '.join(NORM_LAYERS)}")
        if self.norm != "batch" and parse_model_name(self.model).family != "cifar":
            raise ValueError(f"norm={self.norm!r} is available for the CIFAR networks only; {self.model} is an ImageNet net")
        if self.warmup not in ("auto", "on", "off"):
            raise ValueError(f"unknown warmup {self.warmup!r}; allowed: auto, on, off")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"unknown precision {self.precision!r}; allowed: auto, fp32, bf16")
        if self.normalization not in data_mod.Normalize.MODES:
            raise ValueError(f"unknown normalization {self.normalization!r}; allowed: {', '.join(data_mod.Normalize.MODES)}")
        for name in ("iterations", "batch_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer; got {v!r}")

    @property
    def effective_budget(self) -> Budget:
        b = BUDGETS[self.budget]
        changes = {}
        if self.iterations is not None:
            changes["iterations"] = self.iterations
            changes["eval_every"] = min(b.eval_every, self.iterations)
            changes["checkpoint_every"] = min(b.checkpoint_every, self.iterations)
        if self.batch_size is not None:
            changes["batch_size"] = self.batch_size
            changes["lr"] = PAPER_LR * self.batch_size / PAPER_BATCH
        return dataclasses.replace(b, **changes) if changes else b

    @property
    def base_lr(self) -> float:
        """The initial learning rate: ``lr`` if given, else the budget's."""
        return self.lr if self.lr is not None else self.effective_budget.lr

    @property
    def uses_warmup(self) -> bool:
        if self.warmup == "auto":
            return parse_model_name(self.model).depth >= 110
        return self.warmup == "on"

    def run_id(self) -> str:
        """A file-safe name: model, non-default options, budget and seed."""
        default = TrainConfig()
        short = {"shortcut": "opt", "zero_init_residual": "zeroinit", "norm": "norm-", "normalization": "", "val_size": "val",
                 "lr": "lr", "warmup": "warmup-", "iterations": "it", "batch_size": "bs"}
        parts = [self.model]
        for f, tag in short.items():
            v = getattr(self, f)
            if v != getattr(default, f):
                parts.append(tag if v is True else f"{tag}{v}")
        parts += [self.budget, f"seed{self.seed}"]
        return "_".join(str(p).replace("/", "-") for p in parts)


def pick_device(device: str | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def learning_rate(config: TrainConfig, budget: Budget, step: int, warming_up: bool) -> float:
    """The paper's step schedule, ÷10 at each milestone; 0.01 while warming up."""
    if warming_up:
        return config.base_lr / 10
    return config.base_lr * 0.1 ** sum(step >= m for m in budget.milestones)


def load_checkpoint(path: Path, config: TrainConfig) -> dict:
    """Read a checkpoint (``weights_only=True``) and check that it belongs to ``config``."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: {err}). It was left in place; "
            f"delete it (or choose another checkpoint path) to start this run over."
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a resnet_book checkpoint (format {CHECKPOINT_FORMAT})")
    saved = ckpt.get("config", {})
    mine = dataclasses.asdict(config)
    ignore = {"compile"}  # does not change the numbers' meaning
    diff = {k: (saved.get(k), v) for k, v in mine.items() if k not in ignore and saved.get(k) != v}
    if diff:
        pretty = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(f"checkpoint {path} belongs to another run ({pretty}); it was left in place")
    return ckpt


@dataclass
class RunState:
    """What a run has recorded so far (part of its checkpoint)."""

    curves: dict[str, list] = field(default_factory=lambda: {k: [] for k in (
        "step", "lr", "train_loss", "train_error", "test_loss", "test_error", "val_error")})
    win_loss: float = 0.0
    win_err: float = 0.0
    win_n: int = 0
    warming_up: bool = False
    warmup_ended_at: int | None = None
    elapsed: float = 0.0
    images_seen: int = 0


def dataset_for(config: TrainConfig, data: data_mod.CIFAR10) -> tuple[data_mod.CIFAR10, data_mod.Normalize]:
    """The images a run with ``config`` trains and tests on, and its fitted normalisation."""
    budget = config.effective_budget
    ds = data_mod.prepare(data, train_size=budget.train_size, test_size=budget.test_size,
                          val_size=config.val_size, seed=config.data_seed)
    return ds, data_mod.Normalize(ds.train_images, config.normalization)


def error_rate(model: nn.Module, images, labels, normalize) -> float:
    """Error of ``model`` (in eval mode, fp32, single centre view) on uint8 ``images``."""
    device = next(model.parameters()).device
    return evaluate(model, images.to(device), labels.to(device), normalize.to(device), autocast=contextlib.nullcontext)[1]


@torch.no_grad()
def evaluate(model: nn.Module, images, labels, normalize, *, autocast, batch_size: int = 1000) -> tuple[float, float]:
    """(mean loss, error rate) on the single centre view."""
    was = model.training
    model.eval()
    loss_sum, wrong = torch.zeros((), dtype=torch.float64, device=labels.device), torch.zeros((), dtype=torch.int64, device=labels.device)
    for x, y in data_mod.eval_batches(images, labels, normalize, batch_size, labels.device):
        with autocast():
            logits = model(x)
        loss_sum += nnf.cross_entropy(logits.float(), y, reduction="sum").double()
        wrong += (logits.argmax(1) != y).sum()
    model.train(was)
    n = len(labels)
    return loss_sum.item() / n, wrong.item() / n


def train(
    config: TrainConfig,
    *,
    data: data_mod.CIFAR10 | None = None,
    data_root: str | None = None,
    device: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    deadline: float | None = None,
    progress: bool = True,
    experiment: str = "train",
    label: str | None = None,
    return_model: bool = False,
):
    """Train one run and return its result record (``status`` "complete" or "paused").

    ``checkpoint``: where to save checkpoints every ``budget.checkpoint_every`` iterations; with
    ``resume=True`` an existing one is continued.  ``deadline`` (a ``time.time()`` value): save a
    checkpoint and return a "paused" record once it has passed.  ``return_model=True`` returns
    ``(record, model)`` so a notebook can go on measuring the trained network.
    """
    budget = config.effective_budget
    dev = pick_device(device)
    ctx = dist_mod.init_from_env(dev.type)
    if ctx.enabled and dev.type == "cuda":
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and dev.type == "cuda")
    channels_last = True  # NHWC: faster convolutions on GPUs (tensor cores) and on CPUs (oneDNN)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True

    def autocast():
        return torch.autocast(dev.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()

    # --- data: decoded once, subset chosen by data_seed, then resident on the device
    full = data if data is not None else data_mod.load_cifar10(data_root)
    ds, normalize = dataset_for(config, full)
    batches = data_mod.TrainBatches(ds.train_images, ds.train_labels, normalize, batch_size=budget.batch_size,
                                    seed=config.seed, device=dev, rank=ctx.rank, world_size=ctx.world_size)
    test_x, test_y = ds.test_images.to(dev), ds.test_labels.to(dev)
    val = (ds.val_images.to(dev), ds.val_labels.to(dev)) if ds.val_images is not None else None

    # --- model and optimiser (SGD + momentum; weight decay on all parameters, as in the paper)
    torch.manual_seed(config.seed)
    kwargs = {"zero_init_residual": config.zero_init_residual}
    if config.norm != "batch":
        kwargs["norm_layer"] = NORM_LAYERS[config.norm]
    if config.shortcut is not None:
        kwargs["shortcut"] = config.shortcut
    model = build_model(config.model, **kwargs)
    if ctx.enabled:
        model = dist_mod.convert_sync_batchnorm(model, dev.type)
    model = model.to(dev, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.base_lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)

    state = RunState(warming_up=config.uses_warmup)
    start = 0
    ckpt_path = Path(checkpoint) if checkpoint else None
    if ckpt_path is not None and ckpt_path.exists():
        if not resume:
            raise CheckpointError(f"a checkpoint for this run exists at {ckpt_path}; pass resume=True (--resume) "
                                  f"to continue it, or delete it to start over")
        ckpt = load_checkpoint(ckpt_path, config)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = ckpt["step"]
        state = RunState(**ckpt["state"])
        torch.set_rng_state(ckpt["rng_cpu"])

    fwd = model
    if ctx.enabled:
        fwd = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if config.compile:
        fwd = torch.compile(fwd)

    def save_checkpoint(step: int) -> None:
        if ckpt_path is None or not ctx.is_main:
            return
        atomic_torch_save({
            "format": CHECKPOINT_FORMAT,
            "config": dataclasses.asdict(config),
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": dataclasses.asdict(state),
            "rng_cpu": torch.get_rng_state(),
        }, ckpt_path)

    def record(step: int, lr: float) -> None:
        c = state.curves
        c["step"].append(step)
        c["lr"].append(lr)
        c["train_loss"].append(state.win_loss / max(state.win_n, 1))
        c["train_error"].append(state.win_err / max(state.win_n, 1))
        tl, te = evaluate(model, test_x, test_y, normalize, autocast=autocast)
        c["test_loss"].append(tl)
        c["test_error"].append(te)
        c["val_error"].append(evaluate(model, *val, normalize, autocast=autocast)[1] if val else None)
        state.win_loss = state.win_err = 0.0
        state.win_n = 0

    from tqdm.auto import tqdm

    bar = tqdm(total=budget.iterations, initial=start, desc=f"{config.model} [{budget.name}]",
               disable=not (progress and ctx.is_main), leave=False)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter() - state.elapsed
    # The loss is checked on the host every step on the CPU; on GPUs every 50 steps (and before
    # every checkpoint), to avoid a device sync per step.
    check_every = 1 if dev.type == "cpu" else 50
    fwd.train()
    win = torch.tensor([state.win_loss, state.win_err], dtype=torch.float64, device=dev)  # running sums
    paused = False
    step = start
    for step in range(start, budget.iterations):
        if deadline is not None and time.time() >= deadline and step > start:
            paused = True
            break
        lr = learning_rate(config, budget, step, state.warming_up)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = batches.batch(step)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            logits = fwd(x)
        loss = nnf.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        stats = torch.stack([loss.detach().double(), (logits.detach().argmax(1) != y).double().mean()])
        win += dist_mod.all_reduce_mean(stats, ctx)
        state.win_n += 1
        state.images_seen += budget.batch_size
        last = step + 1 == budget.iterations
        due_eval = (step + 1) % budget.eval_every == 0 or last
        due_ckpt = (step + 1) % budget.checkpoint_every == 0 and not last
        if (step + 1) % check_every == 0 or due_eval or due_ckpt or state.warming_up:
            state.win_loss, state.win_err = win.tolist()
            if not math.isfinite(state.win_loss):
                bar.close()
                raise TrainingDiverged(
                    f"{config.model}: the loss became {stats[0].item()} by iteration {step + 1} (lr {lr:g}); "
                    "training stopped. "
                    + (f"The last good checkpoint is kept at {ckpt_path}." if ckpt_path else "No checkpoint was kept.")
                    + " Try a smaller learning rate or the warm-up (warmup='on')."
                )
            if state.warming_up and stats[1].item() < 0.8:
                state.warming_up = False  # paper: back to 0.1 once training error is below 80%
                state.warmup_ended_at = step + 1
        if due_eval:
            record(step + 1, lr)
            win.zero_()
            c = state.curves
            bar.set_postfix(loss=f"{c['train_loss'][-1]:.3f}", train_err=f"{c['train_error'][-1]:.3f}",
                            test_err=f"{c['test_error'][-1]:.3f}", refresh=False)
        state.elapsed = time.perf_counter() - t0
        if due_ckpt:
            save_checkpoint(step + 1)
        bar.update(1)
    else:
        step = budget.iterations
    bar.close()
    if paused:
        state.elapsed = time.perf_counter() - t0
        state.win_loss, state.win_err = win.tolist()
        save_checkpoint(step)

    c = state.curves
    done = not paused
    final = {}
    if done:
        final = {"train_loss": c["train_loss"][-1], "train_error": c["train_error"][-1],
                 "test_loss": c["test_loss"][-1], "test_error": c["test_error"][-1]}
        if val:
            final["val_error"] = c["val_error"][-1]
    spec = parse_model_name(config.model)
    record = {
        "experiment": experiment,
        "run_id": config.run_id(),
        "label": label or config.model,
        "status": "complete" if done else "paused",
        "step": step,
        "seed": config.seed,
        "config": dataclasses.asdict(config),
        "budget": dataclasses.asdict(budget),
        "model": {"name": config.model, "family": spec.family, "depth": spec.depth, "residual": spec.residual,
                  "preact": spec.preact, "parameters": sum(p.numel() for p in model.parameters())},
        "data": {"source": full.source, "root": full.root, "train_size": len(ds.train_labels),
                 "test_size": len(ds.test_labels), "val_size": config.val_size,
                 "normalization": config.normalization, "augmentation": "pad 4 + random 32x32 crop + horizontal flip"},
        "provenance": {**provenance(dev), "precision": "bf16 autocast" if use_bf16 else "fp32",
                       "channels_last": channels_last, "compile": config.compile, "world_size": ctx.world_size,
                       "started": started_at, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "wall_time_s": round(state.elapsed, 2)},
        "throughput_images_per_s": round(state.images_seen / state.elapsed, 1) if state.elapsed > 0 else None,
        "warmup_ended_at": state.warmup_ended_at,
        "curves": c,
        "final": final,
    }
    return (record, model) if return_model else record
