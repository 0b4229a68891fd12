"""Multi30k English -> German: raw sentence pairs, WordPiece vocabularies, teacher-forcing batches.

The data directory holds `multi30k/{train,val,test_2016_flickr}.{en,de}.gz`
(raw, untokenised, one sentence a line, line-aligned; checked against
`SHA256SUMS`).  Two WordPiece vocabularies (English, German) are learned on
the training split with `keras_hub.tokenizers.compute_word_piece_vocabulary`
and travel with the run (`preprocessor/`) and the export.

Reversible pre-splitting.  WordPiece drops whitespace, so to give back cased,
detokenised German the text is pre-split the SentencePiece way: a word that
follows a space (or starts the sentence) carries the marker "▁" (U+2581),
punctuation is split off as its own word, then WordPiece splits words into
pieces ("##" marks a continuation).  Detokenising joins the pieces, drops
"##" and turns "▁" back into spaces, so `detokenize(tokenize(s))` is `s` with
runs of whitespace collapsed (for text whose characters are in the
vocabulary):

    "A man, riding."  ->  ▁A | ▁man | , | ▁riding | .  ->  "A man, riding."

Ids: 0 `[PAD]`, 1 `[UNK]`, 2 `[START]`, 3 `[END]`.  Batches are
`({"encoder_tokens": int32 (B, S), "decoder_tokens": int32 (B, T)}, targets int32 (B, T))`
with `decoder_tokens = [START] + target pieces` and `targets = target pieces + [END]`,
0-padded; training batches hold pairs of similar length (`length_sorted_batches`).

Defined behaviour for awkward input:
- empty source: no tokens; `translate` and the serving signature return ""
  for it (the model alone would produce its prior).  `zoo predict` refuses it.
- longer than `max_length` pieces: the source keeps its first `max_length`
  pieces and the target its first `max_length - 1` (plus `[END]`);
  `info["truncated"]` counts the training pairs cut, and the serving
  signature reports `truncated` per input.
- characters not seen in training: the word holding one becomes `[UNK]`
  (WordPiece semantics); the literal "▁" is read as a space.
- casing: every Multi30k source starts with a capital and none is written
  in capitals, so English is put in that form first (`sentence_case`): a
  sentence with no lower-case letter is lower-cased, and the first
  character is made a capital.  Shouted input otherwise became pieces the
  model never saw (sacreBLEU 0.0 on the test set in capitals,
  bench/translator_ood.py); the training sources are unchanged by it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.data import (
    DATA_DIR_ENV,
    DATASETS,
    PREPROCESSOR_FILE,
    PREPROCESSORS,
    Preprocessor,
    DataBundle,
    DataError,
    cache_dir,
    length_sorted_batches,
    resolve_data_dir,
    verify_file,
    write_json,
    write_text,
)

__all__ = [
    "SPLITS", "RESERVED_TOKENS", "PAD_ID", "UNK_ID", "START_ID", "END_ID", "WORD_MARK",
    "load_pairs", "presplit", "learn_vocabulary", "CoreWordPiece", "TranslationTokenizers",
    "TranslationBundle", "multi30k",
]

SPLITS = ("train", "val", "test_2016_flickr")
RESERVED_TOKENS = ["[PAD]", "[UNK]", "[START]", "[END]"]
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
WORD_MARK = "\u2581"  # "▁": this word followed a space
MAX_BYTES_PER_WORD = 100  # longer words become [UNK] (FastWordpieceTokenizer's default)
TOKENIZER_VERSION = 1  # bump when the pre-splitting changes (invalidates cached vocabularies)

# keras-hub's WordPiece punctuation (BERT's): ASCII non-alphanumerics and Unicode P*.
_PUNCT = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"


# ---------------------------------------------------------------------------
# Reading


def load_pairs(split: str, data_dir=None) -> tuple[list[str], list[str], dict]:
    """Raw line-aligned pairs of `split`: (english list[str], german list[str], source info).

    Raises:
        DataError: no data directory, a missing/corrupt file, non-UTF-8 bytes,
            or files with different line counts.
    """
    if split not in SPLITS:
        raise DataError(f"Multi30k has no split {split!r}; expected one of {', '.join(SPLITS)}")
    folder = resolve_data_dir(data_dir)
    if folder is None:
        folder = download_multi30k()
    out, digests = {}, {}
    for lang in ("en", "de"):
        rel = f"multi30k/{split}.{lang}.gz"
        path = folder / rel
        if not path.is_file():
            raise DataError(f"Multi30k file {path} not found: expected {rel} (raw text, one sentence a line, "
                            f"gzip) in the data directory {folder}")
        digests[lang] = verify_file(rel, folder)
        try:
            raw = gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable gzip file ({exc}); replace it with the pinned copy") from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start}); Multi30k is UTF-8 text") from exc
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines = lines[:-1]
        out[lang] = [line.strip() for line in lines]
    if len(out["en"]) != len(out["de"]):
        raise DataError(f"multi30k/{split}.en.gz has {len(out['en'])} lines but multi30k/{split}.de.gz has "
                        f"{len(out['de'])}: the files must be line-aligned translations")
    return out["en"], out["de"], {"source": str(folder / "multi30k"), "sha256": digests}


# Multi30k is not in tensorflow-datasets: its public files (multi30k/dataset, data/task1/raw), pinned by SHA-256.
MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{name}"
MULTI30K_SHA256 = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
}


def download_multi30k() -> pathlib.Path:
    """Fetch the six Multi30k files once into the cache; return a data directory holding `multi30k/`.

    Each file is checked against its pinned SHA-256 (`keras.utils.get_file`),
    and a `SHA256SUMS` is written beside them, so the offline reader checks
    them again on every load.  The same folder works offline afterwards.

    Raises:
        DataError: no network (or a changed file upstream): the message says
            where to put the files by hand instead.
    """
    import keras

    root = cache_dir("downloads")
    sums = []
    for name, digest in MULTI30K_SHA256.items():
        try:
            keras.utils.get_file(name, MULTI30K_URL.format(name=name), file_hash=digest, hash_algorithm="sha256",
                                 cache_dir=str(root), cache_subdir="multi30k")
        except Exception as exc:  # URLError, HTTPError, a checksum ValueError
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise DataError(
                f"no data directory is set and Multi30k could not be downloaded ({type(exc).__name__}: {first}). "
                f"Either connect to the network, or put {', '.join(MULTI30K_SHA256)} (from the public "
                f"multi30k/dataset repository, data/task1/raw) in a folder's multi30k/ and pass that folder "
                f"as --data-dir or {DATA_DIR_ENV}") from None
        sums.append(f"{digest}  multi30k/{name}\n")
    write_text(root / "SHA256SUMS", "".join(sums))
    return root


# ---------------------------------------------------------------------------
# Tokenisation (pre-splitting with core TensorFlow ops: it runs in exports without tensorflow-text)


def sentence_case(text):
    """English as Multi30k writes it: tf.string `(B,)` -> `(B,)`.

    A sentence with at least two capitals and no lower-case letter ("A DOG
    RUNS.") is lower-cased; then the first character becomes a capital
    ("a dog runs." -> "A dog runs.").  Other text is unchanged.  Unicode
    aware (`\\p{Lu}`, `\\p{Ll}`, UTF-8 case mapping); core TF ops only.
    """
    import tensorflow as tf

    text = tf.strings.strip(text)
    shouted = tf.strings.regex_full_match(text, r"[^\p{Ll}]*\p{Lu}[^\p{Ll}]*\p{Lu}[^\p{Ll}]*")
    text = tf.where(shouted, tf.strings.lower(text, encoding="utf-8"), text)
    first = tf.strings.substr(text, 0, 1, unit="UTF8_CHAR")
    rest = tf.strings.regex_replace(text, r"(?s)^.", "")  # RE2 reads UTF-8: "." is one character
    return tf.strings.upper(first, encoding="utf-8") + rest


def presplit(text):
    """Reversible pre-split: tf.string `(B,)` -> ragged tf.string words `(B, None)`.

    Whitespace runs collapse to one space; a word after a space gets the
    "▁" prefix; each punctuation character is its own word.
    """
    import tensorflow as tf

    text = tf.strings.regex_replace(text, WORD_MARK, " ")
    text = tf.strings.strip(tf.strings.regex_replace(text, r"[\s\p{Cc}\p{Cf}]+", " "))
    text = tf.strings.regex_replace(text, "^(.)", WORD_MARK + r"\1")
    text = tf.strings.regex_replace(text, " ", " " + WORD_MARK)
    text = tf.strings.regex_replace(text, _PUNCT, r" \0 ")
    return tf.strings.split(text)


def learn_vocabulary(texts: list[str], vocabulary_size: int) -> list[str]:
    """A WordPiece vocabulary of exactly `vocabulary_size` entries learned on `texts`.

    Uses `keras_hub.tokenizers.compute_word_piece_vocabulary` on the
    pre-split words (cased, accents kept); reserved tokens come first and the
    list is padded with `[unusedN]` entries (never produced by the
    pre-splitting) to the requested size, so model and data sizes agree.
    """
    import keras_hub
    import tensorflow as tf

    if vocabulary_size <= len(RESERVED_TOKENS) + 1:
        raise DataError(f"vocabulary_size must exceed {len(RESERVED_TOKENS) + 1}, got {vocabulary_size}")
    words = tf.data.Dataset.from_tensor_slices(list(texts)).batch(1024).map(presplit)
    vocab = keras_hub.tokenizers.compute_word_piece_vocabulary(
        words, vocabulary_size, lowercase=False, strip_accents=False, split=False,
        reserved_tokens=list(RESERVED_TOKENS))
    vocab = list(vocab)[:vocabulary_size]
    vocab += [f"[unused{i}]" for i in range(vocabulary_size - len(vocab))]
    return vocab


class CoreWordPiece:
    """WordPiece (greedy longest match first) written with core TensorFlow ops only.

    Same ids as `keras_hub.tokenizers.WordPieceTokenizer(split=False)` (tested),
    but without tensorflow-text kernels, so an exported SavedModel loads
    with TensorFlow alone.  A word with no complete segmentation, or longer
    than 100 bytes, becomes `[UNK]`.

    Args:
        vocabulary: list of tokens (continuations start with "##").

    Call arguments:
        words: tf.string `(N,)` pre-split words.

    Returns:
        int32 ragged `(N, None)` piece ids.
    """

    def __init__(self, vocabulary: list[str]):
        import tensorflow as tf

        self.vocabulary = list(vocabulary)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(self.vocabulary), tf.range(len(self.vocabulary), dtype=tf.int32)),
            default_value=-1)
        self.max_piece_chars = max(len(t.removeprefix("##")) for t in self.vocabulary)

    def __call__(self, words):
        import tensorflow as tf

        n = tf.shape(words)[0]
        too_long = tf.strings.length(words) > MAX_BYTES_PER_WORD
        lens = tf.strings.length(words, unit="UTF8_CHAR")
        steps = tf.reduce_max(tf.concat([lens, [0]], 0))
        ta = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])

        def body(i, rest, cont, alive, failed, ta):
            k = tf.minimum(tf.reduce_max(tf.strings.length(rest, unit="UTF8_CHAR")), self.max_piece_chars)
            k = tf.maximum(k, 1)
            sizes = tf.range(k, 0, -1)  # longest first
            cands = tf.strings.substr(tf.tile(rest[:, None], [1, k]), tf.zeros([n, k], tf.int32),
                                      tf.tile(sizes[None], [n, 1]), unit="UTF8_CHAR")
            keys = tf.where(cont[:, None], tf.strings.join(["##", cands]), cands)
            ids = self.table.lookup(keys)
            found = ids >= 0
            first = tf.argmax(tf.cast(found, tf.int32), axis=1, output_type=tf.int32)
            any_found = tf.reduce_any(found, axis=1)
            piece = tf.gather(ids, first, batch_dims=1)
            size = tf.gather(sizes, first)
            emit = tf.where(alive & any_found, piece, -1)
            failed = failed | (alive & ~any_found)
            step = alive & any_found
            pos = tf.where(step, tf.minimum(size, tf.strings.length(rest, unit="UTF8_CHAR")), 0)
            rest = tf.where(step, tf.strings.substr(rest, pos, tf.fill(tf.shape(pos), 1 << 20), unit="UTF8_CHAR"), rest)
            alive = alive & any_found & (tf.strings.length(rest) > 0)
            return i + 1, rest, tf.ones_like(cont), alive, failed, ta.write(i, emit)

        alive0 = (lens > 0) & ~too_long
        ta = ta.write(0, tf.fill([n], -1))  # column 0: [UNK] for failed words, else nothing
        _, _, _, _, failed, ta = tf.while_loop(
            lambda i, rest, cont, alive, failed, ta: tf.reduce_any(alive) & (i < steps + 1),
            body, (1, words, tf.zeros([n], tf.bool), alive0, too_long, ta))
        pieces = tf.transpose(ta.stack())  # (N, 1 + iterations)
        first_col = tf.equal(tf.range(tf.shape(pieces)[1]), 0)[None, :]
        pieces = tf.where(failed[:, None], tf.where(first_col, UNK_ID, -1), pieces)
        return tf.ragged.boolean_mask(pieces, pieces >= 0)


@PREPROCESSORS.register("wordpiece_pair")
class TranslationTokenizers(Preprocessor):
    """English and German WordPiece tokenizers (keras-hub) with a reversible pre-split.

    Args:
        source_vocabulary: English WordPiece vocabulary (list of tokens).
        target_vocabulary: German WordPiece vocabulary.
        max_length: sources keep at most `max_length` pieces, targets
            `max_length - 1` pieces (+ `[START]` / `[END]`).

    Example:
        >>> tok = TranslationTokenizers(en_vocab, de_vocab, max_length=64)
        >>> ids = tok.encode_source(tf.constant(["A man rides."]))   # int32 ragged (1, None)
        >>> tok.detokenize(tok.encode_target(tf.constant(["Ein Mann fährt."])))  # [b"Ein Mann fährt."]
    """

    kind = "wordpiece_pair"

    def __init__(self, source_vocabulary: list[str], target_vocabulary: list[str], max_length: int = 64):
        import keras_hub

        self.source_vocabulary, self.target_vocabulary = list(source_vocabulary), list(target_vocabulary)
        self.max_length = int(max_length)
        make = lambda v: keras_hub.tokenizers.WordPieceTokenizer(  # noqa: E731
            vocabulary=v, lowercase=False, strip_accents=False, split=False, oov_token="[UNK]", dtype="int32",
            _allow_python_workflow=False)  # always the tf-text path: ragged tensors, also eagerly
        self.source, self.target = make(self.source_vocabulary), make(self.target_vocabulary)
        self._core_source = None

    # -- keras-hub (tensorflow-text) path: training pipelines, evaluation
    def _graph(self, which):
        """keras-hub tokenizers give Python lists when called eagerly: always run them in a tf.function."""
        import tensorflow as tf

        fns = self.__dict__.setdefault("_fns", {})
        if which not in fns:
            tokenizer = self.source if which == "source" else self.target
            prepare = sentence_case if which == "source" else tf.identity
            fns[which] = tf.function(lambda text: tokenizer(presplit(prepare(text))),
                                     input_signature=[tf.TensorSpec([None], tf.string)])
        return fns[which]

    def encode_source(self, text):
        """tf.string `(B,)` -> int32 ragged `(B, <= max_length)` English piece ids (of `sentence_case(text)`)."""
        return self._graph("source")(text)[:, : self.max_length]

    def encode_target(self, text):
        """tf.string `(B,)` -> int32 ragged `(B, <= max_length - 1)` German piece ids (no START/END)."""
        return self._graph("target")(text)[:, : self.max_length - 1]

    # -- core TensorFlow path: exported graphs
    @property
    def core_source(self) -> CoreWordPiece:
        """The English tokenizer as core TF ops (a lookup table), for exports."""
        if self._core_source is None:
            self._core_source = CoreWordPiece(self.source_vocabulary)
        return self._core_source

    def model_args(self) -> dict:
        """The builder sizes these tokenizers decide: both vocabulary sizes and the longest sequence."""
        return {"source_vocabulary_size": len(self.source_vocabulary),
                "target_vocabulary_size": len(self.target_vocabulary), "max_length": self.max_length}

    def resources(self) -> list:
        """What an export must track for `encode_source_core` (the core tokenizer's lookup table)."""
        return [self.core_source.table]

    def encode_source_core(self, text):
        """Like `encode_source` with core ops: -> (ids int32 `(B, S)` 0-padded, truncated bool `(B,)`)."""
        import tensorflow as tf

        words = presplit(sentence_case(text))
        ids = words.with_flat_values(self.core_source(words.flat_values)).merge_dims(1, 2)
        truncated = ids.row_lengths() > self.max_length
        ids = ids[:, : self.max_length]
        return tf.cast(ids.to_tensor(0), tf.int32), truncated

    def detokenize(self, ids):
        """German ids `(B, T)` (dense or ragged) -> tf.string `(B,)`, cut at the first `[END]`.

        `[PAD]`/`[START]` are dropped, continuation pieces lose "##", "▁" becomes a space.
        Core TF ops only (used inside exports too).
        """
        import tensorflow as tf

        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(PAD_ID)
        ids = tf.cast(ids, tf.int32)
        ended = tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=1) > 0
        keep = ~ended & (ids != PAD_ID) & (ids != START_ID)
        vocab = tf.constant(self.target_vocabulary)
        pieces = tf.gather(vocab, tf.clip_by_value(ids, 0, len(self.target_vocabulary) - 1))
        pieces = tf.strings.regex_replace(pieces, "^##", "")
        pieces = tf.where(keep, pieces, "")
        text = tf.strings.reduce_join(pieces, axis=1)
        return tf.strings.strip(tf.strings.regex_replace(text, WORD_MARK, " "))

    def decode_source(self, ids):
        """English ids -> text (for printing examples); same rules as `detokenize`."""
        other = TranslationTokenizers.__new__(TranslationTokenizers)
        other.target_vocabulary = self.source_vocabulary
        return TranslationTokenizers.detokenize(other, ids)

    def save(self, directory) -> None:
        """Write `preprocessor.json`, `source_vocabulary.txt` and `target_vocabulary.txt`."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, vocab in (("source_vocabulary.txt", self.source_vocabulary), ("target_vocabulary.txt", self.target_vocabulary)):
            write_text(directory / name, "\n".join(vocab) + "\n")
        write_json(directory / PREPROCESSOR_FILE, {
            "kind": self.kind, "max_length": self.max_length, "source_language": "en", "target_language": "de",
            "source_vocabulary_size": len(self.source_vocabulary), "target_vocabulary_size": len(self.target_vocabulary),
            "special_tokens": RESERVED_TOKENS, "word_mark": WORD_MARK, "tokenizer_version": TOKENIZER_VERSION})

    @classmethod
    def load(cls, directory) -> "TranslationTokenizers":
        directory = pathlib.Path(directory)
        meta = json.loads((directory / PREPROCESSOR_FILE).read_text())
        read = lambda n: (directory / n).read_text(encoding="utf-8").split("\n")[:-1]  # noqa: E731
        return cls(read("source_vocabulary.txt"), read("target_vocabulary.txt"), meta["max_length"])


# ---------------------------------------------------------------------------
# Pipelines


@dataclass
class TranslationBundle(DataBundle):
    """A `DataBundle` that also keeps the raw test sentences (BLEU needs raw references)."""

    test_sources: list = field(default_factory=list)
    test_references: list = field(default_factory=list)


def _examples(tok: TranslationTokenizers, en, de):
    """Unbatched `(encoder ids (S,), decoder ids (T,), targets (T,))` int32 elements."""
    import tensorflow as tf

    def encode(src, tgt):
        s = tok.encode_source(src)
        t = tok.encode_target(tgt)
        ones = tf.ones_like(t[:, :1])
        return s, tf.concat([ones * START_ID, t], 1), tf.concat([t, ones * END_ID], 1)

    ds = tf.data.Dataset.from_tensor_slices((list(en), list(de))).batch(1024).map(encode).unbatch()
    return ds.map(lambda s, d, y: (tf.cast(s, tf.int32), tf.cast(d, tf.int32), tf.cast(y, tf.int32)))


def _pipeline(tok, en, de, *, batch_size, training, seed):
    """`({"encoder_tokens": (B, S), "decoder_tokens": (B, T)}, targets (B, T))` batches, exactly ceil(N / B) of them.

    Training batches hold pairs of similar length (`length_sorted_batches`);
    evaluation batches keep the file order.
    """
    import tensorflow as tf

    ds = _examples(tok, en, de).cache()
    ds = length_sorted_batches(ds, size=len(en), batch_size=batch_size, training=training, seed=seed)
    ds = ds.map(lambda s, d, y: ({"encoder_tokens": s, "decoder_tokens": d}, y))
    return ds.prefetch(tf.data.AUTOTUNE)


def _vocabularies(en, de, vocabulary_size, digest_key):
    """Learn (or load from the cache) the two vocabularies."""
    key = hashlib.sha256(f"{digest_key}|{vocabulary_size}|{len(en)}|{TOKENIZER_VERSION}".encode()).hexdigest()[:16]
    path = cache_dir("multi30k", "vocab") / f"{key}.json"
    if path.exists():
        d = json.loads(path.read_text(encoding="utf-8"))
        return d["en"], d["de"]
    vocabs = {"en": learn_vocabulary(en, vocabulary_size), "de": learn_vocabulary(de, vocabulary_size)}
    write_json(path, vocabs, indent=None)
    return vocabs["en"], vocabs["de"]


@DATASETS.register("multi30k")
def multi30k(
    data_dir: str | os.PathLike | None = None,
    *,
    batch_size: int = 64,
    limit: int | None = None,
    seed: int = 0,
    vocabulary_size: int = 8000,
    max_length: int = 64,
) -> TranslationBundle:
    """Multi30k en->de as a bundle of teacher-forcing batches (see the module docstring).

    Train: the 29,000 training pairs, shuffled, in batches of similar length;
    val: the 1,014 official validation pairs; test: `test_2016_flickr`
    (1,000 pairs, in file order; `test_sources` / `test_references` hold the
    raw text for BLEU).  Vocabularies are learned on the (limited) training
    split only and cached under `cache_dir("multi30k", "vocab")`.

    Args:
        data_dir: folder holding `multi30k/` (default `ZOO_DATA_DIR`).
        batch_size: pairs per batch.
        limit: keep the first `limit` pairs of each split.
        seed: shuffling seed.
        vocabulary_size: WordPiece vocabulary size of each language (exact:
            padded with unused entries if the data yields fewer).
        max_length: longest source (pieces) and decoder sequence.
    """
    if max_length < 2:
        raise DataError(f"max_length must be at least 2, got {max_length}")
    splits = {s: load_pairs(s, data_dir) for s in SPLITS}
    if limit is not None:
        splits = {s: (en[:limit], de[:limit], src) for s, (en, de, src) in splits.items()}
    train_en, train_de, source = splits["train"]
    if not train_en:
        raise DataError("Multi30k training split is empty (check --limit and multi30k/train.*.gz)")
    en_vocab, de_vocab = _vocabularies(train_en, train_de, vocabulary_size,
                                       source["sha256"]["en"] + source["sha256"]["de"])
    tok = TranslationTokenizers(en_vocab, de_vocab, max_length)
    import tensorflow as tf

    src_len = tok._graph("source")(tf.constant(train_en)).row_lengths().numpy()
    tgt_len = tok._graph("target")(tf.constant(train_de)).row_lengths().numpy()
    make = lambda s, training: _pipeline(tok, splits[s][0], splits[s][1], batch_size=batch_size,  # noqa: E731
                                         training=training, seed=seed)
    info: dict[str, Any] = {
        "source": source["source"], "sha256": source["sha256"], "source_language": "en", "target_language": "de",
        "num_train": len(train_en), "num_val": len(splits["val"][0]), "num_test": len(splits["test_2016_flickr"][0]),
        "test_split": "test_2016_flickr", "batch_size": batch_size, "vocabulary_size": vocabulary_size,
        "source_vocabulary_size": len(en_vocab), "target_vocabulary_size": len(de_vocab),
        "learned_vocabulary": {"en": sum(not t.startswith("[unused") for t in en_vocab),
                               "de": sum(not t.startswith("[unused") for t in de_vocab)},
        "max_length": max_length, "special_tokens": RESERVED_TOKENS,
        "truncated": {"source": int((src_len > max_length).sum()), "target": int((tgt_len > max_length - 1).sum())},
        "mean_pieces": {"source": float(np.mean(src_len)), "target": float(np.mean(tgt_len))},
        "seed": seed, "limit": limit, "drop_remainder": False,
        "tokenizer": "keras-hub WordPiece (cased, accents kept) on a reversible pre-split ('▁' marks a space)",
    }
    test_en, test_de, _ = splits["test_2016_flickr"]
    return TranslationBundle(train=make("train", True), val=make("val", False) if splits["val"][0] else None,
                             test=make("test_2016_flickr", False), info=info, preprocessor=tok,
                             test_sources=list(test_en), test_references=list(test_de))
