"""The paper's CIFAR-10 training recipe, with honest budgets, checkpoints and exact resume.

Recipe (paper Sec. 4.2): SGD, learning rate 0.1, momentum 0.9, weight decay 1e-4, batch 128,
learning rate divided by 10 at 32k and 48k iterations, stop at 64k; for ResNet-110 (and deeper)
a warm-up at 0.01 until the training error is below 80%, then back to 0.1.

Budgets (:data:`BUDGETS`) scale the recipe down honestly -- fewer iterations, a class-balanced
subset -- and keep its shape (the two learning-rate drops at 50% and 75% of training).  The
budget is recorded in every result.

The loop below reads like the recipe: for each iteration, the learning rate of the schedule
(:func:`learning_rate`, with the warm-up), one training step (:mod:`resnet_book.step`), and at
fixed intervals evaluation (:func:`evaluate`), a checkpoint (:func:`save_checkpoint`) and progress.

Speed tricks, each named: the data lives on the device and is augmented there in batches
(:mod:`resnet_book.data`); channels_last memory format; on CUDA, bf16 autocast where the GPU has
native bf16 (fp16 with loss scaling on older GPUs), ``cudnn.benchmark``, and optionally the whole
step captured in a CUDA graph (``cuda_graph=True``); optional ``torch.compile``.  The loss and
error are summed on the device and read only when evaluating, checkpointing or pausing.  The CPU
path is the same code in fp32.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
import warnings
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
from .step import PRECISIONS, CUDAGraphStep, EagerStep, Precision, resolve_precision

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
    """The loss became NaN or infinite; ``iteration``: the iteration by which it had."""

    def __init__(self, message: str, iteration: int | None = None) -> None:
        super().__init__(message)
        self.iteration = iteration


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
    precision: str = "auto"  # "auto": bf16 on GPUs with native bf16, fp16 + GradScaler on older GPUs, fp32 on the CPU
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
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; allowed: {', '.join(PRECISIONS)}")
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


def check_time_limit(seconds: float | None) -> float | None:
    """A time limit in seconds (None: no limit); anything but a positive number is refused."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a time limit must be a positive number of seconds; got {seconds!r}")
    return float(seconds)


def deadline_after(seconds: float | None) -> float | None:
    """The ``time.time()`` at which a run given ``seconds`` pauses (``train(deadline=...)``)."""
    seconds = check_time_limit(seconds)
    return None if seconds is None else time.time() + seconds


# --- the schedule ---------------------------------------------------------------------------------

def learning_rate(config: TrainConfig, budget: Budget, step: int, warming_up: bool) -> float:
    """The paper's step schedule, ÷10 at each milestone; 0.01 while warming up."""
    if warming_up:
        return config.base_lr / 10
    return config.base_lr * 0.1 ** sum(step >= m for m in budget.milestones)


WARMUP_UNTIL_ERROR = 0.8  # paper Sec. 4.2: 0.01 "until the training error is below 80%"


# --- what a run has recorded so far, and its checkpoints --------------------------------------------

@dataclass
class RunState:
    """What a run has recorded so far (part of its checkpoint)."""

    curves: dict[str, list] = field(default_factory=lambda: {k: [] for k in (
        "step", "lr", "train_loss", "train_error", "test_loss", "test_error", "val_error")})
    win_loss: float = 0.0  # sums over the iterations since the last evaluation
    win_err: float = 0.0
    win_n: int = 0
    warming_up: bool = False
    warmup_ended_at: int | None = None
    elapsed: float = 0.0  # seconds of training, all pieces together
    images_seen: int = 0
    pieces: list[dict] = field(default_factory=list)  # one per call of train(): a resumed run has several


