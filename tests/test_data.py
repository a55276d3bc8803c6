import time

import pytest
import torch

from resnet_book import data as D
from conftest import make_tiny, write_image_folder


def test_image_folder_is_decoded_exactly_and_cached(tiny_folder, tiny):
    d = D.load_cifar10(tiny_folder)
    assert d.source == "cifar10-imagefolder"  # PNG: lossless, not the JPEG copy
    # files are listed class by class, so compare as sorted multisets per class
    for c in range(10):
        ours = d.train_images[d.train_labels == c].flatten(1).sort(0).values
        want = tiny.train_images[tiny.train_labels == c].flatten(1).sort(0).values
        assert torch.equal(ours, want)
    cached = list(D.cache_dir().glob("*.pt"))
    assert len(cached) == 1
    t = time.perf_counter()
    again = D.load_cifar10(tiny_folder)
    assert time.perf_counter() - t < 1.0
    assert torch.equal(again.test_images, d.test_images)


def test_jpeg_folder_is_labelled_cifar10_jpeg(tmp_path, tiny):
    root = write_image_folder(tmp_path / "jpg", make_tiny(20, 20), suffix=".jpg")
    assert D.load_cifar10(root).source == "cifar10-jpeg"


def test_data_setting_comes_from_the_environment(tiny_folder, monkeypatch):
    monkeypatch.setenv(D.DATA_ENV, str(tiny_folder))
    assert D.load_cifar10().root == str(tiny_folder)


def test_missing_data_offline_gives_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*a, **k):
        raise RuntimeError("no network")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    with pytest.raises(D.DataNotFoundError, match=D.DATA_ENV):
        D.load_cifar10(tmp_path / "nothing-here")


def test_wrong_class_folders_are_named(tmp_path):
    (tmp_path / "train" / "cats").mkdir(parents=True)
    (tmp_path / "test").mkdir()
    with pytest.raises(D.DataNotFoundError, match="one folder per CIFAR-10 class"):
        D.load_cifar10(tmp_path)


def test_damaged_cache_is_rebuilt(tiny_folder):
    D.load_cifar10(tiny_folder)
    (cached,) = D.cache_dir().glob("*.pt")
    cached.write_bytes(b"garbage")
    assert len(D.load_cifar10(tiny_folder).train_labels) == 400


def test_subsets_are_class_balanced_and_seeded(tiny):
    x, y = D.balanced_subset(tiny.train_images, tiny.train_labels, 100, seed=3)
    assert torch.bincount(y).tolist() == [10] * 10
    x2, _ = D.balanced_subset(tiny.train_images, tiny.train_labels, 100, seed=3)
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="at least one image per class"):
        D.balanced_subset(tiny.train_images, tiny.train_labels, 5, seed=0)


def test_validation_split_is_disjoint(tiny):
    ds = D.prepare(tiny, val_size=50, seed=0)
    assert len(ds.val_labels) == 50 and len(ds.train_labels) == 350
    tr = {bytes(x.numpy()) for x in ds.train_images}
    assert not any(bytes(x.numpy()) in tr for x in ds.val_images)
    with pytest.raises(ValueError, match="val_size"):
        D.prepare(tiny, val_size=400)


def test_per_pixel_mean_subtraction(tiny):
    norm = D.Normalize(tiny.train_images)
    assert norm(tiny.train_images).mean(0).abs().max() < 1e-5
    per_channel = D.Normalize(tiny.train_images, "per_channel")
    z = per_channel(tiny.train_images)
    assert torch.allclose(z.std((0, 2, 3)), torch.ones(3), atol=1e-3)
    with pytest.raises(ValueError, match="per_pixel, per_channel"):
        D.Normalize(tiny.train_images, "zca")


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32) + 1
    g = torch.Generator().manual_seed(0)
    out = D.random_crop_flip(x, g, flip=False)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(2):
        hits = [(dy, dx) for dy in range(9) for dx in range(9) if torch.equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32])]
        assert len(hits) == 1
    flipped = D.random_crop_flip(x, torch.Generator().manual_seed(1), pad=0)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))


def test_batches_are_a_pure_function_of_seed_and_step(tiny):
    norm = D.Normalize(tiny.train_images)
    a = D.TrainBatches(tiny.train_images, tiny.train_labels, norm, batch_size=64, seed=1)
    b = D.TrainBatches(tiny.train_images, tiny.train_labels, norm, batch_size=64, seed=1)
    for step in (7, 0, 3, 7):
        xa, ya = a.batch(step)
        xb, yb = b.batch(step)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # one epoch visits every image once
    seen = torch.cat([a.batch(s)[1] for s in range(a.steps_per_epoch)])
    assert len(seen) == 6 * 64 and torch.bincount(seen).max() - torch.bincount(seen).min() <= 10
    # two processes' shares make up the global batch
    r0 = D.TrainBatches(tiny.train_images, tiny.train_labels, norm, batch_size=64, seed=1, rank=0, world_size=2)
    r1 = D.TrainBatches(tiny.train_images, tiny.train_labels, norm, batch_size=64, seed=1, rank=1, world_size=2)
    assert torch.equal(torch.cat([r0.batch(2)[0], r1.batch(2)[0]]), a.batch(2)[0])


def test_offline_cifar10_jpeg_copy(shared_cifar):
    d = D.load_cifar10(shared_cifar)
    assert d.source == "cifar10-jpeg"
    assert d.train_images.shape == (50_000, 3, 32, 32) and d.test_images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(d.train_labels).tolist() == [5000] * 10
    assert torch.bincount(d.test_labels).tolist() == [1000] * 10
