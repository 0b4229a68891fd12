"""IMDB pipeline: standardisation, train-only vocabulary, splits, bad input."""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import NEGATIVE, POSITIVE, write_imdb_archive
from zoo.data import DataError, load_dataset, load_preprocessor
from applications.text.data import TextVectorizer, load_imdb_texts, standardize


def test_standardize_lowercases_and_strips_breaks_and_punctuation():
    out = standardize(tf.constant(["Great film!<br /><br />Loved it, REALLY.", "  ", "", "don't-stop"])).numpy()
    assert out.tolist() == [b"great film loved it really", b"", b"", b"don t stop"]


def test_reads_archive_in_order_with_labels(tiny_imdb):
    texts, labels, source = load_imdb_texts("train", tiny_imdb)
    assert len(texts) == 120 and labels.tolist().count(1) == 60
    assert source["sha256"] and source["source"].endswith("aclImdb.tar.gz")
    pos = [t for t, y in zip(texts, labels) if y == 1]
    assert all(any(w in t for w in POSITIVE) for t in pos)


def test_vocabulary_comes_from_train_only(tmp_path):
    override = {"aclImdb/test/pos/0": b"zebraword appears only in the test split"}
    data_dir = write_imdb_archive(tmp_path / "d", per_class_train=10, per_class_test=5, raw_override=override)
    bundle = load_dataset("imdb", data_dir=data_dir, batch_size=8, val_split=0.2, max_tokens=500)
    vocab = bundle.preprocessor.vocabulary
    assert vocab[:2] == ["", "[UNK]"] and "zebraword" not in vocab and "wonderful" in vocab
    assert bundle.info["num_train"] == 16 and bundle.info["num_val"] == 4 and bundle.info["num_test"] == 10


def test_batches_are_padded_int32_with_bounded_length(tiny_imdb):
    bundle = load_dataset("imdb", data_dir=tiny_imdb, batch_size=16, sequence_length=20)
    n = 0
    for tokens, labels in bundle.train:
        assert tokens.dtype == tf.int32 and labels.dtype == tf.int32
        assert tokens.shape[1] <= 20 and set(np.unique(labels.numpy())) <= {0, 1}
        lengths = (tokens.numpy() != 0).sum(1)
        assert lengths.max() == tokens.shape[1]  # padded to the longest in the batch only
        n += len(labels)
    assert n == bundle.info["num_train"] and bundle.info["truncated_fraction"] > 0


def test_vectorizer_save_load_round_trip_and_empty_text(tmp_path, tiny_imdb):
    texts, _, _ = load_imdb_texts("train", tiny_imdb)
    v = TextVectorizer(max_tokens=100, sequence_length=12).adapt(texts)
    v.save(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "preprocessor.json").read_text())["kind"] == "text_vectorizer"
    again = load_preprocessor(tmp_path / "p")
    batch = tf.constant(["A wonderful plot!", "", "   ", " ".join(["movie"] * 50)])
    np.testing.assert_array_equal(again(batch, pad=True).numpy(), v(batch, pad=True).numpy())
    ids = v(batch, pad=True).numpy()
    assert ids.shape == (4, 12) and not ids[1].any() and not ids[2].any()  # empty -> all padding
    assert (ids[3] != 0).all()  # long review cut to sequence_length


def test_long_reviews_keep_head_and_tail_and_short_ones_are_untouched():
    v = TextVectorizer(max_tokens=100, sequence_length=6, head_tokens=2).adapt([" ".join(f"w{i}" for i in range(12))])
    vocab = v.vocabulary
    ids = v(tf.constant(["w0 w1 w2 w3 w4 w5 w6 w7 w8 w9", "w3 w4"])).numpy()
    assert [[vocab[i] for i in row] for row in ids] == [["w0", "w1", "w6", "w7", "w8", "w9"],
                                                        ["w3", "w4", "", "", "", ""]]
    plain = TextVectorizer(max_tokens=100, sequence_length=6, head_tokens=None, vocabulary=vocab)
    assert [vocab[i] for i in plain(tf.constant(["w0 w1 w2 w3 w4 w5 w6 w7"])).numpy()[0]] == [f"w{i}" for i in range(6)]
    assert v(tf.constant(["w3", "w4 w5"])).shape == (2, 2)  # unpadded: as long as the longest review


def test_epoch_length_is_known_and_exact(tiny_imdb):
    bundle = load_dataset("imdb", data_dir=tiny_imdb, batch_size=16, sequence_length=30, seed=3)
    for split, n in (("train", bundle.info["num_train"]), ("val", bundle.info["num_val"]),
                     ("test", bundle.info["num_test"])):
        ds = getattr(bundle, split)
        assert int(ds.cardinality()) == -(-n // 16) == sum(1 for _ in ds), split
    first = [y.numpy().tolist() for _, y in bundle.train]
    assert first != [y.numpy().tolist() for _, y in bundle.train]  # reshuffled every epoch


def test_non_utf8_review_names_the_file(tmp_path):
    bad = {"aclImdb/train/neg/3": b"caf\xe9 is latin-1"}
    data_dir = write_imdb_archive(tmp_path / "d", per_class_train=5, per_class_test=2, raw_override=bad)
    with pytest.raises(DataError, match=r"aclImdb/train/neg/3_\d+\.txt: not valid UTF-8"):
        load_imdb_texts("train", data_dir)


def test_missing_archive_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="aclImdb.tar.gz not found"):
        load_imdb_texts("train", tmp_path)


def test_real_archive_checksum(shared_data_dir):
    from zoo.data import verify_file

    assert verify_file(shared_data_dir / "aclImdb.tar.gz", shared_data_dir).startswith("cc3ed882")
