"""Measurements the chapters make on a model, without editing it.

* :func:`count_parameters`, :func:`count_conv_weights`, :func:`count_macs`
  (``torch.utils.flop_counter``; the paper's "FLOPs" are multiply-adds, half of what
  FlopCounterMode reports), :func:`count_activations` (the values
  the layers write, which multiply-add counts do not see), :func:`cost_breakdown` (all three per
  stage) and :func:`time_training_step` (what a forward + backward pass actually takes);
* :func:`layer_responses` -- the std of each 3x3 layer's output after BN and before the ReLU or
  addition (paper Fig. 7), or of each block's residual branch ``F(x)``;
* :func:`activation_stats` / :func:`gradient_norms` -- forward activation std and backward
  gradient norm per block (degradation is not vanishing gradients);
* over many batches (a whole test set, accumulated in float64 by :class:`Moments`):
  :func:`layer_responses_over`, :func:`relu_masked_share` (the entries of ``F(x) + x`` the ReLU
  zeroes), :func:`padded_channel_stats` (what option A's zero-padded channels carry) and
  :func:`gradient_profile` (:func:`activation_stats` averaged over batches);
* :func:`lesion` -- drop blocks at test time (Veit et al. 2016), :func:`lesion_study` (every
  block alone, then random sets of k blocks), :func:`path_length_counts`;
* :func:`zero_padded_channels` / :func:`dead_channels` -- the channels an option-A shortcut fills
  with zeros, and the channels whose residual branch outputs exactly 0 whatever the input (the last
  BN's scale and shift both 0); :func:`sgd_on_random_data` takes a few optimiser steps to show which
  of them never move.
"""
from __future__ import annotations

import contextlib
import functools
import math
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .models.blocks import PreActBlock, ShortcutA, is_block
from .tables import Table


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, as the paper counts, unless ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, x: Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``x``, via ``torch.utils.flop_counter``."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def count_conv_weights(model: nn.Module) -> int:
    """Weights of all convolutions (the paper's Fig. 5 arithmetic: BN and classifier left out)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))


def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if next(m.children(), None) is None]


def count_activations(model: nn.Module, x: Tensor) -> int:
    """Values written by one forward pass on ``x``: the number of elements of every leaf layer's
    output (convolution, BN, ReLU, pooling, linear), in eval mode.  The residual additions are
    not modules and are not counted.

    Multiply-add counts measure arithmetic; this measures the memory traffic that comes with it,
    which is what element-wise layers (BN, ReLU, the addition) cost and what often decides the
    wall time of wide, cheap layers such as the bottleneck's 1x1 convolutions.
    """
    return sum(stage["activations"] for stage in cost_breakdown(model, x).values())


@torch.no_grad()
def cost_breakdown(model: nn.Module, x: Tensor) -> dict[str, dict[str, int]]:
    """Parameters, multiply-adds and values written, per stage, for one forward pass on ``x``.

    Stages are the model's children named ``layer*`` (the paper's conv2_x ... conv5_x); the
    children before the first of them are summed into ``"stem"`` and those after it into
    ``"head"``.  Multiply-adds come from ``torch.utils.flop_counter`` (its per-module breakdown),
    values written from forward hooks on the leaf layers (see :func:`count_activations`).
    """
    children = [name for name, _ in model.named_children()]
    first = next((i for i, c in enumerate(children) if c.startswith("layer")), len(children))
    stage = {c: c if c.startswith("layer") else ("stem" if i < first else "head") for i, c in enumerate(children)}
    out: dict[str, dict[str, int]] = {}
    for c, m in model.named_children():
        entry = out.setdefault(stage[c], {"parameters": 0, "macs": 0, "activations": 0})
        entry["parameters"] += count_parameters(m)

    written: dict[str, int] = {}
    handles = [m.register_forward_hook(lambda mod, i, o, key=name: written.__setitem__(key, written.get(key, 0) + o.numel()))
               for name, m in _leaf_modules(model) if name]
    was_training = model.training
    model.eval()
    try:
        with _hooks(handles), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    for name, n in written.items():
        out[stage[name.split(".")[0]]]["activations"] += n
    root = type(model).__name__
    for key, ops in counter.get_flop_counts().items():
        parts = key.split(".")
        if len(parts) == 2 and parts[0] == root and parts[1] in stage:
            out[stage[parts[1]]]["macs"] += sum(ops.values()) // 2
    return out


def time_training_step(model: nn.Module, x: Tensor, *, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeats`` training steps' forward + backward pass on ``x`` (after
    ``warmup`` untimed ones), in train mode, on the device and memory format ``x`` and the model
    already have.  Take the median: single timings on a shared machine are noisy."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0; got {repeats}, {warmup}")
    was_training = model.training
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        model(x).float().sum().backward()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)

    try:
        for _ in range(warmup):
            step()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return times


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's residual/plain blocks in forward order, with their qualified names."""
    return [(name, m) for name, m in model.named_modules() if is_block(m)]


