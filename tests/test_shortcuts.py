"""Chapter 5's shortcut measurements as tables: option A's output, dead channels, trained padded
channels, gradients at initialisation."""
import pytest
import torch

from resnet_book import analysis, shortcuts
from resnet_book.models import ShortcutA, cifar_resnet


def test_option_a_table_checks_both_channel_groups_value_by_value():
    t = shortcuts.option_a_table(ShortcutA(16, 32, stride=2), torch.randn(2, 16, 8, 8))
    assert t.rows == [["0 to 15", "the input, every 2nd pixel and row", "yes"], ["16 to 31", "zero", "yes"]]
    assert "output of shape (2, 32, 4, 4)" in t.caption


def test_dead_channel_table_lists_option_a_padded_and_dead_channels_and_none_for_b():
    models = {}
    for option in "AB":
        torch.manual_seed(0)
        models[option] = analysis.sgd_on_random_data(cifar_resnet(20, shortcut=option, zero_init_residual=True),
                                                     steps=2, batch_size=4)
    rows = shortcuts.dead_channel_table(models).rows
    assert rows[0] == ["A", "layer2.0", "16 to 31", "16 of 32: 16 to 31"]
    assert rows[3] == ["A", "layer3.0", "32 to 63", "48 of 64: 16 to 63"]
    assert rows[-1] == ["B", "none of its 9 blocks", "–", "–"] and len(rows) == 7


def _record():
    def group(zero, std, gamma, beta=None):
        return {"out_zero_share": zero, "out_std": std, "gamma": gamma, "beta": beta or [0.1] * len(gamma)}
    block = {"channels": {"padded": [2, 3], "copied": [0, 1]},
             "padded": group(0.5, 0.4, [1.0, -0.8]), "copied": group(0.2, 1.1, [0.5, 0.5])}
    dead = {"channels": {"padded": [4, 5], "copied": [0, 1, 2, 3]},
            "padded": group(1.0, 0.0, [0.0, 0.3], [0.0, 0.0]), "copied": group(0.3, 1.3, [0.5, 0.5, 0.5, 0.5])}
    return {"kind": "padded_channels", "credit": "trained by someone else", "data": {"images": 1000, "source": "c"},
            "nets": {"resnet20": {"layer2.0": block, "layer3.0": dead, "wall_time_s": 1.0}}}


def test_padded_channel_table_and_facts_read_a_stored_measurement():
    t = shortcuts.padded_channel_table(_record())
    assert t.rows[:2] == [["ResNet-20", "layer2.0", "copied (2)", "1.10", "20%", "0.50"],
                          ["ResNet-20", "layer2.0", "padded (2)", "0.40", "50%", "0.90"]]
    assert "trained by someone else" in t.caption and "1,000 test images of c" in t.note
    facts = shortcuts.padded_channel_facts(_record())
    assert facts == {"padded-zero-min": "50", "padded-zero-max": "100", "padded-std-min": "0.00",
                     "padded-std-max": "0.40", "copied-zero-min": "20", "copied-zero-max": "30",
                     "copied-std-min": "1.10", "copied-std-max": "1.30", "gamma-larger": "1", "blocks": "2",
                     "dead": "1", "collapsed": "1", "padded-channels": "4", "collapsed-blocks": "1",
                     "collapsed-gamma-max": "0.000", "live-gamma-min": "0.30", "copied-gamma-min": "0.50",
                     "copied-collapsed": "0", "images": "1,000", "nets": "1"}
    record = _record()
    record["nets"]["resnet20"]["layer2.0"]["padded"]["gamma"] = [0.004, -0.8]  # beta 0.1 > 0: not collapsed
    record["nets"]["resnet20"]["layer2.0"]["padded"]["beta"] = [0.1, -0.2]
    assert shortcuts.padded_channel_facts(record)["collapsed"] == "1"
    record["nets"]["resnet20"]["layer2.0"]["padded"]["beta"] = [-0.001, -0.2]
    facts = shortcuts.padded_channel_facts(record)
    assert (facts["collapsed"], facts["collapsed-blocks"], facts["collapsed-gamma-max"]) == ("2", "2", "0.004")
    with pytest.raises(ValueError, match="expected a 'padded_channels' measurement"):
        shortcuts.padded_channel_facts({"kind": "lesions"})


def test_gradients_at_initialisation_growth_and_block_stds():
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    profiles = shortcuts.at_initialisation((20,), "AC", x, y)
    again = shortcuts.at_initialisation((20,), "A", x, y)
    assert profiles[20, "A"] == again[20, "A"]  # seeded: the same network each time
    ratio, per_block = shortcuts.growth(profiles[20, "C"])
    g = [v["grad_norm"] for v in profiles[20, "C"].values()]
    assert ratio == pytest.approx(g[0] / g[-1]) and per_block ** 8 == pytest.approx(ratio)
    assert [r[:2] for r in shortcuts.gradient_growth(profiles).rows] == [["ResNet-20", "A"], ["ResNet-20", "C"]]
    stds = shortcuts.block_stds(profiles, depth=20)
    assert stds.columns == ["block", "stage", "option A", "option C"] and len(stds.rows) == 9
    assert [r[1] for r in stds.rows] == ["1"] * 3 + ["2"] * 3 + ["3"] * 3
    with pytest.raises(ValueError, match="no profiles of depth 32"):
        shortcuts.block_stds(profiles, depth=32)


def test_bn_scale_table_loss_unchanged_gradient_divided():
    t = shortcuts.bn_scale_table((1.0, 10.0))
    (_, loss1, g1), (_, loss10, g10) = t.rows
    assert abs(float(loss1) - float(loss10)) < 1e-4  # BN's eps: not exactly equal
    assert float(g1) / float(g10) == pytest.approx(10.0, rel=1e-3)
