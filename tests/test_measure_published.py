"""Stored measurements of the published nets (resnet_book.published) and the batched analyses they
use, on a tiny input; and the stored measurements themselves (data/results/published)."""
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from conftest import make_tiny, write_image_folder
from resnet_book import analysis, cli, published, weights
from resnet_book.train import error_rate

REPO = Path(__file__).resolve().parents[1]
STORED = REPO / "data" / "results" / "published" / "cifar10-original"


@pytest.fixture(scope="module")
def data():
    return make_tiny(n_train=20, n_test=60)


def test_moments_give_torch_std_over_all_entries():
    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(3, 4, 5, generator=g) * 2 + 1, torch.randn(7, 4, 5, generator=g) * 2 + 1]
    m = analysis.Moments()
    for p in parts:
        m.add(p)
    whole = torch.cat(parts).double()
    assert m.count == whole.numel()
    assert m.mean == pytest.approx(whole.mean().item(), rel=1e-12)
    assert m.std == pytest.approx(whole.std().item(), rel=1e-12)


def test_accuracy_on_two_copies_with_the_errors_to_compare(data):
    other = dataclasses.replace(make_tiny(n_train=20, n_test=60, seed=1), source="cifar10-jpeg")
    rec = published.measure("accuracy", data=data, also_on=other, nets=("resnet20",))
    net = weights.published("resnet20")
    r = rec["nets"]["resnet20"]
    want = {s: error_rate(net.model, d.test_images, d.test_labels, net.normalize) for s, d in
            (("synthetic", data), ("cifar10-jpeg", other))}
    assert r["test_error"] == want and r["images"] == {"synthetic": 60, "cifar10-jpeg": 60}
    assert r["wrong"] == {s: round(60 * e) for s, e in want.items()}
    assert (r["published_error_pct"], r["paper_error_pct"], r["parameters"]) == (8.27, 8.75, 269_722)
    assert rec["data"]["also_on"]["cifar10-jpeg"]["images"] == 60
    assert rec["credit"] == weights.CREDIT and rec["weights"]["files"]["resnet20"]["sha256"] == net.sha256
    assert rec["data"]["subset"] == "all" and rec["data"]["source"] == "synthetic"
    assert {"device", "torch", "git_commit", "git_dirty", "wall_time_s", "threads"} <= set(rec["provenance"])
    assert "Table 6" in rec["definition"]


def test_responses_of_one_batch_equal_layer_responses(data):
    rec = published.measure("responses", data=data, n_images=50, nets=("resnet20",))
    assert rec["data"]["images"] == 50 and rec["data"]["subset"] == "the first 50 test images"
    net = weights.published("resnet20")
    x = net.normalize(data.test_images[:50])
    for which in ("bn", "branch"):
        got, want = rec["nets"]["resnet20"][which], analysis.layer_responses(net.model, x, which=which)
        assert list(got) == list(want)  # forward order
        assert got == pytest.approx(want, rel=1e-5)
    assert len(rec["nets"]["resnet20"]["bn"]) == 18 and list(rec["nets"]["resnet20"]["bn"])[:2] == [
        "layer1.0.bn1", "layer1.0.bn2"]


def test_layer_responses_over_batches_equal_one_batch():
    net = weights.published("resnet20")
    x = net.normalize(make_tiny(n_train=10, n_test=40).test_images)
    whole = analysis.layer_responses(net.model, x)
    assert analysis.layer_responses_over(net.model, [x[:15], (x[15:], None)]) == pytest.approx(whole, rel=1e-5)
    with pytest.raises(ValueError, match="allowed: 'bn', 'branch'"):
        analysis.layer_responses_over(net.model, [x], which="relu")


