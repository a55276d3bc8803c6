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
    # the ratio is rounded to 2 decimals: within half a unit of the last place
    assert r["ratio"] == pytest.approx(r["ours_images_per_s"] / r["baseline_images_per_s"], rel=0.02, abs=0.005)
    assert r["precision"] == "fp32"  # "auto" on the CPU is the trainer's fp32
    assert run_bench(tiny, model="resnet8", batch_size=32, steps=1, warmup=0, workers=0,
                     precision="bf16")["precision"] == "bf16 autocast"
    with pytest.raises(ValueError, match="allowed: auto, fp32, bf16, fp16"):
        run_bench(tiny, model="resnet8", precision="fp8")


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


def test_cost_breakdown_sums_to_the_totals_per_stage():
    from resnet_book.models import build_model

    x = torch.zeros(1, 3, 64, 64)
    for name in ("resnet18", "resnet50", "resnet20"):
        model = build_model(name)
        model.train()
        costs = analysis.cost_breakdown(model, x if name != "resnet20" else x[..., :32, :32])
        assert model.training  # mode restored
        stages = ["stem", "layer1", "layer2", "layer3"] + (["layer4"] if name != "resnet20" else []) + ["head"]
        assert list(costs) == stages
        xi = x if name != "resnet20" else x[..., :32, :32]
        assert sum(c["macs"] for c in costs.values()) == analysis.count_macs(model, xi)
        assert sum(c["parameters"] for c in costs.values()) == analysis.count_parameters(model)
        assert costs["head"]["macs"] == model.fc.in_features * model.fc.out_features
        assert analysis.count_activations(model, xi) == sum(c["activations"] for c in costs.values())


def test_values_written_by_the_blocks_of_fig_5():
    from resnet_book.models import BasicBlock, Bottleneck

    # basic: conv1, bn1, relu, conv2, bn2, relu (the ReLU module is called twice), 64 channels each;
    # bottleneck: six outputs of 64 channels and three (conv3, bn3, relu) of 256, at 56x56.
    assert analysis.count_activations(BasicBlock(64, 64), torch.zeros(1, 64, 56, 56)) == 6 * 64 * 56 * 56
    assert analysis.count_activations(Bottleneck(256, 64), torch.zeros(1, 256, 56, 56)) == (6 * 64 + 3 * 256) * 56 * 56


def test_resnet50_writes_2_85_times_the_values_of_resnet34():
    """The number chapter 4 states (torchvision's layout, 224x224)."""
    from resnet_book.models import build_model

    x = torch.zeros(1, 3, 224, 224)
    assert analysis.count_activations(build_model("resnet34"), x) == 11_240_936
    assert analysis.count_activations(build_model("resnet50"), x) == 32_040_424


def test_bottleneck_costs_17_p2_and_a_projection_makes_it_33_p2():
    from resnet_book.models import BasicBlock, Bottleneck, projection

    conv_weights = analysis.count_conv_weights
    for p in (4, 64):
        assert conv_weights(BasicBlock(p, p)) == 18 * p * p
        assert conv_weights(Bottleneck(4 * p, p)) == 17 * p * p
        assert conv_weights(Bottleneck(4 * p, p, downsample=projection(4 * p, 4 * p))) == 33 * p * p
    x = torch.zeros(1, 256, 56, 56)
    assert analysis.count_macs(Bottleneck(256, 64), x) == 17 * 64 * 64 * 56 * 56
    assert analysis.count_macs(BasicBlock(64, 64), x[:, :64]) == 18 * 64 * 64 * 56 * 56


def test_time_training_step_times_forward_and_backward_and_cleans_up():
    model = cifar_resnet(8).eval()
    times = analysis.time_training_step(model, torch.randn(2, 3, 32, 32), repeats=3, warmup=1)
    assert len(times) == 3 and all(t > 0 for t in times)
    assert not model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())  # no gradients left behind
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        analysis.time_training_step(model, torch.randn(2, 3, 32, 32), repeats=0)


def test_stage_costs_plot():
    import matplotlib

    matplotlib.use("Agg")
    from resnet_book import plots

    a = {"stem": {"parameters": 1e6, "macs": 2e9, "activations": 3e6}, "layer1": {"parameters": 2e6, "macs": 1e9, "activations": 1e6}}
    b = {"stem": {"parameters": 2e6, "macs": 2e9, "activations": 6e6}, "layer1": {"parameters": 2e6, "macs": 1e9, "activations": 1e6}}
    fig = plots.stage_costs({"A": a, "B": b}, note="n")
    params, macs, written = fig.axes[:3]
    assert [t.get_text() for t in written.get_xticklabels()] == ["stem", "conv2_x"]
    assert [p.get_height() for p in written.patches] == [3.0, 1.0, 6.0, 1.0]
    assert macs.get_title(loc="left") == "in all: A 3, B 3" and params.get_title(loc="left") == "in all: A 3, B 4"
    assert [t.get_text() for t in params.get_legend().get_texts()] == ["A", "B"]
    with pytest.raises(ValueError, match="different stages"):
        plots.stage_costs({"A": a, "C": {"stem": a["stem"]}})


