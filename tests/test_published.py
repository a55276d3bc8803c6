"""Published third-party weights (resnet_book.weights.published): the four fully trained CIFAR-10
ResNets of akamaster/pytorch_resnet_cifar10, loaded into our option-A models."""
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

import pinned_kernels
from conftest import SHARED_COPIES
from resnet_book import weights
from resnet_book.data import data_source, load_cifar10
from resnet_book.models import cifar_resnet
from resnet_book.train import error_rate

PARAMETERS = {"resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018}


def their_forward(state: dict, x: torch.Tensor) -> torch.Tensor:
    """The reference: the same weights evaluated in THEIR layout, written from the paper's option A
    (identity shortcut, strided subsampling, zero channels for the new dimensions) as that
    re-implementation pads it: zeros on BOTH sides of the subsampled input (w/4 channels each)."""
    sd = {k.removeprefix("module."): v for k, v in state.items()}

    def bn(t, p):
        return F.batch_norm(t, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"],
                            training=False, eps=1e-5)

    x = F.relu(bn(F.conv2d(x, sd["conv1.weight"], padding=1), "bn1"))
    n = len({k.split(".")[1] for k in sd if k.startswith("layer1.")})
    for s in (1, 2, 3):
        for i in range(n):
            p, stride = f"layer{s}.{i}.", 2 if s > 1 and i == 0 else 1
            out = F.relu(bn(F.conv2d(x, sd[p + "conv1.weight"], stride=stride, padding=1), p + "bn1"))
            out = bn(F.conv2d(out, sd[p + "conv2.weight"], padding=1), p + "bn2")
            if stride == 2:
                w = out.shape[1]
                x = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, w // 4, w // 4))
            x = F.relu(out + x)
    return F.linear(x.mean((2, 3)), sd["linear.weight"], sd["linear.bias"])


def random_theirs(depth: int, seed: int = 0) -> dict:
    """A state dict in their format (prefix, ``linear``, no batch counters) with random weights and
    random BN statistics, so that every channel matters."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in cifar_resnet(depth, shortcut="A").state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        t = torch.rand(v.shape, generator=g) + 0.5 if k.endswith(("running_var", "bn1.weight", "bn2.weight")) else (
            torch.randn(v.shape, generator=g) * (0.2 if "conv" in k else 0.5))
        out["module." + (k.replace("fc.", "linear.", 1) if k.startswith("fc.") else k)] = t
    return out


def test_from_akamaster_renames_and_permutes_the_residual_stream_channels():
    theirs = random_theirs(8)
    # mark each residual-stream channel with its index in their layout
    for s, w in ((2, 32), (3, 64)):
        theirs[f"module.layer{s}.0.bn2.bias"] = torch.arange(w, dtype=torch.float32)
    ours = weights.from_akamaster(theirs)
    # keys: exactly our model's, in its order, and every one named as in torchvision's ResNet
    assert list(ours) == list(cifar_resnet(8, shortcut="A").state_dict())
    tv = {k for k in torchvision.models.resnet18(weights=None).state_dict()}
    assert all(k in tv for k in ours), [k for k in ours if k not in tv]
    assert all(ours[k].item() == 0 for k in ours if k.endswith("num_batches_tracked"))
    assert torch.equal(ours["fc.bias"], theirs["module.linear.bias"])
    # stage 2 (width 32): our channel c < 16 is theirs c + 8; our zero channels are their 0..7 and 24..31
    p2 = list(range(8, 24)) + list(range(8)) + list(range(24, 32))
    assert ours["layer2.0.bn2.bias"].long().tolist() == p2
    # stage 3 (width 64) composed with stage 2: our channel c < 32 is theirs p2[c] + 16
    p3 = [c + 16 for c in p2] + list(range(16)) + list(range(48, 64))
    assert ours["layer3.0.bn2.bias"].long().tolist() == p3
    assert torch.equal(ours["fc.weight"], theirs["module.linear.weight"][:, p3])
    assert torch.equal(ours["layer3.0.conv1.weight"], theirs["module.layer3.0.conv1.weight"][:, p2])
    assert torch.equal(ours["layer2.0.conv1.weight"], theirs["module.layer2.0.conv1.weight"])  # stage 1: unpermuted
    # the channels inside a block are not permuted
    assert torch.equal(ours["layer3.0.bn1.bias"], theirs["module.layer3.0.bn1.bias"])
    # and the converted model computes their function (random weights, so every channel counts)
    model = cifar_resnet(8, shortcut="A").eval()
    model.load_state_dict(ours)
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), their_forward(theirs, x), rtol=1e-5, atol=1e-5)


def test_from_akamaster_refuses_another_state_dict():
    theirs = random_theirs(8)
    del theirs["module.layer2.0.bn2.bias"]
    with pytest.raises(weights.WeightsError, match="keys missing.*layer2.0.bn2.bias"):
        weights.from_akamaster(theirs)
    with pytest.raises(weights.WeightsError, match="no 'layer1' keys"):
        weights.from_akamaster({"fc.weight": torch.zeros(10, 64)})


@pytest.mark.parametrize("name", weights.PUBLISHED)
def test_published_equals_the_same_weights_in_their_layout(name):
    """Our model (channels permuted) against their layout: the same predictions, logits equal to
    float tolerance. Not bitwise: permuting channels changes the order of the convolutions' sums."""
    net = weights.published(name)
    assert not net.model.training and net.depth == int(name[6:]) and net.name == name
    assert sum(p.numel() for p in net.model.parameters()) == PARAMETERS[name]
    state = torch.load(net.path, map_location="cpu", weights_only=True)["state_dict"]
    images = torch.randint(0, 256, (64, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    x = net.normalize(images)
    with torch.no_grad():
        ours, ref = net.model(x), their_forward(state, x)
    assert torch.equal(ours.argmax(1), ref.argmax(1))
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_published_records_whose_weights_and_the_errors_to_compare():
    net = weights.published("resnet56")
    assert (net.published_error, net.paper_error) == (6.61, 6.97)
    assert [weights.published(n).published_error for n in ("resnet20", "resnet32", "resnet44")] == [8.27, 7.37, 6.90]
    assert net.credit == "trained by a public re-implementation (akamaster/pytorch_resnet_cifar10), not by this book"
    assert net.sha256 == weights.sha256(net.path)
    assert (net.path.parent / "LICENSE").read_text().startswith("Copyright (c) 2018, Yerlan Idelbayev")
    sums = dict(line.split()[::-1] for line in (net.path.parent / "SHA256SUMS").read_text().splitlines())
    assert sums[net.path.name] == net.sha256
    with pytest.raises(dataclasses.FrozenInstanceError):
        net.depth = 20


def test_published_leaves_the_global_random_state_alone():
    before = torch.random.get_rng_state()
    weights.published("resnet20")
    assert torch.equal(torch.random.get_rng_state(), before)


def test_normalize_is_imagenet_channel_statistics_on_pixels_in_0_1():
    norm = weights.published("resnet20").normalize
    u8 = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 32, 32)
    out = norm(u8)
    mean, std = torch.tensor(weights.IMAGENET_MEAN), torch.tensor(weights.IMAGENET_STD)
    torch.testing.assert_close(out[0, :, 0, 0], -mean / std)
    torch.testing.assert_close(out[1, :, 0, 0], (1 - mean) / std)
    torch.testing.assert_close(norm(u8.float() / 255), out)  # float in [0, 1] gives the same
    with pytest.raises(ValueError, match=r"in \[0, 1\].*already normalised"):
        norm(out)
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        norm(torch.zeros(3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8 .* or float"):
        norm(torch.zeros(1, 3, 32, 32, dtype=torch.int64))


def test_unknown_missing_or_damaged_weights_give_one_clear_error(tmp_path):
    with pytest.raises(weights.WeightsError, match="unknown published network 'resnet110'; allowed: resnet20, "
                                                   "resnet32, resnet44, resnet56"):
        weights.published("resnet110")
    with pytest.raises(weights.WeightsError, match=r"resnet20-12fca82f.th is not in .*tmp.*vendored in the repository"):
        weights.published("resnet20", root=tmp_path)
    folder = tmp_path / weights.PUBLISHED_FOLDER
    folder.mkdir()
    original = weights.published("resnet20").path
    damaged = folder / original.name
    shutil.copyfile(original, damaged)
    assert weights.published("resnet20", root=tmp_path).path == damaged  # an intact copy is accepted
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 1  # one bit flipped: still a loadable zip, other weights
    damaged.write_bytes(bytes(data))
    with pytest.raises(weights.WeightsError, match="damaged or altered: sha256 .* instead of 12fca82f0beb.*only that "
                                                   "file is accepted"):
        weights.published("resnet20", root=tmp_path)
    damaged.write_bytes(original.read_bytes()[:1000])  # truncated
    with pytest.raises(weights.WeightsError, match="damaged or altered"):
        weights.published("resnet20", root=tmp_path)


def test_published_folders_find_the_repository_copy_whatever_the_results_folder(tmp_path, monkeypatch):
    # the conftest points RESNET_BOOK_RESULTS at an empty folder: the checkout's copy is still found
    assert weights.published("resnet20").path.parent == weights.published_folders()[-1]
    # on Colab RESNET_BOOK_RESULTS=<clone>/data/results: <clone>/data/weights comes first
    clone = tmp_path / "clone"
    monkeypatch.setenv("RESNET_BOOK_RESULTS", str(clone / "data" / "results"))
    assert weights.published_folders()[0] == clone / "data" / "weights" / weights.PUBLISHED_FOLDER


# Their published test accuracies, as images right out of the 10,000 of the original-pixel test set.
PUBLISHED_CORRECT = {"resnet20": 9173, "resnet32": 9263, "resnet44": 9310, "resnet56": 9339}


def measure(data_root: str) -> dict:
    """Inside the pinned subprocess: how many test images each published net gets right."""
    pinned_kernels.require_pinned()
    torch.set_num_threads(1)
    data = load_cifar10(data_root, progress=False)
    out = {"source": data.source, "images": len(data.test_labels), "correct": {}}
    for name in weights.PUBLISHED:
        net = weights.published(name)
        wrong = error_rate(net.model, data.test_images, data.test_labels, net.normalize) * len(data.test_labels)
        out["correct"][name] = len(data.test_labels) - round(wrong)
    return out


@pytest.mark.slow
def test_published_weights_score_exactly_their_published_accuracies(shared_cifar):
    """91.73 / 92.63 / 93.10 / 93.39 % on the original-pixel test set, exactly (paper Table 6:
    91.25 / 92.49 / 92.83 / 93.03 %). An exact count compares with numbers recorded elsewhere, so it
    runs on pinned CPU kernels (pinned_kernels.py), one thread: about 3 CPU-minutes."""
    root = shared_cifar if data_source(shared_cifar) == "cifar10-original" else SHARED_COPIES["cifar10-original"]
    if not Path(root).is_dir():
        pytest.skip(f"the published accuracies are on the original pixels; {root} is absent "
                    f"(this run's copy, {shared_cifar}, is not it)")
    reason = pinned_kernels.unavailable()
    if reason:
        pytest.skip(reason)
    got = pinned_kernels.run(Path(__file__), "--measure", str(root))
    assert got == {"source": "cifar10-original", "images": 10_000, "correct": PUBLISHED_CORRECT}
    assert {n: round(100 - weights.published(n).published_error, 2) for n in weights.PUBLISHED} == {
        n: c / 100 for n, c in PUBLISHED_CORRECT.items()}


def test_the_weights_are_not_the_best_test_epoch():
    """The book says the weights are the last epoch's, not chosen on the test set: each file's
    ``best_prec1`` (the best test accuracy its trainer saw) is above the weights' own accuracy (their
    published number, which the test above measures exactly), so they cannot be that epoch's."""
    for name in weights.PUBLISHED:
        path = weights.published(name).path
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert set(state) == {"best_prec1", "state_dict"}, f"{path.name}: a checkpoint with an epoch entry?"
        assert float(state["best_prec1"]) > PUBLISHED_CORRECT[name] / 100, name


if __name__ == "__main__" and "--measure" in sys.argv:  # run by the test above with pinned kernels
    print(json.dumps(measure(sys.argv[sys.argv.index("--measure") + 1])))


def test_describe_names_whose_weights_which_images_and_who_measured():
    from resnet_book import published

    record = {"kind": "lesions", "credit": weights.CREDIT, "nets": {"resnet20": {}, "resnet56": {}},
              "data": {"source": "cifar10-original", "images": 10000}, "provenance": {"device": "CPU", "torch": "2.5.1"}}
    assert published.describe(record, "resnet56") == (
        "ResNet-56 trained by a public re-implementation (akamaster/pytorch_resnet_cifar10), not by this book; "
        "measured by this book's code on 10,000 test images of cifar10-original (CPU, torch 2.5.1)")
    assert published.describe(record).startswith("ResNet-20, ResNet-56 trained by a public")
    with pytest.raises(ValueError, match="'resnet32' is not in this 'lesions' measurement"):
        published.describe(record, "resnet32")
