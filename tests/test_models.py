"""Exactness of the paper's networks: parameter counts, torchvision equivalence, FLOPs, structure."""
import pytest
import torch
import torchvision
from torch import nn

from resnet_book.analysis import count_macs, count_parameters
from resnet_book.models import (
    BasicBlock,
    Bottleneck,
    PlainBlock,
    PreActBlock,
    ShortcutA,
    build_model,
    cifar_resnet,
    he_init_,
    imagenet_resnet,
    parse_model_name,
)

# Paper Sec. 4.2 / Table 6 (0.27M ... 19.4M), exact counts for option A.
CIFAR_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962, 1202: 19_421_274}
TORCHVISION_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
PAPER_GMACS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}  # paper Table 1, "FLOPs" = multiply-adds
TORCHVISION_GFLOPS = {18: 1.81, 34: 3.66, 50: 4.09, 101: 7.80, 152: 11.51}  # torchvision model docs


@pytest.mark.parametrize("depth", sorted(CIFAR_PARAMS))
def test_cifar_parameter_counts_match_the_paper(depth):
    assert count_parameters(cifar_resnet(depth)) == CIFAR_PARAMS[depth]


@pytest.mark.parametrize("depth", [20, 56])
def test_plain_net_has_the_same_layers_as_option_a(depth):
    plain, res = cifar_resnet(depth, residual=False), cifar_resnet(depth)
    assert count_parameters(plain) == CIFAR_PARAMS[depth]
    assert [k for k in plain.state_dict()] == [k for k in res.state_dict()]
    # Same weights, different function: only the shortcut differs.
    plain.load_state_dict(res.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(plain.eval()(x), res.eval()(x))
    assert all(type(b) is PlainBlock for b in plain.modules() if isinstance(b, BasicBlock))


def test_shortcut_options_differ_only_by_projections():
    a, b, c = (cifar_resnet(20, shortcut=o) for o in "ABC")
    # B: two 1x1 projections (16->32, 32->64) + their BN.
    assert count_parameters(b) - count_parameters(a) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    # C: a projection on all 9 shortcuts.
    proj = 3 * (16 * 16 + 32) + (16 * 32 + 64) + 2 * (32 * 32 + 64) + (32 * 64 + 128) + 2 * (64 * 64 + 128)
    assert count_parameters(c) - count_parameters(a) == proj
    assert sum(isinstance(m, ShortcutA) for m in a.modules()) == 2


def test_option_a_zero_pads_and_subsamples():
    x = torch.randn(2, 16, 8, 8)
    y = ShortcutA(16, 32, stride=2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


@pytest.mark.parametrize("name", ["resnet20", "plain20", "preresnet20", "resnet18", "resnet50"])
def test_output_shapes(name):
    model = build_model(name).eval()
    size = 32 if parse_model_name(name).family == "cifar" else 64
    classes = 10 if size == 32 else 1000
    assert model(torch.randn(2, 3, size, size)).shape == (2, classes)
    assert build_model(name, num_classes=7).eval()(torch.randn(1, 3, size, size)).shape == (1, 7)


def test_cifar_feature_map_sizes_and_widths():
    model = cifar_resnet(20).eval()
    shapes = []
    for stage in (model.layer1, model.layer2, model.layer3):
        stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    model(torch.randn(1, 3, 32, 32))
    assert shapes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert n_conv + 1 == 20  # 19 convolutions + 1 fully-connected layer


@pytest.mark.parametrize("depth", sorted(TORCHVISION_PARAMS))
def test_imagenet_matches_torchvision(depth):
    ours = imagenet_resnet(depth).eval()
    theirs = getattr(torchvision.models, f"resnet{depth}")(weights=None).eval()
    assert count_parameters(ours) == TORCHVISION_PARAMS[depth] == count_parameters(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    # Randomise BN statistics so the comparison is not trivially about zeros.
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize("depth", sorted(PAPER_GMACS))
def test_multiply_adds_match_paper_table_1(depth):
    x = torch.randn(1, 3, 224, 224)
    paper = count_macs(imagenet_resnet(depth, stride_in="1x1"), x) / 1e9
    assert paper == pytest.approx(PAPER_GMACS[depth], rel=0.03)
    v15 = count_macs(imagenet_resnet(depth, stride_in="3x3"), x) / 1e9
    assert v15 == pytest.approx(TORCHVISION_GFLOPS[depth], rel=0.01)


def test_stride_placement():
    b1 = imagenet_resnet(50, stride_in="1x1").layer2[0]
    b3 = imagenet_resnet(50, stride_in="3x3").layer2[0]
    assert (b1.conv1.stride, b1.conv2.stride) == ((2, 2), (1, 1))
    assert (b3.conv1.stride, b3.conv2.stride) == ((1, 1), (2, 2))
    assert isinstance(b1, Bottleneck)


def test_preactivation_ordering():
    model = cifar_resnet(20, preact=True)
    block = model.layer1[0]
    assert isinstance(block, PreActBlock)
    # BN -> ReLU -> conv, BN -> ReLU -> conv, in the order the forward pass calls them.
    calls = []
    for name in ("bn1", "relu", "conv1", "bn2", "conv2"):
        getattr(block, name).register_forward_hook(lambda m, i, o, n=name: calls.append(n))
    block(torch.randn(1, 16, 8, 8))
    assert calls == ["bn1", "relu", "conv1", "bn2", "relu", "conv2"]
    # Clean addition: output = x + F(x) exactly, nothing after.
    block.eval()
    x = torch.randn(1, 16, 8, 8)
    assert torch.allclose(block(x), x + block.residual_branch(x))


def test_residual_block_is_f_plus_x():
    block = BasicBlock(16, 16).eval()
    x = torch.relu(torch.randn(2, 16, 8, 8))
    assert torch.allclose(block(x), torch.relu(block.residual_branch(x) + x))


def test_zero_init_residual_starts_at_identity():
    model = cifar_resnet(20, zero_init_residual=True).eval()
    for block in model.layer1:
        assert torch.count_nonzero(block.bn2.weight) == 0
        x = torch.relu(torch.randn(1, 16, 8, 8))
        assert torch.allclose(block(x), x)
    pre = cifar_resnet(20, preact=True, zero_init_residual=True).eval()
    x = torch.randn(1, 16, 8, 8)
    assert torch.equal(pre.layer1[1](x), x)


def test_he_init_and_bn_init():
    model = cifar_resnet(56)
    conv = model.layer2[1].conv1
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.1)
    assert torch.all(model.layer1[0].bn1.weight == 1) and torch.all(model.layer1[0].bn1.bias == 0)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_he_init_draws_each_conv_with_the_std_of_its_mode_and_leaves_the_rest(mode):
    torch.manual_seed(0)
    model = cifar_resnet(56, residual=False, norm_layer=nn.Identity)
    fc = model.fc.weight.clone()
    assert he_init_(model, mode) is model
    for name, k_in, k_out in (("conv1", 3, 16), ("layer2.0.conv1", 16, 32), ("layer3.1.conv2", 64, 64)):
        conv = model.get_submodule(name)
        fan = 9 * (k_in if mode == "fan_in" else k_out)
        # 432 to 36,864 weights: the sample std is within 10% of the drawn one (3 standard errors or more)
        assert conv.weight.std().item() == pytest.approx((2 / fan) ** 0.5, rel=0.1), name
        assert abs(conv.weight.mean().item()) < 0.2 * (2 / fan) ** 0.5, name
    assert torch.equal(model.fc.weight, fc)
    # the two modes differ where the widths differ: stage 2's first convolution, 16 -> 32 channels
    stage2 = model.layer2[0].conv1.weight.std().item()
    assert stage2 == pytest.approx((2 / (9 * 16)) ** 0.5 if mode == "fan_in" else (2 / (9 * 32)) ** 0.5, rel=0.05)
    # and the draws are reproducible from the global seed
    torch.manual_seed(1)
    a = he_init_(cifar_resnet(20), mode).layer1[0].conv1.weight.clone()
    torch.manual_seed(1)
    assert torch.equal(he_init_(cifar_resnet(20), mode).layer1[0].conv1.weight, a)


def test_he_init_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="fan_in, fan_out.*'fan_avg'"):
        he_init_(cifar_resnet(20), "fan_avg")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: cifar_resnet(21), "6n\\+2"),
        (lambda: cifar_resnet(2), "6n\\+2"),
        (lambda: cifar_resnet(20, shortcut="D"), "allowed: A, B, C"),
        (lambda: cifar_resnet(20, num_classes=0), "positive integer"),
        (lambda: cifar_resnet(20, num_classes=2.5), "positive integer"),
        (lambda: imagenet_resnet(20), "18, 34, 50, 101, 152"),
        (lambda: imagenet_resnet(50, stride_in="2x2"), "'1x1'"),
        (lambda: imagenet_resnet(50, shortcut="Z"), "allowed: A, B, C"),
        (lambda: imagenet_resnet(50, residual=False), "18 and 34"),
        (lambda: build_model("resnet21"), "6n\\+2"),
        (lambda: build_model("vgg16"), "allowed: resnet<d>"),
        (lambda: build_model(56), "allowed: resnet<d>"),
        (lambda: cifar_resnet(20, residual=False, preact=True), "preact"),
    ],
)
def test_bad_input_names_what_is_allowed(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_registry():
    assert parse_model_name("resnet50").family == "imagenet"
    assert parse_model_name("cifar_resnet50").family == "cifar"
    assert parse_model_name("resnet110").family == "cifar"
    assert parse_model_name("plain56").residual is False
    assert parse_model_name("preresnet110").preact is True
    assert count_parameters(build_model("resnet56")) == CIFAR_PARAMS[56]
    assert count_parameters(build_model("resnet34", shortcut="A")) < TORCHVISION_PARAMS[34]


def test_deeper_plain_net_built_from_identities_computes_the_same_function():
    from resnet_book.models.surgery import deepen_with_identity_blocks

    torch.manual_seed(0)
    shallow = cifar_resnet(20, residual=False)
    with torch.no_grad():  # make BN statistics non-trivial, as after training
        for m in shallow.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    shallow.eval()
    deep = deepen_with_identity_blocks(shallow, 56)
    assert count_parameters(deep) == CIFAR_PARAMS[56]
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        a, b = shallow(x), deep(x)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    assert torch.equal(a.argmax(1), b.argmax(1))
    with pytest.raises(ValueError, match="plain nets"):
        deepen_with_identity_blocks(cifar_resnet(20), 56)
    with pytest.raises(ValueError, match="not deeper"):
        deepen_with_identity_blocks(shallow, 14)


def test_norm_layer_identity_removes_every_batchnorm():
    for residual, preact in ((True, False), (False, False), (True, True)):
        with_bn = cifar_resnet(20, residual=residual, preact=preact)
        without = cifar_resnet(20, residual=residual, preact=preact, norm_layer=nn.Identity)
        n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in with_bn.modules())
        bn_params = sum(p.numel() for m in with_bn.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
        assert not any(isinstance(m, nn.BatchNorm2d) for m in without.modules()) and n_bn > 0
        assert sum(p.numel() for p in without.parameters()) == sum(p.numel() for p in with_bn.parameters()) - bn_params
        # the convolutions are the same layers, under the same names
        convs = lambda m: [n for n, c in m.named_modules() if isinstance(c, nn.Conv2d)]  # noqa: E731
        assert convs(with_bn) == convs(without)
        assert without(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="needs a BatchNorm"):
        cifar_resnet(20, norm_layer=nn.Identity, zero_init_residual=True)
    # option B/C projections take the norm layer too
    assert not any(isinstance(m, nn.BatchNorm2d) for m in cifar_resnet(20, shortcut="C", norm_layer=nn.Identity).modules())


def _cifar_bottleneck_counts(n):
    """Parameters and multiply-adds of the CIFAR bottleneck net (9n+2 layers), counted by hand:
    stem 3x3 conv 3->16 + BN; per stage n blocks [1x1, p; 3x3, p; 1x1, 4p] with p = 16, 32, 64, the
    stride on the 3x3 of the first block of stages 2 and 3, a 1x1 projection + BN where the shape
    changes (option B); global pooling; fc 256->10."""
    params, macs = 3 * 9 * 16 + 2 * 16, 3 * 9 * 16 * 32 * 32
    c_in, size = 16, 32
    for p, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(n):
            s = stride if i == 0 else 1
            out = size // s
            params += c_in * p + 9 * p * p + p * 4 * p + 2 * (p + p + 4 * p)
            macs += c_in * p * size * size + 9 * p * p * out * out + p * 4 * p * out * out
            if c_in != 4 * p or s != 1:  # projection shortcut
                params += c_in * 4 * p + 2 * 4 * p
                macs += c_in * 4 * p * out * out
            c_in, size = 4 * p, out
    return params + 256 * 10 + 10, macs + 256 * 10


@pytest.mark.parametrize("depth", [11, 29, 83, 164])
def test_cifar_bottleneck_parameters_and_multiply_adds_are_exact(depth):
    model = build_model(f"bottleneck{depth}")
    params, macs = _cifar_bottleneck_counts((depth - 2) // 9)
    assert count_parameters(model) == params
    assert count_macs(model, torch.zeros(1, 3, 32, 32)) == macs
    assert model.shortcut_option == "B" and isinstance(model.layer1[0], Bottleneck)


def test_cifar_bottleneck_nets_match_their_basic_block_counterparts():
    # Identity Mappings, appendix and Table 4: ResNet-164 (bottleneck) has 1.7M parameters, "roughly
    # the same number" as ResNet-110 (1.7M)
    assert round(count_parameters(build_model("bottleneck164")) / 1e6, 1) == 1.7
    assert round(count_parameters(build_model("resnet110")) / 1e6, 1) == 1.7
    # the `bottleneck` experiment's pair: ResNet-56 and the 83-layer bottleneck net differ by < 2% in
    # multiply-adds and parameters
    x = torch.zeros(1, 3, 32, 32)
    basic, bottle = build_model("resnet56"), build_model("bottleneck83")
    assert abs(count_macs(bottle, x) / count_macs(basic, x) - 1) < 0.02
    assert abs(count_parameters(bottle) / count_parameters(basic) - 1) < 0.02
    assert bottle(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="9n\\+2"):
        build_model("bottleneck57")