def test_lesions_start_from_the_intact_error_and_are_seeded(data):
    kw = dict(data=data, n_images=30, nets=("resnet20",), ks=(2, 4, 20), draws=2, seed=3)
    rec = published.measure("lesions", **kw)
    r = rec["nets"]["resnet20"]
    net = weights.published("resnet20")
    assert r["baseline"] == error_rate(net.model, data.test_images[:30], data.test_labels[:30], net.normalize)
    assert len(r["single"]) == r["blocks"] == 9 and all(0 <= e <= 1 for e in r["single"].values())
    assert list(r["random_sets"]) == ["2", "4"] and all(len(v) == 2 for v in r["random_sets"].values())  # 20 > 9 blocks
    assert (r["ks"], r["draws"], r["seed"]) == ([2, 4, 20], 2, 3)
    again = published.measure("lesions", **kw)["nets"]["resnet20"]
    assert again["random_sets"] == r["random_sets"] and again["single"] == r["single"]


def test_lesion_study_over_batches_equals_lesion_study(data):
    net = weights.published("resnet20")
    b = [(net.normalize(data.test_images[i:i + 25]), data.test_labels[i:i + 25]) for i in (0, 25, 50)]

    def error(m):
        with torch.no_grad():
            return sum(int((m(x).argmax(1) != y).sum()) for x, y in b) / 60

    kw = dict(ks=(1, 3, 9, 10), draws=2, seed=5)
    fast = analysis.lesion_study_over(net.model, b, **kw)
    assert fast == analysis.lesion_study(net.model, error, **kw)
    assert list(fast["random_sets"]) == ["1", "3", "9"] and not any(b.dropped for _, b in analysis.blocks(net.model))
    with pytest.raises(ValueError, match="runs CifarResNet networks"):
        analysis.lesion_study_over(torch.nn.Sequential(), b)


def test_relu_masked_share_is_the_negative_share_of_f_plus_x(data):
    rec = published.measure("relu_masked", data=data, n_images=40, nets=("resnet20",))
    shares = rec["nets"]["resnet20"]["negative_share"]
    net = weights.published("resnet20")
    assert list(shares) == [n for n, _ in analysis.blocks(net.model)]
    # independently: run the blocks one by one
    with torch.no_grad():
        m = net.model
        h = m.relu(m.bn1(m.conv1(net.normalize(data.test_images[:40]))))
        for name, block in analysis.blocks(m):
            s = block.residual_branch(h) + block.shortcut(h)
            assert shares[name] == (s < 0).sum().item() / s.numel()
            h = block(h)
    assert all(0 < v < 1 for v in shares.values())


def test_gradients_average_activation_stats_and_leave_the_model_as_it_was(data):
    net = weights.published("resnet20")
    x, y = net.normalize(data.test_images[:40]), data.test_labels[:40]
    before = {k: v.clone() for k, v in net.model.state_dict().items()}
    prof = analysis.gradient_profile(net.model, [(x[:20], y[:20]), (x[20:], y[20:])], mode="train")
    assert all(torch.equal(before[k], v) for k, v in net.model.state_dict().items()) and not net.model.training
    one = [analysis.activation_stats(net.model.train(), xb, yb) for xb, yb in ((x[:20], y[:20]), (x[20:], y[20:]))]
    net.model.load_state_dict(before)
    net.model.eval()
    for name in prof["grad_norm"]:
        assert prof["grad_norm"][name] == pytest.approx((one[0][name]["grad_norm"] + one[1][name]["grad_norm"]) / 2)
    assert prof["batches"] == 2
    with pytest.raises(ValueError, match="allowed: 'train', 'eval'"):
        analysis.gradient_profile(net.model, [(x, y)], mode="test")
    ev = analysis.gradient_profile(net.model, [(x, y)], mode="eval")
    assert ev["grad_norm"] == pytest.approx({k: v["grad_norm"] for k, v in analysis.activation_stats(
        net.model, x, y).items()}, rel=1e-6)
    rec = published.measure("gradients", data=data, n_images=40, nets=("resnet20",))["nets"]["resnet20"]
    assert (rec["batch_size"], rec["images_used"], rec["bn_mode"]) == (40, 40, "train")  # < 256 images: one batch
    tr = analysis.gradient_profile(net.model, [(x, y)], mode="train")
    assert rec["grad_norm"] == pytest.approx(tr["grad_norm"], rel=1e-6) and rec["grad_norm"] != ev["grad_norm"]
    assert rec["grad_norm_sd"] == dict.fromkeys(tr["grad_norm"], 0.0) and rec["batches"] == 1


