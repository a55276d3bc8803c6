"""Our trainer's input pipeline and precision against the standard PyTorch recipe, side by side.

Both train the same model with the same optimiser on the same device, in one process:

* **ours** -- the whole dataset on the device as uint8, batched crop/flip with tensor ops,
  channels_last, and the trainer's precision (:func:`step.resolve_precision`): ``"auto"`` is bf16
  autocast on GPUs with native bf16, fp16 autocast + GradScaler on older GPUs and fp32 on the
  CPU, ``"bf16"`` forces bf16 autocast (worth it on CPUs with native bf16 instructions, e.g.
  AVX512-BF16 or AMX), ``"fp32"`` forces fp32; with ``compile=True`` also ``torch.compile``
  (compilation is done in the warm-up steps and not timed);
* **baseline** -- a torchvision-style dataset that yields PIL images, ``transforms`` (RandomCrop
  with padding 4, RandomHorizontalFlip, ToTensor, Normalize) and a ``DataLoader`` with workers, in fp32.

Images per second are measured over the same number of timed steps after warm-up steps.
"""
from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as nnf

from .data import CIFAR10, Normalize, TrainBatches
from .models import build_model
from .results import device_name
from .step import resolve_precision


class _PILCIFAR(torch.utils.data.Dataset):
    """What ``torchvision.datasets.CIFAR10`` does per item: uint8 HWC array -> PIL image -> transform."""

    def __init__(self, images_u8: torch.Tensor, labels: torch.Tensor, transform):
        self.images = images_u8.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(step_fn, warmup: int, steps: int, device: torch.device) -> float:
    for _ in range(warmup):
        step_fn()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step_fn()
    _sync(device)
    return time.perf_counter() - t


def check_bench_args(*, steps: int, warmup: int, batch_size: int, workers: int | None = None) -> None:
    """Refuse counts that cannot give a throughput (one ``ValueError`` naming what is allowed)."""
    for name, value, least in (("steps (--steps)", steps, 1), ("batch_size (--batch-size)", batch_size, 1),
                               ("warmup (--warmup)", warmup, 0), ("workers (--workers)", 0 if workers is None else workers, 0)):
        if not isinstance(value, int) or value < least:
            allowed = "a positive integer" if least else "zero or a positive integer"
            raise ValueError(f"bench: {name} must be {allowed}; got {value!r}")


def run_bench(data: CIFAR10, *, model: str = "resnet20", batch_size: int = 128, steps: int = 30, warmup: int = 5,
              device: str | None = None, workers: int | None = None, seed: int = 0, compile: bool = False,
              precision: str = "auto") -> dict:
    """Images/s of our pipeline and of the baseline, and their ratio."""
    from torchvision import transforms

    check_bench_args(steps=steps, warmup=warmup, batch_size=batch_size, workers=workers)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    prec = resolve_precision(precision, dev)  # the trainer's choice: bf16, fp16 + GradScaler, or fp32
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    n = min(len(data.train_labels), batch_size * (steps + warmup))
    images, labels = data.train_images[:n], data.train_labels[:n]

    # --- ours
    torch.manual_seed(seed)
    net = build_model(model)
    cl = True  # channels_last helps on GPUs and on CPUs (oneDNN)
    net = net.to(dev, memory_format=torch.channels_last if cl else torch.contiguous_format)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scaler = prec.grad_scaler()
    fwd = torch.compile(net) if compile else net  # compilation happens during the warm-up steps
    norm = Normalize(images)
    batches = TrainBatches(images, labels, norm, batch_size=batch_size, seed=seed, device=dev)
    counter = {"step": 0}

    def ours():
        x, y = batches.batch(counter["step"])
        counter["step"] += 1
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        with prec.autocast():
            out = fwd(x)
        loss = nnf.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    t_ours = _time_steps(ours, warmup, steps, dev)

    # --- baseline: torchvision transforms + DataLoader, fp32
    torch.manual_seed(seed)
    net = build_model(model).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    mean = (images.float() / 255).mean((0, 2, 3)).tolist()
    std = (images.float() / 255).std((0, 2, 3)).tolist()
    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(mean, std)])
    loader = torch.utils.data.DataLoader(_PILCIFAR(images, labels, tf), batch_size=batch_size, shuffle=True,
                                         num_workers=workers, pin_memory=dev.type == "cuda", drop_last=True,
                                         persistent_workers=workers > 0)
    it = iter(loader)

    def baseline():
        nonlocal it
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        loss = nnf.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t_base = _time_steps(baseline, warmup, steps, dev)
    del it, loader

    ours_ips = steps * batch_size / t_ours
    base_ips = steps * batch_size / t_base
    return {
        "model": model, "batch_size": batch_size, "steps": steps, "device": device_name(dev),
        "torch": torch.__version__, "workers": workers, "ours_images_per_s": round(ours_ips, 1),
        "baseline_images_per_s": round(base_ips, 1), "ratio": round(ours_ips / base_ips, 2),
        "precision": prec.label,
        "ours": "on-device data, batched augmentation, channels_last, " + prec.label
                + (", torch.compile" if compile else ""),
        "baseline": f"torchvision transforms + DataLoader({workers} workers), fp32",
    }
