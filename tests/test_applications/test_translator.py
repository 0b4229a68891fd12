"""multi30k_transformer: toy-task learning, cached == uncached decoding, beam 1 == greedy, saving."""

import time

import keras
import numpy as np
import pytest

import zoo
from applications.translation.task import (
    END_ID,
    START_ID,
    beam_decode,
    compiled_decode,
    greedy_decode,
    translation_task,
)

VOCAB = 16  # ids 4..15 are "words"


def _tiny(**kw):
    args = dict(source_vocabulary_size=VOCAB, target_vocabulary_size=VOCAB, max_length=10, embedding_dim=32,
                num_layers=1, num_heads=2, intermediate_dim=64, dropout=0.0)
    return zoo.create_model("multi30k_transformer", **{**args, **kw})


def _copy_task(n, seed):
    """Sources of 2-6 random words; the target copies the source."""
    rng = np.random.default_rng(seed)
    enc = np.zeros((n, 6), np.int32)
    dec = np.zeros((n, 7), np.int32)
    tgt = np.zeros((n, 7), np.int32)
    for i in range(n):
        length = rng.integers(2, 7)
        words = rng.integers(4, VOCAB, length)
        enc[i, :length] = words
        out = words
        dec[i, 0], dec[i, 1:length + 1] = START_ID, out
        tgt[i, :length], tgt[i, length] = out, END_ID
    return enc, dec, tgt


@pytest.fixture(scope="module")
def trained():
    """A tiny model that learned to copy sequences (about 20 s on 2 busy cores)."""
    keras.utils.set_random_seed(0)
    model = _tiny()
    spec = zoo.get_spec("multi30k_transformer")
    loss, metrics = translation_task(spec, {"label_smoothing": 0.0})
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss, metrics=metrics)
    enc, dec, tgt = _copy_task(2000, seed=0)
    t0 = time.perf_counter()
    history = model.fit({"encoder_tokens": enc, "decoder_tokens": dec}, tgt, batch_size=64, epochs=8, verbose=0)
    return model, history.history, time.perf_counter() - t0


def test_learns_to_copy_sequences(trained):
    model, history, seconds = trained
    assert history["loss"][-1] < history["loss"][0] / 5
    enc, dec, tgt = _copy_task(200, seed=1)  # held out
    logits = model({"encoder_tokens": enc, "decoder_tokens": dec})
    pred = np.asarray(keras.ops.argmax(logits, -1))
    keep = tgt != 0
    token_accuracy = (pred == tgt)[keep].mean()
    assert token_accuracy > 0.97, (token_accuracy, seconds)
    out = np.asarray(greedy_decode(model, enc, max_length=7))
    exact = np.mean([np.array_equal(o[:(t != 0).sum()], t[:(t != 0).sum()]) for o, t in zip(out, tgt)])
    assert exact > 0.9, exact


def test_cached_and_uncached_decoding_agree(trained):
    model, _, _ = trained
    enc, _, _ = _copy_task(16, seed=2)
    enc[3] = 0  # an empty source too
    np.testing.assert_array_equal(np.asarray(compiled_decode(model)(enc)),  # the tf.function the evaluator uses
                                  np.asarray(greedy_decode(model, enc, cached=False)))
    np.testing.assert_array_equal(np.asarray(beam_decode(model, enc, beam_width=3)),
                                  np.asarray(beam_decode(model, enc, beam_width=3, cached=False)))
    # and the step logits themselves, on an untrained model
    fresh = _tiny(num_layers=2)
    enc = np.array([[5, 6, 7, 0], [8, 9, 0, 0]], np.int32)
    dec = np.array([[START_ID, 4, 9, 11, 5], [START_ID, 12, 13, 4, 4]], np.int32)
    full = np.asarray(fresh({"encoder_tokens": enc, "decoder_tokens": dec}))
    eo, em = fresh.encode(enc)
    self_cache, cross_cache = fresh.init_cache(eo)
    for t in range(dec.shape[1]):
        step, self_cache = fresh.decode_step(dec[:, t:t + 1], t, eo, em, self_cache, cross_cache)
        np.testing.assert_allclose(np.asarray(step), full[:, t], atol=1e-5)


def test_beam_width_one_equals_greedy_and_beams_stop_at_end(trained):
    model, _, _ = trained
    enc, _, tgt = _copy_task(12, seed=3)
    greedy = np.asarray(greedy_decode(model, enc))
    beam1 = np.asarray(beam_decode(model, enc, beam_width=1))
    np.testing.assert_array_equal(greedy, beam1)
    beam4 = np.asarray(beam_decode(model, enc, beam_width=4, length_penalty=1.0))
    for row in beam4:
        ends = np.flatnonzero(row == END_ID)
        assert len(ends) == 1 and not row[ends[0] + 1:].any()  # one [END], padding after it
    assert np.mean([np.array_equal(b[:(t != 0).sum()], t[:(t != 0).sum()]) for b, t in zip(beam4, tgt)]) > 0.9


def test_untrained_model_never_emits_reserved_ids_and_beam_one_is_greedy():
    # random weights: no memorised answer hides tie-breaking or masking bugs
    model = _tiny(num_layers=2)
    enc = np.random.default_rng(5).integers(4, VOCAB, (6, 5)).astype(np.int32)
    enc[2, 3:] = 0
    greedy = np.asarray(greedy_decode(model, enc))
    np.testing.assert_array_equal(greedy, np.asarray(beam_decode(model, enc, beam_width=1)))
    for out in (greedy, np.asarray(beam_decode(model, enc, beam_width=3))):
        for row in out:
            n = np.flatnonzero(row == END_ID)
            body = row[: n[0]] if len(n) else row
            assert not np.isin(body, [0, 1, START_ID]).any(), row  # no [PAD], [UNK], [START] inside a sentence
            assert not row[len(body) + 1:].any()  # padding after [END]


def test_saves_and_reloads_with_tied_and_untied_outputs(tmp_path):
    enc = np.array([[5, 6, 7]], np.int32)
    dec = np.array([[START_ID, 4, 9]], np.int32)
    for tie in (True, False):
        model = _tiny(tie_embeddings=tie)
        path = tmp_path / f"m{tie}.keras"
        model.save(path)
        again = keras.saving.load_model(path)
        np.testing.assert_allclose(np.asarray(again({"encoder_tokens": enc, "decoder_tokens": dec})),
                                   np.asarray(model({"encoder_tokens": enc, "decoder_tokens": dec})), atol=1e-6)
        assert again.get_config()["tie_embeddings"] is tie
    spec = zoo.get_spec("multi30k_transformer")
    assert spec.metrics == ("sacrebleu", "bleu_tokenized_lowercase") and spec.modality == "translation"
