"""Data settings shared by every modality, and the dataset registry.

This module is the one place that decides where data comes from and where
derived files go:

- `resolve_data_dir`: the offline data folder (argument > `ZOO_DATA_DIR`),
  or None, meaning "fall back to tensorflow-datasets".
- `cache_dir`: where decoded arrays and other derived files are cached
  (`ZOO_CACHE_DIR` > `$XDG_CACHE_HOME/zoo` > `~/.cache/zoo`), never the repo.
- `verify_file`: SHA-256 check of an input file against the data folder's
  `SHA256SUMS`; the digest doubles as the cache key.
- `atomic_write` / `write_json` / `write_text`: re-exported from `zoo.io`.
- `DataBundle`, `DATASETS`, `load_dataset`: every loader returns a bundle of
  batched, prefetched `tf.data` pipelines plus JSON-able `info`.

    >>> from zoo.data import load_dataset
    >>> bundle = load_dataset("cifar10", batch_size=256, limit=1000)
    >>> images, labels = next(iter(bundle.train))   # uint8 (256, 32, 32, 3), int32 (256,)

Every problem with the data raises `DataError` (a `ValueError`) whose message
names the file, what was expected and how to fix it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import threading
from typing import TYPE_CHECKING, Any

from zoo.io import atomic_write, write_json, write_text  # noqa: F401  (re-exported: zoo.data.write_json)
from zoo.registry import Registry, load_families

if TYPE_CHECKING:  # TensorFlow is imported lazily by the loaders
    import tensorflow as tf

__all__ = [
    "DataError",
    "DataBundle",
    "DATASETS",
    "load_dataset",
    "resolve_data_dir",
    "cache_dir",
    "verify_file",
    "atomic_write",
    "write_json",
    "write_text",
    "length_sorted_batches",
    "OfflineArchive",
    "Preprocessor",
    "PREPROCESSORS",
    "load_preprocessor",
    "DATA_DIR_ENV",
    "CACHE_DIR_ENV",
]

DATA_DIR_ENV = "ZOO_DATA_DIR"
CACHE_DIR_ENV = "ZOO_CACHE_DIR"
SUMS_FILE = "SHA256SUMS"

# The repository root (parent of the `zoo` package); the cache must not live in it.
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


class DataError(ValueError):
    """A data problem: missing/corrupt file, bad layout, wrong checksum, bad setting.

    The message names the path or member, what was expected and the fix.
    """


# ---------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path | None:
    """The offline data folder to read datasets from.

    Args:
        data_dir: explicit folder (e.g. from `--data-dir`); wins over the
            environment.  Empty string counts as not given.

    Returns:
        absolute `pathlib.Path` of an existing directory (from the argument,
        else from `$ZOO_DATA_DIR`; relative paths are taken from the current
        directory), or None when neither is set: loaders then fall back
        to tensorflow-datasets (which needs network access or its own cache).

    Raises:
        DataError: the folder given (argument or environment) does not exist
            or is not a directory.
    """
    if data_dir is not None and str(data_dir) != "":
        path, origin = pathlib.Path(data_dir).expanduser(), "passed as data_dir/--data-dir"
    elif os.environ.get(DATA_DIR_ENV):
        path, origin = pathlib.Path(os.environ[DATA_DIR_ENV]).expanduser(), f"from ${DATA_DIR_ENV}"
    else:
        return None
    if not path.exists():
        raise DataError(
            f"data directory {path} ({origin}) does not exist: pass --data-dir or set "
            f"{DATA_DIR_ENV} to the folder holding the dataset files (e.g. cifar10-jpeg.tar.gz), "
            f"or unset both to download through tensorflow-datasets"
        )
    if not path.is_dir():
        raise DataError(
            f"data directory {path} ({origin}) is not a directory: point --data-dir or "
            f"{DATA_DIR_ENV} at the folder holding the dataset files, not at a file"
        )
    return path.resolve()  # absolute: a relative folder must not be joined twice or read from another cwd


def _default_cache_root() -> pathlib.Path:
    if os.environ.get(CACHE_DIR_ENV):
        return pathlib.Path(os.environ[CACHE_DIR_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "zoo"


def cache_dir(*parts: str) -> pathlib.Path:
    """The cache folder for derived files, created on demand.

    Root: `$ZOO_CACHE_DIR`, else `$XDG_CACHE_HOME/zoo`, else `~/.cache/zoo`.

    Args:
        *parts: sub-folders, e.g. `cache_dir("cifar10", digest[:16])`.

    Returns:
        `pathlib.Path` of the existing folder `root/part/...`.

    Raises:
        DataError: the folder would lie inside the zoo repository (caches
            must never be committed) or cannot be created.
    """
    path = _default_cache_root().joinpath(*map(str, parts)).resolve()
    if path == _REPO_ROOT or _REPO_ROOT in path.parents:
        if (_REPO_ROOT / ".git").exists() or (_REPO_ROOT / "setup.cfg").exists():
            raise DataError(
                f"cache directory {path} lies inside the repository {_REPO_ROOT}: set "
                f"{CACHE_DIR_ENV} (or XDG_CACHE_HOME) to a folder outside it"
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create cache directory {path} ({exc}): set {CACHE_DIR_ENV} to a writable folder"
        ) from exc
    return path


# ---------------------------------------------------------------------------
# Checksums
# ---------------------------------------------------------------------------

_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGEST_LOCK = threading.Lock()


def _sha256(path: pathlib.Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _read_sums(sums: pathlib.Path) -> dict[str, str]:
    """`SHA256SUMS` as {relative path: hex digest} (`sha256sum` text or binary mode)."""
    out = {}
    try:
        content = sums.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{sums} is not a UTF-8 checksum list ({exc.reason} at byte {exc.start}): "
                        "restore it (lines of `<sha256>  <file>`, as `sha256sum` writes them)") from None
    for line in content.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        name = name.strip()
        if name.startswith("*"):
            name = name[1:]
        out[pathlib.PurePosixPath(name.removeprefix("./")).as_posix()] = digest.lower()
    return out


def verify_file(path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> str:
    """Check `path` against `data_dir/SHA256SUMS` and return its SHA-256.

    The digest is memoised per (path, size, mtime) within the process, so
    repeated loads do not re-hash.  Files not listed in `SHA256SUMS` (or with
    no `SHA256SUMS`, or `data_dir=None`) are hashed but not checked.

    Args:
        path: the file; relative paths are taken relative to `data_dir`.
        data_dir: the data folder holding `SHA256SUMS`, or None.

    Returns:
        str: lowercase hex SHA-256 of the file (64 characters).

    Raises:
        DataError: the file is missing, or its digest differs from the one
            listed (message names the file, expected and actual digests).
    """
    path = pathlib.Path(path)
    if data_dir is not None and not path.is_absolute():
        path = pathlib.Path(data_dir) / path
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(
            f"{path} does not exist: put the file there, or point --data-dir/{DATA_DIR_ENV} "
            f"at the folder holding it"
        ) from None
    if not path.is_file():
        raise DataError(f"{path} is not a regular file: expected a data file at that path")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _DIGEST_LOCK:
        digest = _DIGESTS.get(key)
    if digest is None:
        digest = _sha256(path)
        with _DIGEST_LOCK:
            _DIGESTS[key] = digest
    if data_dir is not None:
        sums = pathlib.Path(data_dir) / SUMS_FILE
        if sums.is_file():
            try:
                rel = path.resolve().relative_to(pathlib.Path(data_dir).resolve()).as_posix()
            except ValueError:
                rel = None
            expected = _read_sums(sums).get(rel) if rel else None
            if expected is not None and expected != digest:
                raise DataError(
                    f"checksum mismatch for {path}: {sums} expects sha256 {expected} but the file "
                    f"has {digest}; the file is corrupt or a different version: replace it with "
                    f"the pinned copy (or update {SUMS_FILE} if the change is intended)"
                )
    return digest


def tfds_unavailable(tfds_name: str, archive: str, layout: str, exc: BaseException) -> "DataError":
    """The error for "no data directory, and tensorflow-datasets could not load `tfds_name`"."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return DataError(
        f"no data directory is set and tensorflow-datasets could not load {tfds_name!r} "
        f"({type(exc).__name__}: {first}). Either pass --data-dir or set {DATA_DIR_ENV} to the "
        f"folder holding {archive} (layout {layout}), or connect to the network so "
        f"tensorflow-datasets can download it"
    )


