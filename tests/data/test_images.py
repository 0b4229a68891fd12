"""CIFAR-10 loading and the image pipeline, on tiny fixture archives.

No test decodes the real 60,000-image archive (benchmarks do that); the one
test on the real data checks its checksum and a few members only.
"""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import DataError, load_dataset, verify_file
from applications.image import data as zi
from applications.image.data import CIFAR10_CLASSES, load_cifar10_arrays, make_image_dataset

N_TRAIN, N_TEST = 4, 2  # per class


def _image(cls: int, i: int, size: int = 32) -> np.ndarray:
    """A smooth, asymmetric test image whose blue level encodes the class."""
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([x * 6 + 10 * i, y * 5 + 7 * i, np.full_like(x, 20 * cls + 20)], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray) -> bytes:
    return tf.io.encode_jpeg(img, quality=95).numpy()


def make_archive(
    root: pathlib.Path,
    *,
    overrides: dict[str, bytes] | None = None,
    sums: bool = True,
    wrong_sum: bool = False,
) -> pathlib.Path:
    """Write `root/cifar10-jpeg.tar.gz` (+ SHA256SUMS) in the real layout; return root."""
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, n in (("test", N_TEST), ("train", N_TRAIN)):
        for c, name in enumerate(CIFAR10_CLASSES):
            for i in range(n):
                files[f"cifar10/{split}/{name}/{i:04d}.jpg"] = _jpeg(_image(c, i))
    files.update(overrides or {})
    archive = root / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        dirs = sorted({str(pathlib.PurePosixPath(p).parent) for p in files} | {"cifar10", "cifar10/train", "cifar10/test"})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for path in reversed(sorted(files)):  # unsorted on purpose: the loader sorts
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            tar.addfile(info, io.BytesIO(files[path]))
    if sums:
        digest = "0" * 64 if wrong_sum else hashlib.sha256(archive.read_bytes()).hexdigest()
        (root / "SHA256SUMS").write_text(f"{digest}  cifar10-jpeg.tar.gz\n")
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("ZOO_CACHE_DIR", str(d))
    return d


@pytest.fixture
def data_dir(tmp_path, cache):
    return make_archive(tmp_path / "data")


# ---------------------------------------------------------------------------
# load_cifar10_arrays
# ---------------------------------------------------------------------------


def test_arrays_shapes_order_and_labels(data_dir):
    x, y = load_cifar10_arrays("train", data_dir)
    assert x.shape == (10 * N_TRAIN, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (10 * N_TRAIN,) and y.dtype == np.int32
    assert y.tolist() == [c for c in range(10) for _ in range(N_TRAIN)]  # sorted member names
    for k, (c, i) in enumerate((c, i) for c in range(10) for i in range(N_TRAIN)):
        assert np.abs(x[k].astype(int) - _image(c, i)).mean() < 4  # JPEG is lossy
    xt, yt = load_cifar10_arrays("test", data_dir)
    assert xt.shape == (10 * N_TEST, 32, 32, 3) and np.bincount(yt).tolist() == [N_TEST] * 10


def test_jpegs_are_the_files_the_arrays_decode(data_dir, monkeypatch):
    jpegs, labels = zi.load_cifar10_jpegs("test", data_dir)
    images, want = load_cifar10_arrays("test", data_dir)
    assert len(jpegs) == len(images) and labels.tolist() == want.tolist()
    assert all(np.array_equal(tf.io.decode_jpeg(j).numpy(), x) for j, x in zip(jpegs, images))
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="ZOO_DATA_DIR"):
        zi.load_cifar10_jpegs("test")
    with pytest.raises(DataError, match="no split"):
        zi.load_cifar10_jpegs("val", data_dir)


def test_arrays_env_data_dir(data_dir, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(data_dir))
    x, _ = load_cifar10_arrays("test")
    assert len(x) == 10 * N_TEST


