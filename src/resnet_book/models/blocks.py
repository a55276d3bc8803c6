"""The building blocks of the paper, in the paper's words.

A *block* computes ``H(x)``.  A residual block writes it as ``H(x) = F(x) + x``: the stacked
layers learn the residual ``F`` and a shortcut carries ``x`` past them (He et al. 2016, Eq. 1).
A plain block has the same layers and no shortcut: ``H(x) = F(x)``.

Every block exposes ``residual_branch(x)`` -- the stacked layers ``F`` -- so the book can show and
measure ``F(x)`` on its own, and a ``dropped`` flag for lesion studies (Veit et al. 2016): a dropped
residual block passes only its shortcut; a dropped plain block passes its input unchanged (only
possible where the block keeps the shape).

Shortcut options when the shape changes (paper Sec. 3.3 and Table 3):

* ``"A"`` -- identity with strided subsampling and zero-padded extra channels (no parameters);
* ``"B"`` -- a 1x1 convolution + BN projection where the shape changes, identity elsewhere;
* ``"C"`` -- a projection on every shortcut.

``norm_layer`` (as in torchvision) builds each normalisation layer: ``nn.BatchNorm2d`` by default;
``nn.Identity`` gives the same network without batch normalisation (chapter 3 uses it to show
what BN does for the gradients).

Module and attribute names follow torchvision's ``models/resnet.py`` (``conv1``, ``bn1``,
``downsample``...) so state dicts are interchangeable.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

SHORTCUT_OPTIONS = ("A", "B", "C")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (BN follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias (BN follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class ShortcutA(nn.Module):
    """Option A: identity shortcut with zero padding for the new channels.

    Spatial size is halved by taking every ``stride``-th pixel; the ``out_planes - in_planes``
    extra channels are zeros.  No parameters, as in the paper's CIFAR networks.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int = 1) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(
                f"option A can only add channels (zero padding); got {in_planes} -> {out_planes}"
            )
        self.in_planes, self.out_planes, self.stride = in_planes, out_planes, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_planes - self.in_planes
        if extra:
            # F.pad pads the last dims first: (W_left, W_right, H_top, H_bottom, C_front, C_back).
            x = nnf.pad(x, (0, 0, 0, 0, 0, extra))
        return x

    def extra_repr(self) -> str:
        return f"{self.in_planes}, {self.out_planes}, stride={self.stride}, zero-padded"


NormLayer = Callable[[int], nn.Module]


def projection(in_planes: int, out_planes: int, stride: int = 1, norm_layer: NormLayer | None = None) -> nn.Sequential:
    """Options B/C: ``W_s x`` as a 1x1 convolution followed by BN (torchvision's ``downsample``)."""
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), (norm_layer or nn.BatchNorm2d)(out_planes))


def make_shortcut(option: str, in_planes: int, out_planes: int, stride: int,
                  norm_layer: NormLayer | None = None) -> nn.Module | None:
    """The shortcut module for one residual block, or ``None`` for the plain identity."""
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"unknown shortcut option {option!r}; allowed: {', '.join(SHORTCUT_OPTIONS)}")
    shape_changes = stride != 1 or in_planes != out_planes
    if option == "C" or (option == "B" and shape_changes):
        return projection(in_planes, out_planes, stride, norm_layer)
    if option == "A" and shape_changes:
        return ShortcutA(in_planes, out_planes, stride)
    return None


