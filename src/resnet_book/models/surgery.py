"""The paper's construction argument, made concrete (He et al. 2016, Sec. 1).

"There exists a solution by construction to the deeper model: the added layers are identity
mapping, and the other layers are copied from the learned shallower model."  For the CIFAR plain
nets this is exact: a plain block whose two convolutions are Dirac (identity) kernels and whose
BN layers pass their input through (gamma 1, beta 0, running mean 0, running variance 1 - eps)
maps any non-negative input -- every block's input is the output of a ReLU -- to itself.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import PlainBlock
from .cifar import CifarResNet, cifar_blocks_per_stage, cifar_resnet


@torch.no_grad()
def make_identity_(block: PlainBlock) -> PlainBlock:
    """Turn a shape-keeping plain block into the identity on non-negative inputs (in eval mode)."""
    if not block.keeps_shape:
        raise ValueError("only a block that keeps the shape (stride 1, same width) can be an identity")
    for conv in (block.conv1, block.conv2):
        nn.init.dirac_(conv.weight)
    for bn in (block.bn1, block.bn2):
        bn.weight.fill_(1)
        bn.bias.zero_()
        bn.running_mean.zero_()
        bn.running_var.fill_(1 - bn.eps)  # (x - 0) / sqrt(var + eps) = x
    return block


@torch.no_grad()
def deepen_with_identity_blocks(shallow: CifarResNet, depth: int) -> CifarResNet:
    """A deeper plain net that computes what ``shallow`` computes (in eval mode).

    The stem, the first blocks of each stage and the classifier are copied from ``shallow``; the
    extra blocks at the end of each stage are identities.
    """
    if shallow.residual or shallow.preact:
        raise ValueError("the construction is shown for plain nets (residual nets already contain identities)")
    n_old, n_new = cifar_blocks_per_stage(shallow.depth), cifar_blocks_per_stage(depth)
    if n_new < n_old:
        raise ValueError(f"depth {depth} is not deeper than {shallow.depth}")
    deep = cifar_resnet(depth, residual=False, num_classes=shallow.fc.out_features)
    deep.conv1.load_state_dict(shallow.conv1.state_dict())
    deep.bn1.load_state_dict(shallow.bn1.state_dict())
    deep.fc.load_state_dict(shallow.fc.state_dict())
    for name in ("layer1", "layer2", "layer3"):
        old, new = getattr(shallow, name), getattr(deep, name)
        for i in range(n_new):
            if i < n_old:
                new[i].load_state_dict(old[i].state_dict())
            else:
                make_identity_(new[i])
    return deep.eval()
