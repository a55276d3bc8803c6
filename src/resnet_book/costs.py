"""What the paper's networks cost: to train (budgets against the paper's recipe, multiply-adds by
depth, the stored runs' measured wall time and throughput, and extrapolations from them: chapter 6)
and to run (convolution weights, parameters, multiply-adds, values written and the time of a
training step, block by block and network by network: chapters 4 and 5).

Every extrapolation here is marked as one and says what it scales by; measured numbers come from
stored runs (their provenance names the device) or, for the per-step GPU times, from the benchmark
recorded in :data:`H100_STEP_MS`. The counting itself is :mod:`resnet_book.analysis`'s
(``torch.utils.flop_counter`` and forward hooks); the network-cost functions choose what is compared
and return one :class:`~resnet_book.tables.Table`:

* :func:`layer_by_layer` -- the convolutions of a few blocks, one row each (paper Fig. 5);
* :func:`compare` -- whole models side by side, each against the first;
* :func:`table1` -- paper Table 1's "FLOPs" recounted, against torchvision's models;
* :func:`stride_placement` -- where ResNet-50's downsampling stride sits, and what it costs;
* :func:`stage_totals` -- :func:`analysis.cost_breakdown` totals of two networks and their ratio;
* :func:`step_times` -- the median time of a forward + backward step, pair by pair;
* :func:`shortcut_options` -- what shortcut options A, B and C cost in a few networks (chapter 5).
"""
from __future__ import annotations

import functools
import statistics
from collections.abc import Iterable

import torch
from torch import nn

from . import analysis, results
from .analysis import count_macs
from .models import PAPER_TABLE1_GFLOPS, build_model, cifar_resnet, display_name, imagenet_resnet, parse_model_name
from .tables import Table, relative_change
from .train import BUDGETS

#: The paper's CIFAR-10 recipe: 64k iterations of batch 128 (Sec. 4.2).
PAPER_IMAGES = 64_000 * 128

#: ms per training iteration (batch 128, bf16 autocast) on one NVIDIA H100 80GB, one process alone
#: on the GPU, measured in an earlier benchmark session of this project (torch 2.11.0+cu130, the
#: library at commit a35b67f): (eager, whole step captured in one CUDA graph).  Training steps only.
H100_STEP_MS = {"resnet20": (10.2, 2.14), "resnet56": (27.1, 5.9), "resnet110": (61.2, 11.5), "plain56": (30.4, 5.7)}
H100_BENCHMARK = "one NVIDIA H100 80GB, torch 2.11.0+cu130, library commit a35b67f, bf16, batch 128"


