"""What training the paper's CIFAR-10 networks costs: images a budget shows, multiply-adds per image,
the stored runs' measured wall time and throughput, and extrapolations from them.

Every extrapolation here is marked as one and says what it scales by; measured numbers come from
stored runs (their provenance names the device) or, for the per-step GPU times, from the benchmark
recorded in :data:`H100_STEP_MS`.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable

import torch

from . import results
from .analysis import count_macs
from .models import cifar_resnet
from .tables import Table
from .train import BUDGETS

#: The paper's CIFAR-10 recipe: 64k iterations of batch 128 (Sec. 4.2).
PAPER_IMAGES = 64_000 * 128

#: ms per training iteration (batch 128, bf16 autocast) on one NVIDIA H100 80GB, one process alone
#: on the GPU, measured in an earlier benchmark session of this project (torch 2.11.0+cu130, the
#: library at commit a35b67f): (eager, whole step captured in one CUDA graph).  Training steps only.
H100_STEP_MS = {"resnet20": (10.2, 2.14), "resnet56": (27.1, 5.9), "resnet110": (61.2, 11.5), "plain56": (30.4, 5.7)}
H100_BENCHMARK = "one NVIDIA H100 80GB, torch 2.11.0+cu130, library commit a35b67f, bf16, batch 128"


def _depth(label: str) -> int:
    return int(label.removeprefix("plain").removeprefix("resnet"))


def budgets_table() -> Table:
    """Each budget of :data:`~resnet_book.train.BUDGETS`: iterations, batch, training images shown
    and their share of the paper's recipe."""
    rows = [[b.name, b.iterations, b.batch_size, b.train_size or 50_000, b.iterations * b.batch_size,
             f"{100 * b.iterations * b.batch_size / PAPER_IMAGES:.2f}%"] for b in BUDGETS.values()]
    return Table(["budget", "iterations", "batch", "training set", "images shown", "of the paper's"], rows,
                 caption="The library's budgets against the paper's recipe (64,000 iterations of batch 128)")


