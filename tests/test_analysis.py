"""Introspection the chapters rely on: layer responses, gradient norms, lesioning, path counts, bench."""
import pytest
import torch

from resnet_book import analysis
from resnet_book.models import cifar_resnet


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))


def test_layer_responses_are_post_bn_pre_addition(batch):
    x, _ = batch
    model = cifar_resnet(20).eval()
    bn = analysis.layer_responses(model, x, which="bn")
    assert len(bn) == 18  # two 3x3 layers in each of the 9 blocks
    branch = analysis.layer_responses(model, x, which="branch")
    assert list(branch) == [name for name, _ in analysis.blocks(model)]
    # the branch response of a block is exactly the std of F(x) computed by hand
    first = model.layer1[0]
    with torch.no_grad():
        stem = model.relu(model.bn1(model.conv1(x)))
        assert branch["layer1.0"] == pytest.approx(first.residual_branch(stem).std().item(), rel=1e-5)
    assert bn["layer1.0.bn2"] == pytest.approx(branch["layer1.0"], rel=1e-6)
    with pytest.raises(ValueError, match="'bn', 'branch'"):
        analysis.layer_responses(model, x, which="relu")


def test_activation_and_gradient_profiles(batch):
    x, y = batch
    model = cifar_resnet(20, residual=False)
    stats = analysis.activation_stats(model, x, y)
    assert len(stats) == 9 and all(v["grad_norm"] > 0 and v["act_std"] > 0 for v in stats.values())
    norms = analysis.gradient_norms(model, x, y)
    assert len(norms) == 20 and list(norms)[0] == "conv1" and list(norms)[-1] == "fc"
    assert all(p.grad is None for p in model.parameters())  # leaves no gradients behind


def test_lesion_drops_blocks_and_restores_them(batch):
    x, _ = batch
    res = cifar_resnet(20).eval()
    with torch.no_grad():
        full = res(x)
        with analysis.lesion(res, ["layer2.1"]) as m:
            assert m.layer2[1].dropped
            lesioned = res(x)
        assert torch.equal(res(x), full) and not res.layer2[1].dropped
    assert not torch.equal(lesioned, full)
    # a dropped residual block passes its shortcut: the block computes relu-free x
    block = res.layer2[1]
    block.dropped = True
    h = torch.relu(torch.randn(2, 32, 16, 16))
    assert torch.equal(block(h), h)
    block.dropped = False
    plain = cifar_resnet(20, residual=False).eval()
    with pytest.raises(ValueError, match="cannot be dropped"):
        with analysis.lesion(plain, ["layer2.0"]):
            pass
    with pytest.raises(ValueError, match="not blocks"):
        with analysis.lesion(res, ["layer9.0"]):
            pass


def test_path_length_counts_are_binomial():
    assert analysis.path_length_counts(3) == [1, 3, 3, 1]
    assert sum(analysis.path_length_counts(54)) == 2 ** 54
    with pytest.raises(ValueError, match="non-negative"):
        analysis.path_length_counts(-1)


def test_bench_measures_both_pipelines(tiny):
    from resnet_book.bench import run_bench

    r = run_bench(tiny, model="resnet8", batch_size=32, steps=2, warmup=1, workers=0)
    assert r["ours_images_per_s"] > 0 and r["baseline_images_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["ours_images_per_s"] / r["baseline_images_per_s"], rel=0.02)
    assert r["precision"] == "fp32"  # "auto" on the CPU is the trainer's fp32
    assert run_bench(tiny, model="resnet8", batch_size=32, steps=1, warmup=0, workers=0,
                     precision="bf16")["precision"] == "bf16 autocast"
    with pytest.raises(ValueError, match="allowed: auto, fp32, bf16"):
        run_bench(tiny, model="resnet8", precision="fp16")


def test_lesion_study_drops_each_block_and_random_sets(batch):
    x, _ = batch
    plain = cifar_resnet(14, residual=False).eval()
    with torch.no_grad():
        ref = plain(x)
    calls = []

    def error(m):
        calls.append(sorted(n for n, b in analysis.blocks(m) if b.dropped))
        with torch.no_grad():
            return (m(x) - ref).abs().max().item()

    study = analysis.lesion_study(plain, error, ks=(2, 99), draws=2, seed=0)
    # plain-14: 6 blocks, the first of stages 2 and 3 change the shape and cannot be dropped
    assert analysis.droppable(plain) == ["layer1.0", "layer1.1", "layer2.1", "layer3.1"]
    assert [v is None for v in study["single"].values()] == [False, False, True, False, True, False]
    assert study["baseline"] == 0.0 and all(v > 0 for v in study["single"].values() if v is not None)
    assert list(study["random_sets"]) == ["2"] and len(study["random_sets"]["2"]) == 2  # k=99 > 4 is skipped
    assert calls[0] == [] and all(len(c) == 1 for c in calls[1:5]) and all(len(c) == 2 for c in calls[5:])
    assert not any(b.dropped for _, b in analysis.blocks(plain))
    again = analysis.lesion_study(plain, error, ks=(2,), draws=2, seed=0)
    assert again["random_sets"] == study["random_sets"]  # seeded


def test_mean_profile_averages_block_by_block():
    a = {"layer1.0": {"grad_norm": 1.0, "act_std": 2.0}, "layer1.1": {"grad_norm": 3.0, "act_std": 1.0}}
    b = {"layer1.0": {"grad_norm": 3.0, "act_std": 0.0}, "layer1.1": {"grad_norm": 5.0, "act_std": 1.0}}
    assert analysis.mean_profile([a, b], "grad_norm") == {"layer1.0": 2.0, "layer1.1": 4.0}
    with pytest.raises(ValueError, match="different networks"):
        analysis.mean_profile([a, {"layer2.0": a["layer1.0"]}], "grad_norm")
    with pytest.raises(ValueError, match="no profiles"):
        analysis.mean_profile([], "grad_norm")


def test_layer_responses_plot_shows_mean_in_order_and_ranked():
    import matplotlib

    matplotlib.use("Agg")
    from resnet_book import plots

    runs = [{"a": 1.0, "b": 3.0, "c": 2.0}, {"a": 3.0, "b": 1.0, "c": 2.0}]
    fig = plots.layer_responses({"ResNet-x": runs}, note="n")
    left, right = fig.axes[:2]
    assert list(left.lines[0].get_ydata()) == [2.0, 2.0, 2.0]  # per-layer mean over runs
    assert list(right.lines[0].get_ydata()) == [3.0, 2.0, 1.0]  # each run ranked, then averaged
    assert left.lines[0].get_linestyle() == "--" and left.get_legend().get_texts()[0].get_text() == "ResNet-x"