@contextlib.contextmanager
def _hooks(handles: list) -> Iterator[None]:
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _response_layers(model: nn.Module, which: str) -> list[tuple[str, nn.Module]]:
    """The modules whose outputs :func:`layer_responses` measures, named: every BN inside a block
    (``which="bn"``, named ``block.bnK``), or each block's last BN, ``F(x)`` (``"branch"``, named by the block)."""
    if which not in ("bn", "branch"):
        raise ValueError(f"unknown response kind {which!r}; allowed: 'bn', 'branch'")
    if which == "branch":
        return [(bname, block.last_bn) for bname, block in blocks(model)]
    return [(f"{bname}.{n}", m) for bname, block in blocks(model)
            for n, m in block.named_children() if isinstance(m, nn.BatchNorm2d)]


@torch.no_grad()
def layer_responses(model: nn.Module, x: Tensor, *, which: str = "bn") -> dict[str, float]:
    """Std of layer responses, as in paper Fig. 7.

    ``which="bn"``: the output of every BN inside a block (each 3x3 layer, after BN, before ReLU
    or addition) -- the paper's definition.  ``which="branch"``: the output ``F(x)`` of each
    block's residual branch (the last BN).  The model runs in eval mode; statistics are computed
    inside the hooks, before any in-place ReLU can touch the tensors.
    """
    stds: dict[str, float] = {}
    handles = [module.register_forward_hook(lambda m, i, o, key=name: stds.__setitem__(key, o.float().std().item()))
               for name, module in _response_layers(model, which)]
    was_training = model.training
    model.eval()
    with _hooks(handles):
        model(x)
    model.train(was_training)
    return stds


@torch.no_grad()
def unrolled_stage(model: nn.Module, x: Tensor) -> dict:
    """Eq. 4 of the follow-up (He et al. 2016b), ``x_L = x_l + sum_i F(x_i)``, checked on stage 1
    (``layer1``, whose units all keep the shape): run its units one after the other on the stem's
    output for ``x`` (the model's current mode), record each unit's input ``x_i`` and residual
    ``F(x_i)`` (``residual_branch``) and compare the stage's output with the unrolled sum.

    Returns ``gap``, max |x_L - (x_l + sum F)| / max |x_L|; and, per unit, ``zero`` (share of the
    entries of ``x_i`` that are exactly 0) and ``clipped`` (share of ``x_i + F(x_i)`` below 0, which
    the original unit's ReLU after the addition sets to 0; ``None`` for the pre-activation unit,
    which has nothing after the addition)."""
    from .models.cifar import CifarResNet

    units = getattr(model, "layer1", None)
    if not isinstance(model, CifarResNet) or not all(is_block(u) and u.residual and u.downsample is None
                                                     for u in units):
        raise ValueError("unrolled_stage needs a CIFAR residual network whose stage 1 (layer1) is a sequence of "
                         "residual units with identity shortcuts, e.g. cifar_resnet(56) or "
                         "cifar_resnet(56, preact=True)")
    xs = [model.stem(x)]
    residuals = []
    for unit in units:
        residuals.append(unit.residual_branch(xs[-1]))
        xs.append(unit(xs[-1]))
    gap = ((xs[-1] - (xs[0] + sum(residuals))).abs().max() / xs[-1].abs().max()).item()
    return {"gap": gap, "zero": [(xi == 0).float().mean().item() for xi in xs[:-1]],
            "clipped": None if model.preact else [((xi + f) < 0).float().mean().item()
                                                  for xi, f in zip(xs[:-1], residuals)]}


def unrolled_table(checks: dict[str, dict], *, caption: str = "", note: str = "") -> Table:
    """:func:`unrolled_stage` results, one row per network: the gap of Eq. 4 and the range over the
    units of the shares of inputs exactly 0 and of sums below 0 (%; "–" where no ReLU follows the sum)."""
    def share_range(values):
        return f"{100 * min(values):.0f}–{100 * max(values):.0f}" if values is not None else None

    rows = [[name, f"{c['gap']:.1e}", share_range(c["zero"]), share_range(c["clipped"])] for name, c in checks.items()]
    return Table(["unit", "Eq. 4 gap", "x_i = 0 (%)", "x_i + F < 0 (%)"], rows, caption=caption,
                 note=note or "Eq. 4 gap: max |x_L − (x_l + Σ F)| / max |x_L|; shares per unit, lowest–highest")


def activation_stats(model: nn.Module, x: Tensor, y: Tensor | None = None) -> dict[str, dict[str, float]]:
    """Per block: std of its output and, if labels ``y`` are given, the norm of the loss gradient
    with respect to that output (one forward/backward in the model's current mode)."""
    outputs: dict[str, Tensor] = {}
    handles = []
    for name, block in blocks(model):

        def hook(m, i, o, key=name):
            if o.requires_grad:
                o.retain_grad()
            outputs[key] = o

        handles.append(block.register_forward_hook(hook))
    with _hooks(handles):
        with torch.set_grad_enabled(y is not None):
            logits = model(x)
            if y is not None:
                nn.functional.cross_entropy(logits.float(), y).backward()
    stats = {}
    for key, o in outputs.items():
        entry = {"act_std": o.detach().float().std().item()}
        if y is not None and o.grad is not None:
            entry["grad_norm"] = o.grad.float().norm().item()
        stats[key] = entry
    model.zero_grad(set_to_none=True)
    return stats


