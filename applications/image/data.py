"""CIFAR-10 from the offline JPEG archive, and a fast augmented image pipeline.

The archive `cifar10-jpeg.tar.gz` (layout `cifar10/{train,test}/<class>/NNNN.jpg`)
is read in memory with `tarfile` (never extracted), every JPEG is decoded once
with `tf.io.decode_jpeg` (the same decoder an exported model uses on its raw
input bytes) and the arrays are cached as `.npy` under
`cache_dir("cifar10", <sha256[:16]>)`.  Later loads memory-map the cache.

The pipeline keeps images as raw `uint8` pixels (normalisation is a layer of
the model, so exported models take raw pixels) and augments whole batches at
once with stateless random ops (reflect-pad + random crop, horizontal flip,
optional cutout), which keeps a 2-core CPU well ahead of training.

Note the JPEG copy (quality 75) differs slightly in pixels from the original
CIFAR-10 release; accuracies on it run somewhat below published figures.
"""

from __future__ import annotations

import io
import os
import pathlib
import re
import tarfile
import zlib
from typing import Any

import numpy as np

from zoo.data import (
    DATASETS,
    atomic_write,
    DataBundle,
    DataError,
    OfflineArchive,
    write_json,
)

__all__ = [
    "CIFAR10_CLASSES",
    "IMAGE_SHAPE",
    "CIFAR10_ARCHIVE",
    "load_cifar10_arrays",
    "make_image_dataset",
    "TrainingPasses",
    "cifar10",
]

# Sorted order == canonical CIFAR-10 label order.
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SHAPE = (32, 32, 3)
CIFAR10_ARCHIVE = "cifar10-jpeg.tar.gz"
SPLITS = ("train", "test")

_CACHE_FORMAT = 1
_DECODE_CHUNK = 1000
_MEMBER_RE = re.compile(r"^(?:\./)?cifar10/(train|test)/([^/]+)/([^/]+\.jpe?g)$", re.IGNORECASE)


# ---------------------------------------------------------------------------
# Archive -> arrays
# ---------------------------------------------------------------------------


def _read_archive(archive: pathlib.Path) -> dict[str, list[tuple[str, bytes]]]:
    """{split: [(member name, JPEG bytes)]} sorted by member name."""
    raw = archive.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip: inflate in memory (much faster than streaming)
        try:
            raw = zlib.decompress(raw, 31)
        except zlib.error as exc:
            raise DataError(
                f"{archive}: not a valid gzip file ({exc}); expected the tar.gz archive "
                f"{CIFAR10_ARCHIVE}: replace it with the pinned copy"
            ) from exc
    members: dict[str, list[tuple[str, bytes]]] = {s: [] for s in SPLITS}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                match = _MEMBER_RE.match(m.name)
                if not match:
                    continue
                split, cls = match.group(1).lower(), match.group(2)
                if cls not in CIFAR10_CLASSES:
                    raise DataError(
                        f"{archive}: member {m.name} is in an unknown class folder {cls!r}; "
                        f"expected one of {', '.join(CIFAR10_CLASSES)}"
                    )
                if m.sparse is None and m.offset_data + m.size <= len(raw):
                    data = raw[m.offset_data : m.offset_data + m.size]
                else:
                    data = tar.extractfile(m).read()
                members[split].append((m.name, data))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(
            f"{archive}: not a readable tar archive ({exc}); expected {CIFAR10_ARCHIVE} with "
            f"layout cifar10/{{train,test}}/<class>/NNNN.jpg: replace it with the pinned copy"
        ) from exc
    for split in SPLITS:
        if not members[split]:
            raise DataError(
                f"{archive}: no images under cifar10/{split}/<class>/*.jpg; expected the "
                f"layout cifar10/{{train,test}}/<class>/NNNN.jpg with classes {', '.join(CIFAR10_CLASSES)}"
            )
        members[split].sort(key=lambda nb: nb[0])
    return members


def _decode_split(names: list[str], blobs: list[bytes], bar=None) -> np.ndarray:
    """Decode JPEG bytes to uint8 `(len(blobs), 32, 32, 3)` on TensorFlow's threads.

    Raises:
        DataError: naming the first member that is not a valid JPEG or not 32x32.
    """
    import tensorflow as tf

    h, w, c = IMAGE_SHAPE

    def decode(b):
        # ensure_shape is cheap; a wrong size fails like a corrupt file and is
        # diagnosed below.
        return tf.ensure_shape(tf.io.decode_jpeg(b, channels=c), IMAGE_SHAPE)

    ds = (
        tf.data.Dataset.from_tensor_slices(tf.constant(blobs, dtype=tf.string))
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(_DECODE_CHUNK)
        .prefetch(1)
    )
    out = np.empty((len(blobs), *IMAGE_SHAPE), np.uint8)
    done = 0
    try:
        for batch in ds:
            out[done : done + len(batch)] = batch.numpy()
            done += len(batch)
            if bar is not None:
                bar.update(len(batch))
    except tf.errors.OpError:
        _diagnose(names[done:], blobs[done:])
        raise
    return out


def _diagnose(names: list[str], blobs: list[bytes]) -> None:
    """Raise DataError for the first member that does not decode to a 32x32 RGB image."""
    import tensorflow as tf

    h, w, c = IMAGE_SHAPE
    for name, b in zip(names, blobs):
        try:
            shape = tuple(tf.io.decode_jpeg(b, channels=c).shape)
        except tf.errors.OpError as exc:
            msg = ((exc.message or str(exc)).strip().splitlines() or ["decode error"])[0]
            raise DataError(
                f"{name}: not a valid JPEG ({msg}); expected a {h}x{w} RGB JPEG: the archive "
                f"is corrupt, replace it with the pinned copy"
            ) from None
        if shape[:2] != (h, w):
            raise DataError(
                f"{name}: wrong image size {shape[0]}x{shape[1]}; expected {h}x{w} (CIFAR-10): "
                f"the archive is not the CIFAR-10 JPEG copy, replace it with the pinned copy"
            )


