"""Shared test settings: quiet TensorFlow, a private cache, seeded Keras."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib

import pytest

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed_and_isolate(tmp_path_factory, monkeypatch):
    """Every test: fixed Keras seed, and a cache dir that is not the user's."""
    import keras

    keras.utils.set_random_seed(0)
    cache = tmp_path_factory.getbasetemp() / "zoo-cache"
    monkeypatch.setenv("ZOO_CACHE_DIR", os.environ.get("ZOO_TEST_CACHE_DIR", str(cache)))
    yield


@pytest.fixture
def shared_data_dir():
    """The offline data copies (ZOO_DATA_DIR or ../shared/data); skip when absent."""
    d = os.environ.get("ZOO_DATA_DIR") or (str(SHARED_DATA) if SHARED_DATA.is_dir() else "")
    if not d or not pathlib.Path(d).is_dir():
        pytest.skip("no offline data directory (set ZOO_DATA_DIR)")
    # absolute: a relative ZOO_DATA_DIR (`../shared/data`, as the README types it) is the process's, while a
    # relative path given to verify_file(path, data_dir) is taken inside data_dir
    return pathlib.Path(d).resolve()


def write_archive(root, filename, members):
    """Write `members` [(name, bytes)] as `root/filename` (a gzip tar) and list it in `root/SHA256SUMS`."""
    import hashlib
    import io
    import tarfile

    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    archive = root / filename
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with open(root / "SHA256SUMS", "a") as sums:
        sums.write(f"{digest}  {filename}\n")
    return root


def write_cifar_archive(root, per_class_train=12, per_class_test=4, seed=0, corrupt=None):
    """A tiny CIFAR-10-layout archive (`cifar10/{train,test}/<class>/NNNN.jpg`) plus SHA256SUMS.

    Images are learnable: each class has its own colour and stripe direction,
    with noise.  `corrupt="cifar10/train/cat/0001.jpg"` writes garbage there.
    Returns the data directory.
    """
    import numpy as np
    import tensorflow as tf

    from applications.image.data import CIFAR10_CLASSES

    rng = np.random.default_rng(seed)
    palette = rng.integers(30, 225, (10, 3))
    yy, xx = np.mgrid[0:32, 0:32]

    def members():
        for split, n in (("train", per_class_train), ("test", per_class_test)):
            for k, cls in enumerate(CIFAR10_CLASSES):
                stripes = np.sin((xx * np.cos(k * 0.31) + yy * np.sin(k * 0.31)) * (0.3 + 0.1 * k))[..., None]
                for i in range(n):
                    img = palette[k] + 40 * stripes + rng.normal(0, 12, (32, 32, 3))
                    name = f"cifar10/{split}/{cls}/{i:04d}.jpg"
                    yield name, (b"not a jpeg at all" if name == corrupt
                                 else tf.io.encode_jpeg(np.clip(img, 0, 255).astype(np.uint8), quality=90).numpy())

    return write_archive(root, "cifar10-jpeg.tar.gz", members())


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory):
    """Data dir with a tiny learnable CIFAR-10-layout archive (120 train, 40 test images)."""
    return write_cifar_archive(tmp_path_factory.mktemp("tiny-cifar"))


POSITIVE = "wonderful superb moving brilliant delightful great loved masterpiece charming".split()
NEGATIVE = "awful boring dull terrible waste worst hated clumsy tedious".split()
NEUTRAL = "the film movie plot actor scene story director it was and a of to this with".split()


def write_imdb_archive(root, per_class_train=60, per_class_test=20, seed=0, raw_override=None):
    """A tiny aclImdb-layout archive of learnable synthetic reviews, plus SHA256SUMS.

    Positive reviews mix neutral words with words from POSITIVE, negative ones
    with NEGATIVE; `raw_override={"aclImdb/train/neg/3": bytes}` replaces review 3's bytes.
    Returns the data directory.
    """
    import numpy as np

    rng = np.random.default_rng(seed)

    def members():
        for split, n in (("train", per_class_train), ("test", per_class_test)):
            for cls, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
                for i in range(n):
                    body = list(rng.choice(NEUTRAL, rng.integers(8, 40))) + list(rng.choice(words, 3))
                    rng.shuffle(body)
                    text = " ".join(body).capitalize() + ".<br /><br />" + " ".join(rng.choice(NEUTRAL, 5)) + "!"
                    stars = rng.integers(7, 11) if cls == "pos" else rng.integers(1, 5)
                    yield (f"aclImdb/{split}/{cls}/{i}_{stars}.txt",
                           (raw_override or {}).get(f"aclImdb/{split}/{cls}/{i}", text.encode("utf-8")))

    return write_archive(root, "aclImdb.tar.gz", members())


@pytest.fixture(scope="session")
def tiny_imdb(tmp_path_factory):
    """Data dir with a tiny learnable IMDB-layout archive (120 train, 40 test reviews)."""
    return write_imdb_archive(tmp_path_factory.mktemp("tiny-imdb"))


def run_without_zoo(script: str, timeout: int = 300) -> str:
    """Run `script` in a fresh `python -I` in which zoo and applications cannot be imported; return stdout.

    The script's last printed line is what callers usually parse (e.g. JSON).
    """
    import subprocess
    import sys

    guard = "import sys; sys.modules['zoo'] = None; sys.modules['applications'] = None\n"
    proc = subprocess.run([sys.executable, "-I", "-c", guard + script], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-1500:]
    return proc.stdout.strip().splitlines()[-1]
