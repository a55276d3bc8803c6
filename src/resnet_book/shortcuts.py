"""What the shortcut options do to a network (chapter 5), each measurement as one table.

* :func:`option_a_table` -- what option A's shortcut returns, channel group by channel group;
* :func:`dead_channel_table` -- per block, the channels option A pads with zeros and those a
  zero-initialised branch leaves dead (:func:`analysis.dead_channels`);
* :func:`padded_channel_table` / :func:`padded_channel_facts` -- what option A's padded channels
  carry in *trained* networks (the stored ``padded_channels`` measurement of
  :mod:`resnet_book.published`), as a table and as the numbers the prose quotes;
* :func:`at_initialisation` / :func:`gradient_growth` / :func:`block_stds` -- the per-block gradient
  norms and output stds of networks with each option at initialisation, and their summaries;
* :func:`bn_scale_table` -- a convolution followed by BN: the loss does not change when its input
  is scaled, and the gradient with respect to the input shrinks by the same factor.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

import torch
from torch import nn

from . import analysis
from .models import cifar_resnet, display_name
from .tables import Table


def option_a_table(shortcut: nn.Module, x: torch.Tensor) -> Table:
    """Apply an option-A ``shortcut`` to ``x`` and check, value by value, its two groups of output
    channels: the first ``in_planes`` against ``x`` subsampled by the stride, the rest against 0."""
    with torch.no_grad():
        s = shortcut(x)
    c, stride = x.shape[1], shortcut.stride
    kept = x[:, :, ::stride, ::stride]
    rows = [[f"0 to {c - 1}", f"the input, every {stride}nd pixel and row" if stride == 2 else "the input",
             "yes" if torch.equal(s[:, :c], kept) else "no"],
            [f"{c} to {s.shape[1] - 1}", "zero", "yes" if bool((s[:, c:] == 0).all()) else "no"]]
    return Table(["output channels", "equal to", "exactly"], rows, align="lll",
                 caption=f"Option A on an input of shape {tuple(x.shape)}: output of shape {tuple(s.shape)}")


def dead_channel_table(models: dict[str, nn.Module], *, caption: str = "") -> Table:
    """Per model (name -> network) and block: the channels its option-A shortcut pads with zeros
    (:func:`analysis.zero_padded_channels`) and the channels whose last BN has gamma = beta = 0
    (:func:`analysis.dead_channels`); a model with neither gets one row saying so."""
    rows = []
    for option, model in models.items():
        dead, padded = analysis.dead_channels(model), analysis.zero_padded_channels(model)
        names = [name for name, _ in analysis.blocks(model)]
        for name in (b for b in names if b in dead or b in padded):
            width, pad, channels = model.get_submodule(name).out_planes, padded.get(name), dead.get(name)
            rows.append([option, name, f"{pad[0]} to {pad[-1]}" if pad else None,
                         f"{len(channels)} of {width}: {channels[0]} to {channels[-1]}" if channels else None])
        if not dead and not padded:
            rows.append([option, f"none of its {len(names)} blocks", None, None])
    return Table(["option", "block", "padded", "dead"], rows, caption=caption)


def padded_channel_table(record: dict, *, nets: Iterable[str] | None = None) -> Table:
    """From a stored ``padded_channels`` measurement (:func:`resnet_book.published.load`): per net
    and downsampling block, for the channels option A pads with zeros and for those it copies, the
    std of the block's output ``relu(F(x) + x)``, the share of output entries that are exactly 0, and
    the mean |gamma| of the block's last BN (what scales ``F`` there)."""
    keep = set(nets or record.get("nets", ()))
    rows = []
    for net, name, b in _padded_blocks(record):
        if net in keep:
            for group in ("copied", "padded"):
                g = b[group]
                rows.append([display_name(net), name, f"{group} ({len(b['channels'][group])})",
                             f"{g['out_std']:.2f}", f"{100 * g['out_zero_share']:.0f}%",
                             f"{statistics.mean(abs(v) for v in g['gamma']):.2f}"])
    data = record["data"]
    return Table(["network", "block", "channels", "output std", "output = 0", "mean |γ|"], rows,
                 caption=f"Option A's channels after training, in ResNets {record['credit']}",
                 note=f"measured by this book's code on {data['images']:,} test images of {data['source']} (eval "
                      "mode); output = 0: the share of the block's output entries that are exactly 0; γ: the scale "
                      "of the block's last BN, one per channel")


def _padded_blocks(record: dict) -> list[tuple[str, str, dict]]:
    if record.get("kind") != "padded_channels":
        raise ValueError(f"expected a 'padded_channels' measurement, got kind {record.get('kind')!r}")
    return [(net, name, b) for net, blocks in record["nets"].items() for name, b in blocks.items()
            if isinstance(b, dict) and "channels" in b]