def gradient_norms(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """Norm of d(loss)/d(weight) for every convolution and linear layer, in forward order."""
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x).float(), y).backward()
    norms = {
        name: m.weight.grad.norm().item()
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None
    }
    model.zero_grad(set_to_none=True)
    return norms


@contextlib.contextmanager
def lesion(model: nn.Module, names: Iterable[str]) -> Iterator[nn.Module]:
    """Drop the named blocks for the duration of the ``with`` (Veit et al. 2016).

    A dropped residual block passes only its shortcut; a dropped plain block passes its input.
    The model is restored afterwards even if the body raises.
    """
    table = dict(blocks(model))
    names = list(names)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"not blocks of this model: {unknown}; blocks are e.g. {list(table)[:3]}...")
    for n in names:
        if not table[n].residual and not table[n].keeps_shape:
            raise ValueError(f"block {n!r} changes shape and has no shortcut: it cannot be dropped")
    try:
        for n in names:
            table[n].dropped = True
        yield model
    finally:
        for n in names:
            table[n].dropped = False


def path_length_counts(num_blocks: int) -> list[int]:
    """How many of the ``2**n`` paths through ``n`` residual blocks pass through ``k`` residual
    branches, for ``k = 0..n`` -- the binomial coefficients C(n, k) (Veit et al. 2016, Sec. 3)."""
    if not isinstance(num_blocks, int) or num_blocks < 0:
        raise ValueError(f"num_blocks must be a non-negative integer; got {num_blocks!r}")
    return [math.comb(num_blocks, k) for k in range(num_blocks + 1)]


def droppable(model: nn.Module) -> list[str]:
    """The blocks :func:`lesion` can drop: every residual block, and plain blocks that keep the shape."""
    return [n for n, b in blocks(model) if b.residual or b.keeps_shape]


def lesion_study(model: nn.Module, error: Callable[[nn.Module], float], *, ks: Iterable[int] = (2, 4, 6, 8),
                 draws: int = 3, seed: int = 0) -> dict:
    """Veit et al. (2016), Sec. 4: the error (``error(model)``, e.g. test error) with nothing
    dropped, with each block dropped alone (``None`` for blocks that cannot be dropped), and with
    ``draws`` random sets of ``k`` droppable blocks dropped together, for each ``k`` in ``ks``."""
    names, can, sets = _lesion_sets(model, ks, draws, seed)
    out = {"baseline": error(model), "single": {}, "random_sets": {}}
    for n in names:
        if n in can:
            with lesion(model, [n]):
                out["single"][n] = error(model)
        else:
            out["single"][n] = None
    for k, draw in sets.items():
        errs = []
        for dropped in draw:
            with lesion(model, dropped):
                errs.append(error(model))
        out["random_sets"][k] = errs
    return out


def mean_profile(profiles: list[dict[str, dict[str, float]]], key: str) -> dict[str, float]:
    """Average one quantity (``"grad_norm"`` or ``"act_std"``) of several :func:`activation_stats`
    results (e.g. the ``profile`` analyses of a run's seeds), block by block."""
    if not profiles:
        raise ValueError("no profiles to average")
    names = list(profiles[0])
    if any(list(p) != names for p in profiles):
        raise ValueError("the profiles are of different networks (their block names differ)")
    return {n: sum(p[n][key] for p in profiles) / len(profiles) for n in names}


def profile_ratios(stats: dict[str, dict[str, float]], x: Tensor | None = None) -> dict[str, float]:
    """One :func:`activation_stats` result in three ratios: ``gradient`` (gradient norm of the first
    block / the last block), ``growth`` (output std of the last block / the first block) and, if the
    input ``x`` is given, ``vs_input`` (output std of the last block / std of ``x``)."""
    first, last = next(iter(stats.values())), list(stats.values())[-1]
    out = {"gradient": first["grad_norm"] / last["grad_norm"], "growth": last["act_std"] / first["act_std"]}
    if x is not None:
        out["vs_input"] = last["act_std"] / x.float().std().item()
    return out


def profile_ratio_table(profiles: dict[tuple, dict[str, dict[str, float]]], x: Tensor, *,
                  key_columns: tuple[str, str] = ("layers", "network"), caption: str = "", note: str = "") -> Table:
    """One row per :func:`activation_stats` result, keyed by two values (e.g. depth and network),
    with its :func:`profile_ratios` on the input ``x``."""
    rows = []
    for key, stats in profiles.items():
        r = profile_ratios(stats, x)
        rows.append([*key, r["gradient"], r["growth"], r["vs_input"]])
    return Table([*key_columns, "gradient: first / last block", "std: last / first block", "std: last block / input"],
                 rows, caption=caption, note=note)


def relative_step_ratio(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """||grad W|| / ||W|| (the relative size of an SGD step, what matters for a convolution followed
    by BN, whose output does not change when W is scaled) of the first convolution inside the blocks,
    divided by the same for the last convolution inside the blocks (one batch, current mode)."""
    grads = gradient_norms(model, x, y)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n.startswith("layer")]
    if not convs:
        raise ValueError("the model has no convolutions inside stages named layer*")
    (first, wf), (last, wl) = convs[0], convs[-1]
    return (grads[first] / wf.weight.norm().item()) / (grads[last] / wl.weight.norm().item())


