"""Milliseconds per training iteration: the eager step against the CUDA-graph step.

Each iteration is what the trainer runs: an augmented batch drawn on the device
(:class:`resnet_book.data.TrainBatches`, here from random uint8 images), forward, loss, backward and
SGD.  The CUDA-graph step needs a GPU; on a CPU only the eager step is timed.

Usage (from the repository root)::

    PYTHONPATH=src python tools/time_step.py --models resnet20 resnet56 resnet110 plain56 --precision auto
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from resnet_book.data import Normalize, TrainBatches
from resnet_book.results import device_name
from resnet_book.step import CUDAGraphStep, EagerStep, resolve_precision
from resnet_book.train import TrainConfig, build_network, make_optimizer


def time_step(model: str, mode: str, *, device: torch.device, precision: str, batch_size: int, warmup: int,
              iterations: int, repeats: int) -> dict:
    cfg = TrainConfig(model=model, precision=precision)
    prec = resolve_precision(precision, device)
    net = build_network(cfg, device).train()
    opt = make_optimizer(net, cfg, fused=mode == "graph")
    window = torch.zeros(2, dtype=torch.float64, device=device)
    step = (CUDAGraphStep(net, opt, prec, window) if mode == "graph"
            else EagerStep(net, opt, prec, prec.grad_scaler(), window))
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (max(batch_size * 4, 1024), 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (len(images),), generator=g)
    batches = TrainBatches(images, labels, Normalize(images), batch_size=batch_size, seed=0, device=device)

    def run(first: int, n: int) -> None:
        for i in range(first, first + n):
            step(*batches.batch(i), 0.1)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run(0, warmup)
    sync()
    times = []
    for r in range(repeats):
        t = time.perf_counter()
        run(warmup + r * iterations, iterations)
        sync()
        times.append((time.perf_counter() - t) / iterations * 1000)
    return {"model": model, "mode": mode, "precision": prec.label, "batch_size": batch_size,
            "ms_per_iteration": round(statistics.median(times), 3), "repeats_ms": [round(t, 3) for t in times]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet20"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="auto")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write the rows to this file")
    a = p.parse_args()
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    modes = ("eager", "graph") if device.type == "cuda" else ("eager",)
    rows = [time_step(m, mode, device=device, precision=a.precision, batch_size=a.batch_size, warmup=a.warmup,
                      iterations=a.iterations, repeats=a.repeats) for m in a.models for mode in modes]
    print(f"{device_name(device)}, torch {torch.__version__}")
    for r in rows:
        print(f"  {r['model']:10s} {r['mode']:5s} {r['precision']:26s} {r['ms_per_iteration']:8.3f} ms/iteration")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"device": device_name(device), "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