def padded_channel_facts(record: dict, *, small: float = 0.01) -> dict[str, str]:
    """The numbers of :func:`padded_channel_table` for the prose: over every net and block, the
    range of the share of exactly-zero outputs and of the output std in the padded and in the copied
    channels (``padded-zero-min`` ... ``copied-std-max``, per cent / two decimals), in how many
    blocks the padded channels' mean |gamma| is the larger (``gamma-larger``, of ``blocks``), whether
    any padded channel's gamma and beta are both exactly 0 (``dead``: the number of such channels),
    and the number of test images and nets.

    Channels that are dead in practice without being exactly 0: ``collapsed``, the padded channels
    (of ``padded-channels``) whose last-BN scale |gamma| is below ``small`` with beta <= 0, so that
    ``relu(gamma * z + beta)`` is about 0 for every input; ``collapsed-blocks``, the blocks that
    have any; ``collapsed-gamma-max``, the largest |gamma| among them (3 decimals); and, to show
    the gap, ``live-gamma-min``, the smallest |gamma| of the other padded channels, and
    ``copied-gamma-min`` / ``copied-collapsed``, the smallest |gamma| of the copied channels and how
    many of them fall below ``small``."""
    rows = _padded_blocks(record)
    out = {}
    for group in ("padded", "copied"):
        zero = [100 * b[group]["out_zero_share"] for _, _, b in rows]
        std = [b[group]["out_std"] for _, _, b in rows]
        out |= {f"{group}-zero-min": f"{min(zero):.0f}", f"{group}-zero-max": f"{max(zero):.0f}",
                f"{group}-std-min": f"{min(std):.2f}", f"{group}-std-max": f"{max(std):.2f}"}
    gamma = [statistics.mean(abs(v) for v in b["padded"]["gamma"]) > statistics.mean(abs(v) for v in b["copied"]["gamma"])
             for _, _, b in rows]
    dead = sum(g == 0 and z == 0 for _, _, b in rows for g, z in zip(b["padded"]["gamma"], b["padded"]["beta"]))
    collapsed = [[abs(g) < small and z <= 0 for g, z in zip(b["padded"]["gamma"], b["padded"]["beta"])]
                 for _, _, b in rows]
    padded_gamma = [(abs(g), c) for (_, _, b), cs in zip(rows, collapsed) for g, c in zip(b["padded"]["gamma"], cs)]
    copied_gamma = [abs(g) for _, _, b in rows for g in b["copied"]["gamma"]]
    gone = [g for g, c in padded_gamma if c]
    return out | {"gamma-larger": str(sum(gamma)), "blocks": str(len(rows)), "dead": str(dead),
                  "collapsed": str(len(gone)), "padded-channels": str(len(padded_gamma)),
                  "collapsed-blocks": str(sum(any(cs) for cs in collapsed)),
                  "collapsed-gamma-max": f"{max(gone):.3f}" if gone else "–",
                  "live-gamma-min": f"{min((g for g, c in padded_gamma if not c), default=math.nan):.2f}",
                  "copied-gamma-min": f"{min(copied_gamma):.2f}",
                  "copied-collapsed": str(sum(g < small for g in copied_gamma)),
                  "images": f"{record['data']['images']:,}", "nets": str(len(record["nets"]))}


def at_initialisation(depths: Iterable[int], options: Iterable[str], x: torch.Tensor, y: torch.Tensor, *,
                      seed: int = 0) -> dict[tuple[int, str], dict[str, dict[str, float]]]:
    """:func:`analysis.activation_stats` (per block: output std and gradient norm) of the CIFAR
    ResNet of each depth with each shortcut option, freshly initialised with ``seed``, on one batch
    ``(x, y)`` in train mode. Keys: ``(depth, option)``."""
    out = {}
    for depth in depths:
        for option in options:
            torch.manual_seed(seed)
            out[depth, option] = analysis.activation_stats(cifar_resnet(depth, shortcut=option), x, y)
    return out


def growth(stats: dict[str, dict[str, float]]) -> tuple[float, float]:
    """The gradient norm at the first block over that at the last, and the factor per block that
    compounds to it (geometric mean over the blocks)."""
    g = [v["grad_norm"] for v in stats.values()]
    ratio = g[0] / g[-1]
    return ratio, ratio ** (1 / (len(g) - 1))


def gradient_growth(profiles: dict[tuple[int, str], dict[str, dict[str, float]]]) -> Table:
    """Per network and option (the result of :func:`at_initialisation`): the gradient norm at the
    first block over the last, the factor per block, and the output std of the last block."""
    rows = []
    for (depth, option), stats in profiles.items():
        ratio, per_block = growth(stats)
        rows.append([f"ResNet-{depth}", option, ratio, f"×{per_block:.2f}", f"{list(stats.values())[-1]['act_std']:.2f}"])
    return Table(["network", "option", "gradient norm, first / last block", "per block", "output std of the last block"],
                 rows, align="llrrr")


def block_stds(profiles: dict[tuple[int, str], dict[str, dict[str, float]]], depth: int) -> Table:
    """The output std of every block of the ResNet of ``depth``, one column per option (from
    :func:`at_initialisation`), with the stage each block is in."""
    options = [o for d, o in profiles if d == depth]
    if not options:
        raise ValueError(f"no profiles of depth {depth}; there are depths {sorted({d for d, _ in profiles})}")
    names = list(profiles[depth, options[0]])
    rows = [[k + 1, name.split(".")[0].replace("layer", ""), *(f"{profiles[depth, o][name]['act_std']:.2f}" for o in options)]
            for k, name in enumerate(names)]
    return Table(["block", "stage", *(f"option {o}" for o in options)], rows,
                 caption=f"ResNet-{depth}: output std of each block at initialisation")


def bn_scale_table(scales: Iterable[float] = (1.0, 10.0), *, channels: int = 16, seed: int = 0) -> Table:
    """One 3x3 convolution followed by BN (train mode), on the same random input multiplied by each
    of ``scales``: the loss (mean squared distance to a random target) and the norm of its gradient
    with respect to the input."""
    torch.manual_seed(seed)
    conv, bn = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
    z, target = torch.randn(8, channels, 8, 8), torch.randn(8, channels, 8, 8)
    rows = []
    for c in scales:
        zc = (c * z).requires_grad_()
        loss = ((bn(conv(zc)) - target) ** 2).mean()
        loss.backward()
        rows.append([f"{c:g}", f"{loss.item():.6f}", f"{zc.grad.norm().item():.4e}"])
    return Table(["input multiplied by", "loss", "gradient norm with respect to the input"], rows,
                 caption="One convolution followed by BN (train mode)")