def _depth(label: str) -> int:
    """The depth of a run label's network ('resnet56-B' -> 56)."""
    return parse_model_name(label.split("-")[0]).depth


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
                      "device": results.device_label(rs[0]["provenance"]["device"]), "n": len(rs), "source": rs[0]["data"]["source"]}
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
                  "cpu_device": cpu and results.device_label(cpu["provenance"]["device"])}
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
    return Table(["network", "multiply-adds per image", "vs 20 layers", "GPU hours, shared by 12 runs",
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


# --- what a network costs to run (chapters 4 and 5) ---------------------------------------------

QUANTITIES = {
    "convolution weights": lambda model, x: analysis.count_conv_weights(model),
    "parameters": lambda model, x: analysis.count_parameters(model),
    "multiply-adds": analysis.count_macs,
    "values written": analysis.count_activations,
}

# paper Sec. 4.1: "VGG-16/19 nets (15.3/19.6 billion FLOPs)"
PAPER_VGG_GFLOPS = {"vgg16": 15.3, "vgg19": 19.6}


def _check_quantities(quantities) -> None:
    unknown = [q for q in quantities if q not in QUANTITIES]
    if unknown or not quantities:
        raise ValueError(f"unknown quantities {unknown or list(quantities)}; allowed: {', '.join(QUANTITIES)}")


def layer_by_layer(blocks: dict[str, nn.Module], *, size: int = 56) -> Table:
    """Every convolution of each block in ``blocks`` (name -> block, run on one ``size`` x ``size``
    map): kernel, channels, weights and multiply-adds, then the block's total (multiply-adds of the
    whole block from ``torch.utils.flop_counter``); the note gives all parameters, BN included."""
    rows, params = [], []
    for name, block in blocks.items():
        convs = {n: m for n, m in block.named_modules() if isinstance(m, nn.Conv2d)}
        if not convs:
            raise ValueError(f"{name!r} has no convolution to count")
        x = torch.zeros(1, next(iter(convs.values())).in_channels, size, size)
        trace = analysis.branch_layers(block, x)
        shapes = {e["name"]: e["out_shape"] for part in ("branch", "shortcut") for e in trace[part]}
        for lname, conv in convs.items():
            k, n = conv.kernel_size, conv.weight.numel()
            rows.append([name, f"{lname}: {k[0]}×{k[1]}, {conv.in_channels}→{conv.out_channels}", n,
                         n * shapes[lname][1] * shapes[lname][2]])
        rows.append([name, "total", analysis.count_conv_weights(block), analysis.count_macs(block, x)])
        params.append(f"{name} {analysis.count_parameters(block):,}")
    return Table(["block", "layer: kernel, channels", "weights", "multiply-adds"], rows, align="llrr",
                 caption=f"The blocks layer by layer (multiply-adds on a {size}×{size} map)",
                 note="all parameters incl. BN: " + "; ".join(params))


def compare(models: dict[str, nn.Module], x: torch.Tensor, *, quantities=("parameters", "multiply-adds"),
            caption: str = "", note: str = "") -> Table:
    """``models`` (name -> module) side by side on the input ``x``: each of ``quantities`` (keys of
    :data:`QUANTITIES`), and for every model after the first how much more (or less) it is, in
    per cent, in a column ``vs <first>``."""
    _check_quantities(quantities)
    if len(models) < 1:
        raise ValueError("compare needs at least one model")
    counts = {name: [QUANTITIES[q](m, x) for q in quantities] for name, m in models.items()}
    first = next(iter(counts))
    rows = []
    for name, values in counts.items():
        rows.append([name, *values])
        if name != first:
            rows[-1] = [name, *(f"{v:,} ({relative_change(v, r)})" for v, r in zip(values, counts[first]))]
    return Table(["", *quantities], rows, align="l" + "r" * len(quantities), caption=caption,
                 note=note or f"in brackets: how much more than {first}")


def table1(*, size: int = 224) -> Table:
    """Paper Table 1's multiply-adds (its "FLOPs") for ResNet-18 ... 152, and the paper's VGG-16/19
    (Sec. 4.1), recounted: the parameters (millions; whether torchvision's model has exactly as
    many), the paper's count, ours with the paper's stride placement ("1x1") and with torchvision's
    ("3x3"), in billions per ``size`` x ``size`` image."""
    import torchvision

    x = torch.zeros(1, 3, size, size)
    rows = []
    for depth, paper in PAPER_TABLE1_GFLOPS.items():
        ours = build_model(f"resnet{depth}")  # torchvision's layout: the stride on the 3x3 ("v1.5")
        params = analysis.count_parameters(ours)
        same = params == analysis.count_parameters(getattr(torchvision.models, f"resnet{depth}")())
        paper_layout = analysis.count_macs(imagenet_resnet(depth, stride_in="1x1"), x) / 1e9
        rows.append([f"ResNet-{depth}", f"{params / 1e6:.1f}", "yes" if same else "no", f"{paper:.1f}",
                     f"{paper_layout:.2f}", f"{analysis.count_macs(ours, x) / 1e9:.2f}"])
    for name, paper in PAPER_VGG_GFLOPS.items():
        vgg = getattr(torchvision.models, name)()
        rows.append([name.upper().replace("VGG", "VGG-"), f"{analysis.count_parameters(vgg) / 1e6:.1f}", None,
                     f"{paper:.1f}", f"{analysis.count_macs(vgg, x) / 1e9:.2f}", None])
    return Table(["network", "parameters (M)", "= torchvision", "paper", "ours, paper layout", "ours, torchvision"],
                 rows, align="lrlrrr",
                 caption=f"Table 1 recounted: billions of multiply-adds (the paper's \"FLOPs\") per {size}×{size} image",
                 note="paper: the ResNets from Table 1 (ResNet-18/34: basic blocks, 50/101/152: bottleneck blocks); "
                      "VGG-16/19 from Sec. 4.1 (\"15.3/19.6 billion FLOPs\"). VGG has one layout: its count is in the "
                      "paper-layout column. \"= torchvision\": the same parameter count, exactly.")


def stride_placement(depth: int = 50, *, stage: str = "layer2") -> Table:
    """The first block of ``stage`` of ResNet-``depth`` (a bottleneck network) with the stride on
    its first 1x1 convolution (the paper) and on its 3x3 (torchvision): the strides of its
    convolutions and its multiply-adds in millions."""
    rows, names = [], []
    for stride_in, who in (("1x1", "the paper"), ("3x3", "torchvision")):
        model = imagenet_resnet(depth, stride_in=stride_in)
        block = getattr(model, stage)[0]
        convs = {n: m.stride[0] for n, m in block.named_modules() if isinstance(m, nn.Conv2d)}
        x = torch.zeros(1, block.conv1.in_channels, *(2 * [_input_size(model, stage)]))
        rows.append([f"on the {stride_in} ({who})", ", ".join(map(str, convs.values())),
                     f"{analysis.count_macs(block, x) / 1e6:.1f}"])
        names = list(convs)
    return Table(["stride", "strides of " + ", ".join(names), "multiply-adds (millions)"], rows,
                 caption=f"ResNet-{depth}, first block of conv{int(stage[5:]) + 1}_x ({x.shape[1]} channels at "
                         f"{x.shape[2]}×{x.shape[3]} in)")


def _input_size(model: nn.Module, stage: str, size: int = 224) -> int:
    """The height of the feature map entering ``stage`` for a ``size`` x ``size`` image."""
    seen = {}

    def record(module, args):
        seen["h"] = args[0].shape[2]

    handle = getattr(model, stage).register_forward_pre_hook(record)
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, size, size))
    finally:
        handle.remove()
    return seen["h"]


