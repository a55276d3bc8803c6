"""One training iteration -- forward, loss, backward, SGD -- and the arithmetic it runs in.

Two ways to run the same iteration:

* :class:`EagerStep` -- op by op, as PyTorch normally runs (the CPU path, and the GPU default);
* :class:`CUDAGraphStep` -- the whole iteration captured once in a CUDA graph and replayed
  (``torch.cuda.graph``; "whole-network capture" in PyTorch's CUDA-graph notes), so one launch
  replaces the hundreds of kernel launches of a small CIFAR ResNet.  Static input and label
  buffers receive each batch, the learning rate is a device tensor the schedule updates in place
  (fused SGD reads it on the device), and the loss/error are summed on the device.

Neither reads anything back to the host: the summed loss and error (:attr:`window`) are read when
the trainer evaluates, checkpoints or pauses.

Precision (:func:`choose_precision`): bf16 autocast on GPUs with native bf16, fp16 autocast with a
``GradScaler`` on older GPUs (Colab's T4), fp32 on the CPU.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_LABELS = {"fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast + GradScaler"}


def choose_precision(requested: str, device_type: str, capability: tuple[int, int] | None = None) -> str:
    """The arithmetic a run uses: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``"auto"``: bf16 autocast on CUDA GPUs with native bf16 (compute capability 8.0 and later:
    A100, H100, RTX 30xx...), fp16 autocast with loss scaling on older GPUs (T4 and V100 are 7.x;
    bf16 there would be emulated), fp32 anywhere else (the CPU).  Any other value is used as given.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; allowed: {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    if device_type != "cuda":
        return "fp32"
    return "bf16" if capability is not None and tuple(capability) >= (8, 0) else "fp16"


@dataclass(frozen=True)
class Precision:
    """A resolved precision (``"fp32"``, ``"bf16"`` or ``"fp16"``) on one device type."""

    name: str
    device_type: str

    @property
    def label(self) -> str:
        """How the record's provenance names it."""
        return _LABELS[self.name]

    def autocast(self, *, cache_enabled: bool = True):
        dtype = _DTYPES[self.name]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=dtype, cache_enabled=cache_enabled)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 (its gradients would underflow); a pass-through otherwise."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """:func:`choose_precision` for ``device``, asking CUDA for its compute capability."""
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return Precision(choose_precision(requested, device.type, capability), device.type)


def _iteration(model: nn.Module, x: Tensor, y: Tensor, optimizer, scaler, autocast) -> Tensor:
    """Forward, cross-entropy loss, backward, SGD step; returns (loss, error rate) as float64."""
    with autocast():
        logits = model(x)
    loss = nnf.cross_entropy(logits.float(), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return torch.stack([loss.detach().double(), (logits.detach().argmax(1) != y).double().mean()])


class EagerStep:
    """One training iteration run op by op.

    ``step(x, y, lr)`` trains on one batch and returns its (loss, error rate) as a device tensor;
    it also adds them to :attr:`window` (on the device).  ``reduce`` averages them over the
    processes of a data-parallel run.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, precision: Precision,
                 scaler: torch.amp.GradScaler, window: Tensor, *, reduce=lambda stats: stats):
        self.model, self.optimizer, self.precision, self.scaler = model, optimizer, precision, scaler
        self.window, self.reduce = window, reduce

    def __call__(self, x: Tensor, y: Tensor, lr: float) -> Tensor:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x = x.contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        stats = self.reduce(_iteration(self.model, x, y, self.optimizer, self.scaler, self.precision.autocast))
        self.window += stats
        return stats


# --- the whole iteration in one CUDA graph -------------------------------------------------------