def save_checkpoint(path: Path, config: TrainConfig, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, state: RunState) -> None:
    """Everything needed to continue the run exactly, written atomically."""
    opt = optimizer.state_dict()
    opt["param_groups"] = [{**g, "lr": float(g["lr"])} for g in opt["param_groups"]]  # a CUDA-graph step's lr is a tensor
    atomic_torch_save({
        "format": CHECKPOINT_FORMAT,
        "config": dataclasses.asdict(config),
        "step": step,
        "model": model.state_dict(),
        "optimizer": opt,
        "scaler": scaler.state_dict(),
        "state": dataclasses.asdict(state),
        "rng_cpu": torch.get_rng_state(),
    }, path)


def _unreadable(path: Path, err: BaseException) -> CheckpointError:
    text = str(err)
    if isinstance(err, EOFError) or "zip archive" in text or "central directory" in text:
        why = "it is truncated or incomplete"
    elif isinstance(err, OSError):
        why = err.strerror or type(err).__name__
    else:
        why = "it is not a checkpoint written by this library"
    return CheckpointError(
        f"checkpoint {path} cannot be read: {why}. It was left in place. Delete it to start this run over "
        f"from iteration 0 (only this unfinished run's progress is lost; stored results are not affected), "
        f"or pass another checkpoint path.")


def load_checkpoint(path: Path, config: TrainConfig) -> dict:
    """Read a checkpoint (``weights_only=True``) and check that it belongs to ``config``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unpickler's advice about pickle protocols
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise _unreadable(path, err) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a resnet_book checkpoint (format {CHECKPOINT_FORMAT}); it was left "
                              f"in place: delete it to start this run over, or pass another checkpoint path")
    saved = ckpt.get("config", {})
    mine = dataclasses.asdict(config)
    ignore = {"compile"}  # does not change the numbers' meaning
    diff = {k: (saved.get(k), v) for k, v in mine.items() if k not in ignore and saved.get(k) != v}
    if diff:
        pretty = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(f"checkpoint {path} belongs to another run ({pretty}); it was left in place")
    return ckpt


def restore(path: Path, config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler) -> tuple[int, RunState]:
    """Load a checkpoint into the model, optimiser and scaler; the step to continue from, and the state."""
    ckpt = load_checkpoint(path, config)
    try:
        model.load_state_dict(ckpt["model"])
        impl = [{k: g[k] for k in ("foreach", "fused") if k in g} for g in optimizer.param_groups]
        optimizer.load_state_dict(ckpt["optimizer"])
        for g, own in zip(optimizer.param_groups, impl):
            g.update(own)  # this process's SGD implementation, not the one that wrote the checkpoint
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        state = RunState(**ckpt["state"])
        torch.set_rng_state(ckpt["rng_cpu"])
        return ckpt["step"], state
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit this run ({type(err).__name__}); it was left in "
                              f"place: delete it to start this run over, or pass another checkpoint path") from None


# --- evaluation ---------------------------------------------------------------------------------------

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


def record_evaluation(state: RunState, step: int, lr: float, model: nn.Module, test, val, normalize, autocast) -> None:
    """Append one point to the curves: the training window's means, then test (and validation) error."""
    c = state.curves
    c["step"].append(step)
    c["lr"].append(lr)
    c["train_loss"].append(state.win_loss / max(state.win_n, 1))
    c["train_error"].append(state.win_err / max(state.win_n, 1))
    tl, te = evaluate(model, *test, normalize, autocast=autocast)
    c["test_loss"].append(tl)
    c["test_error"].append(te)
    c["val_error"].append(evaluate(model, *val, normalize, autocast=autocast)[1] if val else None)
    state.win_loss = state.win_err = 0.0
    state.win_n = 0


# --- progress -------------------------------------------------------------------------------------------