def relative_step_table(ratios: dict[tuple, float], *, key_columns: tuple[str, str] = ("layers", "network"),
                        caption: str = "", note: str = "") -> Table:
    """One row per :func:`relative_step_ratio`, keyed by two values (e.g. depth and network)."""
    return Table([*key_columns, "‖∇W‖/‖W‖: first / last conv"], [[*k, v] for k, v in ratios.items()],
                 caption=caption, note=note)


def gradient_profiles(named: dict[str, dict | list[dict]]) -> dict[str, dict[str, float]]:
    """The gradient norm per block of each named :func:`activation_stats` result, or, for a list
    of them (e.g. one per seed), their block-by-block mean (:func:`mean_profile`); a profile that
    already is ``{block: gradient norm}`` (e.g. a stored measurement's ``grad_norm``) is kept as it is."""
    def one(p):
        if isinstance(p, dict) and p and all(isinstance(v, (int, float)) for v in p.values()):
            return dict(p)
        return mean_profile(p if isinstance(p, list) else [p], "grad_norm")

    return {name: one(p) for name, p in named.items()}


def gradient_stage_facts(profile: dict[str, float]) -> dict[str, float]:
    """One gradient profile of a CIFAR ResNet (block name ``layer<s>.<i>`` -> gradient norm, input
    side first) stage by stage: ``stage<s>-growth``, the first block of stage ``s`` over its last
    (above 1: the gradient grows towards the input across the stage); ``cross-min`` / ``cross-max``,
    over the stage boundaries, the last block of a stage over the next stage's first (below 1: the
    gradient steps down where it passes into the earlier stage); ``first-over-second``,
    ``last-below`` (the second-to-last block over the last) and ``inner-spread`` (largest over
    smallest, ends left out)."""
    stages: dict[int, list[float]] = defaultdict(list)
    for name, value in profile.items():
        stages[int(name.split(".")[0].removeprefix("layer"))].append(value)
    if len(stages) < 2 or any(len(v) < 2 for v in stages.values()):
        raise ValueError(f"expected a profile of layer<s>.<i> blocks, two or more per stage, in two or more stages; "
                         f"got {list(profile)[:4]}...")
    g, order = list(profile.values()), sorted(stages)
    crossings = [stages[s][-1] / stages[t][0] for s, t in zip(order, order[1:])]
    return {**{f"stage{s}-growth": v[0] / v[-1] for s, v in stages.items()},
            "cross-min": min(crossings), "cross-max": max(crossings),
            "first-over-second": g[0] / g[1], "last-below": g[-2] / g[-1],
            "inner-spread": max(g[1:-1]) / min(g[1:-1])}


def gradient_table(profiles: dict[str, dict[str, float]], *, caption: str = "", note: str = "") -> Table:
    """One row per gradient profile (block -> gradient norm, e.g. :func:`gradient_profiles`): the
    first block's norm over the last block's, and the largest block's over the smallest's."""
    rows = [[name, list(g.values())[0] / list(g.values())[-1], max(g.values()) / min(g.values())]
            for name, g in profiles.items()]
    return Table(["network", "gradient: first / last block", "largest / smallest block"], rows,
                 caption=caption, note=note)


def lesion_summary(study: dict) -> dict:
    """A :func:`lesion_study` result in a few numbers: ``intact`` (nothing dropped), ``median`` and
    ``worst`` error over the blocks dropped one at a time, ``change`` (median minus intact),
    ``worst_block`` (its name) and ``worst_cost`` (worst minus intact)."""
    singles = {n: e for n, e in study["single"].items() if e is not None}
    if not singles:
        raise ValueError("the lesion study dropped no block")
    median = statistics.median(singles.values())
    worst = max(singles, key=singles.get)
    return {"intact": study["baseline"], "median": median, "change": median - study["baseline"],
            "worst": singles[worst], "worst_block": worst, "worst_cost": singles[worst] - study["baseline"]}


def lesion_table(studies: dict[str, list[dict]], *, caption: str = "", note: str = "") -> Table:
    """One row per :func:`lesion_study` result, several per name (e.g. a model's stored runs in
    seed order, numbered #1, #2, ...): test error (%) intact, median over the blocks dropped alone,
    its change (points), the worst block and its error."""
    rows = []
    for name, runs in studies.items():
        for i, study in enumerate(runs, 1):
            s = lesion_summary(study)
            rows.append([f"{name} #{i}" if len(runs) > 1 else name, f"{100 * s['intact']:.1f}", f"{100 * s['median']:.1f}",
                         f"{100 * s['change']:+.1f}", s["worst_block"], f"{100 * s['worst']:.1f}"])
    return Table(["network", "intact", "median", "change", "worst block", "its error"], rows,
                 caption=caption, note=note)