def _decode_archive(archive: pathlib.Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (images uint8 (N, 32, 32, 3), labels int32 (N,))} for both splits."""
    from tqdm.auto import tqdm

    members = _read_archive(archive)
    total = sum(len(v) for v in members.values())
    out = {}
    with tqdm(total=total, desc=f"decoding {archive.name}", unit="img") as bar:
        for split in SPLITS:
            names = [n for n, _ in members[split]]
            blobs = [b for _, b in members[split]]
            labels = np.array(
                [CIFAR10_CLASSES.index(_MEMBER_RE.match(n).group(2)) for n in names], dtype=np.int32
            )
            out[split] = (_decode_split(names, blobs, bar), labels)
    return out


def _cache_paths(folder: pathlib.Path, split: str) -> tuple[pathlib.Path, pathlib.Path]:
    return folder / f"{split}_images.npy", folder / f"{split}_labels.npy"


def _load_cache(folder: pathlib.Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    images_path, labels_path = _cache_paths(folder, split)
    if not ((folder / "meta.json").is_file() and images_path.is_file() and labels_path.is_file()):
        return None
    try:
        images = np.load(images_path, mmap_mode="r")
        labels = np.load(labels_path)
    except (OSError, ValueError):  # truncated/corrupt cache: rebuild it
        return None
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE or len(labels) != len(images):
        return None
    return images, labels.astype(np.int32, copy=False)


def _write_cache(folder: pathlib.Path, arrays: dict[str, tuple[np.ndarray, np.ndarray]], meta: dict) -> None:
    for split, (images, labels) in arrays.items():
        for path, arr in zip(_cache_paths(folder, split), (images, labels)):
            with atomic_write(path) as tmp:
                np.save(tmp, arr)
    write_json(folder / "meta.json", meta)  # written last: marks the cache complete


CIFAR10 = OfflineArchive("CIFAR-10", CIFAR10_ARCHIVE, "cifar10/{train,test}/<class>/NNNN.jpg", "cifar10", "cifar10")


def _cifar10_from_tfds(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = CIFAR10.from_tfds(
        lambda tfds: tfds.as_numpy(tfds.load("cifar10", split=split, as_supervised=True, batch_size=-1)))
    return np.asarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int32)


def _cifar10_arrays(split: str, data_dir=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """`load_cifar10_arrays` plus where the data came from ({"source", "sha256"})."""
    if split not in SPLITS:
        raise DataError(f"CIFAR-10 has no split {split!r}; expected one of {', '.join(SPLITS)}")
    found = CIFAR10.locate(data_dir)
    if found is None:
        images, labels = _cifar10_from_tfds(split)
        return images, labels, {"source": "tensorflow-datasets:cifar10", "sha256": None}
    archive, digest, cache = found
    source = {"source": str(archive), "sha256": digest}
    cached = _load_cache(cache, split)
    if cached is not None:
        return (*cached, source)
    arrays = _decode_archive(archive)
    meta = {
        "format": _CACHE_FORMAT,
        "source": str(archive),
        "sha256": digest,
        "classes": list(CIFAR10_CLASSES),
        "counts": {s: int(len(arrays[s][1])) for s in arrays},
        "decoder": "tf.io.decode_jpeg(channels=3)",
    }
    _write_cache(cache, arrays, meta)
    images, labels = arrays[split]
    return images, labels, source


def load_cifar10_arrays(split: str, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All CIFAR-10 images and labels of one split, as arrays.

    With a data folder (argument or `$ZOO_DATA_DIR`) this reads
    `<data_dir>/cifar10-jpeg.tar.gz` (checked against `SHA256SUMS`), decodes
    both splits once and caches them under `cache_dir("cifar10", sha[:16])`;
    later calls memory-map the cache.  With no data folder it falls back to
    `tensorflow_datasets.load("cifar10")`.

    Args:
        split: "train" (50,000 images) or "test" (10,000).
        data_dir: folder holding the archive; None: `$ZOO_DATA_DIR`, else TFDS.

    Returns:
        (images, labels): images uint8 `(N, 32, 32, 3)` (possibly a read-only
        memory map), labels int32 `(N,)` in [0, 10), indices into
        `CIFAR10_CLASSES`.  Order: sorted member names, i.e. by class, then
        file number (archive) -- shuffle before taking subsets.

    Raises:
        DataError: missing data folder/archive, checksum mismatch, a corrupt
            or wrongly sized JPEG (named), or TFDS unavailable offline.
    """
    images, labels, _ = _cifar10_arrays(split, data_dir)
    return images, labels


def load_cifar10_jpegs(split: str, data_dir: str | os.PathLike | None = None) -> tuple[list[bytes], np.ndarray]:
    """The offline archive's encoded JPEG files of one split, as an export is sent them.

    Args:
        split: "train" or "test".
        data_dir: folder holding `cifar10-jpeg.tar.gz`; None: `$ZOO_DATA_DIR`.

    Returns:
        (jpegs, labels): a list of N JPEG byte strings and int32 labels `(N,)`
        (indices into `CIFAR10_CLASSES`), in the order of `load_cifar10_arrays`.

    Raises:
        DataError: no data folder (the tensorflow-datasets copy holds no JPEG
            files), a missing archive or a checksum mismatch.
    """
    if split not in SPLITS:
        raise DataError(f"CIFAR-10 has no split {split!r}; expected one of {', '.join(SPLITS)}")
    found = CIFAR10.locate(data_dir)
    if found is None:
        raise DataError("load_cifar10_jpegs reads the offline archive: set ZOO_DATA_DIR or pass data_dir "
                        f"(the folder holding {CIFAR10_ARCHIVE})")
    members = _read_archive(found[0])[split]
    labels = [CIFAR10_CLASSES.index(_MEMBER_RE.match(name).group(2)) for name, _ in members]
    return [data for _, data in members], np.array(labels, np.int32)