class Progress:
    """A progress bar over the iterations (shown by the main process only)."""

    def __init__(self, config: TrainConfig, budget: Budget, start: int, enabled: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=budget.iterations, initial=start, desc=f"{config.model} [{budget.name}]",
                        disable=not enabled, leave=False)

    def show(self, curves: dict) -> None:
        self.bar.set_postfix(loss=f"{curves['train_loss'][-1]:.3f}", train_err=f"{curves['train_error'][-1]:.3f}",
                             test_err=f"{curves['test_error'][-1]:.3f}", refresh=False)

    def update(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# --- the network and its optimiser ----------------------------------------------------------------------

def build_network(config: TrainConfig, device: torch.device, *, sync_batchnorm: bool = False) -> nn.Module:
    """The model of ``config``, initialised from ``config.seed``, on ``device`` in channels_last."""
    torch.manual_seed(config.seed)
    kwargs = {"zero_init_residual": config.zero_init_residual}
    if config.norm != "batch":
        kwargs["norm_layer"] = NORM_LAYERS[config.norm]
    if config.shortcut is not None:
        kwargs["shortcut"] = config.shortcut
    model = build_model(config.model, **kwargs)
    if sync_batchnorm:
        model = dist_mod.convert_sync_batchnorm(model, device.type)
    # NHWC: faster convolutions on GPUs (tensor cores) and on CPUs (oneDNN)
    return model.to(device, memory_format=torch.channels_last)


def make_optimizer(model: nn.Module, config: TrainConfig, *, fused: bool = False) -> torch.optim.SGD:
    """SGD with momentum, weight decay on all parameters (as in the paper).  ``fused``: one kernel
    for all parameters, reading the learning rate from the device (what a CUDA-graph step needs)."""
    return torch.optim.SGD(model.parameters(), lr=config.base_lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, **({"fused": True} if fused else {}))


def _check_finite(config: TrainConfig, state: RunState, step: int, lr: float, model: nn.Module | None,
                  ckpt_path: Path | None, progress: Progress) -> None:
    """Stop with :class:`TrainingDiverged` if the window's loss (or, before a checkpoint, a weight)
    is not finite, so that a kept checkpoint is always a good one."""
    bad_weights = model is not None and not torch.stack([p.isfinite().all() for p in model.parameters()]).all().item()
    if math.isfinite(state.win_loss) and not bad_weights:
        return
    progress.close()
    what = f"{state.win_loss / max(state.win_n, 1)}" if not math.isfinite(state.win_loss) else "finite but a weight is not"
    raise TrainingDiverged(
        f"{config.model}: the loss became {what} by iteration {step + 1} (lr {lr:g}); training stopped. "
        + (f"The last good checkpoint is kept at {ckpt_path}." if ckpt_path and ckpt_path.exists() else "No checkpoint was kept.")
        + " Try a smaller learning rate or the warm-up (warmup='on').",
        step + 1,
    )


# --- the run --------------------------------------------------------------------------------------------

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
    cuda_graph: bool = False,
):
    """Train one run and return its result record (``status`` "complete" or "paused").

    ``checkpoint``: where to save checkpoints every ``budget.checkpoint_every`` iterations; with
    ``resume=True`` an existing one is continued.  ``deadline`` (a ``time.time()`` value, see
    :func:`deadline_after`): save a checkpoint and return a "paused" record once it has passed.
    ``return_model=True`` returns ``(record, model)`` so a notebook can go on measuring the trained
    network.  ``cuda_graph=True`` (CUDA only) captures each training iteration in one CUDA graph
    (:class:`resnet_book.step.CUDAGraphStep`); the recipe is unchanged.
    """
    budget = config.effective_budget
    dev = pick_device(device)
    ctx = dist_mod.init_from_env(dev.type)
    if ctx.enabled and dev.type == "cuda":
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    if cuda_graph:
        _check_cuda_graph(dev, ctx, config)
    precision = resolve_precision(config.precision, dev)
    if cuda_graph and precision.name == "fp16":
        raise ValueError(f"cuda_graph runs in bf16 or fp32; {torch.cuda.get_device_name(dev)} has no native bf16, so "
                         f"precision='auto' means fp16 there: pass precision='fp32' (or 'bf16') with cuda_graph")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # --- data: decoded once, subset chosen by data_seed, then resident on the device
    full = data if data is not None else data_mod.load_cifar10(data_root, progress=progress)
    ds, normalize = dataset_for(config, full)
    batches = data_mod.TrainBatches(ds.train_images, ds.train_labels, normalize, batch_size=budget.batch_size,
                                    seed=config.seed, device=dev, rank=ctx.rank, world_size=ctx.world_size)
    test = (ds.test_images.to(dev), ds.test_labels.to(dev))
    val = (ds.val_images.to(dev), ds.val_labels.to(dev)) if ds.val_images is not None else None

    # --- the network, SGD, and where a previous piece of this run left off
    model = build_network(config, dev, sync_batchnorm=ctx.enabled)
    # fused SGD on CUDA: one kernel for all parameters, and with fp16's GradScaler no host sync per step
    # (the scaler hands it the scale and the inf flag on the device); the CPU keeps PyTorch's default
    optimizer = make_optimizer(model, config, fused=dev.type == "cuda")
    scaler = precision.grad_scaler()
    state, start = RunState(warming_up=config.uses_warmup), 0
    ckpt_path = Path(checkpoint) if checkpoint else None
    if ckpt_path is not None and ckpt_path.exists():
        if not resume:
            raise CheckpointError(f"a checkpoint for this run exists at {ckpt_path}; pass resume=True (--resume) "
                                  f"to continue it, or delete it to start over")
        start, state = restore(ckpt_path, config, model, optimizer, scaler)

    fwd = model
    if ctx.enabled:
        fwd = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if config.compile:
        fwd = torch.compile(fwd)
    fwd.train()
    window = torch.tensor([state.win_loss, state.win_err], dtype=torch.float64, device=dev)  # running sums
    if cuda_graph:
        train_step = CUDAGraphStep(fwd, optimizer, precision, window)
    else:
        train_step = EagerStep(fwd, optimizer, precision, scaler, window,
                               reduce=lambda stats: dist_mod.all_reduce_mean(stats, ctx))

    # --- this piece of the run (a resumed run has several)
    prov = {k: str(v) if isinstance(v, str) else v for k, v in provenance(dev).items()}  # plain str: torch's version is a subclass
    piece = {"started": _now(), "finished": None, "start_step": start, "end_step": start, "wall_time_s": 0.0,
             **prov, "precision": precision.label, "cuda_graph": cuda_graph, "world_size": ctx.world_size}
    state.pieces.append(piece)
    elapsed_before = state.elapsed
    t0 = time.perf_counter() - state.elapsed

    def read_window() -> None:  # the only host sync of the loop outside evaluation
        state.win_loss, state.win_err = window.tolist()

    def checkpoint_at(step: int) -> None:
        piece.update(end_step=step, finished=_now(), wall_time_s=round(state.elapsed - elapsed_before, 3))
        if ckpt_path is not None and ctx.is_main:
            save_checkpoint(ckpt_path, config, step, model, optimizer, scaler, state)

    bar = Progress(config, budget, start, enabled=progress and ctx.is_main)
    autocast = precision.autocast
    paused = False
    step = start
    for step in range(start, budget.iterations):
        if deadline is not None and time.time() >= deadline and step > start:
            paused = True
            break
        lr = learning_rate(config, budget, step, state.warming_up)
        x, y = batches.batch(step)
        stats = train_step(x, y, lr)
        state.win_n += 1
        state.images_seen += budget.batch_size
        if state.warming_up and stats[1].item() < WARMUP_UNTIL_ERROR:  # a host sync per iteration, while warming up only
            state.warming_up = False  # paper: back to 0.1 once training error is below 80%
            state.warmup_ended_at = step + 1
        last = step + 1 == budget.iterations
        due_eval = (step + 1) % budget.eval_every == 0 or last
        due_ckpt = (step + 1) % budget.checkpoint_every == 0 and not last
        if due_eval or due_ckpt:
            read_window()
            _check_finite(config, state, step, lr, model if due_ckpt else None, ckpt_path, bar)
        if due_eval:
            record_evaluation(state, step + 1, lr, model, test, val, normalize, autocast)
            window.zero_()
            bar.show(state.curves)
        state.elapsed = time.perf_counter() - t0
        if due_ckpt:
            checkpoint_at(step + 1)
        bar.update()
    else:
        step = budget.iterations
    bar.close()
    state.elapsed = time.perf_counter() - t0
    if paused:
        read_window()
        checkpoint_at(step)
    piece.update(end_step=step, finished=_now(), wall_time_s=round(state.elapsed - elapsed_before, 3))
    record = run_record(config, budget, state, step=step, done=not paused, model=model, data=full, ds=ds,
                        provenance=prov, precision=precision, cuda_graph=cuda_graph, world_size=ctx.world_size,
                        experiment=experiment, label=label)
    return (record, model) if return_model else record


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_cuda_graph(dev: torch.device, ctx: dist_mod.DistContext, config: TrainConfig) -> None:
    if dev.type != "cuda":
        raise ValueError(f"cuda_graph needs a CUDA device; this run is on {dev}")
    if ctx.enabled:
        raise ValueError("cuda_graph runs in one process; it cannot be combined with torchrun's data parallelism")
    if config.compile:
        raise ValueError("cuda_graph and compile are alternatives; choose one")


