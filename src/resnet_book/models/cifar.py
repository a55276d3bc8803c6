"""The CIFAR-10 networks of paper Sec. 4.2.

The first layer is a 3x3 convolution with 16 filters; then three stages of ``n`` blocks (``2n``
layers) on 32x32, 16x16 and 8x8 feature maps with 16, 32 and 64 filters; then global average
pooling and a 10-way fully-connected layer: ``6n + 2`` weighted layers in all.  Subsampling is by
convolutions with stride 2 at the start of stages 2 and 3.

``bottleneck=True`` builds the follow-up paper's CIFAR bottleneck networks (Identity Mappings,
appendix: ResNet-164 replaces each ``[3x3, 16; 3x3, 16]`` unit of ResNet-110 with
``[1x1, 16; 3x3, 16; 1x1, 64]``, "roughly the same number of parameters", and uses projection
shortcuts where the dimensions increase): ``n`` bottleneck blocks per stage, inner widths 16, 32,
64, outputs four times wider, ``9n + 2`` weighted layers.
"""
from __future__ import annotations

from torch import Tensor, nn

from .blocks import (
    SHORTCUT_OPTIONS,
    BasicBlock,
    Bottleneck,
    NormLayer,
    PlainBlock,
    PlainBottleneck,
    PreActBlock,
    init_paper_,
    make_shortcut,
)

CIFAR_WIDTHS = (16, 32, 64)
PAPER_CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
# Paper Table 6: CIFAR-10 test error (%) of the ResNets after the full recipe (Sec. 4.2). For
# ResNet-110 the paper gives the best of 5 runs, 6.43, and their mean and std, 6.61 +- 0.16.
PAPER_TABLE6_TEST_ERROR: dict[int, float] = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
PAPER_RESNET110_MEAN_STD: tuple[float, float] = (6.61, 0.16)  # Table 6, over 5 runs


def check_num_classes(num_classes: object) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    return num_classes


def cifar_blocks_per_stage(depth: object, *, bottleneck: bool = False) -> int:
    """``n`` for a depth ``6n + 2`` (``9n + 2`` for bottleneck blocks); a ValueError naming the
    allowed depths otherwise."""
    per_stage = 9 if bottleneck else 6
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < per_stage + 2 or (depth - 2) % per_stage:
        if bottleneck:
            raise ValueError(f"CIFAR bottleneck ResNet depth must be 9n+2 for an integer n >= 1 (11, 20, 29, ..., 83, "
                             f"the follow-up paper's 164 and 1001); got {depth!r}")
        raise ValueError(
            f"CIFAR ResNet depth must be 6n+2 for an integer n >= 1 (8, 14, 20, 26, ...; the paper uses "
            f"{', '.join(map(str, PAPER_CIFAR_DEPTHS))}); got {depth!r}"
        )
    return (depth - 2) // per_stage


class CifarResNet(nn.Module):
    """ResNet (or its plain counterpart) for 32x32 inputs; see :func:`cifar_resnet`."""

    def __init__(
        self,
        depth: int,
        *,
        residual: bool = True,
        shortcut: str | None = None,
        preact: bool = False,
        bottleneck: bool = False,
        num_classes: int = 10,
        zero_init_residual: bool = False,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        n = cifar_blocks_per_stage(depth, bottleneck=bottleneck)
        check_num_classes(num_classes)
        shortcut = shortcut if shortcut is not None else ("B" if bottleneck else "A")
        if shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(f"unknown shortcut option {shortcut!r}; allowed: {', '.join(SHORTCUT_OPTIONS)}")
        if preact and not residual:
            raise ValueError("preact=True needs residual=True: a pre-activation unit without its shortcut is a plain net")
        if preact and bottleneck:
            raise ValueError("preact=True with bottleneck=True is not built here; choose one of them")
        self.depth, self.residual, self.shortcut_option, self.preact = depth, residual, shortcut, preact
        self.bottleneck = bottleneck
        if bottleneck:
            block = Bottleneck if residual else PlainBottleneck
        else:
            block = PreActBlock if preact else (BasicBlock if residual else PlainBlock)
        self._norm_layer = norm_layer = norm_layer or nn.BatchNorm2d

        self.inplanes = CIFAR_WIDTHS[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, padding=1, bias=False)
        # The pre-activation net has no BN/ReLU here: the first unit starts with them.
        self.bn1 = nn.Identity() if preact else norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, CIFAR_WIDTHS[0], n, stride=1)
        self.layer2 = self._make_layer(block, CIFAR_WIDTHS[1], n, stride=2)
        self.layer3 = self._make_layer(block, CIFAR_WIDTHS[2], n, stride=2)
        # Pre-activation nets end with the BN + ReLU that the last unit left out.
        self.final_bn = norm_layer(CIFAR_WIDTHS[2]) if preact else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, num_classes)
        init_paper_(self, zero_init_residual)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            s = stride if i == 0 else 1
            downsample = (
                make_shortcut(self.shortcut_option, self.inplanes, planes * block.expansion, s, self._norm_layer)
                if self.residual
                else None
            )
            layers.append(block(self.inplanes, planes, s, downsample, norm_layer=self._norm_layer))
            self.inplanes = planes * block.expansion
        return nn.Sequential(*layers)

    def stem(self, x: Tensor) -> Tensor:
        """The first 3x3 convolution (with its BN and ReLU in the original unit; the pre-activation
        network leaves them to its first unit)."""
        return self.conv1(x) if self.preact else self.relu(self.bn1(self.conv1(x)))

    def head(self, x: Tensor) -> Tensor:
        """From the last stage's output to the logits: (the pre-activation network's final BN and
        ReLU,) global average pooling and the fully connected layer."""
        if self.preact:
            x = self.relu(self.final_bn(x))
        return self.fc(self.avgpool(x).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.layer3(self.layer2(self.layer1(self.stem(x)))))


def cifar_resnet(
    depth: int,
    *,
    residual: bool = True,
    shortcut: str | None = None,
    preact: bool = False,
    bottleneck: bool = False,
    num_classes: int = 10,
    zero_init_residual: bool = False,
    norm_layer: NormLayer | None = None,
) -> CifarResNet:
    """A CIFAR ResNet of ``depth = 6n + 2`` layers (paper Sec. 4.2).

    ``residual=False`` gives the plain net with the same layers; ``shortcut`` is option
    ``"A"`` (the paper's CIFAR choice and the default), ``"B"`` or ``"C"``; ``preact=True`` uses the
    pre-activation unit of the Identity Mappings paper; ``bottleneck=True`` uses bottleneck blocks
    (``depth = 9n + 2``, option B by default, as in the Identity Mappings paper's ResNet-164);
    ``norm_layer`` builds every normalisation layer (default ``nn.BatchNorm2d``; ``nn.Identity``
    for a network without normalisation).
    """
    return CifarResNet(
        depth,
        residual=residual,
        shortcut=shortcut,
        preact=preact,
        bottleneck=bottleneck,
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
        norm_layer=norm_layer,
    )