# ---------------------------------------------------------------------------
# Pipeline
# ---------------------------------------------------------------------------


def _reflect(i, n: int):
    """Index `i` (in [-(n-1), 2(n-1)]) reflected into [0, n) like `tf.pad(mode="REFLECT")`."""
    import tensorflow as tf

    return (n - 1) - tf.abs((n - 1) - tf.abs(i))


def _augmented_pixel_index(idx, seed, *, shape, pad: int, flip: bool, cutout: int, fill_index: int, flip_mask=None):
    """Flat source-pixel indices of an augmented batch.

    Random crop after reflect-padding by `pad`, horizontal flip and cutout are
    all index arithmetic, so the augmented batch is a single gather of
    pixels out of the whole image table: cheap on a 2-core CPU.

    Args:
        idx: int32 `(B,)` example indices into the image table.
        seed: `(2,)` stateless seed of this batch.
        shape: `(H, W)` of the images.
        fill_index: flat index of the cutout fill pixel.
        flip_mask: bool `(B,)`, which images to flip (alternating flip); None:
            each image flipped with probability 1/2 (when `flip`).

    Returns:
        int32 `(B, H, W)`: flat index `(n * H + row) * W + col` of every output pixel.
    """
    import tensorflow as tf

    h, w = shape
    b = tf.shape(idx)[0]
    s_crop, s_flip, s_cut = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    rows = tf.range(h)[None, :]  # (1|B, H)
    cols = tf.range(w)[None, :]  # (1|B, W)
    if pad:
        offset = tf.random.stateless_uniform([b, 2], seed=s_crop, minval=-pad, maxval=pad + 1, dtype=tf.int32)
        rows = _reflect(rows + offset[:, :1], h)
        cols = _reflect(cols + offset[:, 1:], w)
    else:
        rows, cols = tf.tile(rows, [b, 1]), tf.tile(cols, [b, 1])
    if flip:
        if flip_mask is None:
            flipped = tf.random.stateless_uniform([b, 1], seed=s_flip) < 0.5
        else:
            flipped = tf.reshape(flip_mask, [-1, 1])
        cols = tf.where(flipped, tf.reverse(cols, axis=[1]), cols)
    pixels = (idx[:, None, None] * h + rows[:, :, None]) * w + cols[:, None, :]
    if cutout:
        corner = tf.random.stateless_uniform([b, 2], seed=s_cut, minval=0, maxval=max(h, w), dtype=tf.int32)
        corner -= cutout // 2  # centre uniform over the image, square clipped at the border
        ys, xs = tf.range(h)[None, :], tf.range(w)[None, :]
        in_y = (ys >= corner[:, :1]) & (ys < corner[:, :1] + cutout)  # (B, H)
        in_x = (xs >= corner[:, 1:]) & (xs < corner[:, 1:] + cutout)  # (B, W)
        pixels = tf.where(in_y[:, :, None] & in_x[:, None, :], fill_index, pixels)
    return pixels


