"""What training costs: budgets against the paper's recipe, multiply-adds by depth, the stored runs'
times, and the extrapolations built on them; and the cost tables of chapters 4 and 5: exact counts,
the paper's arithmetic, one clear error."""
import pytest
import torch

from resnet_book import costs
from resnet_book.analysis import count_macs
from resnet_book.models import BasicBlock, Bottleneck, cifar_resnet, projection


def test_budgets_table_counts_the_images_each_budget_shows():
    table = costs.budgets_table()
    assert table.column("budget") == ["smoke", "cpu", "paper"]
    assert table.column("images shown") == ["768", "38,400", "8,192,000"]
    assert table.column("of the paper's") == ["0.01%", "0.47%", "100.00%"]


def test_resnet_macs_of_every_depth_equal_counting_that_network():
    macs = costs.resnet_macs((20, 32, 44, 110))
    assert macs[44] == count_macs(cifar_resnet(44), torch.zeros(1, 3, 32, 32))
    assert macs[110] == count_macs(cifar_resnet(110), torch.zeros(1, 3, 32, 32))
    assert macs[20] == 40_551_040


def _run(label, budget, wall, speed, device="GPU X"):
    return {"label": label, "budget": {"name": budget}, "data": {"source": "cifar10-jpeg"},
            "config": {"model": label}, "throughput_images_per_s": speed,
            "provenance": {"wall_time_s": wall, "device": device}}


def test_paper_recipe_hours_measured_where_stored_and_scaled_by_multiply_adds_elsewhere():
    paper = [_run("resnet20", "paper", w, s) for w, s in ((900, 9000), (960, 8500), (1800, 4000))]
    paper += [_run("plain20", "paper", 10, 1), _run("resnet20", "cpu", 1, 1)]
    cpu = [_run("resnet20", "cpu", 100, 400, "CPU Y"), _run("resnet20", "cpu", 100, 800, "CPU Y"),
           _run("plain56", "cpu", 1, 10_000)]
    hours = costs.paper_recipe_hours(paper, cpu)
    assert hours[20]["gpu_hours"] == pytest.approx(960 / 3600) and hours[20]["gpu_measured"]
    assert hours[1202]["gpu_hours"] == pytest.approx(960 / 3600 * hours[1202]["macs"] / hours[20]["macs"])
    assert not hours[1202]["gpu_measured"]
    assert hours[20]["cpu_hours"] == pytest.approx(64_000 * 128 / 800 / 3600) and hours[56]["cpu_hours"] is None
    table = costs.paper_recipe_hours_table(hours)
    assert table.column("GPU hours, shared by 12 runs")[:2] == ["0.27", f"~{hours[32]['gpu_hours']:.1f}"]
    assert "GPU X" in table.note and "CPU Y" in table.note
    measured = costs.paper_runs_measured(paper)
    assert measured["resnet20"]["throughput_range"] == (4000, 9000) and measured["resnet20"]["n"] == 3
    assert costs.throughput_range(paper) == "1 to 9,000"
    with pytest.raises(ValueError, match="no paper-budget runs"):
        costs.throughput_range(cpu)


def test_h100_step_times_measured_interpolated_and_extrapolated_in_depth():
    assert costs.h100_step_ms("resnet56", False) == (27.1, "measured")
    assert costs.h100_step_ms("plain20", True) == (2.14, "as ResNet-20, measured")
    t, how = costs.h100_step_ms("resnet32", False)
    assert t == pytest.approx(10.2 + (27.1 - 10.2) * 12 / 36) and how == "interpolated"
    t, how = costs.h100_step_ms("resnet1202", True)
    assert t == pytest.approx(5.9 + (11.5 - 5.9) * (1202 - 56) / 54) and how == "extrapolated"
    table = costs.table6_gpu_estimate([("resnet20", 3), ("resnet56", 2)], 60_000)
    assert table.rows[-1] == ["all (GPU-hours)", "5", f"{(3 * 10.2 + 2 * 27.1) / 60:.1f} h",
                              f"{(3 * 2.14 + 2 * 5.9) / 60:.1f} h", "one run at a time"]


def _rows(table):
    return {tuple(r[:2]) if r[1] in "ABC" else r[0]: r for r in table.rows}


def test_layer_by_layer_counts_fig5_convolution_by_convolution():
    t = costs.layer_by_layer({"basic": BasicBlock(64, 64), "bottleneck": Bottleneck(256, 64)}, size=56)
    assert [r[1:] for r in t.rows] == [
        ["conv1: 3×3, 64→64", "36,864", "115,605,504"], ["conv2: 3×3, 64→64", "36,864", "115,605,504"],
        ["total", "73,728", "231,211,008"],
        ["conv1: 1×1, 256→64", "16,384", "51,380,224"], ["conv2: 3×3, 64→64", "36,864", "115,605,504"],
        ["conv3: 1×1, 64→256", "16,384", "51,380,224"], ["total", "69,632", "218,365,952"]]
    assert "basic 73,984; bottleneck 70,400" in t.note
    strided = costs.layer_by_layer({"down": BasicBlock(16, 32, stride=2, downsample=projection(16, 32, 2))}, size=8)
    assert [r[1:] for r in strided.rows][2] == ["downsample.0: 1×1, 16→32", "512", f"{512 * 16:,}"]
    with pytest.raises(ValueError, match="no convolution"):
        costs.layer_by_layer({"relu": torch.nn.ReLU()})