def test_padded_channels_carry_only_their_residual(data):
    rec = published.measure("padded_channels", data=data, n_images=40, nets=("resnet20",))["nets"]["resnet20"]
    assert list(rec) == ["layer2.0", "layer3.0", "wall_time_s"]
    net = weights.published("resnet20")
    for name, lo, hi in (("layer2.0", 16, 32), ("layer3.0", 32, 64)):
        r = rec[name]
        assert r["channels"]["padded"] == list(range(lo, hi)) and r["channels"]["copied"] == list(range(lo))
        # on the padded channels the shortcut adds zeros: F(x) + x is F(x), bit for bit
        assert (r["padded"]["sum_mean"], r["padded"]["sum_std"]) == (r["padded"]["F_mean"], r["padded"]["F_std"])
        bn = dict(analysis.blocks(net.model))[name].last_bn
        assert r["padded"]["gamma"] == bn.weight[lo:hi].tolist() and r["copied"]["beta"] == bn.bias[:lo].tolist()
        assert all(0 <= r[g]["out_zero_share"] <= 1 for g in ("padded", "copied"))
    with pytest.raises(ValueError, match="no option-A shortcut"):
        analysis.padded_channel_stats(torch.nn.Sequential(), [])


def test_store_load_merge_and_their_errors(data, tmp_path):
    a = published.measure("relu_masked", data=data, n_images=20, nets=("resnet32",))
    b = published.measure("relu_masked", data=data, n_images=20, nets=("resnet20",))
    both = published.merge([a, b])
    assert list(both["nets"]) == ["resnet20", "resnet32"] and list(both["weights"]["files"]) == ["resnet20", "resnet32"]
    assert both["provenance"]["wall_time_s"] == round(a["provenance"]["wall_time_s"] + b["provenance"]["wall_time_s"], 1)
    with pytest.raises(ValueError, match="differ in data"):
        published.merge([a, published.measure("relu_masked", data=data, n_images=10, nets=("resnet20",))])
    with pytest.raises(published.MeasurementError, match=r"no stored measurement 'relu_masked' .* on synthetic .*"
                                                           r"`python -m resnet_book measure-published --kinds relu_masked`"):
        published.load("relu_masked", source="synthetic", root=tmp_path)
    where = published.store(both, root=tmp_path)
    assert where == tmp_path / "published" / "synthetic" / "relu_masked.json"
    assert published.load("relu_masked", source="synthetic", root=tmp_path) == json.loads(json.dumps(both))
    assert published.stored(source="synthetic", root=tmp_path) == ["relu_masked"]
    with pytest.raises(FileExistsError, match="already stored; pass overwrite=True"):
        published.store(both, root=tmp_path)
    where.write_text("{")
    with pytest.raises(published.MeasurementError, match="not valid JSON"):
        published.load("relu_masked", source="synthetic", root=tmp_path)
    with pytest.raises(ValueError, match="unknown measurement 'lesion'; allowed: accuracy, responses, lesions"):
        published.measure("lesion", data=data)
    with pytest.raises(ValueError, match="n_images must be an integer from 1 to 60"):
        published.measure("responses", data=data, n_images=0)
    with pytest.raises(ValueError, match="nets must be some of resnet20"):
        published.measure("responses", data=data, nets=("resnet110",))
    with pytest.raises(ValueError, match="also_on .* is for the accuracy only"):
        published.measure("responses", data=data, also_on=data)