def test_cache_written_once_and_reused(data_dir, cache, monkeypatch):
    x1, y1 = load_cifar10_arrays("train", data_dir)
    digest = verify_file(data_dir / "cifar10-jpeg.tar.gz", data_dir)
    folder = cache / "cifar10" / digest[:16]
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["meta.json", "test_images.npy", "test_labels.npy", "train_images.npy", "train_labels.npy"]
    assert json.loads((folder / "meta.json").read_text())["counts"] == {"train": 40, "test": 20}

    def no_archive(*a, **k):
        raise AssertionError("the archive was reopened")

    monkeypatch.setattr(tarfile, "open", no_archive)
    monkeypatch.setattr(zi, "_decode_archive", no_archive)
    x2, y2 = load_cifar10_arrays("train", data_dir)
    xt, _ = load_cifar10_arrays("test", data_dir)  # both splits came from the one pass
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and len(xt) == 20


def test_incomplete_cache_is_rebuilt(data_dir, cache):
    load_cifar10_arrays("test", data_dir)
    (meta,) = cache.glob("cifar10/*/meta.json")
    meta.unlink()  # e.g. killed before the marker was written
    x, _ = load_cifar10_arrays("test", data_dir)
    assert len(x) == 20 and meta.exists()


@pytest.mark.parametrize(
    "payload",
    [b"this is not a jpeg", _jpeg(_image(3, 1))[:60]],
    ids=["garbage", "truncated"],
)
def test_corrupt_jpeg_names_member(tmp_path, cache, payload):
    bad = "cifar10/train/cat/0001.jpg"
    d = make_archive(tmp_path / "data", overrides={bad: payload})
    with pytest.raises(DataError) as err:
        load_cifar10_arrays("train", d)
    assert bad in str(err.value) and "not a valid JPEG" in str(err.value)
    assert not list(cache.glob("cifar10/*/*.npy"))  # nothing half-cached


def test_wrong_image_size_names_member(tmp_path, cache):
    bad = "cifar10/test/dog/0000.jpg"
    d = make_archive(tmp_path / "data", overrides={bad: _jpeg(_image(5, 0, size=16))})
    with pytest.raises(DataError, match=f"{bad}: wrong image size 16x16; expected 32x32"):
        load_cifar10_arrays("test", d)


def test_unknown_class_folder(tmp_path, cache):
    d = make_archive(tmp_path / "data", overrides={"cifar10/train/unicorn/0000.jpg": _jpeg(_image(0, 0))})
    with pytest.raises(DataError, match="unicorn"):
        load_cifar10_arrays("train", d)


def test_checksum_mismatch(tmp_path, cache):
    d = make_archive(tmp_path / "data", wrong_sum=True)
    with pytest.raises(DataError) as err:
        load_cifar10_arrays("train", d)
    assert "cifar10-jpeg.tar.gz" in str(err.value) and "0" * 64 in str(err.value)


def test_no_sums_file_still_loads(tmp_path, cache):
    d = make_archive(tmp_path / "data", sums=False)
    assert len(load_cifar10_arrays("test", d)[0]) == 20


