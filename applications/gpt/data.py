"""IMDB reviews as WordPiece sequences: language-model batches (`imdb_lm`) and classification batches (`imdb_wordpiece`).

Text normalisation (the same in training and in the export): invalid UTF-8
bytes become U+FFFD, `<br />` tags become spaces, the text is lower-cased
(UTF-8 aware).  It is then pre-split reversibly (`applications.translation.data.presplit`:
a word after a space carries "▁", punctuation is its own word) and split into
WordPiece pieces by keras-hub's `WordPieceTokenizer` (training) or the
core-TensorFlow `CoreWordPiece` (exports; same ids, tested), with a
vocabulary learned by `keras_hub.tokenizers.compute_word_piece_vocabulary`
on the training reviews only (cached under `cache_dir("imdb_gpt", "vocab")`).

Ids: 0 `[PAD]`, 1 `[UNK]`, 2 `[START]`, 3 `[END]`.  A review is
`[START] pieces [END]`, cut to `max_length + 1` ids for the language model
(inputs are the first `max_length`, targets the same shifted by one) and to
`max_length` ids for the classifier (whose last id is then a piece, not
`[END]`; the "last" pooling reads the last non-padding position either way).

`imdb_lm`: train = the 25,000 training reviews (no labels needed), val =
the IMDB **test** reviews, so the per-epoch `val_perplexity` is the test
perplexity the issue asks for (the model is never selected on it: training
runs a fixed schedule); test = the same reviews.
`imdb_wordpiece`: the classifier's split, as `applications.text.data.imdb`: a seeded
10% of train for validation, the 25,000 test reviews for the final figure.
With `preprocessor_from=RUN` (set by `--set init_from=RUN`, or directly as
`--set data.preprocessor_from=RUN`) the tokenizer is the pre-trained run's,
so ids mean the same to the backbone.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import types
from typing import Any

import numpy as np

from zoo.data import (
    DATASETS,
    PREPROCESSOR_FILE,
    PREPROCESSORS,
    Preprocessor,
    DataBundle,
    DataError,
    cache_dir,
    length_sorted_batches,
    load_preprocessor,
    write_json,
    write_text,
)
from applications.text.data import CLASS_NAMES, imdb_splits
from applications.translation.data import (
    END_ID,
    PAD_ID,
    RESERVED_TOKENS,
    START_ID,
    UNK_ID,
    CoreWordPiece,
    TranslationTokenizers,
    learn_vocabulary,
    presplit,
)

__all__ = ["PAD_ID", "UNK_ID", "START_ID", "END_ID", "normalize", "GPTTokenizer", "imdb_lm", "imdb_wordpiece"]

TOKENIZER_VERSION = 1  # bump when normalisation changes (invalidates cached vocabularies)


def normalize(text):
    """tf.string `(B,)` -> tf.string `(B,)`: valid UTF-8 (bad bytes -> U+FFFD), `<br />` -> " ", lower-cased."""
    import tensorflow as tf

    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    return tf.strings.lower(text, encoding="utf-8")


@PREPROCESSORS.register("wordpiece_lm")
class GPTTokenizer(Preprocessor):
    """Reviews and prompts <-> WordPiece ids for `imdb_gpt` and `imdb_gpt_classifier`.

    Args:
        vocabulary: WordPiece vocabulary (list of tokens; the four reserved first).
        max_length: the model's context: `__call__` gives at most this many ids.

    Call arguments (the text-classifier interface `applications.text.serving.TextServing` uses):
        text: tf.string `(B,)`.

    Returns:
        int32 `(B, T)` ids `[START] pieces [END]` 0-padded, T <= max_length
        (core TensorFlow ops only, so exports load without tensorflow-text).

    Example:
        >>> tok = GPTTokenizer(vocab, max_length=256)
        >>> tok.detokenize(tok.encode(tf.constant(["A fine film."])))  # [b"a fine film."]
    """

    kind = "wordpiece_lm"

    def __init__(self, vocabulary: list[str], max_length: int = 256):
        self.vocabulary = list(vocabulary)
        self.max_length = int(max_length)
        self._core = None
        self._fn = None

    # -- keras-hub (tensorflow-text) path: training pipelines
    def encode(self, text):
        """tf.string `(B,)` -> int32 ragged `(B, None)` piece ids (no START/END, not cut)."""
        return self._encoder()(text)

    def _encoder(self):
        """The keras-hub tokenizer as a `tf.function` (built eagerly, once: its lookup tables live outside tf.data graphs)."""
        import keras_hub
        import tensorflow as tf

        if self._fn is None:
            tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
                vocabulary=self.vocabulary, lowercase=False, strip_accents=False, split=False, oov_token="[UNK]",
                dtype="int32", _allow_python_workflow=False)
            self._fn = tf.function(lambda t: tokenizer(presplit(normalize(t))),
                                   input_signature=[tf.TensorSpec([None], tf.string)])
        return self._fn

    # -- core TensorFlow path: exports
    @property
    def core(self) -> CoreWordPiece:
        """The tokenizer as core TF ops (a lookup table)."""
        if self._core is None:
            self._core = CoreWordPiece(self.vocabulary)
        return self._core

    def model_args(self) -> dict:
        """The builder sizes the tokenizer decides (`zoo.training.fit` passes them on)."""
        return {"vocabulary_size": len(self.vocabulary), "max_length": self.max_length}

    def resources(self) -> list:
        """What an export must track besides the model: the core tokenizer's lookup table."""
        return [self.core.table]

    @property
    def sequence_length(self) -> int:
        return self.max_length

    def encode_core(self, text):
        """tf.string `(B,)` -> int32 ragged `(B, None)` piece ids with core ops (same ids as `encode`)."""
        words = presplit(normalize(text))
        return words.with_flat_values(self.core(words.flat_values)).merge_dims(1, 2)

    def __call__(self, text):
        import tensorflow as tf

        ids = _wrap(self.encode_core(text)[:, : self.max_length - 2])
        return tf.cast(ids.to_tensor(PAD_ID), tf.int32)

    def detokenize(self, ids):
        """Ids `(B, T)` -> tf.string `(B,)`, cut at the first `[END]`; `[PAD]`/`[START]` dropped, "##" joined."""
        return TranslationTokenizers.detokenize(types.SimpleNamespace(target_vocabulary=self.vocabulary), ids)

    def save(self, directory) -> None:
        """Write `preprocessor.json` and `vocabulary.txt`."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_text(directory / "vocabulary.txt", "\n".join(self.vocabulary) + "\n")
        write_json(directory / PREPROCESSOR_FILE, {
            "kind": self.kind, "max_length": self.max_length, "vocabulary_size": len(self.vocabulary),
            "special_tokens": RESERVED_TOKENS, "lowercase": True, "tokenizer_version": TOKENIZER_VERSION})

    @classmethod
    def load(cls, directory) -> "GPTTokenizer":
        directory = pathlib.Path(directory)
        meta = json.loads((directory / PREPROCESSOR_FILE).read_text())
        vocab = (directory / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
        return cls(vocab, meta["max_length"])


def _wrap(pieces):
    """Ragged int `(B, None)` pieces -> `[START] pieces [END]` (also for empty rows)."""
    import tensorflow as tf

    column = lambda i: tf.RaggedTensor.from_tensor(tf.fill([pieces.nrows(), 1], tf.cast(i, pieces.dtype)))  # noqa: E731
    return tf.concat([column(START_ID), pieces, column(END_ID)], axis=1)


# ---------------------------------------------------------------------------
# Pipelines


def _normalized(texts: list[str]) -> list[str]:
    import tensorflow as tf

    out = []
    for start in range(0, len(texts), 2048):
        out += [s.decode("utf-8") for s in normalize(tf.constant(texts[start:start + 2048])).numpy()]
    return out


def _learn(texts: list[str], vocabulary_size: int, digest: str | None) -> list[str]:
    """The WordPiece vocabulary of `texts` (cached by their content and the size)."""
    h = hashlib.sha256(f"{digest}|{vocabulary_size}|{TOKENIZER_VERSION}|{len(texts)}".encode())
    for t in texts:
        h.update(t.encode("utf-8"))
    path = cache_dir("imdb_gpt", "vocab") / f"{h.hexdigest()[:16]}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    vocab = learn_vocabulary(_normalized(texts), vocabulary_size)
    write_json(path, vocab, indent=None)
    return vocab


def _tokenizer(texts, vocabulary_size, max_length, digest, preprocessor_from) -> GPTTokenizer:
    if preprocessor_from:
        folder = pathlib.Path(preprocessor_from)
        folder = folder / "preprocessor" if (folder / "preprocessor").is_dir() else folder
        tok = load_preprocessor(folder)
        if not isinstance(tok, GPTTokenizer):
            raise DataError(f"{preprocessor_from}: holds a {type(tok).__name__}, not an imdb_gpt tokenizer")
        if len(tok.vocabulary) != vocabulary_size or tok.max_length != max_length:
            raise DataError(f"{preprocessor_from}: its tokenizer has vocabulary_size {len(tok.vocabulary)} and "
                            f"max_length {tok.max_length}, but this run asks for {vocabulary_size} and {max_length}; "
                            "pass the pre-trained run's sizes with --set")
        return tok
    return GPTTokenizer(_learn(texts, vocabulary_size, digest), max_length)


def _sequences(tok: GPTTokenizer, texts, keep: int):
    """Unbatched int32 `[START] pieces [END]` cut to `keep` ids."""
    import tensorflow as tf

    encoder = tok._encoder()

    def encode(t):
        return _wrap(encoder(t))[:, :keep]

    return tf.data.Dataset.from_tensor_slices(list(texts)).batch(1024).map(encode).unbatch()


def _lm_pipeline(tok, texts, *, max_length, batch_size, training, seed):
    """`(inputs int32 (B, T), targets int32 (B, T))`, T <= max_length, targets = inputs shifted by one."""
    import tensorflow as tf

    ds = _sequences(tok, texts, max_length + 1).map(lambda s: (tf.cast(s[:-1], tf.int32), tf.cast(s[1:], tf.int32)))
    ds = length_sorted_batches(ds.cache(), size=len(texts), batch_size=batch_size, training=training, seed=seed)
    return ds.prefetch(tf.data.AUTOTUNE)


def _cls_pipeline(tok, texts, labels, *, max_length, batch_size, training, seed):
    """`(ids int32 (B, T), labels int32 (B,))`, T <= max_length."""
    import tensorflow as tf

    labels = tf.data.Dataset.from_tensor_slices(np.asarray(labels, np.int32))
    ds = tf.data.Dataset.zip((_sequences(tok, texts, max_length).map(lambda s: tf.cast(s, tf.int32)), labels))
    ds = length_sorted_batches(ds.cache(), size=len(texts), batch_size=batch_size, training=training, seed=seed)
    return ds.prefetch(tf.data.AUTOTUNE)


def _check(vocabulary_size, max_length):
    if max_length < 4:
        raise DataError(f"max_length must be at least 4, got {max_length}")
    if vocabulary_size <= len(RESERVED_TOKENS) + 1:
        raise DataError(f"vocabulary_size must exceed {len(RESERVED_TOKENS) + 1}, got {vocabulary_size}")


@DATASETS.register("imdb_lm")
def imdb_lm(data_dir: str | os.PathLike | None = None, *, batch_size: int = 32, limit: int | None = None,
            seed: int = 0, vocabulary_size: int = 8000, max_length: int = 256, val_limit: int | None = None,
            preprocessor_from: str | None = None) -> DataBundle:
    """IMDB reviews as next-token batches `(inputs int32 (B, T), targets int32 (B, T))` (module docstring).

    Args:
        data_dir: folder holding `aclImdb.tar.gz` (default `ZOO_DATA_DIR`).
        batch_size: reviews per batch.
        limit: keep the first `limit` reviews of each split (after a seeded shuffle).
        seed: shuffling seed.
        vocabulary_size: WordPiece vocabulary size (exact).
        max_length: the model's context; longer reviews keep their first pieces.
        val_limit: per-epoch test perplexity on only this many test reviews
            (the final `metrics.json` figure always uses every test review kept by `limit`).
        preprocessor_from: reuse a run's tokenizer instead of learning one.
    """
    _check(vocabulary_size, max_length)
    (train_texts, _), _, (test_texts, _), source = imdb_splits(data_dir, limit, seed, 0.0)
    tok = _tokenizer(train_texts, vocabulary_size, max_length, source.get("sha256"), preprocessor_from)
    make = lambda t, training: _lm_pipeline(tok, t, max_length=max_length, batch_size=batch_size,  # noqa: E731
                                            training=training, seed=seed)
    val_texts = test_texts[:val_limit] if val_limit else test_texts
    lengths = tok.encode(_tf_constant(train_texts[:2000])).row_lengths().numpy() + 2
    info: dict[str, Any] = {
        **source, "num_train": len(train_texts), "num_val": len(val_texts), "num_test": len(test_texts),
        "val_source": "IMDB test reviews (per-epoch test perplexity)", "batch_size": batch_size,
        "vocabulary_size": vocabulary_size, "learned_vocabulary": sum(not t.startswith("[unused") for t in tok.vocabulary),
        "max_length": max_length, "special_tokens": RESERVED_TOKENS, "seed": seed, "limit": limit,
        "truncated_fraction": float((lengths > max_length + 1).mean()), "mean_pieces": float(lengths.mean()),
        "drop_remainder": False,
        "tokenizer": "keras-hub WordPiece (lower-cased) on a reversible pre-split, learned on IMDB train",
    }
    return DataBundle(train=make(train_texts, True), val=make(val_texts, False), test=make(test_texts, False),
                      info=info, preprocessor=tok)


@DATASETS.register("imdb_wordpiece")
def imdb_wordpiece(data_dir: str | os.PathLike | None = None, *, batch_size: int = 32, limit: int | None = None,
                   seed: int = 0, vocabulary_size: int = 8000, max_length: int = 256, val_split: float = 0.1,
                   preprocessor_from: str | None = None) -> DataBundle:
    """IMDB sentiment as `(ids int32 (B, T), labels int32 (B,))` batches with the GPT tokenizer.

    Args:
        data_dir, batch_size, limit, seed, vocabulary_size, max_length: as `imdb_lm`.
        val_split: fraction of train held out for validation (seeded).
        preprocessor_from: a run (or its `preprocessor/`) whose tokenizer to use;
            `--set init_from=RUN` sets it to the pre-trained run.
    """
    _check(vocabulary_size, max_length)
    (train_texts, train_labels), (val_texts, val_labels), (test_texts, test_labels), source = imdb_splits(
        data_dir, limit, seed, val_split)
    tok = _tokenizer(train_texts, vocabulary_size, max_length, source.get("sha256"), preprocessor_from)
    make = lambda t, y, training: _cls_pipeline(tok, t, y, max_length=max_length, batch_size=batch_size,  # noqa: E731
                                                training=training, seed=seed)
    info: dict[str, Any] = {
        "class_names": list(CLASS_NAMES), **source, "num_train": len(train_texts), "num_val": len(val_texts),
        "num_test": len(test_texts), "batch_size": batch_size, "vocabulary_size": vocabulary_size,
        "max_length": max_length, "sequence_length": max_length, "val_source": f"{val_split:.0%} of train (seed {seed})",
        "seed": seed, "limit": limit, "drop_remainder": False, "preprocessor_from": preprocessor_from,
        "tokenizer": "keras-hub WordPiece (lower-cased) on a reversible pre-split",
    }
    val = make(val_texts, val_labels, False) if len(val_texts) else None
    return DataBundle(train=make(train_texts, train_labels, True), val=val,
                      test=make(test_texts, test_labels, False), info=info, preprocessor=tok)


def _tf_constant(texts):
    import tensorflow as tf

    return tf.constant(list(texts) or [""])