def _sgd_steps(model, steps, dead):
    """The paper's optimiser on random data; the largest loss gradient seen, per block named in
    ``dead``, on those channels' last-conv filters."""
    worst = dict.fromkeys(dead, 0.0)

    def watch(m):
        for name, chans in dead.items():
            worst[name] = max(worst[name], m.get_submodule(name).conv2.weight.grad[chans].abs().max().item())

    analysis.sgd_on_random_data(model, steps, after_backward=watch)
    return worst


def test_zero_init_with_option_a_leaves_the_padded_channels_dead_and_option_b_does_not():
    torch.manual_seed(0)
    model = cifar_resnet(20, zero_init_residual=True)  # option A, the paper's CIFAR shortcut
    assert analysis.zero_padded_channels(model) == {"layer2.0": list(range(16, 32)), "layer3.0": list(range(32, 64))}
    # the padded channels stay 0 through every later block of the stage (their branches add 0 too),
    # and stage 3 inherits stage 2's dead channels 16-31 through its subsampling shortcut
    dead = {**{f"layer2.{i}": list(range(16, 32)) for i in range(3)},
            **{f"layer3.{i}": list(range(16, 64)) for i in range(3)}}
    start = {n: model.get_submodule(n).conv2.weight.detach().clone() for n in dead}
    worst = _sgd_steps(model, 10, dead)
    assert analysis.dead_channels(model) == dead  # gamma = beta = 0 exactly there, nowhere else
    for name, chans in dead.items():
        assert worst[name] == 0.0, f"{name}: the loss reached the dead channels' filters of conv2"
        moved = model.get_submodule(name).conv2.weight.detach()
        # those filters changed only by weight decay: every entry shrank by the same factor
        ratio = (moved[chans] / start[name][chans]).flatten()
        assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=0, atol=1e-6) and 0.99 < ratio[0] < 1
        assert not torch.equal(moved[: chans[0]], start[name][: chans[0]])  # the live channels learned
    out = {}
    model.layer3.register_forward_hook(lambda m, i, o: out.__setitem__("x", o))
    model.eval()(torch.randn(4, 3, 32, 32))
    assert torch.count_nonzero(out["x"][:, 16:]) == 0 and torch.count_nonzero(out["x"][:, :16]) > 0

    torch.manual_seed(0)
    proj = cifar_resnet(20, shortcut="B", zero_init_residual=True)
    assert analysis.zero_padded_channels(proj) == {}
    worst = _sgd_steps(proj, 10, dead)
    assert analysis.dead_channels(proj) == {}
    for name, chans in dead.items():
        assert worst[name] > 0
        assert torch.count_nonzero(proj.get_submodule(name).bn2.weight[chans]) == len(chans)


def test_dead_channels_right_after_zero_init_and_never_in_plain_or_standard_nets():
    assert analysis.dead_channels(cifar_resnet(20)) == {}
    assert analysis.dead_channels(cifar_resnet(20, residual=False)) == {}
    assert analysis.dead_channels(cifar_resnet(20, preact=True, zero_init_residual=True)) == {}
    fresh = analysis.dead_channels(cifar_resnet(20, zero_init_residual=True))
    assert len(fresh) == 9 and fresh["layer3.2"] == list(range(64))


def test_zero_init_resnet56_with_option_a_has_the_same_dead_channels_in_all_18_later_blocks():
    # the stored `zero-init` runs are ResNet-56 with option A: 16 of 32 and 48 of 64 channels dead
    torch.manual_seed(0)
    model = cifar_resnet(56, zero_init_residual=True)
    analysis.sgd_on_random_data(model, 2, batch_size=2)
    assert analysis.dead_channels(model) == {**{f"layer2.{i}": list(range(16, 32)) for i in range(9)},
                                             **{f"layer3.{i}": list(range(16, 64)) for i in range(9)}}


def test_branch_layers_trace_fig_5_and_the_diagram_draws_them():
    from resnet_book import plots
    from resnet_book.models import BasicBlock, Bottleneck, projection

    basic = analysis.branch_layers(BasicBlock(64, 64), torch.zeros(1, 64, 56, 56))
    assert [e["kind"] for e in basic["branch"]] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d"]
    assert basic["shortcut"] == [] and basic["residual"]
    bottle = analysis.branch_layers(Bottleneck(256, 64, downsample=projection(256, 256)), torch.zeros(1, 256, 56, 56))
    convs = [(e["kernel"], e["in_channels"], e["out_channels"]) for e in bottle["branch"] if e["kind"] == "Conv2d"]
    assert convs == [(1, 256, 64), (3, 64, 64), (1, 64, 256)]
    assert bottle["branch"][-1]["out_shape"] == (256, 56, 56)
    assert [e["kind"] for e in bottle["shortcut"]] == ["Conv2d", "BatchNorm2d"]
    fig = plots.block_diagrams({"basic": basic, "bottleneck": bottle})
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert "1×1 conv, 256→64\n→ 64×56×56" in texts and "1×1 conv, 256→256 + BN" in texts and "+" in texts
    with pytest.raises(ValueError, match="block"):
        analysis.branch_layers(torch.nn.Conv2d(3, 3, 1), torch.zeros(1, 3, 4, 4))


