import time
from pathlib import Path

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


def test_offline_copy(shared_cifar):
    """The copy the suite and the notebooks run on: complete, and recorded under its source."""
    from conftest import SHARED_COPIES

    d = D.load_cifar10(shared_cifar)
    known = {str(p): source for source, p in SHARED_COPIES.items()}
    assert d.source == known.get(shared_cifar, D.data_source(shared_cifar))
    assert d.source in ("cifar10-original", "cifar10-jpeg", "cifar10")
    assert d.train_images.shape == (50_000, 3, 32, 32) and d.test_images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(d.train_labels).tolist() == [5000] * 10
    assert torch.bincount(d.test_labels).tolist() == [1000] * 10


# --- cifar-10-batches-py folders and the original-pixels copy's parts (synthetic fixtures)

import hashlib
import io
import pickle
import tarfile

import numpy as np

from resnet_book import cifar_pickles as pk
from resnet_book.data import CLASSES


def write_batches(folder, seed=0, per_batch=20):
    """A fake cifar-10-batches-py: six pickled batches of random images, the meta file, a readme."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for name in (*pk.TRAIN_FILES, pk.TEST_FILE):
        entry = {"batch_label": name, "labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                 "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    (folder / pk.META_FILE).write_bytes(pickle.dumps({"label_names": list(CLASSES), "num_vis": 3072}, protocol=2))
    (folder / "readme.html").write_text("<p>fake</p>")
    return folder


def md5s(folder):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def write_parts(folder, batches, n_parts=3, md5_override=None):
    """The copy as it travels: batches as one tar.xz split into parts, SHA256SUMS, MD5SUMS-extracted."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        tar.add(batches, arcname=pk.FOLDER)
    blob = buf.getvalue()
    folder.mkdir(parents=True)
    step = -(-len(blob) // n_parts)
    for i in range(n_parts):
        (folder / f"{pk.PARTS_PREFIX}{i:02d}").write_bytes(blob[i * step:(i + 1) * step])
    (folder / pk.PARTS_SUMS).write_text("".join(
        f"{hashlib.sha256((folder / f'{pk.PARTS_PREFIX}{i:02d}').read_bytes()).hexdigest()}  {pk.PARTS_PREFIX}{i:02d}\n"
        for i in range(n_parts)))
    sums = {**md5s(batches), **(md5_override or {})}
    (folder / pk.EXTRACTED_SUMS).write_text("".join(f"{v}  {k}\n" for k, v in sums.items()))
    return folder


@pytest.fixture
def copies(tmp_path, monkeypatch):
    """Two fake copies whose MD5s are registered as torchvision's (cifar10) and the original-pixels
    copy's (cifar10-original), and the latter's parts."""
    tv = write_batches(tmp_path / "tv" / pk.FOLDER, seed=1)
    orig = write_batches(tmp_path / "orig" / pk.FOLDER, seed=2)
    data_files = lambda f: {k: v for k, v in md5s(f).items() if k in pk.DATA_FILES}  # noqa: E731
    monkeypatch.setattr(pk, "KNOWN_COPIES", {"cifar10": data_files(tv), "cifar10-original": data_files(orig)})
    monkeypatch.setattr(D, "_IDENTIFIED", {})
    parts = write_parts(tmp_path / "parts", orig)
    return {"tv": tv, "orig": orig, "parts": parts}


def expected(folder):
    x, y, xt, yt = pk.read_batches(folder)
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xt), torch.from_numpy(yt)


def test_parts_are_checked_unpacked_once_and_recorded_as_the_original_pixels(copies):
    parts = copies["parts"]
    assert D.data_source(parts) == "cifar10-original"  # a cheap probe: nothing unpacked yet
    assert not list(D.cache_dir().glob("cifar10-original-*"))
    d = D.load_cifar10(parts, progress=False)
    assert d.source == "cifar10-original" and d.root == str(parts)
    assert "image order differs from the original files" in d.description
    x, y, xt, yt = expected(copies["orig"])
    assert torch.equal(d.train_images, x) and torch.equal(d.train_labels, y)
    assert torch.equal(d.test_images, xt) and torch.equal(d.test_labels, yt)
    assert d.train_images.shape == (100, 3, 32, 32) and d.train_images.dtype == torch.uint8
    (unpacked,) = D.cache_dir().glob("cifar10-original-*")
    assert md5s(unpacked / pk.FOLDER) == md5s(copies["orig"])
    assert not list(D.cache_dir().glob(".*.tmp"))
    # unpacked once: later loads (and probes) read the cache and never the parts again
    for p in parts.glob(f"{pk.PARTS_PREFIX}*"):
        p.write_bytes(b"overwritten")
    D._IDENTIFIED.clear()
    assert D.data_source(parts) == "cifar10-original"
    assert torch.equal(D.load_cifar10(parts, progress=False).test_images, xt)


