"""IMDB reviews from the offline archive, standardised and vectorised in tf.data.

The archive `aclImdb.tar.gz` (layout `aclImdb/{train,test}/{pos,neg}/<id>_<stars>.txt`)
is read in memory once; the reviews are cached as JSON under
`cache_dir("imdb", <sha256[:16]>)`.  A `TextVectorizer` (standardisation +
`keras.layers.TextVectorization`) is adapted on the training split only and
travels with the run (`preprocessor/`) and the export, so trained models take
raw strings.

Defined behaviour for awkward input:
- empty or whitespace-only text vectorises to no tokens (all padding); the
  models then see a fully masked sequence and return their prior.  `zoo
  predict` refuses such input with a message instead.
- reviews longer than `sequence_length` tokens keep their first
  `head_tokens` and last `sequence_length - head_tokens` tokens (the middle
  is cut; `info["truncated_fraction"]`
  says how many training reviews were cut).
- bytes that are not UTF-8 in an archive file raise `DataError` naming it.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import tarfile
from typing import Any

import numpy as np

from zoo.data import (
    DATASETS,
    PREPROCESSOR_FILE,
    PREPROCESSORS,
    Preprocessor,
    DataBundle,
    DataError,
    length_sorted_batches,
    OfflineArchive,
    write_json,
    write_text,
)

__all__ = ["IMDB_ARCHIVE", "CLASS_NAMES", "standardize", "load_imdb_texts", "TextVectorizer", "imdb"]

IMDB_ARCHIVE = "aclImdb.tar.gz"
CLASS_NAMES = ("neg", "pos")
_MEMBER_RE = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_PUNCT = r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']"


def standardize(text):
    """Lower-case, turn `<br />` and punctuation into spaces: tf.string `(...)` -> same shape.

    Written with tf.strings ops so it runs in tf.data and inside exported graphs.
    """
    import tensorflow as tf

    text = tf.strings.lower(text)
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    text = tf.strings.regex_replace(text, _PUNCT, " ")
    return tf.strings.strip(tf.strings.regex_replace(text, r"\s+", " "))


def _read_archive(archive: pathlib.Path) -> dict[str, dict[str, list]]:
    out = {s: {"text": [], "label": [], "name": []} for s in ("train", "test")}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                m = _MEMBER_RE.match(member.name)
                if not m or not member.isfile():
                    continue
                raw = tar.extractfile(member).read()
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{archive.name}:{member.name}: not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                                    "IMDB reviews must be UTF-8 text") from exc
                split, cls = m.group(1), m.group(2)
                out[split]["text"].append(text)
                out[split]["label"].append(CLASS_NAMES.index(cls))
                out[split]["name"].append(member.name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: cannot read the archive ({exc}); expected a gzip tar with "
                        "aclImdb/{train,test}/{pos,neg}/<id>_<stars>.txt") from exc
    for split, d in out.items():
        if not d["text"]:
            raise DataError(f"{archive}: no reviews under aclImdb/{split}/{{pos,neg}}/ (wrong archive?)")
        order = np.argsort(d["name"], kind="stable")  # deterministic order
        out[split] = {k: [v[i] for i in order] for k, v in d.items()}
    return out


IMDB = OfflineArchive("IMDB", IMDB_ARCHIVE, "aclImdb/{train,test}/{pos,neg}/<id>_<stars>.txt", "imdb_reviews", "imdb")


def _from_tfds(split: str) -> tuple[list[str], np.ndarray]:
    def read(tfds):
        ds = tfds.load("imdb_reviews", split=split, as_supervised=True)
        return zip(*[(t.decode("utf-8"), int(y)) for t, y in tfds.as_numpy(ds)])

    texts, labels = IMDB.from_tfds(read)
    return list(texts), np.asarray(labels, np.int32)


def load_imdb_texts(split: str, data_dir=None) -> tuple[list[str], np.ndarray, dict]:
    """Raw reviews of `split` ("train" | "test"): (texts list[str] (N,), labels int32 (N,), source info).

    Label 1 is positive (rating >= 7), 0 negative (rating <= 4).
    """
    if split not in ("train", "test"):
        raise DataError(f"IMDB has no split {split!r}; expected train or test")
    found = IMDB.locate(data_dir)
    if found is None:
        texts, labels = _from_tfds(split)
        return texts, labels, {"source": "tensorflow-datasets:imdb_reviews", "sha256": None}
    archive, digest, folder = found
    cache = folder / "reviews.json"
    if cache.exists():
        data = json.loads(cache.read_text())
    else:
        data = _read_archive(archive)
        write_json(cache, data, indent=None)
    d = data[split]
    return d["text"], np.asarray(d["label"], np.int32), {"source": str(archive), "sha256": digest}


@PREPROCESSORS.register("text_vectorizer")
class TextVectorizer(Preprocessor):
    """Standardise + vectorise reviews: tf.string `(batch,)` -> int32 token ids `(batch, T)`.

    Token 0 is padding, 1 is out-of-vocabulary.  `T` is `sequence_length`
    when `pad=True`, else the longest review in the batch (at most
    `sequence_length`).

    Args:
        max_tokens: vocabulary size including padding and OOV.
        sequence_length: most tokens kept per review.
        head_tokens: a longer review keeps its first `head_tokens` and last
            `sequence_length - head_tokens` tokens (None: the first
            `sequence_length`, i.e. plain truncation).
        vocabulary: a fitted vocabulary (list of tokens, without padding/OOV);
            None until `adapt`.
    """

    kind = "text_vectorizer"

    def __init__(self, max_tokens: int = 20000, sequence_length: int = 256, vocabulary=None,
                 head_tokens: int | None = 64):
        import keras

        self.max_tokens, self.sequence_length = int(max_tokens), int(sequence_length)
        self.head_tokens = self.sequence_length if head_tokens is None else min(int(head_tokens), self.sequence_length)
        self.layer = keras.layers.TextVectorization(max_tokens=self.max_tokens, standardize=None, split="whitespace",
                                                    output_mode="int", vocabulary=vocabulary)
        if vocabulary is not None:
            self.layer(np.array([""]))  # build it, so exports can track its lookup table

    def adapt(self, texts, batch_size: int = 1024) -> "TextVectorizer":
        """Learn the vocabulary from `texts` (the training split only)."""
        import tensorflow as tf

        self.layer.adapt(tf.data.Dataset.from_tensor_slices(list(texts)).batch(batch_size).map(standardize))
        return self

    @property
    def vocabulary(self) -> list[str]:
        return list(self.layer.get_vocabulary())

    def __call__(self, text, pad: bool = False):
        """tf.string `(batch,)` -> int32 `(batch, T)`, 0-padded at the end.

        A review longer than `sequence_length` tokens keeps its first
        `head_tokens` and its last `sequence_length - head_tokens` tokens
        (reviews often end with the verdict).
        """
        import tensorflow as tf

        ids = tf.cast(self.layer(standardize(text)), tf.int32)  # (batch, longest), 0-padded
        ids = tf.pad(ids, [[0, 0], [0, 1]])  # at least one column, also for a batch of empty strings
        n = tf.math.count_nonzero(ids, axis=1, dtype=tf.int32)[:, None]  # real tokens per review
        j = tf.range(self.sequence_length)[None, :]
        idx = j + tf.where(j >= self.head_tokens, tf.maximum(n - self.sequence_length, 0), 0)
        ids = tf.gather(ids, tf.minimum(idx, tf.shape(ids)[1] - 1), batch_dims=1)
        ids = tf.where(j < n, ids, 0)  # (batch, sequence_length)
        if not pad:
            ids = ids[:, : tf.maximum(tf.reduce_max(tf.minimum(n, self.sequence_length)), 1)]
        return ids

    def model_args(self) -> dict:
        """The builder sizes this vectorizer decides: vocabulary size and sequence length."""
        return {"vocabulary_size": len(self.vocabulary), "sequence_length": self.sequence_length}

    def resources(self) -> list:
        """What an export must track to run `__call__` in its graph (the vocabulary lookup layer)."""
        return [self.layer]

    def save(self, directory) -> None:
        """Write `preprocessor.json` and `vocabulary.txt` into `directory`."""
        directory = pathlib.Path(directory)
        write_text(directory / "vocabulary.txt", "\n".join(self.vocabulary[2:]) + "\n")  # without padding and OOV
        write_json(directory / PREPROCESSOR_FILE, {"kind": self.kind, "max_tokens": self.max_tokens,
                                                   "sequence_length": self.sequence_length,
                                                   "head_tokens": self.head_tokens,
                                                   "standardize": "lower, <br />, punctuation -> space"})

    @classmethod
    def load(cls, directory) -> "TextVectorizer":
        directory = pathlib.Path(directory)
        meta = json.loads((directory / PREPROCESSOR_FILE).read_text())
        vocab = (directory / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
        return cls(meta["max_tokens"], meta["sequence_length"], vocabulary=["", "[UNK]", *vocab],
                   head_tokens=meta.get("head_tokens"))  # older runs: plain truncation


def _pipeline(vectorizer, texts, labels, *, batch_size, training, seed, sort_chunk=16):
    """Batches `(int32 (B, T), int32 (B,))`, T = longest review in the batch (<= sequence_length).

    Training: examples are shuffled every epoch, then each run of
    `sort_chunk` batches is sorted by length and cut into batches, whose
    order is shuffled again (little padding, still random).  Evaluation:
    reviews sorted by length.  Either way there are exactly
    `ceil(N / batch_size)` batches, so Keras knows the epoch length.
    """
    import tensorflow as tf

    n = len(labels)
    if not training:  # order does not matter for evaluation; sorting saves padding
        order = np.argsort([len(t.split()) for t in texts], kind="stable")
        texts, labels = [texts[i] for i in order], np.asarray(labels)[order]
    ds = tf.data.Dataset.from_tensor_slices((list(texts), np.asarray(labels, np.int32))).batch(1024)
    ds = ds.map(lambda t, y: (vectorizer(t, pad=True), y), num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    ds = ds.map(lambda ids, y: (ids[: tf.maximum(tf.math.count_nonzero(ids, dtype=tf.int32), 1)], y)).cache()
    ds = length_sorted_batches(ds, size=n, batch_size=batch_size, training=training, seed=seed, sort_chunk=sort_chunk)
    return ds.prefetch(tf.data.AUTOTUNE)


def imdb_splits(data_dir, limit: int | None, seed: int, val_split: float):
    """IMDB's raw splits, seeded: ((train texts, labels), (val ...), (test ...), source info).

    The validation split is a seeded `val_split` of the training reviews; with
    `limit`, each split keeps its first `limit` reviews after the shuffle.
    Labels are int32 `(N,)` arrays, texts lists of str.  Shared by every IMDB
    pipeline (the classifiers here, the language model in `applications.gpt`).

    Raises:
        DataError: the training split is empty.
    """
    rng = np.random.default_rng(seed)
    texts, labels, source = load_imdb_texts("train", data_dir)
    order = rng.permutation(len(labels))
    n_val = int(round(val_split * len(labels)))
    val_idx, train_idx = order[:n_val], order[n_val:]
    test_texts, test_labels, _ = load_imdb_texts("test", data_dir)
    test_idx = rng.permutation(len(test_labels))
    if limit is not None:
        train_idx, val_idx, test_idx = train_idx[:limit], val_idx[:limit], test_idx[:limit]
    if not len(train_idx):
        raise DataError("the IMDB training split is empty (check --limit)")
    pick = lambda t, idx: [t[i] for i in idx]  # noqa: E731
    return ((pick(texts, train_idx), labels[train_idx]), (pick(texts, val_idx), labels[val_idx]),
            (pick(test_texts, test_idx), test_labels[test_idx]), source)


@DATASETS.register("imdb")
def imdb(
    data_dir: str | os.PathLike | None = None,
    *,
    batch_size: int = 64,
    limit: int | None = None,
    seed: int = 0,
    max_tokens: int = 20000,
    sequence_length: int = 256,
    head_tokens: int | None = 64,
    val_split: float = 0.1,
) -> DataBundle:
    """IMDB sentiment as a `DataBundle` of `(token ids int32 (B, T), labels int32 (B,))` batches.

    Batches hold reviews of similar length (T = the longest, <= `sequence_length`), padded with 0.
    The validation set is a seeded `val_split` of the training reviews; the
    test set (25,000 reviews) is only for the final figure.  The vectorizer
    is adapted on the remaining training reviews only.

    Args:
        data_dir: folder holding `aclImdb.tar.gz` (default `ZOO_DATA_DIR`).
        batch_size: reviews per batch.
        limit: keep the first `limit` reviews of each split (after a seeded shuffle).
        seed: shuffling and split seed.
        max_tokens: vocabulary size.
        sequence_length: maximum tokens per review (longer ones are cut).
        head_tokens: a longer review keeps its first `head_tokens` and last
            `sequence_length - head_tokens` tokens (None: the first ones only).
        val_split: fraction of train held out for validation.
    """
    (train_texts, train_labels), (val_texts, val_labels), (test_texts, test_labels), source = imdb_splits(
        data_dir, limit, seed, val_split)
    vectorizer = TextVectorizer(max_tokens, sequence_length, head_tokens=head_tokens).adapt(train_texts)
    lengths = np.asarray([len(t.split()) for t in train_texts[:2000]])
    make = lambda tx, y, training: _pipeline(vectorizer, tx, y, batch_size=batch_size, training=training, seed=seed)  # noqa: E731
    val = make(val_texts, val_labels, False) if len(val_texts) else None
    info: dict[str, Any] = {
        "class_names": list(CLASS_NAMES), **source, "num_train": len(train_texts), "num_val": len(val_texts),
        "num_test": len(test_texts), "batch_size": batch_size, "max_tokens": max_tokens,
        "vocabulary_size": len(vectorizer.vocabulary), "sequence_length": sequence_length,
        "head_tokens": vectorizer.head_tokens, "truncated_fraction": float((lengths > sequence_length).mean()) if len(lengths) else 0.0,
        "val_source": f"{val_split:.0%} of train (seed {seed})", "seed": seed, "limit": limit,
        "drop_remainder": False,
    }
    train = make(train_texts, train_labels, True)
    test = make(test_texts, test_labels, False)
    return DataBundle(train=train, val=val, test=test, info=info, preprocessor=vectorizer)