def test_missing_archive_in_explicit_dir(tmp_path, cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as err:
        load_cifar10_arrays("train", tmp_path / "empty")
    assert str(tmp_path / "empty" / "cifar10-jpeg.tar.gz") in str(err.value)


def test_bad_split(data_dir):
    with pytest.raises(DataError, match="'valid'"):
        load_cifar10_arrays("valid", data_dir)


def test_tfds_fallback_offline_error(monkeypatch, cache):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr("zoo.data.download_hosts_unreachable", lambda urls, timeout=5.0: None)  # no probe
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(DataError) as err:
        load_cifar10_arrays("train")
    msg = str(err.value)
    assert "ZOO_DATA_DIR" in msg and "--data-dir" in msg and "tensorflow-datasets" in msg


def test_tfds_fallback_used_without_data_dir(monkeypatch, cache):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr("zoo.data.download_hosts_unreachable", lambda urls, timeout=5.0: None)  # no probe
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    seen = {}

    def fake_load(name, split, as_supervised, batch_size):
        seen.update(name=name, split=split, as_supervised=as_supervised, batch_size=batch_size)
        return tf.zeros([3, 32, 32, 3], tf.uint8), tf.constant([1, 2, 3], tf.int64)

    monkeypatch.setattr(tfds, "load", fake_load)
    x, y = load_cifar10_arrays("test")
    assert seen == {"name": "cifar10", "split": "test", "as_supervised": True, "batch_size": -1}
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int32


# ---------------------------------------------------------------------------
# make_image_dataset
# ---------------------------------------------------------------------------


def _arrays(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n, dtype=np.int32) % 10


def _epoch(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(a, b))


def test_pipeline_shapes_dtypes_ranges():
    x, y = _arrays(50)
    ds = make_image_dataset(x, y, batch_size=16, training=True, cutout=8)
    assert ds.element_spec[0].shape.as_list() == [16, 32, 32, 3]  # static: drop_remainder
    batches = _epoch(ds)
    assert len(batches) == 3 == int(ds.cardinality())  # 50 // 16, remainder dropped when training
    for xb, yb in batches:
        assert xb.dtype == np.uint8 and xb.shape == (16, 32, 32, 3)
        assert yb.dtype == np.int32 and yb.min() >= 0 and yb.max() < 10
    ev = _epoch(make_image_dataset(x, y, batch_size=16, training=False))
    assert [len(b[1]) for b in ev] == [16, 16, 16, 2]  # eval keeps every example


def test_eval_is_unchanged_and_ordered():
    x, y = _arrays(40)
    ev = _epoch(make_image_dataset(x, y, batch_size=16, training=False))
    assert np.array_equal(np.concatenate([b[0] for b in ev]), x)
    assert np.array_equal(np.concatenate([b[1] for b in ev]), y)


def test_training_without_augmentation_is_a_permutation():
    x, y = _arrays(40)
    (xb, yb), = _epoch(make_image_dataset(x, y, batch_size=40, training=True, augment=False))
    order = [int(np.flatnonzero((x == img).all(axis=(1, 2, 3)))[0]) for img in xb]
    assert sorted(order) == list(range(40)) and order != list(range(40))
    assert np.array_equal(yb, y[order])


def test_augmentation_crop_is_a_reflect_padded_crop():
    x, y = _arrays(32)
    y = np.arange(32, dtype=np.int32)  # identify the source by label
    (xb, yb), = _epoch(make_image_dataset(x, y, batch_size=32, training=True, flip=False, pad=4))
    shifted = 0
    for img, label in zip(xb, yb):
        padded = np.pad(x[label], [(4, 4), (4, 4), (0, 0)], mode="reflect")
        crops = [(dy, dx) for dy in range(9) for dx in range(9) if np.array_equal(padded[dy : dy + 32, dx : dx + 32], img)]
        assert crops, "output is not a crop of the reflect-padded image"
        shifted += crops[0] != (4, 4)
    assert shifted > 16  # most images moved


def test_augmentation_flip_only():
    x, _ = _arrays(32)
    y = np.arange(32, dtype=np.int32)
    (xb, yb), = _epoch(make_image_dataset(x, y, batch_size=32, training=True, pad=0, flip=True))
    same = [np.array_equal(img, x[l]) for img, l in zip(xb, yb)]
    mirrored = [np.array_equal(img, x[l][:, ::-1]) for img, l in zip(xb, yb)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 4 < sum(mirrored) < 28


def test_augmentation_cutout():
    x, _ = _arrays(16)
    x = np.minimum(x, 100).astype(np.uint8)  # so 128 only appears where cut out
    y = np.arange(16, dtype=np.int32)
    (xb, yb), = _epoch(make_image_dataset(x, y, batch_size=16, training=True, pad=0, flip=False, cutout=8))
    for img, label in zip(xb, yb):
        mask = (img == 128).all(-1)
        assert 0 < mask.sum() <= 64
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()  # a rectangle
        assert np.array_equal(img[~mask], x[label][~mask])


def test_augmentation_changes_training_images_only():
    x, y = _arrays(48)
    y = np.arange(48, dtype=np.int32)
    tr = _epoch(make_image_dataset(x, y, batch_size=48, training=True, drop_remainder=False))
    xb, yb = tr[0]
    changed = [not np.array_equal(img, x[l]) for img, l in zip(xb, yb)]
    assert sum(changed) > 24


def test_seeded_reproducibility_across_epochs():
    x, y = _arrays(64)
    kw = dict(batch_size=16, training=True, cutout=6)
    a, b, c = (make_image_dataset(x, y, seed=s, **kw) for s in (7, 7, 8))
    a1, a2 = _epoch(a), _epoch(a)
    b1, b2 = _epoch(b), _epoch(b)
    c1 = _epoch(c)
    assert _same(a1, b1) and _same(a2, b2)  # same seed: same epoch 1 and epoch 2
    assert not _same(a1, a2)  # epochs differ (order and augmentation)
    assert not _same(a1, c1)  # another seed differs


def test_jpeg_copy_is_what_a_jpeg_file_decodes_to():
    x = np.stack([_image(c, i) for c in range(3) for i in range(2)])
    q = np.array([30, 60, 90, 30, 60, 90])
    out = zi.jpeg_copy(x, q, batch_size=4)  # batches that do not divide N
    assert out.shape == x.shape and out.dtype == np.uint8
    for img, quality, got in zip(x, q, out):
        want = tf.io.decode_jpeg(tf.io.encode_jpeg(img, quality=int(quality)), channels=3).numpy()
        assert np.array_equal(got, want)
    err = np.abs(out.astype(int) - x).mean(axis=(1, 2, 3))
    assert err[0] > err[2] > 0  # quality 30 loses more than 90, and 90 is not lossless
    with pytest.raises(DataError, match="quality"):
        zi.jpeg_copy(x, np.full(len(x), 101))


def test_jpeg_augmentation_mixes_originals_and_jpeg_copies():
    x, _ = _arrays(64)
    y = np.arange(64, dtype=np.int32)
    kw = dict(batch_size=64, training=True, pad=0, flip=False, jpeg_quality=(50, 50), seed=5)
    (xb, yb), = _epoch(make_image_dataset(x, y, jpeg_prob=0.5, **kw))
    copy = zi.jpeg_copy(x, np.full(64, 50))
    original = [np.array_equal(img, x[l]) for img, l in zip(xb, yb)]
    jpeg = [np.array_equal(img, copy[l]) for img, l in zip(xb, yb)]
    assert all(o != j for o, j in zip(original, jpeg))  # each image is one or the other, exactly
    assert 16 < sum(jpeg) < 48
    (all_jpeg, ly), = _epoch(make_image_dataset(x, y, jpeg_prob=1.0, **kw))
    assert np.array_equal(all_jpeg, copy[ly])
    (xe, ye), = _epoch(make_image_dataset(x, y, batch_size=64, training=False, jpeg_prob=1.0))
    assert np.array_equal(xe, x)  # evaluation never sees the copy
    # off by default, and on it leaves the crop/flip draws and the order as they were
    plain, = _epoch(make_image_dataset(x, y, batch_size=64, training=True, seed=5))
    mixed, = _epoch(make_image_dataset(x, y, batch_size=64, training=True, seed=5, jpeg_prob=1e-9))
    assert _same([plain], [mixed])


def test_bad_jpeg_settings():
    x, y = _arrays(8)
    with pytest.raises(DataError, match="jpeg_prob"):
        make_image_dataset(x, y, batch_size=4, training=True, jpeg_prob=1.5)
    with pytest.raises(DataError, match="jpeg_prob .*'often'"):
        make_image_dataset(x, y, batch_size=4, training=True, jpeg_prob="often")
    with pytest.raises(DataError, match="jpeg_quality"):
        make_image_dataset(x, y, batch_size=4, training=True, jpeg_prob=0.5, jpeg_quality=(90, 40))
    with pytest.raises(DataError, match="jpeg_quality"):
        make_image_dataset(x, y, batch_size=4, training=True, jpeg_prob=0.5, jpeg_quality=75)


def test_lowres_copy_shrinks_each_image_to_its_size_and_back():
    x = np.stack([_image(c, i) for c in range(3) for i in range(2)])
    x[:, ::2, ::2] = 255  # fine detail that shrinking removes
    sizes = np.array([8, 16, 32, 8, 16, 8])
    nearest = np.array([True, True, False, False, False, True])
    out = zi.lowres_copy(x, sizes, nearest, batch_size=1)  # batches that split each group
    assert out.shape == x.shape and out.dtype == np.uint8
    for img, s, near, got in zip(x, sizes, nearest, out):
        small = tf.image.resize(img[None], [s, s], method="area")
        want = tf.image.resize(small, [32, 32], method="nearest" if near else "bilinear")[0]
        assert np.array_equal(got, np.clip(np.round(want.numpy()), 0, 255).astype(np.uint8))
    blocks = out[0].reshape(8, 4, 8, 4, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # nearest from 8x8: constant 4x4 blocks
    assert not (out[3].reshape(8, 4, 8, 4, 3) == out[3].reshape(8, 4, 8, 4, 3)[:, :1, :, :1]).all()  # bilinear: not
    detail = lambda im: np.abs(np.diff(im.astype(int), axis=1)).mean()  # noqa: E731
    assert detail(out[0]) < detail(x[0]) / 2 and detail(out[1]) < detail(x[1]) / 2
    assert np.array_equal(out[2], x[2])  # full size, bilinear back to itself: unchanged
    with pytest.raises(DataError, match="size"):
        zi.lowres_copy(x, np.full(len(x), 33), nearest)


def test_lowres_augmentation_mixes_originals_and_low_resolution_copies():
    x, _ = _arrays(64)
    x = x.copy()
    x[:, ::2, ::2] = 255
    y = np.arange(64, dtype=np.int32)
    kw = dict(batch_size=64, training=True, pad=0, flip=False, lowres_sizes=(8, 16), seed=5)
    (xb, yb), = _epoch(make_image_dataset(x, y, lowres_prob=0.5, **kw))
    original = [np.array_equal(img, x[l]) for img, l in zip(xb, yb)]
    assert 16 < 64 - sum(original) < 48
    (all_low, ly), = _epoch(make_image_dataset(x, y, lowres_prob=1.0, **kw))
    draws = np.random.default_rng([5, 0x10E5])
    copy = zi.lowres_copy(x, draws.integers(8, 17, 64), draws.random(64) < 0.5)
    assert np.array_equal(all_low, copy[ly])  # the copy the pipeline documents, seeded
    assert all(not np.array_equal(img, x[l]) for img, l in zip(all_low, ly))
    (xe, _), = _epoch(make_image_dataset(x, y, batch_size=64, training=False, lowres_prob=1.0))
    assert np.array_equal(xe, x)  # evaluation never sees the copy
    # with the JPEG copy too: each image is exactly one of the three
    jk = dict(kw, jpeg_prob=0.5, jpeg_quality=(50, 50))
    (xm, ym), = _epoch(make_image_dataset(x, y, lowres_prob=0.4, **jk))
    jpeg = zi.jpeg_copy(x, np.full(64, 50))
    kinds = [[np.array_equal(img, src[l]) for src in (x, jpeg, copy)] for img, l in zip(xm, ym)]
    assert all(sum(k) == 1 for k in kinds) and all(sum(k[i] for k in kinds) > 4 for i in range(3))
    # off by default, and a tiny probability leaves the crop/flip draws and the order as they were
    plain, = _epoch(make_image_dataset(x, y, batch_size=64, training=True, seed=5))
    mixed, = _epoch(make_image_dataset(x, y, batch_size=64, training=True, seed=5, lowres_prob=1e-9))
    assert _same([plain], [mixed])


def test_bad_lowres_settings(data_dir):
    x, y = _arrays(8)
    with pytest.raises(DataError, match="lowres_prob"):
        make_image_dataset(x, y, batch_size=4, training=True, lowres_prob=-0.1)
    with pytest.raises(DataError, match="lowres_sizes .*<= 32"):
        make_image_dataset(x, y, batch_size=4, training=True, lowres_prob=0.5, lowres_sizes=(8, 40))
    with pytest.raises(DataError, match="lowres_sizes"):
        make_image_dataset(x, y, batch_size=4, training=True, lowres_prob=0.5, lowres_sizes=16)
    with pytest.raises(DataError, match="lowres_prob needs augment"):
        make_image_dataset(x, y, batch_size=4, training=True, augment=False, lowres_prob=0.5)
    low = load_dataset("cifar10", data_dir=data_dir, batch_size=8, lowres_prob=0.25, lowres_sizes=(10, 20))
    assert low.info["augmentation"]["lowres_prob"] == 0.25 and low.info["augmentation"]["lowres_sizes"] == [10, 20]
    assert "lowres_prob" not in load_dataset("cifar10", data_dir=data_dir, batch_size=8).info["augmentation"]
    with pytest.raises(DataError, match="lowres_sizes"):
        load_dataset("cifar10", data_dir=data_dir, batch_size=8, lowres_prob=0.5, lowres_sizes=(20, 10))


def test_bad_settings():
    x, y = _arrays(8)
    with pytest.raises(DataError, match="pad"):
        make_image_dataset(x, y, batch_size=4, training=True, pad=32)
    with pytest.raises(DataError, match="uint8"):
        make_image_dataset(x.astype(np.float32), y, batch_size=4, training=True)
    with pytest.raises(DataError, match="labels"):
        make_image_dataset(x, y[:3], batch_size=4, training=True)


# ---------------------------------------------------------------------------
# the cifar10 loader
# ---------------------------------------------------------------------------


def test_cifar10_bundle_defaults(data_dir):
    b = load_dataset("cifar10", data_dir=data_dir, batch_size=8)
    info = b.info
    json.dumps(info)  # plain data
    assert info["class_names"] == list(CIFAR10_CLASSES)
    assert (info["num_train"], info["num_val"], info["num_test"]) == (40, 20, 20)
    assert b.val is b.test and info["val_source"] == "test"  # val_split=0: the test set
    assert info["sha256"] == hashlib.sha256((data_dir / "cifar10-jpeg.tar.gz").read_bytes()).hexdigest()
    assert info["source"].endswith("cifar10-jpeg.tar.gz") and info["batch_size"] == 8
    assert info["augmentation"] == {"augment": True, "pad": 4, "flip": True, "cutout": 0}
    assert b.preprocessor is None
    x, yb = next(iter(b.train))
    assert x.shape == (8, 32, 32, 3) and x.dtype == tf.uint8 and yb.dtype == tf.int32
    jpeg = load_dataset("cifar10", data_dir=data_dir, batch_size=8, jpeg_prob=0.25, jpeg_quality=(70, 80))
    assert jpeg.info["augmentation"]["jpeg_prob"] == 0.25 and jpeg.info["augmentation"]["jpeg_quality"] == [70, 80]
    json.dumps(jpeg.info)


def test_cifar10_jpeg_copy_by_default_only_for_lossless_sources(data_dir, monkeypatch):
    x, y = _arrays(40)
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.setattr(zi, "_cifar10_from_tfds", lambda split: (x, y))  # the lossless source
    lossless = load_dataset("cifar10", batch_size=8)
    assert lossless.info["source"] == "tensorflow-datasets:cifar10"
    assert lossless.info["augmentation"]["jpeg_prob"] == zi.LOSSLESS_JPEG_PROB > 0
    assert "jpeg_prob" not in load_dataset("cifar10", batch_size=8, jpeg_prob=0).info["augmentation"]
    archive = load_dataset("cifar10", data_dir=data_dir, batch_size=8)  # JPEG already
    assert "jpeg_prob" not in archive.info["augmentation"]
    with pytest.raises(DataError, match="jpeg_prob"):
        load_dataset("cifar10", batch_size=8, jpeg_prob="often")
    with pytest.raises(DataError, match="jpeg_quality"):
        load_dataset("cifar10", batch_size=8, jpeg_prob=0.5, jpeg_quality=75)
    plain = load_dataset("cifar10", batch_size=8, augment=False)  # no augmentation: no re-encoding either
    assert "jpeg_prob" not in plain.info["augmentation"] and plain.info["source"] == "tensorflow-datasets:cifar10"
    with pytest.raises(DataError, match="augment"):
        load_dataset("cifar10", batch_size=8, augment=False, jpeg_prob=0.5)


def test_cifar10_training_pipeline_is_built_on_first_use(data_dir, monkeypatch):
    """The loader defers the training pipeline (and its JPEG copy) to the first `bundle.train`: an evaluation-only load
    never builds it; once built it is the pipeline the settings describe, batch for batch, with tf.data's autotuning
    off (as `load_dataset` sets for every pipeline); a bad training setting still fails at load time."""
    import keras

    calls = []
    real = zi.jpeg_copy
    monkeypatch.setattr(zi, "jpeg_copy", lambda *a, **k: calls.append(1) or real(*a, **k))
    settings = dict(data_dir=data_dir, batch_size=16, seed=3, jpeg_prob=0.5, alternate_flip=True, cutout=4)
    bundle = load_dataset("cifar10", **settings)
    assert not bundle.is_built("train") and calls == []
    _epoch(bundle.test)  # evaluating builds nothing more
    assert not bundle.is_built("train") and calls == []
    assert bundle.info["steps_per_epoch"] == 40 // 16  # known without building
    keras.utils.set_random_seed(0)
    train = bundle.train
    assert bundle.is_built("train") and bundle.train is train and calls == [1]  # built once
    assert train.options().autotune.enabled is False
    assert int(train.cardinality()) == bundle.info["steps_per_epoch"]
    tx, ty, _ = zi._cifar10_arrays("train", data_dir)
    keras.utils.set_random_seed(0)
    eager = make_image_dataset(tx, ty, batch_size=16, training=True, seed=3, pad=4, flip=True, cutout=4,
                               alternate_flip=True, jpeg_prob=0.5)
    for _ in range(2):  # two epochs: the alternating flips and the per-epoch seeds match too
        assert _same(_epoch(train), _epoch(eager))
    small = load_dataset("cifar10", data_dir=data_dir, batch_size=64, limit=15)
    assert small.info["steps_per_epoch"] == int(small.train.cardinality()) == 1  # fewer images than a batch
    for bad, match in (({"pad": 40}, "pad"), ({"cutout": 99}, "cutout"), ({"flip": False, "alternate_flip": True},
                                                                          "alternate_flip")):
        with pytest.raises(DataError, match=match):
            load_dataset("cifar10", data_dir=data_dir, batch_size=8, **bad)


def test_cifar10_limit_mixes_classes(data_dir):
    b = load_dataset("cifar10", data_dir=data_dir, batch_size=64, limit=15, augment=False)
    assert (b.info["num_train"], b.info["num_test"]) == (15, 15)
    (xtr, ytr), = _epoch(b.train)
    (xte, yte), = _epoch(b.test)
    assert len(ytr) == len(yte) == 15
    assert len(set(ytr.tolist())) > 3 and len(set(yte.tolist())) > 3  # not just the first class
    again = load_dataset("cifar10", data_dir=data_dir, batch_size=64, limit=15, augment=False)
    assert sorted(_epoch(again.test)[0][1].tolist()) == sorted(yte.tolist())  # seeded subset


def test_cifar10_val_split_stratified_and_disjoint(data_dir):
    b = load_dataset("cifar10", data_dir=data_dir, batch_size=100, val_split=0.25, augment=False)
    assert (b.info["num_train"], b.info["num_val"]) == (30, 10)
    assert b.val is not b.test and b.info["val_source"].startswith("stratified")
    (xv, yv), = _epoch(b.val)
    (xt, yt), = _epoch(b.train)
    assert np.bincount(yv, minlength=10).tolist() == [1] * 10
    assert np.bincount(yt, minlength=10).tolist() == [3] * 10
    train_keys = {img.tobytes() for img in xt}
    assert not any(img.tobytes() in train_keys for img in xv)


def test_cifar10_bad_val_split(data_dir):
    with pytest.raises(DataError, match="val_split"):
        load_dataset("cifar10", data_dir=data_dir, val_split=1.0)


# ---------------------------------------------------------------------------
# the real archive (a few members only)
# ---------------------------------------------------------------------------


def test_real_archive_checksum_and_members(shared_data_dir):
    archive = shared_data_dir / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"{archive} not present")
    digest = verify_file(archive, shared_data_dir)  # checks SHA256SUMS
    assert len(digest) == 64
    names, blobs = [], []
    with tarfile.open(archive, "r|gz") as tar:  # stream: stop after a few members
        for m in tar:
            if m.isfile():
                names.append(m.name)
                blobs.append(tar.extractfile(m).read())
            if len(names) == 5:
                break
    assert all(zi._MEMBER_RE.match(n) for n in names)
    assert names[0] == "cifar10/test/airplane/0000.jpg"
    for b in blobs:
        assert tuple(tf.io.decode_jpeg(b, channels=3).shape) == (32, 32, 3)