def zero_padded_channels(model: nn.Module) -> dict[str, list[int]]:
    """Per residual block with an option-A shortcut that adds channels: the channel indices that
    shortcut fills with zeros (``in_planes .. out_planes - 1``), i.e. where ``x`` contributes nothing
    to ``F(x) + x``."""
    return {name: list(range(b.downsample.in_planes, b.downsample.out_planes)) for name, b in blocks(model)
            if b.residual and isinstance(b.downsample, ShortcutA) and b.downsample.out_planes > b.downsample.in_planes}


@torch.no_grad()
def dead_channels(model: nn.Module) -> dict[str, list[int]]:
    """Per residual block (post-activation, ``relu(F(x) + x)``): the channels of the last BN whose
    scale gamma and shift beta are both exactly 0, so that ``F(x)`` is exactly 0 there whatever the
    input. Blocks with no such channel are left out.

    Right after ``zero_init_residual`` every channel qualifies. Where the shortcut also adds 0
    (option A's padded channels, :func:`zero_padded_channels`), the sum is 0, the ReLU after the
    addition passes no gradient at 0, and gamma, beta and the matching filters of the last
    convolution get no gradient from the loss: measured after training, such channels never moved.
    """
    out = {}
    for name, b in blocks(model):
        if not b.residual or isinstance(b, PreActBlock) or not isinstance(b.last_bn, nn.BatchNorm2d):
            continue
        both = (b.last_bn.weight == 0) & (b.last_bn.bias == 0)
        if both.any():
            out[name] = torch.nonzero(both).flatten().tolist()
    return out


def sgd_on_random_data(model: nn.Module, steps: int, *, batch_size: int = 8, lr: float = 0.1, momentum: float = 0.9,
                       weight_decay: float = 1e-4, seed: int = 0,
                       after_backward: Callable[[nn.Module], None] | None = None) -> nn.Module:
    """``steps`` steps of the paper's optimiser (SGD with momentum and weight decay) on random
    images and labels, in train mode; ``after_backward(model)`` is called before each update (to
    inspect gradients). Enough to see which parameters a network can move at all, nothing more."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        x, y = torch.randn(batch_size, 3, 32, 32, generator=g), torch.randint(0, 10, (batch_size,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        if after_backward is not None:
            after_backward(model)
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model


def branch_layers(block: nn.Module, x: Tensor) -> dict[str, list[dict]]:
    """The layers of a block in the order its forward pass calls them, traced on ``x``: under
    ``"branch"`` the residual function ``F`` (convolutions with kernel, stride and channels, BN,
    ReLU), under ``"shortcut"`` the layers of the shortcut (empty for the identity), each with the
    shape of its output. Used to draw paper Fig. 5 from the modules themselves."""
    if not is_block(block):
        raise ValueError(f"expected a residual or plain block, got {type(block).__name__}")

    def trace(fn) -> list[dict]:
        calls, handles = [], []
        for name, m in block.named_modules():
            if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU)):
                def hook(mod, i, o, name=name):
                    entry = {"name": name, "kind": type(mod).__name__, "out_shape": tuple(o.shape[1:])}
                    if isinstance(mod, nn.Conv2d):
                        entry.update(kernel=mod.kernel_size[0], stride=mod.stride[0], in_channels=mod.in_channels,
                                     out_channels=mod.out_channels)
                    calls.append(entry)
                handles.append(m.register_forward_hook(hook))
        with _hooks(handles), torch.no_grad():
            fn(x)
        return calls

    was_training = block.training
    block.eval()
    try:
        out = {"branch": trace(block.residual_branch),
               "shortcut": trace(block.downsample) if getattr(block, "downsample", None) is not None else []}
    finally:
        block.train(was_training)
    out["residual"] = bool(block.residual)
    return out


def average_stats(profiles: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Block by block, the mean over several :func:`activation_stats` results (e.g. the stored
    ``profile`` analyses of a model's seeds) of every quantity they all have."""
    if not profiles:
        raise ValueError("no profiles to average")
    keys = set.intersection(*(set(v) for p in profiles for v in p.values()))
    return {block: {k: mean_profile(profiles, k)[block] for k in sorted(keys)} for block in profiles[0]}


def profile_table(profiles: dict[str, dict[str, dict[str, float]]], *, note: str = ""):
    """One row per named :func:`activation_stats` result: the smallest and largest std of a
    block's output, and the gradient norm at the first block divided by that at the last (above 1:
    the gradient grows towards the input; a vanishing gradient would make it far below 1)."""
    rows = []
    for name, stats in profiles.items():
        acts = [v["act_std"] for v in stats.values()]
        grads = [v.get("grad_norm") for v in stats.values()]
        ratio = grads[0] / grads[-1] if None not in (grads[0], grads[-1]) and grads[-1] else None
        rows.append([name, min(acts), max(acts), ratio])
    return Table(["network", "smallest output std", "largest output std", "gradient norm, first / last block"],
                 rows, note=note)