def test_a_damaged_part_is_named_and_nothing_is_unpacked(copies):
    part = copies["parts"] / f"{pk.PARTS_PREFIX}01"
    blob = bytearray(part.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    part.write_bytes(bytes(blob))
    with pytest.raises(D.DataNotFoundError, match=rf"{pk.PARTS_PREFIX}01 is damaged: its SHA256 is") as err:
        D.load_cifar10(copies["parts"], progress=False)
    assert "part00" not in str(err.value) and "part02" not in str(err.value)
    assert not list(D.cache_dir().iterdir()) or not list(D.cache_dir().glob("*original*"))
    missing = copies["parts"] / f"{pk.PARTS_PREFIX}02"
    missing.unlink()
    with pytest.raises(D.DataNotFoundError, match=rf"lacks {pk.PARTS_PREFIX}02"):
        D.load_cifar10(copies["parts"], progress=False)


def test_an_unpacked_file_with_the_wrong_checksum_is_named_and_not_kept(copies, tmp_path):
    parts = write_parts(tmp_path / "parts-bad-md5", copies["orig"], md5_override={"data_batch_3": "0" * 32})
    with pytest.raises(D.DataNotFoundError, match=r"data_batch_3 has MD5 [0-9a-f]{32}, MD5SUMS-extracted says 0{32}"):
        D.load_cifar10(parts, progress=False)
    assert not [p for p in D.cache_dir().iterdir() if "original" in p.name]  # neither the folder nor a temp one


def test_batches_folders_are_told_apart_by_their_checksums(copies):
    tv, orig = copies["tv"], copies["orig"]
    for folder in (tv, tv.parent):  # the cifar-10-batches-py folder itself or its parent
        assert D.data_source(folder) == "cifar10"
        d = D.load_cifar10(folder, progress=False)
        assert d.source == "cifar10" and d.root == str(folder) and "torchvision" in d.description
        assert torch.equal(d.train_images, expected(tv)[0])
    d = D.load_cifar10(orig.parent, progress=False)
    assert d.source == "cifar10-original" and torch.equal(d.test_labels, expected(orig)[3])
    assert D.data_source(orig) == "cifar10-original"


def test_a_batches_folder_of_unknown_checksums_is_refused(copies, tmp_path):
    other = write_batches(tmp_path / "other" / pk.FOLDER, seed=3)
    with pytest.raises(D.DataNotFoundError) as err:
        D.load_cifar10(other, progress=False)
    msg = str(err.value)
    assert "data_batch_1 has MD5" in msg and "matches no accepted copy" in msg
    assert f"cifar10: {pk.KNOWN_COPIES['cifar10']['data_batch_1']}" in msg
    assert f"cifar10-original: {pk.KNOWN_COPIES['cifar10-original']['data_batch_1']}" in msg
    assert not list(D.cache_dir().glob("*.pt"))
    # one file changed in an otherwise accepted copy: that file is named
    (copies["tv"] / "data_batch_4").write_bytes((tmp_path / "other" / pk.FOLDER / "data_batch_4").read_bytes())
    with pytest.raises(D.DataNotFoundError, match=r"data_batch_4 has MD5"):
        D.data_source(copies["tv"])


def test_a_missing_folder_is_refused_and_never_created_nor_downloaded_into(tmp_path, monkeypatch):
    import torchvision.datasets

    def download(*a, **k):
        raise AssertionError("no download into an explicit folder")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", download)
    typo = tmp_path / "cifar10-orignal"
    for call in (D.load_cifar10, D.data_source):
        with pytest.raises(D.DataNotFoundError, match="does not exist"):
            call(typo)
        assert not typo.exists()
    monkeypatch.setenv(D.DATA_ENV, str(typo))
    with pytest.raises(D.DataNotFoundError, match=D.DATA_ENV):
        D.load_cifar10()
    assert not typo.exists()


def test_data_pointing_at_a_file_or_an_empty_folder_is_refused(tmp_path):
    f = tmp_path / "cifar.tar.gz"
    f.write_bytes(b"not a folder")
    with pytest.raises(D.DataNotFoundError, match="is a file, not a folder") as err:
        D.load_cifar10(f)
    assert "download" not in str(err.value).split("folder", 1)[1].split(";")[0]
    with pytest.raises(D.DataNotFoundError, match="holds no CIFAR-10"):
        D.load_cifar10(tmp_path / ".." / tmp_path.name)
    assert f.read_bytes() == b"not a folder"


@pytest.mark.parametrize("bad", ["missing", "file", "undecodable"])
def test_cli_names_a_bad_data_setting_in_one_line(tmp_path, capsys, bad, tiny):
    from resnet_book.cli import main

    path = {"missing": tmp_path / "nothere", "file": tmp_path / "file.bin", "undecodable": tmp_path / "images"}[bad]
    if bad == "file":
        path.write_bytes(b"x")
    if bad == "undecodable":
        write_image_folder(path, make_tiny(20, 20))
        (path / "test" / "dog" / "0005.png").write_bytes(b"\x89PNG but truncated")
    code = main(["train", "--model", "resnet8", "--budget", "smoke", "--data", str(path), "--quiet",
                 "--results", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "PIL" not in err
    want = {"missing": "does not exist", "file": "is a file, not a folder",
            "undecodable": f"{path / 'test' / 'dog' / '0005.png'} is not a readable image"}[bad]
    assert want in err
    assert not (tmp_path / "nothere").exists() and not (tmp_path / "res").exists()


def test_first_unpacking_and_decoding_show_progress(copies, tiny_folder, capsys):
    D.load_cifar10(copies["parts"])
    assert "checking and unpacking parts (once; cached)" in capsys.readouterr().err
    D.load_cifar10(tiny_folder)
    assert "decoding cifar/train (once; cached)" in capsys.readouterr().err
    D.load_cifar10(tiny_folder)  # cached: nothing to show
    assert capsys.readouterr().err == ""


def test_an_undecodable_image_is_named(tiny_folder):
    bad = next((tiny_folder / "train" / "cat").iterdir())
    bad.write_bytes(b"not a png")
    with pytest.raises(D.DataNotFoundError, match=rf"{bad.name} is not a readable image"):
        D.load_cifar10(tiny_folder, progress=False)


def test_records_carry_the_source_and_its_description(tiny_folder):
    from resnet_book.train import TrainConfig, train

    rec = train(TrainConfig(model="resnet8", budget="smoke", iterations=2), data_root=str(tiny_folder), progress=False)
    assert rec["data"]["source"] == "cifar10-imagefolder"
    assert rec["data"]["description"] == D.SOURCES["cifar10-imagefolder"]
    assert set(D.SOURCES) == {"cifar10", "cifar10-original", "cifar10-jpeg", "cifar10-imagefolder"}


SHARED_ORIGINAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-original"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_ORIGINAL.is_dir(), reason="no original-pixels copy beside the repository")
def test_the_original_pixels_copy_is_verified_and_loaded(monkeypatch):
    import os

    from conftest import REPO

    monkeypatch.setenv("RESNET_BOOK_CACHE", os.environ.get("RESNET_BOOK_SHARED_CACHE", str(REPO / ".cache")))
    assert D.data_source(SHARED_ORIGINAL) == "cifar10-original"
    d = D.load_cifar10(SHARED_ORIGINAL)
    assert d.source == "cifar10-original"
    assert d.train_images.shape == (50_000, 3, 32, 32) and d.test_images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(d.train_labels).tolist() == [5000] * 10
    assert torch.bincount(d.test_labels).tolist() == [1000] * 10
    unpacked = D._unpacked_dest(SHARED_ORIGINAL) / pk.FOLDER
    assert md5s(unpacked) == pk.read_sums(SHARED_ORIGINAL / pk.EXTRACTED_SUMS)
    assert {k: v for k, v in md5s(unpacked).items() if k in pk.DATA_FILES} == pk.ORIGINAL_PIXELS_MD5