def jpeg_copy(images, qualities, batch_size: int = 1024):
    """Every image JPEG-encoded at its own quality and decoded again (`tf.image.adjust_jpeg_quality`).

    Args:
        images: uint8 `(N, H, W, 3)`.
        qualities: int `(N,)` in [1, 100], one JPEG quality per image.
        batch_size: images per parallel map call (memory only).

    Returns:
        uint8 `(N, H, W, 3)`: what a JPEG upload of each image decodes to
        (4:2:0 chroma, the common default of JPEG writers).
    """
    import tensorflow as tf

    images = np.asarray(images)
    qualities = np.asarray(qualities, np.int32)
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] != 3:
        raise DataError(f"jpeg_copy: expected uint8 RGB images (N, H, W, 3), got {images.dtype} {images.shape}")
    if qualities.shape != (len(images),) or (len(qualities) and not (1 <= qualities.min() <= qualities.max() <= 100)):
        raise DataError(f"jpeg_copy: expected one quality in [1, 100] per image ({len(images)}), got {qualities}")
    ds = tf.data.Dataset.from_tensor_slices((images, qualities)).map(
        lambda x, q: tf.image.adjust_jpeg_quality(x, q), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    out = np.empty_like(images)
    at = 0
    for chunk in ds.batch(batch_size).as_numpy_iterator():
        out[at:at + len(chunk)] = chunk
        at += len(chunk)
    return out


def lowres_copy(images, sizes, nearest, batch_size: int = 1024):
    """Every image shrunk to its own size and enlarged back: what a low-resolution or upscaled photo looks like.

    Args:
        images: uint8 `(N, H, W, C)`.
        sizes: int `(N,)` in [1, min(H, W)]: each image is resized to `size x size` (area averaging) ...
        nearest: bool `(N,)`: ... and back to `(H, W)` by nearest neighbour (blocky, like a pixelated
            thumbnail) where True, else bilinear (blurred, like an enlarged small photo).
        batch_size: images per resize call (memory only).

    Returns:
        uint8 `(N, H, W, C)`, rounded and clipped.
    """
    import tensorflow as tf

    images = np.asarray(images)
    sizes = np.asarray(sizes, np.int64)
    nearest = np.asarray(nearest, bool)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise DataError(f"lowres_copy: expected uint8 images (N, H, W, C), got {images.dtype} {images.shape}")
    n, h, w, _ = images.shape
    if sizes.shape != (n,) or nearest.shape != (n,) or (n and not 1 <= sizes.min() <= sizes.max() <= min(h, w)):
        raise DataError(f"lowres_copy: expected one size in [1, {min(h, w)}] and one nearest flag per image ({n})")
    out = np.empty_like(images)
    for size in np.unique(sizes):
        for near in (False, True):
            rows = np.flatnonzero((sizes == size) & (nearest == near))
            for at in range(0, len(rows), batch_size):
                chunk = rows[at:at + batch_size]
                small = tf.image.resize(images[chunk], [int(size), int(size)], method="area")
                big = tf.image.resize(small, [h, w], method="nearest" if near else "bilinear")
                out[chunk] = tf.cast(tf.clip_by_value(tf.round(big), 0, 255), tf.uint8).numpy()
    return out


def _copy_settings(caller: str, name: str, prob, range_name: str, value, highest: int, what: str = ""):
    """`(probability, (low, high))` of a training-image copy (`name` its probability setting, `range_name` its
    `(low, high)` setting, inclusive, in [1, `highest`]), or a `DataError` naming the bad setting."""
    try:
        p = float(prob)
    except (TypeError, ValueError):
        p = float("nan")
    if not 0.0 <= p <= 1.0:
        raise DataError(f"{caller}: {name} must be a probability in [0, 1], got {prob!r}")
    try:
        low, high = (int(v) for v in value)
    except (TypeError, ValueError):
        raise DataError(f"{caller}: {range_name} must be (low, high){what and ' in ' + what}, got {value!r}") from None
    if not 1 <= low <= high <= highest:
        raise DataError(f"{caller}: {range_name} must satisfy 1 <= low <= high <= {highest}"
                        f"{what and ' (' + what + ')'}, got {value!r}")
    return p, (low, high)


def _check_pipeline(images, labels, *, batch_size, training, seed=0, augment=True, pad=4, flip=True, cutout=0,
                    alternate_flip=False, jpeg_prob=0.0, jpeg_quality=(60, 95), lowres_prob=0.0, lowres_sizes=(12, 24),
                    passes=None, caller="make_image_dataset"):
    """`make_image_dataset`'s checks: `(images, labels, copies)` (arrays, and the copies' settings normalised:
    {"jpeg_prob", "jpeg_quality": (low, high), "jpeg": whether the JPEG copy is used, "lowres_prob",
    "lowres_sizes": (low, high), "lowres": whether the low-resolution copy is used}), or a `DataError` naming
    `caller` and the bad setting.  Cheap: the `cifar10` loader runs it before it defers building its training
    pipeline, so a bad setting fails at load time."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise DataError(f"{caller}: expected uint8 images (N, H, W, C), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),):
        raise DataError(f"{caller}: expected labels of shape ({len(images)},), got {labels.shape}")
    n, h, w, c = images.shape
    if n == 0:
        raise DataError(f"{caller}: no images (N = 0)")
    if int(batch_size) < 1:
        raise DataError(f"{caller}: batch_size must be >= 1, got {batch_size}")
    if not 0 <= pad < min(h, w):
        raise DataError(f"{caller}: pad must be in [0, {min(h, w)}) for {h}x{w} images, got {pad}")
    if not 0 <= cutout <= max(h, w):
        raise DataError(f"{caller}: cutout must be in [0, {max(h, w)}], got {cutout}")
    if alternate_flip and not (flip and augment):
        raise DataError(f"{caller}: alternate_flip needs flip=True and augment=True")
    jpeg_prob, jpeg_quality = _copy_settings(caller, "jpeg_prob", jpeg_prob, "jpeg_quality", jpeg_quality, 100)
    lowres_prob, lowres_sizes = _copy_settings(caller, "lowres_prob", lowres_prob, "lowres_sizes", lowres_sizes,
                                               min(h, w), "pixels, at most the image side")
    for name, prob in (("jpeg_prob", jpeg_prob), ("lowres_prob", lowres_prob)):
        if training and prob > 0 and not augment:
            raise DataError(f"{caller}: {name} needs augment=True (or set {name}=0)")
    if passes is not None and passes.progressive:
        if h != w or passes.full_size != h:
            raise DataError(f"{caller}: progressive resizing needs square images of its full_size "
                            f"({passes.full_size}), got {h}x{w}")
        if not augment:
            raise DataError(f"{caller}: progressive resizing needs augment=True (or progressive_epochs=0)")
    jpeg = bool(training and jpeg_prob > 0)
    if jpeg and c != 3:
        raise DataError(f"{caller}: jpeg_prob needs RGB images, got {c} channels")
    return images, labels, {"jpeg_prob": jpeg_prob, "jpeg_quality": jpeg_quality, "jpeg": jpeg,
                            "lowres_prob": lowres_prob, "lowres_sizes": lowres_sizes,
                            "lowres": bool(training and lowres_prob > 0)}



class TrainingPasses:
    """The epoch number of each pass over a training pipeline, and the image size each epoch trains at.

    A training pipeline of `make_image_dataset` counts its passes itself:
    each new iterator over it is the next epoch.  What depends on the epoch
    lives here: alternating flips (parity), and progressive resizing: the
    first `progressive_epochs` epochs train on images shrunk to
    `progressive_size` x `progressive_size` pixels (antialiased bilinear,
    after crop and flip), the rest at full size; with `progressive_ramp`
    the early epochs' side rises instead, in steps of `RAMP_STEP` pixels,
    from `progressive_size` towards full size (FFCV's resolution ramp:
    e.g. 16 16 20 20 24 24 28 28 for 16 over 8 epochs).  Early epochs, which
    learn coarse features, then cost about half as much (the 32-128-128
    airbench step at 24x24 ran 1.9-2.1x the images/s of 32x32 on a 2-core
    AVX2 EPYC), as in fast.ai's DAWNBench ImageNet and FFCV's ResNet
    recipes; `cost(epoch)` tells a time budget so.

    `set_next_epoch(e)` says which epoch the next pass is: `fit` calls it
    with the epoch it starts at (a resumed run picks up its schedule where
    it stopped) and with -1 before the patch whitening's fit on the first
    training batches: negative epochs are outside training and full size.
    A new counter's next pass is epoch 0; `counter` is the int64
    `tf.Variable` holding the last pass's epoch.

    Args:
        full_size: side of the images, in pixels.
        progressive_size: side, in pixels, of the early epochs' images; 0 or
            `full_size`: no progressive resizing.
        progressive_epochs: how many epochs, from the first, are smaller
            than full size.
        progressive_ramp: False: all of them at `progressive_size`; True:
            epoch `e` of them at `progressive_size + RAMP_STEP *
            floor(steps * e / progressive_epochs)`, where `steps` is how many
            whole `RAMP_STEP`s lie between `progressive_size` and full size.

    Raises:
        DataError: a size outside [16, full_size] (0 allowed) or negative epochs.
    """

    RAMP_STEP = 4

    def __init__(self, full_size: int, progressive_size: int = 0, progressive_epochs: int = 0,
                 progressive_ramp: bool = False):
        self.full_size = int(full_size)
        size, epochs = int(progressive_size), int(progressive_epochs)
        if size and not 16 <= size <= self.full_size:
            raise DataError(f"progressive_size must be 0 (off) or in [16, {self.full_size}] pixels, got {size}")
        if epochs < 0:
            raise DataError(f"progressive_epochs must be >= 0, got {epochs}")
        self.progressive_size = size or self.full_size
        self.progressive_epochs = epochs if self.progressive_size != self.full_size else 0
        self.progressive_ramp = bool(progressive_ramp) and self.progressive_epochs > 0
        steps = (self.full_size - self.progressive_size) // self.RAMP_STEP if self.progressive_ramp else 0
        # the side of each early epoch, in order (what the pipeline looks up by its pass counter)
        self.sizes = tuple(self.progressive_size + self.RAMP_STEP * (steps * e // max(self.progressive_epochs, 1))
                           for e in range(self.progressive_epochs))
        import tensorflow as tf

        # made here, where a loader runs: outside any tf.distribute scope, which would mirror it
        self.counter = tf.Variable(-1, dtype=tf.int64, trainable=False, name="training_pass")

    @property
    def progressive(self) -> bool:
        """Whether some epochs train at a smaller size."""
        return self.progressive_epochs > 0

    def set_next_epoch(self, epoch: int) -> None:
        """Make the next pass over the pipeline epoch `epoch` (negative: outside training, full size)."""
        self.counter.assign(int(epoch) - 1)

    def size(self, epoch: int) -> int:
        """Side, in pixels, of the images of epoch `epoch`."""
        return self.sizes[int(epoch)] if 0 <= int(epoch) < self.progressive_epochs else self.full_size

    def cost(self, epoch: int) -> float:
        """Epoch `epoch`'s training cost relative to a full-size epoch: the ratio of pixels, `(size / full)^2`."""
        return (self.size(epoch) / self.full_size) ** 2

    def settings(self) -> dict:
        """The schedule as data settings (empty when there is no progressive resizing)."""
        if not self.progressive:
            return {}
        settings = {"progressive_size": self.progressive_size, "progressive_epochs": self.progressive_epochs}
        return {**settings, "progressive_ramp": True, "progressive_sizes": list(self.sizes)} if self.progressive_ramp \
            else settings


def _num_batches(n: int, batch_size: int, drop_remainder: bool) -> int:
    """Batches of `batch_size` in `n` examples: whole ones only with `drop_remainder`, else the last partial too."""
    return n // batch_size if drop_remainder else -(-n // batch_size)


def make_image_dataset(
    images,
    labels,
    *,
    batch_size: int,
    training: bool,
    seed: int = 0,
    augment: bool = True,
    pad: int = 4,
    flip: bool = True,
    cutout: int = 0,
    alternate_flip: bool = False,
    jpeg_prob: float = 0.0,
    jpeg_quality=(60, 95),
    lowres_prob: float = 0.0,
    lowres_sizes=(12, 24),
    passes: TrainingPasses | None = None,
    drop_remainder: bool | None = None,
):
    """Batched, prefetched `tf.data` pipeline over in-memory images.

    Training: every epoch draws a seed from a seeded stream, permutes the
    whole set with it (no shuffle buffer to refill) and derives one stateless
    seed per batch; each batch of indices is augmented in one vectorised map:
    random crop after reflect-padding by `pad`, horizontal flip, optional
    `cutout` x `cutout` square (centre uniform over the image, clipped at the
    border) filled with mid-grey 128 (about the data mean, so near zero after
    the model's normalisation).  With `alternate_flip` (airbench, Jordan
    2024) the flips are not drawn anew each epoch: every image gets one
    random bit from `seed` for the first pass, and each later pass over the
    pipeline flips exactly the images the previous pass did not, so every
    image is seen both ways in any two consecutive epochs.  With `jpeg_prob`
    each training image comes, with that probability per use, from a
    JPEG-re-encoded copy of the set made once (`jpeg_copy`, one quality per
    image uniform in `jpeg_quality`), before crop and flip: a model trained
    on lossless images (tensorflow-datasets) then also knows what JPEG
    uploads of them look like; nothing is encoded during the epochs.  With
    `lowres_prob` each training image comes, with that probability per use
    (drawn apart from, and taking precedence over, the JPEG draw), from a
    low-resolution copy made once (`lowres_copy`: each image shrunk to a
    size uniform in `lowres_sizes` and enlarged back, bilinear or nearest
    at even odds): blurred and pixelated pictures, which a model trained
    on sharp 32x32 images misreads.  With `passes` (a `TrainingPasses`
    with progressive resizing) the first epochs' batches are shrunk to its
    size for the epoch (`passes.size(epoch)`) after crop and flip.  Eval: plain batches in order.
    `prefetch(AUTOTUNE)` comes last.

    Two pipelines built with the same `seed` (under the same TensorFlow global
    seed, which `keras.utils.set_random_seed` sets) yield identical batches
    epoch by epoch; epochs differ from each other; another seed differs.

    Args:
        images: uint8 array `(N, H, W, C)`, raw pixels (kept uint8).
        labels: integer array `(N,)`; yielded as int32.
        batch_size: examples per batch.
        training: permute + augment (True) or evaluation order (False).
        seed: seed of the permutation and the augmentation.
        augment: apply pad/crop, flip, cutout when training.
        pad: reflect-padding before the random crop back to `(H, W)`; 0: no crop.
        flip: random horizontal flips.
        cutout: side of the square cut out of each image; 0: none.
        alternate_flip: flip each image on alternate passes instead of at
            random (needs `flip`); the pass count is `passes`' (a counter of
            the pipeline's own when None).
        jpeg_prob: probability that a training image is drawn from the JPEG
            copy (0: no copy is made; needs RGB images and `augment`).
        jpeg_quality: `(low, high)` JPEG qualities of the copy, inclusive.
        lowres_prob: probability that a training image is drawn from the
            low-resolution copy (0: no copy is made; needs `augment`).
        lowres_sizes: `(low, high)` sides, in pixels, the copy's images are
            shrunk to, inclusive (at most the image side).
        passes: the epoch counter and size schedule of a training pipeline
            (`TrainingPasses`; `fit` sets its next epoch when it starts or
            resumes); None: full size throughout.
        drop_remainder: drop the last partial batch; None: when training and
            N >= batch_size (fixed shapes for compiled steps), else keep it.

    Returns:
        tf.data.Dataset of `(images uint8 (B, H, W, C), labels int32 (B,))`;
        with progressive resizing `(B, None, None, C)`: `(B, s, s, C)` in the
        epochs at `s` pixels.

    Raises:
        DataError: bad shapes/dtypes or settings.
    """
    import tensorflow as tf

    images, labels, settings = _check_pipeline(
        images, labels, batch_size=batch_size, training=training, augment=augment, pad=pad, flip=flip, cutout=cutout,
        alternate_flip=alternate_flip, jpeg_prob=jpeg_prob, jpeg_quality=jpeg_quality, lowres_prob=lowres_prob,
        lowres_sizes=lowres_sizes, passes=passes)
    jpeg, jpeg_prob, (q_low, q_high) = settings["jpeg"], settings["jpeg_prob"], settings["jpeg_quality"]
    lowres, lowres_prob, (s_low, s_high) = settings["lowres"], settings["lowres_prob"], settings["lowres_sizes"]
    n, h, w, c = images.shape
    copies = 1 + jpeg + lowres  # the originals, then the JPEG copy, then the low-resolution copy
    if copies * n * h * w + 1 >= 2**31:
        raise DataError(f"make_image_dataset: {n} images of {h}x{w} are too many for int32 pixel indices")
    batch_size = int(batch_size)
    if drop_remainder is None:
        drop_remainder = bool(training and n >= batch_size)
    progressive = bool(training and augment and passes is not None and passes.progressive)
    augmenting = bool(training and augment and (pad or flip or cutout or jpeg or lowres or progressive))

    labels_t = tf.constant(labels.astype(np.int32, copy=False))
    if augmenting:
        # One row per pixel (the copies' after the originals'), plus the cutout fill pixel last.
        flat = images.reshape(n * h * w, c)
        if jpeg:
            qualities = np.random.default_rng([int(seed), 0x1E6]).integers(q_low, q_high + 1, n)
            flat = np.concatenate([flat, jpeg_copy(images, qualities).reshape(n * h * w, c)])
        if lowres:
            draws = np.random.default_rng([int(seed), 0x10E5])
            sizes, nearest = draws.integers(s_low, s_high + 1, n), draws.random(n) < 0.5
            flat = np.concatenate([flat, lowres_copy(images, sizes, nearest).reshape(n * h * w, c)])
        if cutout:
            flat = np.concatenate([flat, np.full((1, c), 128, np.uint8)])
        table = tf.constant(flat)
    else:
        table = tf.constant(images)

    alternating = bool(augmenting and alternate_flip)
    if alternating:
        # one random bit per image (from `seed`), XOR the parity of the pass
        first_flips = tf.constant(np.random.default_rng([int(seed), 0x0F11]).random(n) < 0.5)
    if (alternating or progressive) and passes is None:
        passes = TrainingPasses(h)
    if progressive:  # index 0: outside training (-1); then the early epochs; last: full size from then on
        sizes_t = tf.constant([h, *passes.sizes, h], tf.int32)

    if training:
        num_batches = _num_batches(n, batch_size, drop_remainder)

        def epoch(epoch_seed):
            perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=epoch_seed)
            this = passes.counter.assign_add(1) if alternating or progressive else tf.constant(0, tf.int64)
            odd = tf.equal(this % 2, 1)
            # this epoch's side: the schedule's early sizes, then (and outside training, at -1) full size
            side = tf.gather(sizes_t, tf.clip_by_value(this + 1, 0, len(sizes_t) - 1)) if progressive \
                else tf.constant(h)

            def batch(k):
                k = tf.cast(k, tf.int32)
                idx = perm[k * batch_size : tf.minimum((k + 1) * batch_size, n)]
                seed_k = tf.random.experimental.stateless_fold_in(epoch_seed, k)
                flips = tf.math.logical_xor(tf.gather(first_flips, idx), odd) if alternating else tf.zeros([0], bool)
                return idx, seed_k, flips, side

            return tf.data.Dataset.range(num_batches).map(batch)

        # A seeded stream that yields a new seed every epoch (every iteration).
        indices = (
            tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
            .batch(2)
            .take(1)
            .flat_map(epoch)
            .apply(tf.data.experimental.assert_cardinality(num_batches))
        )
    else:
        indices = tf.data.Dataset.range(n).batch(batch_size, drop_remainder=drop_remainder)
        indices = indices.map(lambda idx: (tf.cast(idx, tf.int32), tf.zeros([2], tf.int32), tf.zeros([0], bool),
                                           tf.constant(h)))

    if augmenting:

        def load(idx, batch_seed, flips, side):
            flip_mask = flips if alternating else None
            source = idx
            if jpeg:  # row of the JPEG copy: index + n (a seed of its own, so the other draws do not change)
                use = tf.random.stateless_uniform(tf.shape(idx), seed=tf.random.experimental.stateless_fold_in(
                    batch_seed, 0x1E6)) < jpeg_prob
                source = idx + tf.cast(use, tf.int32) * n
            if lowres:  # row of the low-resolution copy, the last one: index + (copies - 1) n; its own seed too
                use = tf.random.stateless_uniform(tf.shape(idx), seed=tf.random.experimental.stateless_fold_in(
                    batch_seed, 0x10E5)) < lowres_prob
                source = tf.where(use, idx + (copies - 1) * n, source)
            pixels = _augmented_pixel_index(
                source, batch_seed, shape=(h, w), pad=pad, flip=flip, cutout=cutout, fill_index=copies * n * h * w,
                flip_mask=flip_mask,
            )
            x = tf.reshape(tf.gather(table, pixels), [-1, h, w, c])
            if progressive:
                x = tf.cond(side < h, lambda: tf.cast(tf.clip_by_value(tf.round(tf.image.resize(
                    x, tf.stack([side, side]), antialias=True)), 0, 255), tf.uint8), lambda: x)
            return x, tf.gather(labels_t, idx)

    else:

        def load(idx, batch_seed, flips, side):
            return tf.gather(table, idx), tf.gather(labels_t, idx)

    if drop_remainder:  # static batch size for compiled (XLA) steps
        load_any = load
        shape = [batch_size, None, None, c] if progressive else [batch_size, h, w, c]

        def load(*batch):
            x, y = load_any(*batch)
            return tf.ensure_shape(x, shape), tf.ensure_shape(y, [batch_size])

    ds = indices.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------