@dataclasses.dataclass(frozen=True)
class OfflineArchive:
    """One dataset's archive in the offline data folder, and its tensorflow-datasets twin.

    The one recipe every archive-backed loader follows: resolve the data
    folder; without one, read the tensorflow-datasets twin; with one, find
    the archive (a missing one is named with its expected layout), check it
    against `SHA256SUMS`, and key the decoded cache by its digest.

    Attributes:
        title: human name, e.g. "CIFAR-10".
        filename: the archive's file name in the data folder.
        layout: the member layout, for messages.
        tfds_name: the tensorflow-datasets name used without a data folder.
        cache_name: the cache sub-folder (`cache_dir(cache_name, digest[:16])`).

    Example:
        >>> found = CIFAR10.locate(data_dir)        # None: no data folder is set
        >>> if found is None:
        ...     images = CIFAR10.from_tfds(lambda tfds: tfds.load("cifar10", split="train"))
        ... else:
        ...     archive, digest, cache = found
    """

    title: str
    filename: str
    layout: str
    tfds_name: str
    cache_name: str

    def locate(self, data_dir=None) -> "tuple[pathlib.Path, str, pathlib.Path] | None":
        """(archive path, its sha256, its cache folder) in the data folder, or None when no folder is set.

        Raises:
            DataError: the folder is set but the archive is missing or fails its checksum.
        """
        folder = resolve_data_dir(data_dir)
        if folder is None:
            return None
        archive = folder / self.filename
        if not archive.is_file():
            raise DataError(
                f"{self.title} archive {archive} not found: expected {self.filename} (layout {self.layout}) "
                f"in the data directory {folder}; put it there, point --data-dir/{DATA_DIR_ENV} at the folder "
                f"holding it, or unset both to use tensorflow-datasets"
            )
        digest = verify_file(archive, folder)
        return archive, digest, cache_dir(self.cache_name, digest[:16])

    def from_tfds(self, read):
        """`read(tensorflow_datasets)` -> its result; any failure (offline, missing module) is one DataError.

        When the dataset is not prepared in the TFDS folder yet, its download
        hosts are probed first (`download_hosts_unreachable`), so an offline
        machine gets the error in seconds, not after tensorflow-datasets'
        minutes of retries.
        """
        try:
            import tensorflow_datasets as tfds

            builder = tfds.builder(self.tfds_name)
            if not builder.is_prepared():
                problem = download_hosts_unreachable(list(builder.url_infos or {}))
                if problem:
                    raise ConnectionError(problem)
            return read(tfds)
        except Exception as exc:  # offline, no TFDS cache, a module tensorflow-datasets lacks
            raise tfds_unavailable(self.tfds_name, self.filename, self.layout, exc) from exc