def stage_totals(breakdowns: dict[str, dict[str, dict[str, int]]], *, note: str = "") -> Table:
    """The totals over stages of two :func:`analysis.cost_breakdown` results (name -> breakdown),
    in millions, and the second over the first."""
    if len(breakdowns) != 2:
        raise ValueError(f"stage_totals compares two networks; got {len(breakdowns)}")
    (a, ca), (b, cb) = breakdowns.items()
    rows = []
    for key, label in (("parameters", "parameters"), ("macs", "multiply-adds"), ("activations", "values written")):
        ta, tb = (sum(stage[key] for stage in c.values()) for c in (ca, cb))
        rows.append([label, f"{ta / 1e6:,.1f}", f"{tb / 1e6:,.1f}", f"{tb / ta:.2f}"])
    return Table(["millions", a, b, "ratio"], rows, caption="Per image, summed over the stages", note=note)


def step_times(pairs: dict[str, dict[str, tuple[nn.Module, torch.Tensor]]], *, repeats: int = 3,
               caption: str = "") -> Table:
    """One training step (forward + backward, :func:`analysis.time_training_step`) of each model,
    timed on the device its input is on: per pair (title -> {name: (model, input batch)}, two
    models each) the milliseconds of both (median of ``repeats``), and the second's time,
    multiply-adds and values written over the first's (counted on one image)."""
    rows = []
    for title, models in pairs.items():
        if len(models) != 2:
            raise ValueError(f"{title!r}: a pair has two models; got {len(models)}")
        seconds, macs, written = {}, {}, {}
        for name, (model, x) in models.items():
            model = model.to(x.device)
            seconds[name] = statistics.median(analysis.time_training_step(model, x, repeats=repeats))
            macs[name], written[name] = analysis.count_macs(model, x[:1]), analysis.count_activations(model, x[:1])
        a, b = models
        rows.append([f"{a} ({title})", f"{1000 * seconds[a]:.1f}", None, None, None])
        rows.append([f"{b} ({title})", f"{1000 * seconds[b]:.1f}", f"{seconds[b] / seconds[a]:.2f}×",
                     f"{macs[b] / macs[a]:.2f}×", f"{written[b] / written[a]:.2f}×"])
    return Table(["network", "ms per step", "time", "multiply-adds", "values written"], rows, caption=caption,
                 note=f"median of {repeats}; ratios: each pair's second network over its first")


SHORTCUT_QUANTITIES = ("projections", "parameters", "multiply-adds")


@functools.lru_cache(maxsize=None)
def _option_counts(name: str, option: str) -> dict[str, int]:
    model = build_model(name, shortcut=option)
    size = 32 if parse_model_name(name).family == "cifar" else 224
    x = torch.zeros(1, 3, size, size)
    return {"projections": sum(isinstance(b.downsample, nn.Sequential) for _, b in analysis.blocks(model)),
            "parameters": analysis.count_parameters(model), "multiply-adds": analysis.count_macs(model, x)}


def shortcut_options(quantity: str, networks=("resnet20", "resnet32", "resnet56", "resnet110", "resnet34")) -> Table:
    """Shortcut options A, B and C in each of ``networks`` (CIFAR ones on 32x32, ImageNet ones on
    224x224 images): the number of projection shortcuts (one column per option), or the
    ``"parameters"`` / ``"multiply-adds"`` per image with how many more than with A and than with B."""
    if quantity not in SHORTCUT_QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; allowed: {', '.join(SHORTCUT_QUANTITIES)}")
    names = {n: display_name(n) for n in networks}
    if quantity == "projections":
        return Table(["network", *(f"option {o}" for o in "ABC")],
                     [[names[n], *(_option_counts(n, o)["projections"] for o in "ABC")] for n in networks],
                     caption="Projection shortcuts")
    rows = []
    for n in networks:
        count = {o: _option_counts(n, o)[quantity] for o in "ABC"}
        rows += [[names[n], o, count[o], relative_change(count[o], count["A"]),
                  relative_change(count[o], count["B"]) if o == "C" else None] for o in "ABC"]
    per = " per image (32×32; ImageNet networks: 224×224)" if quantity == "multiply-adds" else ""
    return Table(["network", "option", quantity, "vs A", "vs B"], rows, align="llrrr",
                 caption=f"{quantity.capitalize()}{per}, counted exactly; vs A, vs B: how many more than with "
                         "option A, B")
