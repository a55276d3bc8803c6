"""How hard is it for a stack of layers to learn a mapping close to the identity?

The residual reformulation rests on one hypothesis (paper Sec. 3.1): when the best mapping is close
to the identity, pushing a residual ``F(x)`` towards zero is easier than making a stack of
non-linear layers reproduce ``x``.  This small experiment tests it away from CIFAR: a stack of
plain blocks, the same stack with shortcuts, and the same stack with shortcuts and zero-initialised
last BN (which starts exactly at the identity) are trained to fit

    H(x) = relu(x + alpha * g(x))

on non-negative random inputs (what a block receives after a ReLU).  ``g`` is a fixed random
two-layer convolutional map scaled to unit standard deviation, and ``alpha`` is the distance from
the identity: ``alpha = 0`` asks for the identity itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import nn

from .models import BasicBlock, PlainBlock, init_paper_

VARIANTS = ("plain", "residual", "residual, zero-init")


def make_stack(blocks: int, width: int, variant: str) -> nn.Sequential:
    """``blocks`` shape-keeping blocks of two 3x3 conv-BN layers: plain, residual, or residual
    with the last BN of each branch zero-initialised."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    if blocks < 1 or width < 1:
        raise ValueError(f"blocks and width must be positive; got {blocks}, {width}")
    block = PlainBlock if variant == "plain" else BasicBlock
    stack = nn.Sequential(*[block(width, width) for _ in range(blocks)])
    init_paper_(stack, zero_init_residual=variant == "residual, zero-init")
    return stack


@dataclass
class FitResult:
    variant: str
    alpha: float
    steps: list[int]
    relative_error: list[float]  # mean squared error / variance of the target
    weight_change: float  # ||theta - theta_0|| / ||theta_0|| over the convolution weights


def fit_mapping(variant: str, alpha: float, *, blocks: int = 8, width: int = 16, size: int = 8,
                steps: int = 200, batch: int = 64, lr: float = 1e-3, seed: int = 0,
                record_every: int = 10) -> FitResult:
    """Train a stack (Adam) to fit ``relu(x + alpha * g(x))`` on fresh random inputs each step.

    Runs on the CPU in one thread (a few seconds); everything is seeded.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        stack = make_stack(blocks, width, variant)
        g = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(width, width, 3, padding=1, bias=False)).requires_grad_(False)
        convs = [m.weight for m in stack.modules() if isinstance(m, nn.Conv2d)]
        start = [w.detach().clone() for w in convs]
        opt = torch.optim.Adam(stack.parameters(), lr=lr)
        data = torch.Generator().manual_seed(seed + 1)
        rec_steps, errors = [], []
        for step in range(1, steps + 1):
            x = torch.relu(torch.randn(batch, width, size, size, generator=data))
            with torch.no_grad():
                gx = g(x)
                y = torch.relu(x + alpha * gx / gx.std())
            loss = nnf.mse_loss(stack(x), y) / y.var()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step == 1 or step % record_every == 0:
                rec_steps.append(step)
                errors.append(loss.item())
        with torch.no_grad():
            change = torch.sqrt(sum(((w - w0) ** 2).sum() for w, w0 in zip(convs, start)))
            norm = torch.sqrt(sum((w0 ** 2).sum() for w0 in start))
        return FitResult(variant, alpha, rec_steps, errors, (change / norm).item())
    finally:
        torch.set_num_threads(threads)


def _slug(variant: str) -> str:
    return variant.replace(", ", "-").replace(" ", "-")  # "residual, zero-init" -> "residual-zero-init"


def fit_table(fits_by_alpha: dict[float, list[FitResult]]):
    """One row per distance ``alpha`` and stack: the error at the first step and at the last, and
    how far the stack moved its convolution weights (``weight_change``, %)."""
    from .tables import Table

    rows = [[f"{alpha:g}", f.variant, f"{f.relative_error[0]:.3g}", f"{f.relative_error[-1]:.3g}",
             f"{100 * f.weight_change:.0f}"] for alpha, fits in fits_by_alpha.items() for f in fits]
    steps = sorted({f.steps[-1] for fits in fits_by_alpha.values() for f in fits})
    return Table(["alpha", "stack", "error at step 1", f"error at step {', '.join(map(str, steps))}",
                  "weights moved (%)"], rows, note="error: MSE / var(target), 1 for a constant prediction; weights "
                  "moved: ‖θ − θ₀‖ / ‖θ₀‖ over the convolution weights")


def fit_facts(fits_by_alpha: dict[float, list[FitResult]]) -> dict[str, str]:
    """The numbers of :func:`fit_table` for the prose: ``a<alpha>-<stack>-start``, ``-end`` (errors,
    3 significant digits) and ``-moved`` (%, no decimals), e.g. ``a0-residual-zero-init-moved``."""
    out = {}
    for alpha, fits in fits_by_alpha.items():
        for f in fits:
            key = f"a{alpha:g}-{_slug(f.variant)}"
            out |= {f"{key}-start": f"{f.relative_error[0]:.3g}", f"{key}-end": f"{f.relative_error[-1]:.3g}",
                    f"{key}-moved": f"{100 * f.weight_change:.0f}"}
    return out