class TrainingSnapshot:
    """Copies of everything an iteration changes -- parameters, buffers (batch-norm running
    statistics and counters), momentum buffers, extra tensors -- to undo iterations run only to
    warm up before a capture.

    A momentum buffer that did not exist yet (before SGD's first step) is restored as zeros: SGD's
    first step sets it to the gradient, and ``0.9 * 0 + gradient`` is the same number exactly.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, extra: tuple[Tensor, ...] = ()):
        self.optimizer = optimizer
        self.tensors = [*model.parameters(), *model.buffers(), *extra]
        self.copies = [t.detach().clone() for t in self.tensors]
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.momentum = [optimizer.state.get(p, {}).get("momentum_buffer") for p in self.params]
        self.momentum = [None if m is None else m.detach().clone() for m in self.momentum]

    @torch.no_grad()
    def restore(self) -> None:
        for t, c in zip(self.tensors, self.copies):
            t.copy_(c)
        for p, m in zip(self.params, self.momentum):
            state = self.optimizer.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                state["momentum_buffer"] = torch.zeros_like(p) if m is None else m.clone()
            elif m is None:
                buf.zero_()
            else:
                buf.copy_(m)


class CUDAGraphStep:
    """One training iteration captured in a CUDA graph and replayed (CUDA only).

    Requirements (checked): a CUDA model in training mode, SGD with ``fused=True`` (it takes the
    learning rate as a device tensor and needs no host sync), momentum > 0, no ``GradScaler``
    (fp16's scaler decides on the host whether to step; use bf16 or fp32), one process.

    Capture follows PyTorch's recipe: a few warm-up iterations on a side stream (they let cuDNN
    choose its algorithms and SGD create its momentum buffers) whose effects are then undone
    (:class:`TrainingSnapshot`), gradients set to None so the captured backward allocates them from
    the graph's pool, then ``torch.cuda.graph`` on the same stream.  A batch of another shape is
    captured again.  Evaluation runs outside the graph on the same parameters.
    """

    warmup_iterations = 3

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, precision: Precision, window: Tensor):
        device = window.device
        if device.type != "cuda":
            raise ValueError(f"a CUDA-graph step needs a CUDA device; got {device}")
        if precision.name == "fp16":
            raise ValueError("a CUDA-graph step runs in bf16 or fp32: fp16's GradScaler syncs with the host every step")
        groups = optimizer.param_groups
        if not isinstance(optimizer, torch.optim.SGD) or not all(g.get("fused") for g in groups):
            raise ValueError("a CUDA-graph step needs torch.optim.SGD(..., fused=True)")
        if not all(g["momentum"] > 0 for g in groups):
            raise ValueError("a CUDA-graph step needs SGD with momentum")
        self.model, self.optimizer, self.precision, self.window = model, optimizer, precision, window
        self.lr = torch.zeros((), dtype=torch.float32, device=device)
        for g in groups:
            g["lr"] = self.lr
        self._lr_value = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.captures = 0
        self._shapes = None

    def __call__(self, x: Tensor, y: Tensor, lr: float) -> Tensor:
        if lr != self._lr_value:  # a fill kernel when the schedule changes, not a host sync
            self.lr.fill_(lr)
            self._lr_value = lr
        if self._shapes != (x.shape, y.shape):
            self._capture(x, y)
        self.static_x.copy_(x)  # also converts to channels_last
        self.static_y.copy_(y)
        self.graph.replay()
        return self.static_stats

    def _body(self) -> Tensor:
        stats = _iteration(self.model, self.static_x, self.static_y, self.optimizer, _NO_SCALER,
                           lambda: self.precision.autocast(cache_enabled=False))  # autocast's cache cannot be captured
        self.window += stats
        return stats

    def _capture(self, x: Tensor, y: Tensor) -> None:
        self.graph = None  # release the previous capture's memory pool
        self.static_x = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
        self.static_y = torch.empty_like(y)
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        snapshot = TrainingSnapshot(self.model, self.optimizer, extra=(self.window,))
        stream = torch.cuda.Stream(self.window.device)
        stream.wait_stream(torch.cuda.current_stream(self.window.device))
        with torch.cuda.stream(stream):
            for _ in range(self.warmup_iterations):
                self.optimizer.zero_grad(set_to_none=True)
                self._body()
        torch.cuda.current_stream(self.window.device).wait_stream(stream)
        snapshot.restore()
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            self.static_stats = self._body()
        self.graph, self._shapes = graph, (x.shape, y.shape)
        self.captures += 1


class _PassThroughScaler:
    """GradScaler's interface without scaling (captured steps run in bf16 or fp32)."""

    @staticmethod
    def scale(loss):
        return loss

    @staticmethod
    def step(optimizer):
        optimizer.step()

    @staticmethod
    def update():
        pass


_NO_SCALER = _PassThroughScaler()
