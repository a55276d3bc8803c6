"""Shared fixtures: a tiny CIFAR-shaped dataset (in memory and as an image folder)."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_book.data import CIFAR10, CLASSES

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# the offline copies, in the order the Makefile and CI pick them: original pixels, then JPEG
SHARED_COPIES = {"cifar10-original": SHARED_DATA / "cifar10-original", "cifar10-jpeg": SHARED_DATA / "cifar10-jpeg"}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache and results folders; nothing touches the repository's data."""
    monkeypatch.setenv("RESNET_BOOK_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("RESNET_BOOK_RESULTS", str(tmp_path_factory.mktemp("results")))


def make_tiny(n_train=400, n_test=200, seed=0) -> CIFAR10:
    """Random images whose class is visible in the mean colour, so a net can learn something."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.arange(n) % 10
        x = torch.randint(0, 120, (n, 3, 32, 32), generator=g, dtype=torch.int64)
        x[:, 0] += (y * 13)[:, None, None]
        return x.clamp(0, 255).to(torch.uint8), y

    xtr, ytr = split(n_train)
    xte, yte = split(n_test)
    return CIFAR10(xtr, ytr, xte, yte, "synthetic", "<memory>")


@pytest.fixture
def tiny():
    return make_tiny()


def write_image_folder(root: Path, data: CIFAR10, suffix=".png") -> Path:
    from PIL import Image

    for split, xs, ys in (("train", data.train_images, data.train_labels), ("test", data.test_images, data.test_labels)):
        for i, (x, y) in enumerate(zip(xs, ys)):
            d = root / split / CLASSES[int(y)]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x.permute(1, 2, 0).numpy()).save(d / f"{i:04d}{suffix}")
    return root


@pytest.fixture
def tiny_folder(tmp_path, tiny):
    return write_image_folder(tmp_path / "cifar", tiny)


@pytest.fixture
def shared_cifar(monkeypatch):
    """The offline CIFAR-10 copy the suite runs on (``RESNET_BOOK_DATA``, else the first of
    :data:`SHARED_COPIES` present); its unpacked and decoded cache is kept in the repository's
    .cache/ (git-ignored) so the test suite and the notebooks prepare it once."""
    monkeypatch.setenv("RESNET_BOOK_CACHE", os.environ.get("RESNET_BOOK_SHARED_CACHE", str(REPO / ".cache")))
    present = [str(p) for p in SHARED_COPIES.values() if p.is_dir()]
    path = os.environ.get("RESNET_BOOK_DATA") or (present[0] if present else None)
    if not path:
        if os.environ.get("CI"):
            pytest.fail("CI must provide an offline CIFAR-10 copy (RESNET_BOOK_DATA or ../shared/data/cifar10-original "
                        "or ../shared/data/cifar10-jpeg)")
        pytest.skip("no offline CIFAR-10 copy here (set RESNET_BOOK_DATA)")
    return path


def pytest_configure(config):
    np.seterr(all="ignore")