def run_record(config: TrainConfig, budget: Budget, state: RunState, *, step: int, done: bool, model: nn.Module,
               data: data_mod.CIFAR10, ds: data_mod.CIFAR10, provenance: dict, precision: Precision,
               cuda_graph: bool, world_size: int, experiment: str, label: str | None) -> dict:
    """The result record: config, budget, model, data, provenance (every piece of the run), curves, final metrics."""
    c = state.curves
    final = {}
    if done:
        final = {"train_loss": c["train_loss"][-1], "train_error": c["train_error"][-1],
                 "test_loss": c["test_loss"][-1], "test_error": c["test_error"][-1]}
        if ds.val_labels is not None:
            final["val_error"] = c["val_error"][-1]
    spec = parse_model_name(config.model)
    pieces = state.pieces
    return {
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
        "data": {"source": data.source, "description": data.description, "root": data.root,
                 "train_size": len(ds.train_labels),
                 "test_size": len(ds.test_labels), "val_size": config.val_size,
                 "normalization": config.normalization, "augmentation": "pad 4 + random 32x32 crop + horizontal flip"},
        "provenance": {**provenance, "precision": precision.label,
                       "channels_last": True, "compile": config.compile, "cuda_graph": cuda_graph,
                       "world_size": world_size, "started": pieces[0]["started"], "finished": pieces[-1]["finished"],
                       "wall_time_s": round(sum(p["wall_time_s"] for p in pieces), 2),
                       "resumed": len(pieces) > 1, "pieces": [dict(p) for p in pieces]},
        "throughput_images_per_s": round(state.images_seen / state.elapsed, 1) if state.elapsed > 0 else None,
        "warmup_ended_at": state.warmup_ended_at,
        "curves": c,
        "final": final,
    }


def train_or_divergence(config: TrainConfig, **kwargs) -> dict:
    """:func:`train` ``config``; if the run diverges, ``{"config": ..., "diverged": message,
    "diverged_at": iteration}`` instead of the record (for demonstrations that expect some runs to
    blow up)."""
    try:
        return train(config, **kwargs)
    except TrainingDiverged as err:
        return {"config": dataclasses.asdict(config), "diverged": str(err), "diverged_at": err.iteration}


def outcome_table(outcomes: dict[str, dict], *, caption: str = "", note: str = ""):
    """One row per :func:`train_or_divergence` result: how it ended (trained, or the iteration at
    which it diverged), the training loss at its first and last evaluation and its final training error (%)."""
    from .tables import Table

    rows = []
    for name, o in outcomes.items():
        if "diverged" in o:
            at = o.get("diverged_at")
            rows.append([name, f"diverged at iteration {at}" if at else "diverged", None, None, None])
        else:
            loss = o["curves"]["train_loss"]
            rows.append([name, f"trained, {o['step']} iterations", loss[0], loss[-1], f"{100 * o['final']['train_error']:.1f}"])
    return Table(["network", "outcome", "loss, first evaluation", "loss, last", "train error (%)"], rows,
                 caption=caption, note=note)
