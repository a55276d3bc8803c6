"""What training costs: budgets against the paper's recipe, multiply-adds by depth, the stored runs'
times, and the extrapolations built on them."""
import pytest
import torch

from resnet_book import costs
from resnet_book.analysis import count_macs
from resnet_book.models import cifar_resnet


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