def test_cli_measures_stores_resumes_and_skips(tmp_path, capsys):
    write_image_folder(tmp_path / "cifar", make_tiny(n_train=10, n_test=20))
    write_image_folder(tmp_path / "cifar10-jpeg", make_tiny(n_train=10, n_test=20, seed=1), suffix=".jpg")
    args = ["measure-published", "--data", str(tmp_path / "cifar"), "--results", str(tmp_path / "res"), "--quiet",
            "--nets", "resnet20", "resnet32"]
    # an interrupted run left resnet32's relu_masked: it is kept, resnet20 is added
    part = published.measure("relu_masked", data=str(tmp_path / "cifar"), nets=("resnet32",))
    published.store(part, root=tmp_path / "res", partial=True)
    assert cli.main(args + ["--kinds", "relu_masked", "accuracy"]) == 0
    folder = tmp_path / "res" / "published" / "cifar10-imagefolder"
    assert sorted(p.name for p in folder.iterdir()) == ["accuracy.json", "relu_masked.json"]  # no partial left
    masked = published.load("relu_masked", source="cifar10-imagefolder", root=tmp_path / "res")
    assert masked["nets"]["resnet32"] == part["nets"]["resnet32"] and list(masked["nets"]) == ["resnet20", "resnet32"]
    acc = published.load("accuracy", source="cifar10-imagefolder", root=tmp_path / "res")
    assert set(acc["nets"]["resnet20"]["test_error"]) == {"cifar10-imagefolder", "cifar10-jpeg"}  # the copy beside --data
    capsys.readouterr()
    assert cli.main(args + ["--kinds", "accuracy"]) == 0
    assert "accuracy: already stored" in capsys.readouterr().out
    assert cli.main(args + ["--kinds", "accuracy", "--jpeg", str(tmp_path / "nowhere")]) == 0  # nothing to do
    assert cli.main(args + ["--kinds", "accuracy", "--overwrite", "--jpeg", str(tmp_path / "nowhere")]) == 2
    assert "pass --jpeg FOLDER" in capsys.readouterr().err


def test_cli_ctrl_c_says_what_an_interrupted_measurement_keeps(tmp_path, capsys, monkeypatch):
    write_image_folder(tmp_path / "cifar", make_tiny(n_train=10, n_test=20))

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(published, "measure", interrupted)
    assert cli.main(["measure-published", "--data", str(tmp_path / "cifar"), "--results", str(tmp_path / "res"),
                     "--quiet", "--kinds", "relu_masked"]) == 130
    assert capsys.readouterr().err.strip() == (
        "interrupted; every kind finished is stored, and an unfinished kind's finished networks are kept in its "
        "<kind>.partial.json: run the same command again to go on from there")


# --- the stored measurements (made by `python -m resnet_book measure-published`) ---------------------

def _stored(kind):
    return json.loads((STORED / f"{kind}.json").read_text())


@pytest.mark.parametrize("kind", published.KINDS)
def test_stored_measurements_are_complete_with_provenance(kind):
    rec = _stored(kind)
    assert (STORED / f"{kind}.json").stat().st_size < 200_000
    assert rec["kind"] == kind and rec["credit"] == weights.CREDIT
    if kind != "lesions":  # lesions: ResNet-56 (the others where measured)
        assert list(rec["nets"]) == list(weights.PUBLISHED)
    assert rec["data"] == {**rec["data"], "source": "cifar10-original", "images": 10_000, "subset": "all"}
    assert {n: f["sha256"] for n, f in rec["weights"]["files"].items()} == {
        n: weights._PUBLISHED_FILES[n][1] for n in rec["nets"]}
    p = rec["provenance"]
    assert p["git_dirty"] is False and len(p["git_commit"]) == 40 and p["wall_time_s"] > 0
    assert rec == published.load(kind, root=REPO / "data" / "results")


def test_stored_accuracy_is_the_published_one_on_the_original_pixels():
    rec = _stored("accuracy")
    wrong = {n: r["wrong"]["cifar10-original"] for n, r in rec["nets"].items()}
    assert wrong == {"resnet20": 827, "resnet32": 737, "resnet44": 690, "resnet56": 661}
    assert all(r["images"] == {"cifar10-original": 10_000, "cifar10-jpeg": 10_000} for r in rec["nets"].values())
    assert all(r["wrong"]["cifar10-jpeg"] > r["wrong"]["cifar10-original"] for r in rec["nets"].values())


def test_stored_lesions_drop_every_block():
    rec = _stored("lesions")
    assert "resnet56" in rec["nets"]
    for name, r in rec["nets"].items():
        n = 3 * (int(name[6:]) - 2) // 6
        assert len(r["single"]) == n and all(e is not None for e in r["single"].values())
        assert [int(k) for k in r["random_sets"]] == [k for k in published.LESION_KS if k <= n]
        assert r["baseline"] == _stored("accuracy")["nets"][name]["test_error"]["cifar10-original"]