def download_hosts_unreachable(urls, timeout: float = 5.0) -> str | None:
    """Why the hosts of `urls` cannot be reached (one TCP connection each), or None when they can.

    None also when a proxy is configured (`HTTPS_PROXY` and the like): a
    direct connection says nothing about the proxied one.

    Args:
        urls: download addresses, e.g. a TFDS builder's `url_infos` keys.
        timeout: seconds per connection attempt.
    """
    import socket
    import urllib.parse
    import urllib.request

    if urllib.request.getproxies():
        return None
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        if not host:
            continue
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            return f"cannot reach {host}:{port} ({exc}); the network looks offline"
    return None


# ---------------------------------------------------------------------------
# Batching variable-length token sequences
# ---------------------------------------------------------------------------


def _trim_padding(*parts):
    """Cut the all-padding (0) columns off every rank-2 tensor of a batch; other tensors pass."""
    import tensorflow as tf

    def trim(t):
        if t.shape.rank != 2:
            return t
        return t[:, : tf.maximum(tf.reduce_max(tf.math.count_nonzero(t, axis=1, dtype=tf.int32)), 1)]

    return tuple(trim(t) for t in parts)


def length_sorted_batches(ds, *, size: int, batch_size: int, training: bool, seed: int = 0, sort_chunk: int = 16):
    """Padded batches of 0-padded token sequences with little padding and a known epoch length.

    Args:
        ds: unbatched `tf.data.Dataset` of tuples whose parts are 1-D int
            token sequences (0 is padding and never a real token) or scalars.
        size: number of elements of `ds`.
        batch_size: elements per batch.
        training: shuffle every epoch (seeded), then sort each run of
            `sort_chunk` batches by length (the longest sequence part of
            each element), cut it into batches and shuffle their order;
            otherwise keep the order of `ds`.
        seed: shuffling seed.
        sort_chunk: batches sorted together.

    Returns:
        `tf.data.Dataset` of the same tuples batched, rank-2 parts `(B, T)`
        with T the longest in the batch; exactly `ceil(size / batch_size)`
        batches each epoch, and its cardinality says so (Keras then knows
        the epoch length; `bucket_by_sequence_length` gives a varying count).
    """
    import tensorflow as tf

    size, batch_size = int(size), int(batch_size)
    if training:
        def length(parts):
            counts = [tf.math.count_nonzero(t, axis=1, dtype=tf.int32) for t in parts if t.shape.rank == 2]
            return tf.reduce_max(tf.stack(counts), axis=0)

        def sort_and_split(*parts):
            order = tf.argsort(length(parts), stable=True)
            return tf.data.Dataset.from_tensor_slices(tuple(tf.gather(t, order) for t in parts)).batch(batch_size)

        ds = ds.shuffle(max(size, 1), seed=seed, reshuffle_each_iteration=True)
        ds = ds.padded_batch(batch_size * int(sort_chunk)).flat_map(sort_and_split)
        ds = ds.shuffle(int(sort_chunk), seed=seed, reshuffle_each_iteration=True)
    else:
        ds = ds.padded_batch(batch_size)
    ds = ds.map(_trim_padding, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.apply(tf.data.experimental.assert_cardinality(-(-size // batch_size)))


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class DataBundle:
    """What every dataset loader returns.

    Attributes:
        train: training pipeline, shuffled and augmented per epoch, yielding
            `(inputs, targets)` batches, already batched and prefetched.  A
            loader may pass a zero-argument function that builds it instead:
            it is then built on first access of `train` (once), so a load
            that only evaluates (`zoo evaluate`) does not pay for
            training-only work such as CIFAR-10's JPEG copy.  `repr` and
            `==` leave `train` out (they do not build it);
            `dataclasses.replace` without `train=` builds it.
        val: validation pipeline (same element structure), or None.  Loaders
            document what it is (e.g. CIFAR-10 with `val_split=0` uses the
            test set, the convention of fast CIFAR-10 training records).
        test: test pipeline, unshuffled, unaugmented.
        info: plain JSON-able facts: class names, counts (num_train, num_val,
            num_test), source path and sha256, batch size, augmentation, ...
        preprocessor: what turns raw inputs into model inputs (a tokenizer,
            a feature extractor), for export; None when the model takes the
            pipeline's inputs as they are (images: raw uint8 pixels).
        model_args: builder arguments the data decides, such as the fitted
            vocabulary's size or the sequence length the pipeline cuts to
            (by default the preprocessor's `model_args()`); `fit` passes
            them to the builder, so such a setting is written once
            (`--set data.max_tokens=N` sizes the embedding too).
        schedule: what the training pipeline does epoch by epoch, or None.
            `fit` calls its `set_next_epoch(epoch)` before the epoch it
            starts (or resumes) at, and before fitting layers on training
            batches (`set_next_epoch(-1)`: outside training), and gives its
            `cost(epoch)` (an epoch's time relative to a full one) to the
            time budget (e.g. CIFAR-10's `TrainingPasses`: progressive
            resizing).
    """

    train: "tf.data.Dataset" = dataclasses.field(repr=False, compare=False)
    val: "tf.data.Dataset | None"
    test: "tf.data.Dataset"
    info: dict
    preprocessor: object | None = None
    model_args: dict = dataclasses.field(default_factory=dict)
    schedule: object | None = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.preprocessor is not None and hasattr(self.preprocessor, "model_args"):
            self.model_args = {**self.preprocessor.model_args(), **self.model_args}
        if callable(self.train) and not hasattr(self.train, "element_spec"):  # a builder, not a pipeline
            self.__dict__["_builders"] = {"train": self.__dict__.pop("train")}

    def __getattr__(self, name):
        # Only reached for attributes not set: a field whose builder has not run yet.
        builders = self.__dict__.get("_builders", {})
        if name not in builders:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = builders[name]()
        setattr(self, name, value)
        del builders[name]
        return value

    def __copy__(self):
        # A copy gets its own builders: building one bundle's train must not take the other's builder away.
        other = type(self).__new__(type(self))
        other.__dict__.update(self.__dict__)
        if "_builders" in self.__dict__:
            other.__dict__["_builders"] = dict(self.__dict__["_builders"])
        return other

    def is_built(self, name: str) -> bool:
        """False while the field `name` (given as a builder) has not been built yet; True otherwise."""
        return name not in self.__dict__.get("_builders", {})

    def apply(self, name: str, fn) -> None:
        """Replace the field `name` by `fn(field)`: now if it is built, else as the last step of its builder."""
        builders = self.__dict__.get("_builders", {})
        if name in builders:
            build = builders[name]
            builders[name] = lambda: fn(build())
        else:
            setattr(self, name, fn(getattr(self, name)))


DATASETS = Registry("dataset", loader=load_families, name_attr="dataset_name")


def load_dataset(name: str, **kwargs: Any) -> DataBundle:
    """Load the registered dataset `name`.

    Args:
        name: a name in `DATASETS` (e.g. "cifar10").
        **kwargs: the loader's arguments (data_dir, batch_size, limit, seed, ...).

    Returns:
        DataBundle.

    Raises:
        zoo.registry.UnknownNameError: unknown name (close matches listed).
        DataError: missing or corrupt data, or a bad setting.
    """
    return bundle_without_autotune_threads(DATASETS.get(name)(**kwargs))


def bundle_without_autotune_threads(bundle: DataBundle) -> DataBundle:
    """`bundle` with `without_autotune_thread` applied to every `tf.data.Dataset` it holds (train, val, test, extras).

    `load_dataset` and `zoo.training.load_run_data` (the two ways a loader
    is called) both pass their bundle through this.  Returns the same
    bundle, its datasets replaced (a pipeline held by two fields, such as
    CIFAR-10's val and test, stays one object); a field still to be built
    (a `train` given as a function) gets the option when it is built.
    """
    done: dict[int, Any] = {}  # one pipeline in two fields (CIFAR-10's val is its test) stays one
    for field in dataclasses.fields(bundle):
        if not bundle.is_built(field.name):  # built on first use: the option is applied then
            bundle.apply(field.name, lambda value: without_autotune_thread(value) if _is_dataset(value) else value)
            continue
        value = getattr(bundle, field.name)
        if _is_dataset(value):
            if id(value) not in done:
                done[id(value)] = without_autotune_thread(value)
            setattr(bundle, field.name, done[id(value)])
    return bundle


def _is_dataset(value) -> bool:
    return hasattr(value, "with_options") and hasattr(value, "element_spec")


def without_autotune_thread(dataset):
    """`dataset` with tf.data's autotuning off (`Options.autotune.enabled = False`); same elements, same order.

    With autotuning on, every iterator runs a model thread that re-plans
    parallelism in timed waits of 10 ms, 20 ms, 40 ms, ... (doubling).  On
    the 2-core machines this project targets, destroying the iterator (the
    end of every Keras epoch, validation pass or evaluation) often waited
    for that thread's current wait to run out, so a pass of 20 steps that
    computed for 3.2 s returned at 5.11 s = 10 ms x (2**9 - 1), and a speech
    epoch of 25 s at about 41 s = 10 ms x (2**12 - 1): up to 1.6x the time
    (bench/RESULTS.md, #15 fourteenth pass).  Without it,
    `AUTOTUNE` parallelism falls back to fixed defaults (about one call per
    core) and `prefetch(AUTOTUNE)` still buffers ahead.

    Args:
        dataset: a `tf.data.Dataset` of any element structure.

    Returns:
        the same `tf.data.Dataset` with the option set.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


PREPROCESSORS = Registry("preprocessor", loader=load_families)
PREPROCESSOR_FILE = "preprocessor.json"


class Preprocessor:
    """The declared interface of a fitted preprocessor (a tokenizer, a vectorizer).

    A model's spec links its preprocessor class (`register_model(preprocessor=
    TextVectorizer, ...)`, as a keras-hub task holds its preprocessor); the
    spec's dataset loader fits one on the training split only and returns it
    in `DataBundle.preprocessor`.  Training, export and serving use it only
    through this interface:

    - `__call__(raw)` or a family-named encoder (`encode_source_core`, ...):
      the in-graph transform, raw tf.string `(batch,)` -> int32 ids
      `(batch, T)`, built from core TensorFlow ops so an export holds it;
    - `resources() -> list`: what an export must track for that transform
      (lookup tables, layers);
    - `model_args() -> dict`: the builder arguments the fitted preprocessor
      decides (vocabulary size, sequence length); `fit` passes them on, so
      such a size is written once;
    - `save(directory)` / `load(directory)` (a classmethod): the fitted
      state as `preprocessor.json` (with `"kind"`, this class's name in
      `PREPROCESSORS`) plus the files it names.

    Subclasses set `kind` and register with `@PREPROCESSORS.register(kind)`.
    """

    kind: str = ""

    def resources(self) -> list:
        """Trackables the export's graph needs to run the transform."""
        raise NotImplementedError

    def model_args(self) -> dict[str, Any]:
        """Builder keyword arguments this fitted preprocessor decides, e.g. {"vocabulary_size": 20000}."""
        raise NotImplementedError

    def save(self, directory) -> None:
        """Write the fitted state into `directory` (`preprocessor.json` + its files), atomically."""
        raise NotImplementedError

    @classmethod
    def load(cls, directory) -> "Preprocessor":
        """Rebuild the preprocessor that `save(directory)` wrote."""
        raise NotImplementedError

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The class as plain data for `zoo info`: kind, dotted path, first docstring line."""
        doc = (cls.__doc__ or "").strip().splitlines()
        return {"kind": cls.kind, "class": f"{cls.__module__}.{cls.__qualname__}", "summary": doc[0] if doc else ""}


def load_preprocessor(directory: str | os.PathLike):
    """Load a fitted preprocessor saved with `preprocessor.save(directory)`.

    The directory holds `preprocessor.json` whose `"kind"` names the class
    registered in `PREPROCESSORS`; that class's `load(directory)` rebuilds it.

    Raises:
        DataError: no `preprocessor.json`, or an unknown kind.
    """
    directory = pathlib.Path(directory)
    meta_path = directory / PREPROCESSOR_FILE
    if not meta_path.exists():
        raise DataError(f"{directory} holds no saved preprocessor ({PREPROCESSOR_FILE} missing): "
                        "retrain the run or copy its preprocessor/ folder back")
    kind = json.loads(meta_path.read_text()).get("kind")
    return PREPROCESSORS.get(kind).load(directory)