def test_average_stats_and_profile_table():
    a = {"layer1.0": {"grad_norm": 8.0, "act_std": 2.0}, "layer1.1": {"grad_norm": 2.0, "act_std": 1.0}}
    b = {"layer1.0": {"grad_norm": 4.0, "act_std": 0.0}, "layer1.1": {"grad_norm": 2.0, "act_std": 3.0}}
    assert analysis.average_stats([a, b]) == {"layer1.0": {"act_std": 1.0, "grad_norm": 6.0},
                                              "layer1.1": {"act_std": 2.0, "grad_norm": 2.0}}
    table = analysis.profile_table({"a": a, "b": b, "forward only": {"x": {"act_std": 0.5}}})
    assert table.rows == [["a", "1", "2", "4"], ["b", "0", "3", "2"], ["forward only", "0.5", "0.5", "–"]]


def test_size_table_counts_the_weighted_layers_and_parameters_of_table_6():
    table = analysis.size_table((20, 110), residual=(False, True))
    assert table.column("network") == ["plain-20", "plain-110", "ResNet-20", "ResNet-110"]
    assert table.column("weighted layers") == ["20", "110", "20", "110"]
    assert table.column("n") == ["3", "18", "3", "18"]
    assert table.column("parameters") == ["269,722", "1,727,962"] * 2


def test_network_table_counts_parameters_and_calls_the_error():
    nets = {"one": torch.nn.Linear(3, 2), "two": torch.nn.Linear(3, 1, bias=False)}
    table = analysis.network_table(nets, lambda m: 0.25 * m.out_features, error_name="e (%)")
    assert table.rows == [["one", "8", "50.00"], ["two", "3", "25.00"]]
    assert analysis.network_table(nets).columns == ["network", "parameters"]


def test_unrolled_stage_is_exact_for_the_pre_activation_unit_and_clipped_for_the_original(batch):
    x, _ = batch
    torch.manual_seed(0)
    pre, orig = cifar_resnet(20, preact=True).eval(), cifar_resnet(20).eval()
    a, b = analysis.unrolled_stage(pre, x), analysis.unrolled_stage(orig, x)
    assert a["gap"] < 1e-5 and a["clipped"] is None and len(a["zero"]) == 3
    assert b["gap"] > 1e-2 and len(b["clipped"]) == 3 and all(0 < c < 1 for c in b["clipped"])
    assert b["zero"][0] > 0  # the stem ends with a ReLU
    t = analysis.unrolled_table({"pre": a, "orig": b})
    assert t.columns == ["unit", "Eq. 4 gap", "x_i = 0 (%)", "x_i + F < 0 (%)"]
    assert t.rows[0][3] == "–" and t.rows[1][3] == f"{100 * min(b['clipped']):.0f}–{100 * max(b['clipped']):.0f}"
    from resnet_book.models import build_model
    for other in (cifar_resnet(20, residual=False), build_model("resnet34"), build_model("bottleneck83")):
        with pytest.raises(ValueError, match="residual units with identity shortcuts"):
            analysis.unrolled_stage(other, x)


def test_profile_ratios_and_tables():
    stats = {"layer1.0": {"grad_norm": 8.0, "act_std": 0.5}, "layer2.0": {"grad_norm": 1.0, "act_std": 1.0},
             "layer3.0": {"grad_norm": 2.0, "act_std": 2.0}}
    x = torch.tensor([1.0, -1.0, 1.0, -1.0])  # std 1.1547
    r = analysis.profile_ratios(stats, x)
    assert r["gradient"] == 4.0 and r["growth"] == 4.0 and r["vs_input"] == pytest.approx(2.0 / 1.1547, rel=1e-4)
    assert "vs_input" not in analysis.profile_ratios(stats)
    t = analysis.profile_ratio_table({(56, "ResNet, BN"): stats}, x)
    assert t.rows == [["56", "ResNet, BN", "4", "4", "1.73"]]
    g = analysis.gradient_profiles({"one": stats, "two seeds": [stats, stats], "stored": {"layer1.0": 8.0, "layer2.0": 1.0,
                                                                                          "layer3.0": 2.0}})
    assert g["one"] == g["two seeds"] == g["stored"] == {"layer1.0": 8.0, "layer2.0": 1.0, "layer3.0": 2.0}
    assert analysis.gradient_table(g).rows[0] == ["one", "4", "8"]
    assert analysis.relative_step_table({(56, "plain, BN"): 2110.0}).rows == [["56", "plain, BN", "2.11e+03"]]


