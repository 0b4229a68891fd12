"""Multi30k loader: pairs, WordPiece round trip, core-TF tokenizer parity, batches, bad input."""

import gzip
import hashlib
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import DataError, load_dataset, load_preprocessor
from applications.translation.data import (
    END_ID,
    START_ID,
    UNK_ID,
    TranslationTokenizers,
    learn_vocabulary,
    load_pairs,
    sentence_case,
)

EN = ["A man is riding a bike.", "Two dogs play in the snow.", "A woman, wearing a red hat, sings.",
      "Children are running on the beach.", "An old man reads a book."]
DE = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau mit rotem Hut singt.",
      "Kinder laufen am Strand.", "Ein alter Mann liest ein Buch."]


def write_multi30k(root, n_train=40, n_other=10, misaligned=False):
    """A tiny multi30k/ folder (gzip, line-aligned) plus SHA256SUMS; returns the data dir."""
    root = pathlib.Path(root)
    (root / "multi30k").mkdir(parents=True, exist_ok=True)
    sums = []
    for split, n in (("train", n_train), ("val", n_other), ("test_2016_flickr", n_other)):
        for lang, lines in (("en", EN), ("de", DE)):
            rows = [lines[i % len(lines)] for i in range(n)]
            if misaligned and split == "val" and lang == "de":
                rows = rows[:-1]
            data = gzip.compress(("\n".join(rows) + "\n").encode("utf-8"))
            (root / "multi30k" / f"{split}.{lang}.gz").write_bytes(data)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  multi30k/{split}.{lang}.gz")
    (root / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return root


def test_loader_gives_teacher_forcing_batches(tmp_path):
    data = load_dataset("multi30k", data_dir=write_multi30k(tmp_path), batch_size=8, vocabulary_size=120, max_length=16)
    json.dumps(data.info)
    assert data.info["num_train"] == 40 and data.info["num_test"] == 10 and data.info["source_vocabulary_size"] == 120
    assert data.test_references[:2] == DE[:2] and data.test_sources[0] == EN[0]
    n = 0
    for x, y in data.train:
        enc, dec, y = x["encoder_tokens"].numpy(), x["decoder_tokens"].numpy(), y.numpy()
        assert enc.dtype == dec.dtype == y.dtype == np.int32 and dec.shape == y.shape
        assert (dec[:, 0] == START_ID).all()
        for d, t in zip(dec, y):
            k = int((t != 0).sum())
            assert t[k - 1] == END_ID and np.array_equal(d[1:k], t[:k - 1])  # shifted by one
        n += len(y)
    assert n == 40
    data.preprocessor.save(tmp_path / "pre")
    again = load_preprocessor(tmp_path / "pre")
    s = tf.constant(EN)
    assert again.encode_source(s).to_list() == data.preprocessor.encode_source(s).to_list()


def test_long_sentences_are_truncated_and_counted(tmp_path):
    data = load_dataset("multi30k", data_dir=write_multi30k(tmp_path), batch_size=8, vocabulary_size=120, max_length=4)
    assert data.info["truncated"]["source"] > 0 and data.info["truncated"]["target"] > 0
    x, y = next(iter(data.test))
    assert x["encoder_tokens"].shape[1] <= 4 and y.shape[1] <= 4


def test_round_trip_and_core_tokenizer_on_real_sentences(shared_data_dir):
    if not (shared_data_dir / "multi30k" / "train.en.gz").exists():
        pytest.skip("no multi30k in the data directory")
    en, de, _ = load_pairs("train", shared_data_dir)
    tok = TranslationTokenizers(learn_vocabulary(en[:400], 600), learn_vocabulary(de[:400], 600), max_length=400)
    for texts, encode in ((de[:50], tok.encode_target), (en[:50], tok.encode_source)):
        ids = encode(tf.constant(texts)).to_tensor(0)
        back = (tok.detokenize(ids) if encode == tok.encode_target else tok.decode_source(ids)).numpy()
        assert [b.decode() for b in back] == [" ".join(t.split()) for t in texts]
    # the exported (core TF ops) tokenizer gives the keras-hub ids, unknown characters and long text included
    odd = en[:50] + ["", "  Caf\u00e9   \U0001f600 ,x", "T-Shirt ## \u2581y", "word" * 40, " ".join(en[:60])]
    want = tok.encode_source(tf.constant(odd)).to_tensor(0).numpy()
    got, truncated = tok.encode_source_core(tf.constant(odd))
    np.testing.assert_array_equal(got.numpy()[:, :want.shape[1]], want)
    assert truncated.numpy().tolist() == [False] * 54 + [True]
    assert UNK_ID in want[51] and UNK_ID in want[53]



def test_sentence_case_puts_english_in_the_form_multi30k_writes_it():
    texts = ["A DOG RUNS ON THE BEACH.", "a dog runs.", "A dog runs.", "\u00dcBER DEN FLUSS.", "", "  two MEN talk",
             "I", "USA!", "3 DOGS.", "\u00e9t\u00e9 caf\u00e9"]
    got = [t.decode() for t in sentence_case(tf.constant(texts)).numpy()]
    assert got == ["A dog runs on the beach.", "A dog runs.", "A dog runs.", "\u00dcber den fluss.", "", "Two MEN talk",
                   "I", "Usa!", "3 dogs.", "\u00c9t\u00e9 caf\u00e9"]
    # both tokenizers (training's and the export's) read shouted and lower-case English as the sentence-cased text
    tok = TranslationTokenizers(learn_vocabulary(EN, 120), learn_vocabulary(DE, 120), max_length=32)
    variants = ["A man is riding a bike.", "A MAN IS RIDING A BIKE.", "a man is riding a bike."]
    training = tok.encode_source(tf.constant(variants)).to_tensor(0).numpy()
    exported = tok.encode_source_core(tf.constant(variants))[0].numpy()
    assert (training == training[0]).all() and (exported == training[0]).all() and UNK_ID not in training[0]

def test_bad_data_fails_with_the_path(tmp_path):
    with pytest.raises(DataError, match="test_2016_flickr.en.gz"):
        root = write_multi30k(tmp_path / "a")
        (root / "multi30k" / "test_2016_flickr.en.gz").unlink()
        load_pairs("test_2016_flickr", root)
    with pytest.raises(DataError, match="line-aligned"):
        load_pairs("val", write_multi30k(tmp_path / "b", misaligned=True))
    root = write_multi30k(tmp_path / "c")
    (root / "multi30k" / "train.de.gz").write_bytes(b"corrupt")
    with pytest.raises(DataError, match="checksum mismatch"):
        load_pairs("train", root)
    with pytest.raises(DataError, match="no split"):
        load_pairs("test", root)
