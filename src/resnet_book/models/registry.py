"""Model names used by the CLI, experiments and notebooks.

=====================  =========================================================
name                   model
=====================  =========================================================
``resnet<d>``          ImageNet ResNet if ``d`` is in paper Table 1 (18, 34, 50,
                       101, 152), otherwise the CIFAR ResNet of depth ``d = 6n+2``
``plain<d>``           the plain counterpart (ImageNet: 18, 34; CIFAR: 6n+2)
``preresnet<d>``       CIFAR ResNet with pre-activation units (Identity Mappings)
``bottleneck<d>``      CIFAR ResNet of bottleneck blocks, ``d = 9n+2`` (Identity
                       Mappings' ResNet-164 is ``bottleneck164``), option B
``cifar_resnet<d>``    CIFAR ResNet even where ``d`` is also a Table 1 depth (50, 152)
``cifar_plain<d>``     likewise for plain nets
=====================  =========================================================

Keyword arguments (``shortcut=``, ``zero_init_residual=``, ``num_classes=``...) pass through.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from .cifar import cifar_blocks_per_stage, cifar_resnet
from .imagenet import IMAGENET_LAYOUTS, imagenet_resnet

_NAME = re.compile(r"^(cifar_)?(resnet|plain|preresnet|bottleneck)(\d+)$")
NAME_PATTERNS = ("resnet<d>", "plain<d>", "preresnet<d>", "bottleneck<d>", "cifar_resnet<d>", "cifar_plain<d>")
EXAMPLES = ("resnet20", "resnet56", "resnet110", "plain20", "plain56", "preresnet110", "resnet18", "resnet50", "plain34")


@dataclass(frozen=True)
class ModelSpec:
    """What a model name means."""

    name: str
    family: str  # "cifar" or "imagenet"
    depth: int
    residual: bool
    preact: bool
    bottleneck: bool = False  # CIFAR nets of bottleneck blocks (depth 9n+2)

    @property
    def num_classes(self) -> int:
        return 10 if self.family == "cifar" else 1000


def display_name(label: str) -> str:
    """How the book writes a model name or run label: 'plain20' -> 'plain-20', 'resnet56-B' ->
    'ResNet-56-B', 'preresnet110' -> 'pre-act ResNet-110'; anything else is returned as it is."""
    for family, name in (("preresnet", "pre-act ResNet"), ("resnet", "ResNet"), ("plain", "plain")):
        if label.startswith(family) and label[len(family):][:1].isdigit():
            return f"{name}-{label[len(family):]}"
    return label


def parse_model_name(name: object) -> ModelSpec:
    """Decode a model name; one ValueError naming the allowed forms if it is not one."""
    m = _NAME.match(name) if isinstance(name, str) else None
    if not m:
        raise ValueError(
            f"unknown model name {name!r}; allowed: {', '.join(NAME_PATTERNS)} "
            f"(for example {', '.join(EXAMPLES)})"
        )
    forced_cifar, kind, depth = bool(m.group(1)), m.group(2), int(m.group(3))
    if kind in ("preresnet", "bottleneck") and forced_cifar:
        raise ValueError(f"unknown model name {name!r}; use '{kind}<d>' (always CIFAR)")
    if kind == "bottleneck":
        cifar_blocks_per_stage(depth, bottleneck=True)  # 9n+2, else a ValueError naming the depths
        return ModelSpec(name, "cifar", depth, True, False, True)
    imagenet = not forced_cifar and kind != "preresnet" and depth in IMAGENET_LAYOUTS
    if imagenet:
        if kind == "plain" and depth not in (18, 34):
            raise ValueError(f"unknown model name {name!r}: plain ImageNet nets are plain18 and plain34")
        return ModelSpec(name, "imagenet", depth, kind != "plain", False)
    try:
        cifar_blocks_per_stage(depth)
    except ValueError as err:
        raise ValueError(
            f"unknown model name {name!r}: depth {depth} is neither a paper Table 1 depth "
            f"({', '.join(map(str, IMAGENET_LAYOUTS))}) nor a CIFAR depth 6n+2 (20, 32, 44, 56, 110, ...)"
        ) from err
    return ModelSpec(name, "cifar", depth, kind != "plain", kind == "preresnet")


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a model by name, e.g. ``build_model("resnet56")`` or ``build_model("resnet34", shortcut="A")``."""
    spec = parse_model_name(name)
    if spec.family == "imagenet":
        return imagenet_resnet(spec.depth, residual=spec.residual, **kwargs)
    return cifar_resnet(spec.depth, residual=spec.residual, preact=spec.preact, bottleneck=spec.bottleneck, **kwargs)
