"""The paper's networks: blocks, CIFAR nets (Sec. 4.2), ImageNet nets (Table 1) and a name registry."""
from .blocks import (
    SHORTCUT_OPTIONS,
    BasicBlock,
    Bottleneck,
    PlainBlock,
    PlainBottleneck,
    PreActBlock,
    ShortcutA,
    conv1x1,
    conv3x3,
    HE_INIT_MODES,
    he_init_,
    init_paper_,
    is_block,
    make_shortcut,
    projection,
)
from .cifar import PAPER_CIFAR_DEPTHS, PAPER_RESNET110_MEAN_STD, PAPER_TABLE6_TEST_ERROR, CifarResNet, cifar_resnet
from .imagenet import IMAGENET_LAYOUTS, PAPER_TABLE1_GFLOPS, ImageNetResNet, imagenet_resnet
from .registry import EXAMPLES, ModelSpec, build_model, display_name, parse_model_name

__all__ = [
    "SHORTCUT_OPTIONS", "BasicBlock", "Bottleneck", "PlainBlock", "PlainBottleneck", "PreActBlock",
    "ShortcutA", "conv1x1", "conv3x3", "HE_INIT_MODES", "he_init_", "init_paper_", "is_block", "make_shortcut",
    "projection",
    "PAPER_CIFAR_DEPTHS", "PAPER_RESNET110_MEAN_STD", "PAPER_TABLE6_TEST_ERROR", "CifarResNet", "cifar_resnet", "IMAGENET_LAYOUTS", "PAPER_TABLE1_GFLOPS", "ImageNetResNet",
    "imagenet_resnet", "EXAMPLES", "ModelSpec", "build_model", "display_name", "parse_model_name",
]