def resnet_macs(depths: Iterable[int] = (20, 32, 44, 56, 110, 1202)) -> dict[int, int]:
    """Multiply-adds per 32x32 image of the CIFAR ResNet of each depth.  One more block per stage
    (depth + 6) adds the same count at every depth, so two counted networks give every depth exactly,
    without building ResNet-1202."""
    x = torch.zeros(1, 3, 32, 32)
    base = {d: count_macs(cifar_resnet(d), x) for d in (20, 32)}
    per_six = (base[32] - base[20]) // 2
    return {d: base[20] + (d - 20) // 6 * per_six for d in depths}


def paper_runs_measured(runs: Iterable[dict]) -> dict[str, dict]:
    """Per label of the given paper-budget runs: median wall time (s) and throughput (images/s,
    training images over the whole run's wall time, evaluation included), their range, the device
    and the number of runs."""
    out = {}
    for label, rs in results.Runs("paper", [r for r in runs if r["budget"]["name"] == "paper"]).groups().items():
        speeds = [r["throughput_images_per_s"] for r in rs]
        out[label] = {"wall_s": statistics.median(r["provenance"]["wall_time_s"] for r in rs),
                      "throughput": statistics.median(speeds), "throughput_range": (min(speeds), max(speeds)),
                      "device": rs[0]["provenance"]["device"], "n": len(rs), "source": rs[0]["data"]["source"]}
    return out


def paper_recipe_hours(paper_runs: Iterable[dict], cpu_runs: Iterable[dict]) -> dict[int, dict]:
    """Hours of one ResNet run at the paper's recipe, per depth (20 to 1202):

    * ``gpu``: on the GPU the stored paper-budget runs used, shared as they ran (twelve runs at
      once): the median wall time where a depth has stored runs, else ResNet-20's scaled by
      multiply-adds (``gpu_measured`` says which);
    * ``cpu``: the fastest stored ``cpu``-budget run of that depth (runs shared the machine, so the
      fastest is closest to what it can do), its throughput stretched to the paper's 8.2M images;
      ``None`` for depths without cpu runs."""
    macs = resnet_macs()
    measured = {_depth(k): v for k, v in paper_runs_measured(paper_runs).items() if k.startswith("resnet")}
    fastest: dict[int, dict] = {}
    for r in cpu_runs:
        if r["budget"]["name"] == "cpu" and r.get("label", "").startswith("resnet"):
            d = _depth(r["label"])
            if d not in fastest or r["throughput_images_per_s"] > fastest[d]["throughput_images_per_s"]:
                fastest[d] = r
    out = {}
    for d, m in macs.items():
        gpu = measured[d]["wall_s"] if d in measured else (
            measured[20]["wall_s"] * m / macs[20] if 20 in measured else None)
        cpu = fastest.get(d)
        out[d] = {"macs": m, "vs_resnet20": m / macs[20], "gpu_hours": gpu and gpu / 3600,
                  "gpu_measured": d in measured, "gpu_device": (measured.get(d) or measured.get(20) or {}).get("device"),
                  "cpu_hours": cpu and PAPER_IMAGES / cpu["throughput_images_per_s"] / 3600,
                  "cpu_device": cpu and cpu["provenance"]["device"]}
    return out


def paper_recipe_hours_table(hours: dict[int, dict]) -> Table:
    """:func:`paper_recipe_hours` as a table, measured and extrapolated numbers told apart."""
    def gpu(h):
        if h["gpu_hours"] is None:
            return None
        return f"{h['gpu_hours']:.2f}" if h["gpu_measured"] else f"~{h['gpu_hours']:.1f}"

    rows = [[f"ResNet-{d}", f"{h['macs'] / 1e6:,.0f}M", f"{h['vs_resnet20']:.1f}×", gpu(h),
             None if h["cpu_hours"] is None else f"~{h['cpu_hours']:.0f}"] for d, h in hours.items()]
    gpus = sorted({h["gpu_device"] for h in hours.values() if h["gpu_device"]})
    cpus = sorted({h["cpu_device"] for h in hours.values() if h["cpu_device"]})
    return Table(["network", "multiply-adds per image", "vs ResNet-20", "GPU hours, shared by 12 runs",
                  "CPU hours"], rows, align="lrrrr",
                 caption="One run of the paper's recipe (64,000 iterations of batch 128), hours",
                 note=f"GPU: {', '.join(gpus) or 'no paper-budget runs stored'}, twelve runs at once under CUDA MPS; "
                      f"unmarked: the median wall time of the stored runs (evaluation included); ~: ResNet-20's "
                      f"time scaled by multiply-adds (extrapolated). CPU: {', '.join(cpus) or '–'}, the fastest "
                      f"stored cpu-budget run's throughput stretched to the paper's 8.2M images (extrapolated). "
                      f"Read the extrapolations as orders of magnitude.")


def h100_step_ms(label: str, graph: bool) -> tuple[float, str]:
    """ms per training iteration on one H100 for ``label`` (:data:`H100_STEP_MS`) and how it was
    obtained: measured, or linear in depth between the measured ResNets (beyond 110 layers,
    extrapolated from 56 and 110); a plain net without a measurement is taken as fast as the ResNet
    of its depth."""
    if label in H100_STEP_MS:
        return H100_STEP_MS[label][graph], "measured"
    depth = _depth(label)
    if f"resnet{depth}" in H100_STEP_MS:
        return H100_STEP_MS[f"resnet{depth}"][graph], f"as ResNet-{depth}, measured"
    known = sorted((_depth(k), v[graph]) for k, v in H100_STEP_MS.items() if k.startswith("resnet"))
    (d0, t0), (d1, t1) = known[:2] if depth <= known[1][0] else known[1:3]
    how = (f"as ResNet-{depth}, " if label.startswith("plain") else "") + (
        "extrapolated" if depth > known[-1][0] else "interpolated")
    return t0 + (t1 - t0) * (depth - d0) / (d1 - d0), how


def table6_gpu_estimate(runs: Iterable[tuple[str, int]], iterations: int) -> Table:
    """Minutes per run and GPU-hours in all for ``runs`` (label, number of seeds) at ``iterations``
    per run, one run at a time on one H100, from :data:`H100_STEP_MS` (eager and CUDA graph);
    training steps only."""
    rows, totals, count = [], [0.0, 0.0], 0
    for label, n in runs:
        (eager, how), (graph, _) = h100_step_ms(label, False), h100_step_ms(label, True)
        minutes = [t * iterations / 60_000 for t in (eager, graph)]
        totals = [t + n * m for t, m in zip(totals, minutes)]
        count += n
        rows.append([label, n, f"{minutes[0]:.0f}", f"{minutes[1]:.0f}", how])
    rows.append(["all (GPU-hours)", count, f"{totals[0] / 60:.1f} h", f"{totals[1] / 60:.1f} h", "one run at a time"])
    return Table(["net", "runs", "eager, min/run", "CUDA graph, min/run", "step time"], rows,
                 caption=f"Table 6 at the paper budget ({iterations:,} iterations per run) on one H100, estimated",
                 note=f"step times measured on {H100_BENCHMARK} for ResNet-20/56/110 and plain-56, one process "
                      f"alone on the GPU; other depths interpolated in depth; evaluation and the analyses not counted")


def throughput_range(runs: Iterable[dict]) -> str:
    """'6,423 to 9,646': the slowest and fastest throughput (training images per second over the
    whole wall time) among the given paper-budget runs."""
    speeds = [s for m in paper_runs_measured(runs).values() for s in m["throughput_range"]]
    if not speeds:
        raise ValueError("no paper-budget runs given; their throughput is what this reports")
    return f"{min(speeds):,.0f} to {max(speeds):,.0f}"