# Loader
# ---------------------------------------------------------------------------


def _stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): `fraction` of every class held out, both shuffled."""
    held = []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        k = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        held.append(idx[:k])
    held_out = rng.permutation(np.concatenate(held)) if held else np.zeros(0, np.int64)
    mask = np.ones(len(labels), bool)
    mask[held_out] = False
    keep = rng.permutation(np.flatnonzero(mask))
    return keep, held_out


# Training images drawn from a JPEG re-encoding when the source is lossless (tensorflow-datasets): on the
# lossless release the main job then scores 92.9% on lossless and 90.4% on quality-75 JPEG test images,
# against 93.6% and 86.5% without (one seed each, bench/RESULTS.md, round 13).
LOSSLESS_JPEG_PROB = 0.5


@DATASETS.register("cifar10")
def cifar10(
    data_dir: str | os.PathLike | None = None,
    *,
    batch_size: int = 128,
    limit: int | None = None,
    seed: int = 0,
    augment: bool = True,
    pad: int = 4,
    flip: bool = True,
    cutout: int = 0,
    alternate_flip: bool = False,
    jpeg_prob: float | None = None,
    jpeg_quality=(60, 95),
    lowres_prob: float = 0.0,
    lowres_sizes=(12, 24),
    progressive_size: int = 0,
    progressive_epochs: int = 0,
    progressive_ramp: bool = False,
    val_split: float = 0.0,
    val_limit: int = 0,
) -> DataBundle:
    """CIFAR-10 as a `DataBundle` of uint8 image pipelines.

    Validation: with `val_split=0.0` (default) `val` is the test set, the
    convention of the fast CIFAR-10 training records (DAWNBench, Page's
    ResNet-9); say so when reporting.  With `val_split > 0` a seeded,
    stratified fraction of the training set is held out as `val` (disjoint
    from `train`).

    Args:
        data_dir: folder holding `cifar10-jpeg.tar.gz`; None: `$ZOO_DATA_DIR`,
            else tensorflow-datasets.
        batch_size: examples per batch of every pipeline.
        limit: keep only the first `limit` examples of each split (smoke
            runs).  The archive is ordered by class, so train (and test) are
            first shuffled with `seed`, then cut; `val` is carved before the cut.
        seed: seed of the subsets, the shuffle and the augmentation.
        augment, pad, flip, cutout, alternate_flip, jpeg_prob, jpeg_quality, lowres_prob, lowres_sizes:
            training augmentation (see `make_image_dataset`).
            `jpeg_prob=None` (the default) is `LOSSLESS_JPEG_PROB` (0.5)
            when the training images are lossless (tensorflow-datasets) and
            augmented, and 0 when they are JPEG already (the offline
            archive) or `augment=False`: exports take
            image bytes, and a model trained only on lossless images loses 7
            points on the same images as quality-75 JPEGs (bench/RESULTS.md,
            rounds 12-13).  A number applies to either source.
        progressive_size, progressive_epochs, progressive_ramp: progressive
            resizing, the first `progressive_epochs` epochs at
            `progressive_size` x `progressive_size` pixels, or with
            `progressive_ramp` rising from it in steps of 4 (0: off; see
            `TrainingPasses`, the bundle's `schedule`).  Validation and test
            stay at 32x32.
        val_split: fraction of train held out for validation, in [0, 1).
        val_limit: validate on this many images of `val` after each epoch,
            drawn at random (seeded by `seed`) from the test set or the
            held-out split; 0: all of it.  The final test metrics always
            use the whole test set; this only makes the per-epoch check
            cheaper (10,000 images cost ~8% of a `make train` epoch).

    Returns:
        DataBundle: train/val/test yield `(uint8 (B, 32, 32, 3), int32 (B,))`;
        `info` has class_names, num_train/num_val/num_test, source, sha256,
        batch_size, seed, limit, val_split, val_source and augmentation.
        `preprocessor` is None (the models normalise raw pixels themselves);
        `schedule` the training pipeline's `TrainingPasses` (None without
        progressive resizing or alternating flip).

    Raises:
        DataError: missing/corrupt data or a bad setting.
    """
    if not 0.0 <= float(val_split) < 1.0:
        raise DataError(f"cifar10: val_split must be in [0, 1), got {val_split}")
    if int(val_limit) < 0:
        raise DataError(f"cifar10: val_limit must be 0 (all) or a positive number of images, got {val_limit}")
    if limit is not None and int(limit) < 1:
        raise DataError(f"cifar10: limit must be a positive number of examples or None, got {limit}")
    train_x, train_y, source = _cifar10_arrays("train", data_dir)
    test_x, test_y, _ = _cifar10_arrays("test", data_dir)

    rng = np.random.default_rng(seed)
    if val_split > 0:
        train_idx, val_idx = _stratified_split(train_y, float(val_split), rng)
    else:
        train_idx, val_idx = rng.permutation(len(train_y)) if limit else np.arange(len(train_y)), None
    test_idx = rng.permutation(len(test_y)) if limit else np.arange(len(test_y))
    if limit:
        limit = int(limit)
        train_idx, test_idx = train_idx[:limit], test_idx[:limit]
        val_idx = None if val_idx is None else val_idx[:limit]

    def take(x, y, idx):
        if len(idx) == len(y) and np.array_equal(idx, np.arange(len(y))):
            return x, y
        return np.asarray(x[idx]), np.asarray(y[idx])

    tx, ty = take(train_x, train_y, train_idx)
    ex, ey = take(test_x, test_y, test_idx)
    aug = {"augment": bool(augment), "pad": int(pad), "flip": bool(flip), "cutout": int(cutout)}
    if alternate_flip:
        aug["alternate_flip"] = True
    try:
        passes = TrainingPasses(IMAGE_SHAPE[0], progressive_size, progressive_epochs, progressive_ramp)
    except DataError as e:
        raise DataError(f"cifar10: {e}") from None
    if jpeg_prob is None:  # a training augmentation: none without augment
        lossless = source["source"].startswith("tensorflow-datasets")
        jpeg_prob = LOSSLESS_JPEG_PROB if lossless and augment else 0.0
    # a bad setting fails here, not when training starts
    _, _, copies = _check_pipeline(tx, ty, batch_size=batch_size, training=True, **aug, jpeg_prob=jpeg_prob,
                                   jpeg_quality=jpeg_quality, lowres_prob=lowres_prob, lowres_sizes=lowres_sizes,
                                   passes=passes, caller="cifar10")
    for prob, setting in (("jpeg_prob", "jpeg_quality"), ("lowres_prob", "lowres_sizes")):
        if copies[prob] > 0:
            aug[prob] = copies[prob]
            aug[setting] = list(copies[setting])
    train_settings = {"batch_size": batch_size, "training": True, "seed": seed, **aug}
    drop_remainder = bool(len(ty) >= int(batch_size))  # make_image_dataset's default when training
    test = make_image_dataset(ex, ey, batch_size=batch_size, training=False)
    if val_idx is not None:
        vx, vy = take(train_x, train_y, val_idx)
        val_source = f"stratified {val_split:g} of train (seed {seed})"
    else:
        vx, vy, val_source = ex, ey, "test"
    if 0 < int(val_limit) < len(vy):  # a seeded random subset: the archive is ordered by class
        keep = np.sort(np.random.default_rng([int(seed), 0x7A1]).permutation(len(vy))[: int(val_limit)])
        vx, vy = vx[keep], vy[keep]
        val_source += f", {len(vy)} at random (seed {seed})"
    if val_idx is None and len(vy) == len(ey):
        val, num_val = test, len(ey)
    else:
        val, num_val = make_image_dataset(vx, vy, batch_size=batch_size, training=False), len(vy)

    info: dict[str, Any] = {
        "name": "cifar10",
        "class_names": list(CIFAR10_CLASSES),
        "num_classes": len(CIFAR10_CLASSES),
        "image_shape": list(IMAGE_SHAPE),
        "dtype": "uint8",
        "num_train": int(len(ty)),
        "num_val": int(num_val),
        "num_test": int(len(ey)),
        "val_source": val_source,
        "source": source["source"],
        "sha256": source["sha256"],
        "batch_size": int(batch_size),
        "seed": int(seed),
        "limit": None if limit is None else int(limit),
        "val_split": float(val_split),
        "val_limit": int(val_limit),
        "augmentation": {**aug, **passes.settings()},
        "drop_remainder": drop_remainder,
        "steps_per_epoch": _num_batches(len(ty), int(batch_size), drop_remainder),  # as make_image_dataset's train
    }
    # The training pipeline is built on first use of `bundle.train`: a load that only evaluates skips its
    # table (with the JPEG copy, ~6 s and 150 MB for 50,000 images).
    schedule = passes if passes.progressive or alternate_flip else None  # what fit tells the epoch it starts at
    return DataBundle(train=lambda: make_image_dataset(tx, ty, **train_settings, passes=schedule), val=val, test=test,
                      info=info, preprocessor=None, schedule=schedule)