def size_table(depths: Iterable[int], *, residual: Iterable[bool] = (False,)):
    """The paper's CIFAR networks (Sec. 4.2; option-A shortcuts, which have no parameters): for
    each depth ``6n + 2`` and each family (plain, ResNet), n, the weighted layers (convolutions
    and the classifier) and the parameters."""
    from .models import cifar_resnet

    rows = []
    for res in residual:
        for depth in depths:
            model = cifar_resnet(depth, residual=res)
            layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
            rows.append([f"{'ResNet' if res else 'plain'}-{depth}", (depth - 2) // 6, layers, count_parameters(model)])
    return Table(["network", "n", "weighted layers", "parameters"], rows)


def network_table(models: dict[str, nn.Module], error: Callable[[nn.Module], float] | None = None, *,
                  error_name: str = "error (%)", note: str = ""):
    """One row per named model: its parameters and, with ``error`` (model -> error rate), that error
    in per cent."""
    rows = [[name, count_parameters(m), *([f"{100 * error(m):.2f}"] if error else [])] for name, m in models.items()]
    return Table(["network", "parameters", *([error_name] if error else [])], rows, note=note)


# --- the same measurements over many images, accumulated batch by batch --------------------------

class Moments:
    """Count, sum and sum of squares (float64) of every entry of the tensors :meth:`add` sees: their
    :attr:`mean` and :attr:`std` (with Bessel's correction, as ``torch.std`` on all of them at once)."""

    def __init__(self) -> None:
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def add(self, t: Tensor) -> None:
        t = t.detach().double()
        self.count += t.numel()
        self.total += t.sum().item()
        self.squares += (t * t).sum().item()

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        if self.count < 2:
            return math.nan
        return math.sqrt(max(self.squares - self.total * self.total / self.count, 0.0) / (self.count - 1))


@torch.no_grad()
def _run_in_eval(model: nn.Module, batches: Iterable, handles: list) -> None:
    """Run ``batches`` (input tensors, or ``(x, y)`` pairs) through ``model`` in eval mode with the
    hooks ``handles`` attached; the hooks are removed and the model's mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with _hooks(handles):
            for b in batches:
                model(b[0] if isinstance(b, (tuple, list)) else b)
    finally:
        model.train(was_training)


@torch.no_grad()
def layer_responses_over(model: nn.Module, batches: Iterable, *, which: str = "bn") -> dict[str, float]:
    """:func:`layer_responses` over many batches (input tensors, or ``(x, y)`` pairs): for each layer
    the std over **all entries** (every image, channel and position) of its output on all the
    batches together, in eval mode -- the same number as :func:`layer_responses` on the
    concatenated batches, accumulated in float64 (:class:`Moments`) so no batch is kept."""
    layers = _response_layers(model, which)
    moments = {name: Moments() for name, _ in layers}
    handles = [module.register_forward_hook(lambda m, i, o, key=name: moments[key].add(o)) for name, module in layers]
    _run_in_eval(model, batches, handles)
    return {k: m.std for k, m in moments.items()}


def _post_activation_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, b) for n, b in blocks(model) if b.residual and not isinstance(b, PreActBlock)]


@torch.no_grad()
def _each_addition(model: nn.Module, batches: Iterable, visit: Callable) -> None:
    """Run ``batches`` through ``model`` in eval mode and call ``visit(name, block, x, f, s, h)`` for
    every post-activation residual block: its input ``x``, its residual ``F(x)``, the sum
    ``s = F(x) + shortcut(x)`` the ReLU receives (recomputed from ``F(x)`` and ``x`` as the block
    computes it) and its output ``h = relu(s)``."""
    todo = _post_activation_blocks(model)
    if not todo:
        raise ValueError("the model has no post-activation residual block (relu(F(x) + x))")
    branch: dict[str, Tensor] = {}
    handles = []
    for name, block in todo:
        handles.append(block.last_bn.register_forward_hook(lambda m, i, o, key=name: branch.__setitem__(key, o)))

        def after(b, inputs, h, key=name):
            x, f = inputs[0], branch.pop(key)
            visit(key, b, x, f, f + b.shortcut(x), h)

        handles.append(block.register_forward_hook(after))
    _run_in_eval(model, batches, handles)


def relu_masked_share(model: nn.Module, batches: Iterable) -> dict[str, float]:
    """Per post-activation residual block, in forward order: the share of the entries of
    ``F(x) + x`` that are negative, i.e. that the ReLU after the addition sets to 0, over all
    entries of all the batches (eval mode)."""
    counts: dict[str, list[int]] = {}

    def visit(name, block, x, f, s, h):
        c = counts.setdefault(name, [0, 0])
        c[0] += int((s < 0).sum())
        c[1] += s.numel()

    _each_addition(model, batches, visit)
    return {name: neg / n for name, (neg, n) in counts.items()}


def padded_channel_stats(model: nn.Module, batches: Iterable) -> dict[str, dict]:
    """Per block whose option-A shortcut pads zero channels (:func:`zero_padded_channels`): what the
    trained block writes there, against the channels its shortcut copies. Over all entries of the
    batches (eval mode), for the two groups of channels (``"padded"``, ``"copied"``): mean and std
    of ``F(x)``, of the sum ``F(x) + x`` and of the block output ``relu(F(x) + x)``, the share of
    output entries that are exactly 0, and the last BN's scale gamma and shift beta (one value per
    channel, in channel order). On the padded channels ``F(x) + x`` is ``F(x)`` alone."""
    padded = zero_padded_channels(model)
    if not padded:
        raise ValueError("the model has no option-A shortcut that pads channels with zeros")
    table = dict(blocks(model))
    groups = {}
    for name, idx in padded.items():
        n = table[name].out_planes
        groups[name] = {"padded": torch.tensor(idx), "copied": torch.tensor([c for c in range(n) if c not in idx])}
    moments = {name: {g: {q: Moments() for q in ("F", "sum", "out")} for g in groups[name]} for name in groups}
    zeros = {name: {g: [0, 0] for g in groups[name]} for name in groups}

    def visit(name, block, x, f, s, h):
        if name not in groups:
            return
        for g, idx in groups[name].items():
            idx = idx.to(h.device)
            for q, t in (("F", f), ("sum", s), ("out", h)):
                moments[name][g][q].add(t.index_select(1, idx))
            z = zeros[name][g]
            z[0] += int((h.index_select(1, idx) == 0).sum())
            z[1] += h.shape[0] * len(idx) * h.shape[2] * h.shape[3]

    _each_addition(model, batches, visit)
    out = {}
    for name, gs in groups.items():
        bn = table[name].last_bn
        out[name] = {"channels": {g: idx.tolist() for g, idx in gs.items()}}
        for g, idx in gs.items():
            m = moments[name][g]
            out[name][g] = {**{f"{q}_mean": m[q].mean for q in m}, **{f"{q}_std": m[q].std for q in m},
                            "out_zero_share": zeros[name][g][0] / zeros[name][g][1],
                            "gamma": bn.weight.detach()[idx].tolist(), "beta": bn.bias.detach()[idx].tolist()}
    return out


def gradient_profile(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, mode: str) -> dict[str, dict]:
    """:func:`activation_stats` on each ``(x, y)`` batch, with BN in ``mode`` (``"train"``: each
    batch's own statistics, as the runs' ``profile`` analysis; ``"eval"``: the running statistics),
    averaged over the batches block by block: the mean and the std over batches of the norm of
    d(mean loss of the batch)/d(block output), and the mean of the output's std. The model's
    parameters, BN statistics and mode are as before afterwards."""
    if mode not in ("train", "eval"):
        raise ValueError(f"unknown BN mode {mode!r}; allowed: 'train', 'eval'")
    saved = {k: v.clone() for k, v in model.state_dict().items()}  # train mode moves the BN running statistics
    was_training = model.training
    model.train(mode == "train")
    try:
        profiles = [activation_stats(model, x, y) for x, y in batches]
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
    if not profiles:
        raise ValueError("no batches to average")
    grad = mean_profile(profiles, "grad_norm")
    sd = {n: (math.sqrt(sum((p[n]["grad_norm"] - grad[n]) ** 2 for p in profiles) / (len(profiles) - 1))
              if len(profiles) > 1 else 0.0) for n in grad}
    return {"grad_norm": grad, "grad_norm_sd": sd, "act_std": mean_profile(profiles, "act_std"),
            "batches": len(profiles)}


def _lesion_sets(model: nn.Module, ks: Iterable[int], draws: int, seed: int) -> tuple[list[str], set[str], dict]:
    """The block names, the droppable ones and the random sets of :func:`lesion_study` (the same
    draws for the same ``seed``)."""
    names = [n for n, _ in blocks(model)]
    can = set(droppable(model))
    rng = random.Random(seed)
    pool = sorted(can, key=names.index)
    sets = {str(k): [rng.sample(pool, k) for _ in range(draws)] for k in ks if k <= len(pool)}
    return names, can, sets


@torch.no_grad()
def lesion_study_over(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, ks: Iterable[int] = (2, 4, 6, 8),
                      draws: int = 3, seed: int = 0) -> dict:
    """:func:`lesion_study` with the error rate over ``batches`` (``(x, y)`` pairs) as the error, the
    same blocks dropped (the same random sets for the same ``seed``) and the same numbers, computed
    with less work: each batch runs once through the intact network, keeping every block's input,
    and each lesioned network starts from the input of its first dropped block (everything before
    it is unchanged). For :class:`~resnet_book.models.cifar.CifarResNet` networks, in eval mode."""
    from .models.cifar import CifarResNet

    if not isinstance(model, CifarResNet):
        raise ValueError(f"lesion_study_over runs CifarResNet networks; got {type(model).__name__} (use lesion_study)")
    names, can, sets = _lesion_sets(model, ks, draws, seed)
    table = dict(blocks(model))
    configs = [[n] for n in names if n in can] + [s for draw in sets.values() for s in draw]
    wrong = [0] * len(configs)
    wrong_intact, total = 0, 0
    was_training = model.training
    model.eval()

    try:
        for x, y in batches:
            h = model.stem(x)
            inputs = []
            for n in names:
                inputs.append(h)
                h = table[n](h)
            wrong_intact += int((model.head(h).argmax(1) != y).sum())
            total += len(y)
            for c, dropped in enumerate(configs):
                first = min(names.index(n) for n in dropped)
                with lesion(model, dropped):
                    h = inputs[first]
                    for n in names[first:]:
                        h = table[n](h)
                    wrong[c] += int((model.head(h).argmax(1) != y).sum())
    finally:
        model.train(was_training)
    if not total:
        raise ValueError("no batches to evaluate")
    errors = iter([w / total for w in wrong])
    single = {n: next(errors) if n in can else None for n in names}
    return {"baseline": wrong_intact / total, "single": single,
            "random_sets": {k: [next(errors) for _ in draw] for k, draw in sets.items()}}


def _median_response(runs: list[dict[str, float]], suffix: str = "") -> float:
    """The median over the layers whose name ends with ``suffix`` of each run's response std,
    averaged over the runs."""
    return sum(statistics.median(v for k, v in r.items() if k.endswith(suffix)) for r in runs) / len(runs)


def _require_responses(responses: dict[str, list[dict[str, float]]]) -> None:
    """Refuse an empty network list or a network without responses (instead of a ZeroDivisionError)."""
    empty = [name for name, runs in responses.items() if not runs or not all(runs)]
    if not responses or empty:
        raise ValueError(f"no stored responses for {', '.join(empty) or 'any network'}: each network needs a list "
                         "of layer_responses results (Runs.analyses('responses', label) is empty for runs stored "
                         "without that analysis)")


def response_table(responses: dict[str, list[dict[str, float]]], *, note: str = ""):
    """Paper Fig. 7 in numbers: per network (a list of :func:`layer_responses` results, one per run
    or trained net), the median over its 3x3 layers of the response std (mean over runs), the
    smallest and largest layer over all runs, and the medians of the first BN of each block and of
    the second (the end of the residual branch, ``F(x)`` in a ResNet)."""
    facts = response_facts(responses)
    rows = [[name, len(runs), *(facts[f"{name}-{k}"] for k in ("median", "min", "max", "bn1", "bn2"))]
            for name, runs in responses.items()]
    return Table(["network", "nets", "median", "min", "max", "1st BN", "2nd BN = F"],
                 rows, caption="Std of the 3×3 layers' responses (after BN, before ReLU or addition)",
                 note="median: over a net's layers, averaged over its nets (runs); min and max: over all layers of "
                      "all its nets; 1st BN, 2nd BN = F: the median over the first, and over the second (the end of "
                      "the residual branch, F(x) in a ResNet), BN of each block" + (f"; {note}" if note else ""))


def response_facts(responses: dict[str, list[dict[str, float]]], *, above: float = 1.5) -> dict[str, str]:
    """The numbers of :func:`response_table` for the prose, per network ``<name>`` (spaces and
    capitals kept as given, e.g. ``ResNet-56``): ``-median``, ``-bn1``, ``-bn2`` (3 decimals),
    ``-min``, ``-max`` (2 decimals); ``-later-min`` / ``-later-max``: the layers outside the first
    stage; ``-above``: per run, how many layers exceed ``above`` ('6, 11, 12'); ``-above-max``: per
    run its largest std (1 decimal); ``-above-stage1``: 'yes' if every such layer is in the first
    stage; ``-argmax``: the layer with the largest std (per run, repeats dropped). Also
    ``order``: the networks by median, smallest first, and ``monotone``: 'yes' when the medians
    fall in the order the networks are given, ``monotone-bn2`` the same for the medians of the
    second BN of each block (the ends of the residual branches); ``trend`` / ``trend-bn2``: the same
    as a phrase for a sentence ('falls at every step from ResNet-20 to ResNet-56', or 'does not fall
    at every step: ...' with the networks ordered by that median, smallest first)."""
    _require_responses(responses)
    out = {}
    medians = {}
    for name, runs in responses.items():
        med = functools.partial(_median_response, runs)
        medians[name] = med()
        later = [v for r in runs for k, v in r.items() if not k.startswith("layer1")]
        big = [{k: v for k, v in r.items() if v > above} for r in runs]
        out |= {f"{name}-median": f"{med():.3f}", f"{name}-bn1": f"{med('bn1'):.3f}", f"{name}-bn2": f"{med('bn2'):.3f}",
                f"{name}-min": f"{min(min(r.values()) for r in runs):.2f}",
                f"{name}-max": f"{max(max(r.values()) for r in runs):.2f}",
                f"{name}-later-min": f"{min(later):.2f}" if later else "–",
                f"{name}-later-max": f"{max(later):.2f}" if later else "–",
                f"{name}-above": ", ".join(str(len(b)) for b in big),
                f"{name}-above-max": ", ".join(f"{max(r.values()):.1f}" for r in runs),
                f"{name}-above-stage1": "yes" if all(k.startswith("layer1") for b in big for k in b) else "no",
                f"{name}-argmax": ", ".join(dict.fromkeys(max(r, key=r.get) for r in runs))}
    ends = {name: _median_response(runs, "bn2") for name, runs in responses.items()}
    out["order"] = ", ".join(sorted(medians, key=medians.get))
    for suffix, by in (("", medians), ("-bn2", ends)):
        values, names = list(by.values()), list(by)
        falls = all(a > b for a, b in zip(values, values[1:]))
        out[f"monotone{suffix}"] = "yes" if falls else "no"
        out[f"trend{suffix}"] = (f"falls at every step from {names[0]} to {names[-1]}" if falls else
                                 "does not fall at every step (smallest first: " + ", ".join(sorted(by, key=by.get)) + ")")
    return out
