"""The ImageNet networks of paper Table 1 (18, 34, 50, 101 and 152 layers).

A 7x7/2 convolution with 64 filters, 3x3/2 max pooling, four stages (conv2_x ... conv5_x) of
basic (18, 34) or bottleneck (50, 101, 152) blocks with 64, 128, 256, 512 filters, global average
pooling and a 1000-way fully-connected layer.  Names follow torchvision's ``models/resnet.py``, so
``model.load_state_dict(torchvision.models.resnet50().state_dict())`` works as is.
"""
from __future__ import annotations

from torch import Tensor, nn

from .blocks import (
    SHORTCUT_OPTIONS,
    BasicBlock,
    Bottleneck,
    PlainBlock,
    PlainBottleneck,
    init_paper_,
    make_shortcut,
)
from .cifar import check_num_classes

# depth -> (block kind, blocks per stage), paper Table 1
IMAGENET_LAYOUTS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STRIDE_PLACEMENTS = ("1x1", "3x3")
# Paper Table 1, bottom row: "FLOPs" of each network at 224x224, in billions. The paper's FLOPs are
# multiply-adds (what :func:`resnet_book.analysis.count_macs` returns), counted with its own stride
# placement (``stride_in="1x1"``).
PAPER_TABLE1_GFLOPS: dict[int, float] = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}


class ImageNetResNet(nn.Module):
    """ResNet (or plain net) for 224x224 inputs; see :func:`imagenet_resnet`."""

    def __init__(
        self,
        depth: int,
        *,
        residual: bool = True,
        shortcut: str = "B",
        stride_in: str = "3x3",
        num_classes: int = 1000,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if depth not in IMAGENET_LAYOUTS:
            raise ValueError(
                f"ImageNet ResNet depth must be one of paper Table 1's {', '.join(map(str, IMAGENET_LAYOUTS))}; got {depth!r}"
            )
        check_num_classes(num_classes)
        if shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(f"unknown shortcut option {shortcut!r}; allowed: {', '.join(SHORTCUT_OPTIONS)}")
        if stride_in not in STRIDE_PLACEMENTS:
            raise ValueError(f"unknown stride_in {stride_in!r}; allowed: '1x1' (paper), '3x3' (torchvision v1.5)")
        kind, layers = IMAGENET_LAYOUTS[depth]
        self.depth, self.residual, self.shortcut_option, self.stride_in = depth, residual, shortcut, stride_in
        if kind == "basic":
            block = BasicBlock if residual else PlainBlock
        else:
            block = Bottleneck if residual else PlainBottleneck
        self.block = block

        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0], stride=1)
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_paper_(self, zero_init_residual)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        block = self.block
        layers = []
        for i in range(blocks):
            s = stride if i == 0 else 1
            out = planes * block.expansion
            downsample = make_shortcut(self.shortcut_option, self.inplanes, out, s) if self.residual else None
            if block.expansion == 1:
                layers.append(block(self.inplanes, planes, s, downsample))
            else:
                layers.append(block(self.inplanes, planes, s, downsample, stride_in=self.stride_in))
            self.inplanes = out
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def imagenet_resnet(
    depth: int,
    *,
    residual: bool = True,
    shortcut: str = "B",
    stride_in: str = "3x3",
    num_classes: int = 1000,
    zero_init_residual: bool = False,
) -> ImageNetResNet:
    """An ImageNet ResNet of paper Table 1.

    ``shortcut="B"`` (projections where the shape changes) is what the paper's 50/101/152 use and
    what torchvision implements.  ``stride_in="1x1"`` is the paper's stride placement in the
    bottleneck; ``"3x3"`` is torchvision's ("v1.5"), whose pretrained weights load unchanged.
    Plain nets exist for 18 and 34 layers, as in the paper.
    """
    if not residual and depth not in (18, 34):
        raise ValueError(f"plain ImageNet nets are defined for depth 18 and 34 (paper Table 2); got {depth!r}")
    return ImageNetResNet(
        depth,
        residual=residual,
        shortcut=shortcut,
        stride_in=stride_in,
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
    )