class _Block(nn.Module):
    """What every block shares: the residual/plain switch, the shortcut and lesioning."""

    expansion = 1
    residual = True  # plain subclasses set False: H(x) = F(x)

    def __init__(self, inplanes: int, out_planes: int, stride: int):
        super().__init__()
        self.inplanes, self.out_planes, self.stride = inplanes, out_planes, stride
        self.dropped = False

    def residual_branch(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def shortcut(self, x: Tensor) -> Tensor:
        """The shortcut path: ``x`` itself, or its option A/B/C mapping ``W_s x``."""
        return x if self.downsample is None else self.downsample(x)

    @property
    def keeps_shape(self) -> bool:
        return self.stride == 1 and self.inplanes == self.out_planes

    def forward(self, x: Tensor) -> Tensor:
        """H(x) = relu(F(x) + x) for a residual block, relu(F(x)) for its plain counterpart."""
        if self.dropped:
            return self._lesioned(x)
        out = self.residual_branch(x)
        if self.residual:
            out = out + self.shortcut(x)  # F(x) + x
        return self.relu(out)

    def _lesioned(self, x: Tensor) -> Tensor:
        if self.residual:
            return self.shortcut(x)
        if not self.keeps_shape:
            raise ValueError("a plain block that changes shape cannot be dropped: nothing can replace it")
        return x


class BasicBlock(_Block):
    """Two 3x3 convolutions (paper Fig. 2 / Fig. 5 left): ``relu(F(x) + x)``."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm_layer: NormLayer | None = None):
        super().__init__(inplanes, planes * self.expansion, stride)
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample  # registered last, as in torchvision (state-dict key order)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def residual_branch(self, x: Tensor) -> Tensor:
        """F(x) = BN(W2 relu(BN(W1 x)))."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class PlainBlock(BasicBlock):
    """The plain counterpart of :class:`BasicBlock`: the same layers, no shortcut, ``relu(F(x))``."""

    residual = False


class Bottleneck(_Block):
    """1x1 reduce, 3x3, 1x1 restore (paper Fig. 5 right): ``relu(F(x) + x)``.

    ``stride_in="1x1"`` puts the stride on the first 1x1 convolution as in the paper;
    ``"3x3"`` puts it on the 3x3 convolution, as torchvision does ("ResNet v1.5").
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        stride_in: str = "3x3",
        norm_layer: NormLayer | None = None,
    ):
        super().__init__(inplanes, planes * self.expansion, stride)
        if stride_in not in ("1x1", "3x3"):
            raise ValueError(f"unknown stride_in {stride_in!r}; allowed: '1x1' (paper), '3x3' (torchvision v1.5)")
        self.stride_in = stride_in
        norm_layer = norm_layer or nn.BatchNorm2d
        s1, s3 = (stride, 1) if stride_in == "1x1" else (1, stride)
        self.conv1 = conv1x1(inplanes, planes, s1)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def residual_branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class PlainBottleneck(Bottleneck):
    """The plain counterpart of :class:`Bottleneck`."""

    residual = False


class PreActBlock(_Block):
    """Full pre-activation unit (He et al. 2016b, "Identity Mappings", Fig. 4e).

    BN -> ReLU -> conv -> BN -> ReLU -> conv, then a clean addition ``x + F(x)`` with nothing
    after it, so the identity path runs unobstructed from block to block.  Where the shortcut
    must change shape it acts on the pre-activated input, as in the authors' code.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm_layer: NormLayer | None = None):
        super().__init__(inplanes, planes, stride)
        norm_layer = norm_layer or nn.BatchNorm2d
        self.bn1 = norm_layer(inplanes)
        self.relu = nn.ReLU(inplace=False)  # the input x must survive for the shortcut
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        # No BN ends the branch; zero-init targets the last convolution instead (see init).
        return self.bn2

    def _branch_from_preact(self, pre: Tensor) -> Tensor:
        return self.conv2(self.relu(self.bn2(self.conv1(pre))))

    def residual_branch(self, x: Tensor) -> Tensor:
        return self._branch_from_preact(self.relu(self.bn1(x)))

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        if self.dropped:
            return x if self.downsample is None else self.downsample(pre)
        identity = x if self.downsample is None else self.downsample(pre)
        return self._branch_from_preact(pre) + identity  # x + F(x), no ReLU after


BLOCKS: dict[str, type[_Block]] = {
    "basic": BasicBlock,
    "plain": PlainBlock,
    "bottleneck": Bottleneck,
    "plain_bottleneck": PlainBottleneck,
    "preact": PreActBlock,
}


def is_block(module: nn.Module) -> bool:
    return isinstance(module, _Block)


#: The two variants of He initialisation (He et al. 2015, Sec. 2.2): ``fan_in`` keeps the scale of
#: the forward signal, ``fan_out`` the scale of the gradient.  They differ only for convolutions
#: whose input and output widths differ.
HE_INIT_MODES = ("fan_in", "fan_out")


@torch.no_grad()
def he_init_(model: nn.Module, mode: str = "fan_out") -> nn.Module:
    """Re-draw the weight of every ``nn.Conv2d`` in ``model`` from He's normal initialisation,
    std = sqrt(2 / fan), where fan = k * k * in_channels (``mode="fan_in"``) or k * k *
    out_channels (``"fan_out"``, torchvision's choice and the library's default).  Nothing else
    (BN, the classifier, biases) is touched.  Returns ``model``.

    The draws use the global random generator, module by module, so re-initialising a freshly
    built network after ``torch.manual_seed(s)`` is reproducible.
    """
    if mode not in HE_INIT_MODES:
        raise ValueError(f"he_init_: mode must be one of {', '.join(HE_INIT_MODES)}; got {mode!r}")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
    return model


@torch.no_grad()
def init_paper_(model: nn.Module, zero_init_residual: bool = False) -> None:
    """He initialisation for convolutions, BN gamma=1 and beta=0 (paper Sec. 3.4).

    ``zero_init_residual`` sets the last BN gamma of each residual branch to zero (for the
    pre-activation unit, the last convolution), so every residual block starts as the identity
    (Goyal et al. 2017).  It is ignored for plain blocks, which would then output zeros.
    """
    he_init_(model, "fan_out")  # draws conv by conv, in module order: the same numbers as before
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if is_block(m) and m.residual:
                if not isinstance(m, PreActBlock) and not isinstance(m.last_bn, nn.BatchNorm2d):
                    raise ValueError("zero_init_residual needs a BatchNorm at the end of each residual branch; "
                                     "this model has none (norm_layer=nn.Identity?)")
                if isinstance(m, PreActBlock):
                    nn.init.zeros_(m.conv2.weight)
                else:
                    nn.init.zeros_(m.last_bn.weight)