def test_compare_gives_each_model_against_the_first():
    t = costs.compare({"identity": Bottleneck(256, 64), "projection": Bottleneck(256, 64, downsample=projection(256, 256))},
                      torch.zeros(1, 256, 56, 56), quantities=("convolution weights", "multiply-adds"))
    assert t.rows == [["identity", "69,632", "218,365,952"], ["projection", "135,168 (+94.1%)", "423,886,848 (+94.1%)"]]
    assert "than identity" in t.note
    with pytest.raises(ValueError, match="unknown quantities.*allowed: convolution weights"):
        costs.compare({"a": BasicBlock(4, 4)}, torch.zeros(1, 4, 8, 8), quantities=("flops",))


@pytest.mark.slow
def test_table1_recount_agrees_with_the_paper_and_torchvision():
    t = costs.table1()
    rows = {r[0]: r for r in t.rows}
    assert [rows[f"ResNet-{d}"][4] for d in (18, 34, 50, 101, 152)] == ["1.81", "3.66", "3.86", "7.57", "11.28"]
    assert [rows[f"ResNet-{d}"][5] for d in (50, 101, 152)] == ["4.09", "7.80", "11.51"]
    assert all(rows[f"ResNet-{d}"][2] == "yes" for d in (18, 34, 50, 101, 152))
    assert (rows["VGG-16"][1], rows["VGG-16"][4], rows["VGG-19"][4]) == ("138.4", "15.47", "19.63")


def test_stride_placement_differs_by_the_first_1x1_only():
    t = costs.stride_placement(50, stage="layer2")
    assert t.rows == [["on the 1x1 (the paper)", "2, 1, 1, 2", "295.4"], ["on the 3x3 (torchvision)", "1, 2, 1, 2", "372.5"]]
    assert "conv3_x (256 channels at 56×56 in)" in t.caption


def test_stage_totals_sum_the_stages_and_divide():
    a = {"stem": {"parameters": 1_000_000, "macs": 2_000_000, "activations": 500_000},
         "layer1": {"parameters": 1_000_000, "macs": 2_000_000, "activations": 500_000}}
    b = {k: {q: 3 * v for q, v in s.items()} for k, s in a.items()}
    t = costs.stage_totals({"A": a, "B": b})
    assert t.rows == [["parameters", "2.0", "6.0", "3.00"], ["multiply-adds", "4.0", "12.0", "3.00"],
                      ["values written", "1.0", "3.0", "3.00"]]
    with pytest.raises(ValueError, match="two networks"):
        costs.stage_totals({"A": a})


def test_step_times_time_each_pair_and_give_ratios():
    x = torch.zeros(2, 4, 8, 8)
    t = costs.step_times({"tiny": {"a": (BasicBlock(4, 4), x), "b": (Bottleneck(16, 4), torch.zeros(2, 16, 8, 8))}},
                         repeats=1)
    assert [r[0] for r in t.rows] == ["a (tiny)", "b (tiny)"] and t.rows[0][2:] == ["–", "–", "–"]
    assert t.rows[1][3] == f"{(17 * 16) / (18 * 16):.2f}×"  # multiply-adds: 17p² against 18p² at p = 4
    with pytest.raises(ValueError, match="a pair has two models"):
        costs.step_times({"one": {"a": (BasicBlock(4, 4), x)}})


def test_shortcut_options_count_projections_parameters_and_multiply_adds():
    proj = _rows(costs.shortcut_options("projections", networks=("resnet20", "resnet110")))
    assert proj["ResNet-20"][1:] == ["0", "2", "9"] and proj["ResNet-110"][1:] == ["0", "2", "54"]
    params = _rows(costs.shortcut_options("parameters", networks=("resnet32",)))
    assert params["ResNet-32", "A"][2:] == ["464,154", "+0.0%", "–"]
    assert params["ResNet-32", "B"][2] == f"{464_154 + 2_752:,}"
    assert params["ResNet-32", "C"][2:] == [f"{464_154 + 5_600 * 5 - 2_560:,}", "+5.5%", "+4.9%"]
    with pytest.raises(ValueError, match="unknown quantity 'weights'; allowed: projections"):
        costs.shortcut_options("weights")


def test_run_labels_and_model_names_are_read_by_the_registry():
    from resnet_book.costs import _depth
    from resnet_book.models import display_name

    assert [_depth(x) for x in ("resnet56-B", "plain20", "resnet110", "preresnet164", "resnet32-A")] == [56, 20, 110, 164, 32]
    assert [display_name(x) for x in ("resnet1202", "plain56", "bottleneck83")] == ["ResNet-1202", "plain-56", "bottleneck83"]