def test_relative_step_ratio_compares_the_first_and_last_convolution_in_the_blocks(batch):
    x, y = batch
    torch.manual_seed(0)
    model = cifar_resnet(8)
    grads = analysis.gradient_norms(model, x, y)
    first, last = model.layer1[0].conv1, model.layer3[-1].conv2
    want = (grads["layer1.0.conv1"] / first.weight.norm().item()) / (grads["layer3.0.conv2"] / last.weight.norm().item())
    assert analysis.relative_step_ratio(model, x, y) == pytest.approx(want)


def test_lesion_summary_and_table():
    study = {"baseline": 0.30, "single": {"layer1.0": 0.60, "layer1.1": 0.32, "layer2.0": None, "layer2.1": 0.31},
             "random_sets": {}}
    s = analysis.lesion_summary(study)
    assert s["median"] == 0.32 and s["worst_block"] == "layer1.0" and s["worst"] == 0.60
    assert s["change"] == pytest.approx(0.02) and s["worst_cost"] == pytest.approx(0.30)
    t = analysis.lesion_table({"ResNet-56": [study, study], "trained": [study]})
    assert t.rows[0] == ["ResNet-56 #1", "30.0", "32.0", "+2.0", "layer1.0", "60.0"]
    assert [r[0] for r in t.rows] == ["ResNet-56 #1", "ResNet-56 #2", "trained"]
    with pytest.raises(ValueError, match="dropped no block"):
        analysis.lesion_summary({"baseline": 0.3, "single": {"layer2.0": None}})


def test_response_table_and_facts_read_fig_7_in_numbers():
    plain = [{"layer1.0.bn1": 2.0, "layer1.0.bn2": 1.0, "layer2.0.bn1": 1.0, "layer2.0.bn2": 0.9},
             {"layer1.0.bn1": 1.6, "layer1.0.bn2": 1.2, "layer2.0.bn1": 1.1, "layer2.0.bn2": 1.0}]
    res = [{"layer1.0.bn1": 0.8, "layer1.0.bn2": 0.4, "layer2.0.bn1": 0.6, "layer2.0.bn2": 0.2}]
    table = analysis.response_table({"plain-x": plain, "ResNet-x": res})
    assert table.rows[0] == ["plain-x", "2", "1.075", "0.90", "2.00", "1.425", "1.025"]
    assert table.rows[1] == ["ResNet-x", "1", "0.500", "0.20", "0.80", "0.700", "0.300"]
    facts = analysis.response_facts({"plain-x": plain, "ResNet-x": res})
    assert facts["plain-x-above"] == "1, 1" and facts["plain-x-above-max"] == "2.0, 1.6"
    assert facts["plain-x-above-stage1"] == "yes" and facts["plain-x-argmax"] == "layer1.0.bn1"
    assert (facts["plain-x-later-min"], facts["plain-x-later-max"]) == ("0.90", "1.10")
    assert (facts["ResNet-x-median"], facts["ResNet-x-bn2"]) == ("0.500", "0.300")
    assert (facts["order"], facts["monotone"], facts["monotone-bn2"]) == ("ResNet-x, plain-x", "yes", "yes")
    assert analysis.response_facts({"ResNet-x": res, "plain-x": plain})["monotone"] == "no"
    assert facts["trend"] == "falls at every step from plain-x to ResNet-x"
    assert analysis.response_facts({"ResNet-x": res, "plain-x": plain})["trend"] == (
        "does not fall at every step (smallest first: ResNet-x, plain-x)")
    for empty in ({"plain-x": []}, {"plain-x": plain, "ResNet-x": [{}]}, {}):
        with pytest.raises(ValueError, match="no stored responses for"):
            analysis.response_table(empty)


def test_gradient_stage_facts_read_a_profile_stage_by_stage():
    profile = {"layer1.0": 8.0, "layer1.1": 4.0, "layer2.0": 5.0, "layer2.1": 2.5, "layer3.0": 3.0, "layer3.1": 1.0}
    facts = analysis.gradient_stage_facts(profile)
    assert facts == {"stage1-growth": 2.0, "stage2-growth": 2.0, "stage3-growth": 3.0, "cross-min": 0.8,
                     "cross-max": 2.5 / 3.0, "first-over-second": 2.0, "last-below": 3.0, "inner-spread": 2.0}
    with pytest.raises(ValueError, match="two or more per stage"):
        analysis.gradient_stage_facts({"layer1.0": 1.0, "layer2.0": 1.0})
