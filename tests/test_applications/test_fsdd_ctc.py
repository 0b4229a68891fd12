"""fsdd_ctc: CTC convention and decoding on known logits, loss, shapes, inert padding, save/load, it learns."""

import numpy as np
import keras
import pytest
import tensorflow as tf

import zoo
from speech_fixtures import tone
from applications.speech.models import (CTCBlankPadding, ConvSubsampling, LengthMaskedEncoderBlock, SpeakerAdversary,
                                       output_lengths)
from applications.speech.data import DIGIT_WORDS
from applications.speech.task import CTCLoss, beam_decode, decode, greedy_decode, ids_to_text, single_token_decode, ids_to_text_tf, word_error_rate
from applications.speech.task import single_token_scores

TINY = dict(dim=32, num_layers=1, num_heads=2, intermediate_dim=64, conv_channels=8, num_mel_bins=20, fft_length=256)

# 3 tokens + blank (id 3, the last class)
B = 3


def _one_hot_logits(paths, classes=4, peak=5.0):
    out = np.zeros((len(paths), max(map(len, paths)), classes), np.float32)
    for i, p in enumerate(paths):
        for t, k in enumerate(p):
            out[i, t, k] = peak
    return out


def test_greedy_decode_known_logits_and_tf_reference():
    logits = _one_hot_logits([[0, 0, B, 0, 1, B], [2, B, 2, 2, 1, 1], [B, B, B, B, B, B]])
    lengths = np.array([6, 4, 6], np.int32)
    got = np.asarray(greedy_decode(logits, lengths))
    assert got.shape == (3, 6) and got.dtype == np.int32
    assert got[0].tolist()[:3] == [0, 0, 1] and got[1].tolist()[:2] == [2, 2]
    assert (got[0, 3:] == -1).all() and (got[1, 2:] == -1).all() and (got[2] == -1).all()
    # the pinned convention: batch-major logits, blank last == tf.nn.ctc_greedy_decoder (time-major, blank last)
    rng = np.random.default_rng(0)
    rand = rng.normal(size=(5, 9, 4)).astype(np.float32)
    lens = np.array([9, 7, 1, 4, 9], np.int32)
    (sparse,), _ = tf.nn.ctc_greedy_decoder(tf.transpose(rand, (1, 0, 2)), lens, merge_repeated=True)
    want = tf.sparse.to_dense(sparse, default_value=-1).numpy()
    mine = np.asarray(greedy_decode(rand, lens))
    np.testing.assert_array_equal(mine[:, :want.shape[1]], want)
    assert (mine[:, want.shape[1]:] == -1).all()
    # beam search agrees on peaked logits, and greedy via decode(beam_width=1)
    np.testing.assert_array_equal(np.asarray(beam_decode(logits, lengths, beam_width=4))[:, :3], got[:, :3])
    np.testing.assert_array_equal(np.asarray(decode(logits, lengths)), got)


def test_beam_search_beats_greedy_when_mass_is_split():
    # two frames; blank has the single best path, but token 0 collects more probability over its paths
    p = np.array([[[0.4, 0.0, 0.0, 0.6], [0.4, 0.0, 0.0, 0.6]]], np.float32) + 1e-6
    logits = np.log(p / p.sum(-1, keepdims=True))
    assert (np.asarray(greedy_decode(logits)) == -1).all()  # greedy: blank blank -> ""
    assert np.asarray(beam_decode(logits, beam_width=8))[0, :1].tolist() == [0]  # P("0") = .64 > P("") = .36


def test_single_token_decode_picks_the_word_with_most_ctc_mass():
    # row 0: greedy reads "1 0 1" (three words), row 1: greedy reads "" (all blank); each must become one word
    p = np.array([[[0.1, 0.5, 0.0, 0.4], [0.6, 0.0, 0.0, 0.4], [0.1, 0.5, 0.0, 0.4]],
                  [[0.0, 0.0, 0.1, 0.9], [0.0, 0.0, 0.1, 0.9], [0.0, 0.0, 0.1, 0.9]]], np.float32) + 1e-6
    logits = np.log(p / p.sum(-1, keepdims=True))

    def brute(probs, k):  # P(k) = sum over alignments blank* k+ blank*
        t = len(probs)
        return sum(np.prod([probs[i, 3] for i in range(a)] + [probs[i, k] for i in range(a, b)]
                           + [probs[i, 3] for i in range(b, t)]) for a in range(t) for b in range(a + 1, t + 1))

    got = np.asarray(single_token_decode(logits))
    assert got.shape == (2, 1) and got.dtype == np.int32
    for row in range(2):
        probs = p[row] / p[row].sum(-1, keepdims=True)
        assert got[row, 0] == int(np.argmax([brute(probs, k) for k in range(3)]))
    assert got[1, 0] == 2  # the only token with any mass in the all-blank row
    assert np.asarray(greedy_decode(logits))[0, :3].tolist() == [1, 0, 1]
    assert (np.asarray(greedy_decode(logits))[1] == -1).all()
    np.testing.assert_array_equal(np.asarray(decode(logits, single_token=True)), got)


def test_single_token_scores_are_the_ctc_likelihoods_of_the_valid_frames():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (3, 6, 5)).astype(np.float32)
    lengths = np.array([6, 3, 1], np.int32)
    got = np.asarray(single_token_scores(logits, lengths))
    assert got.shape == (3, 4)
    for row, n in enumerate(lengths):
        probs = np.exp(logits[row, :n]) / np.exp(logits[row, :n]).sum(-1, keepdims=True)
        for k in range(4):  # every alignment blank^a k^(b-a) blank^(n-b) of the first n frames
            want = sum(np.prod(np.r_[probs[:a, 4], probs[a:b, k], probs[b:, 4]])
                       for a in range(n) for b in range(a + 1, n + 1))
            np.testing.assert_allclose(got[row, k], np.log(want), rtol=1e-4)
    # the frames past a length are ignored: junk there changes nothing
    junk = logits.copy()
    junk[1, 3:] = rng.normal(0, 9, (3, 5))
    np.testing.assert_allclose(np.asarray(single_token_scores(junk, lengths)), got, rtol=1e-5)
    # keras' CTC forward pass agrees (one pass per token)
    labels = np.repeat(np.arange(4, dtype=np.int32)[None], 3, 0).reshape(-1, 1)
    nll = keras.ops.ctc_loss(labels, np.repeat(logits, 4, 0), np.ones(12, np.int32), np.repeat(lengths, 4),
                             mask_index=4)
    np.testing.assert_allclose(-np.asarray(nll).reshape(3, 4), got, rtol=1e-4, atol=1e-4)


def test_ids_to_text_python_and_graph():
    ids = np.array([[3, 5, 9, -1], [-1, -1, -1, -1], [0, 0, -1, -1]], np.int32)
    want = ["three five nine", "", "zero zero"]
    assert ids_to_text(ids) == want
    assert [s.decode() for s in ids_to_text_tf(ids).numpy()] == want


def test_ctc_loss_known_values_padding_and_blank_frames():
    loss = CTCLoss(reduction=None)
    logits = np.log(np.array([[[0.7, 0.1, 0.1, 0.1]]], np.float32))  # one frame, label [0]
    np.testing.assert_allclose(loss(np.array([[0]]), logits), [-np.log(0.7)], rtol=1e-5)
    # two frames, label [1]: paths "1 1", "1 -", "- 1"
    p = np.array([[0.1, 0.5, 0.1, 0.3], [0.2, 0.4, 0.2, 0.2]], np.float32)
    want = -np.log(p[0, 1] * p[1, 1] + p[0, 1] * p[1, 3] + p[0, 3] * p[1, 1])
    got = loss(np.array([[1, -1, -1]]), np.log(p)[None])  # -1 padding is not part of the label
    np.testing.assert_allclose(got, [want], rtol=1e-5)
    # frames forced to blank (as the model does past an utterance's end) leave the loss unchanged
    forced = np.full((1, 3, 4), -1e4, np.float32)
    forced[..., 3] = 0.0
    np.testing.assert_allclose(loss(np.array([[1]]), np.concatenate([np.log(p)[None], forced], 1)), [want], rtol=1e-4)


def test_model_shapes_blank_padding_lengths_and_reload(tmp_path):
    model = zoo.create_model("fsdd_ctc", **TINY)
    w = np.zeros((3, 4000), np.float32)
    w[0] = tone(3, seconds=0.5)
    w[1, :2000] = tone(7, seconds=0.25)
    lengths = np.array([4000, 2000, 0], np.int32)
    logits = np.asarray(model({"waveform": w, "length": lengths}))
    frames = np.asarray(output_lengths(model, lengths))
    assert logits.shape == (3, frames[0], 11) and logits.dtype == np.float32
    np.testing.assert_array_equal(frames, [13, 7, 1])  # ceil(ceil(ceil(n / 80) / 2) / 2), at least 1
    assert (logits[1, 7:].argmax(-1) == 10).all() and (logits[1, 7:, :10] <= -1e3).all()
    alone = np.asarray(model({"waveform": w[1:2, :2000], "length": lengths[1:2]}))
    np.testing.assert_allclose(alone[0], logits[1, :alone.shape[1]], atol=1e-4)  # padding is inert
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(again({"waveform": w, "length": lengths})), logits, atol=1e-6)
    spec = zoo.get_spec("fsdd_ctc")
    assert spec.modality == "speech" and spec.dataset_name == "fsdd" and spec.task.name == "recognition"
    assert spec.metrics == ("isolated_accuracy", "isolated_accuracy_single_word", "isolated_wer", "per_speaker_accuracy")
    assert list(spec.raw_inputs) == ["waveform", "length"] and spec.preprocessor is None
    # one variance per utterance: the measured default for unseen voices (#15, bench/RESULTS.md)
    assert zoo.create_model("fsdd_ctc", **TINY).get_layer("normalize").variance == "global"
    assert zoo.create_model("fsdd_ctc", **TINY).get_layer("log_mel").max_freq is None  # up to Nyquist (fifth pass)


def test_trimmed_model_ignores_silence_beyond_its_margin(tmp_path):
    word = tone(3, seconds=0.4)  # trim_margin is 10 frames of 80 samples

    def padded(lead_frames, tail_frames):
        return np.concatenate([np.zeros(lead_frames * 80, np.float32), word, np.zeros(tail_frames * 80, np.float32)])

    near, far = padded(12, 12), padded(100, 60)  # a little more than the margin, and a second or so
    waves = np.zeros((2, len(far)), np.float32)
    waves[0, :len(near)], waves[1] = near, far
    lengths = np.array([len(near), len(far)], np.int32)
    keras.utils.set_random_seed(0)
    trimmed = zoo.create_model("fsdd_ctc", **TINY)  # the default: 50 dB (#15 twenty-third pass)
    keras.utils.set_random_seed(0)
    plain = zoo.create_model("fsdd_ctc", trim_db=0.0, **TINY)  # --set trim_db=0: off
    out = np.asarray(trimmed({"waveform": waves, "length": lengths}))
    kept = np.asarray(trimmed.get_layer("trim")(*trimmed.get_layer("log_mel")(waves, lengths))[1])
    assert kept[0] == kept[1] < len(word) // 80 + 2 * 10 + 4  # the word and its margins, from either clip
    n = (kept[0] + 3) // 4
    np.testing.assert_allclose(out[0, :n], out[1, :n], atol=1e-4)  # the extra second of silence changes nothing
    assert (out[1, n:].argmax(-1) == 10).all()  # frames past the trimmed word are blank
    base = np.asarray(plain({"waveform": waves, "length": lengths}))
    assert np.abs(base[0, :n] - base[1, :n]).max() > 1e-2  # without trimming the silence does change the logits
    assert trimmed.get_layer("trim").margin == 10 and trimmed.get_layer("trim").threshold_db == 50.0
    assert "trim" not in [layer.name for layer in plain.layers]
    path = tmp_path / "trimmed.keras"
    trimmed.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(again({"waveform": waves, "length": lengths})), out, atol=1e-6)


def test_max_freq_bounds_the_band_the_model_hears():
    rate, n = 8000, 4000
    t = np.arange(n) / rate
    silence = np.zeros((1, n), np.float32)
    high = (0.4 * np.sin(2 * np.pi * 3500 * t))[None].astype(np.float32)
    low = (0.4 * np.sin(2 * np.pi * 800 * t))[None].astype(np.float32)
    length = np.array([n], np.int32)

    def heard(model, x):  # how far the log-mel features move from silence's, away from the onset's click
        feats = np.asarray(model.get_layer("log_mel")(x, length)[0])
        return np.abs(feats - np.asarray(model.get_layer("log_mel")(silence, length)[0]))[0, 5:-5].max()

    banded = zoo.create_model("fsdd_ctc", max_freq=2000, **TINY)
    full = zoo.create_model("fsdd_ctc", **TINY)
    assert banded.get_layer("log_mel").max_freq == 2000.0
    assert heard(full, high) > 5 and heard(banded, low) > 5  # log units: e^5 times the floor
    assert heard(banded, high) < 0.01 * heard(full, high)  # 3.5 kHz lies above every filter below 2 kHz


@pytest.mark.parametrize("make", [
    lambda: ConvSubsampling(channels=4, stages=3, dim=8),
    lambda: ConvSubsampling(channels=4, stages=2, dim=8, depth=3),
    lambda: CTCBlankPadding(blank_index=4),
    lambda: LengthMaskedEncoderBlock(num_heads=2, intermediate_dim=16, dropout=0.1),
    lambda: CTCLoss(normalize="label_length"),
    lambda: SpeakerAdversary(num_speakers=7, scale=0.3, hidden=16),
], ids=["ConvSubsampling", "ConvSubsamplingDeep", "CTCBlankPadding", "LengthMaskedEncoderBlock", "CTCLoss",
        "SpeakerAdversary"])
def test_speech_parts_round_trip_through_config(make):
    obj = make()
    config = obj.get_config()
    again = type(obj).from_config(config)
    assert again.get_config() == config
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj)).get_config() == config


def test_speech_layers_compute_what_their_config_says():
    x = np.random.default_rng(0).standard_normal((2, 17, 16)).astype(np.float32)
    lengths = np.array([17, 9], np.int32)
    sub = ConvSubsampling(channels=4, stages=3, dim=8)
    y, n = sub(x, lengths)
    assert tuple(y.shape) == (2, 3, 8) and np.asarray(n).tolist() == [3, 2]  # ceil(17/8), ceil(9/8)
    assert np.asarray(sub.frame_lengths(lengths)).tolist() == [3, 2]  # the rule output_lengths uses
    clone = ConvSubsampling.from_config(sub.get_config())
    clone(x, lengths)
    clone.set_weights(sub.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x, lengths)[0]), np.asarray(y), atol=1e-6)
    deep = ConvSubsampling(channels=4, stages=3, dim=8, depth=3)
    y3, n3 = deep(x, lengths)
    assert tuple(y3.shape) == (2, 3, 8) and np.asarray(n3).tolist() == [3, 2]  # same frames, more convolutions
    assert len(deep.weights) == len(sub.weights) + 3 * 2 * 2  # two residual convs (kernel, bias) per stage
    short = x.copy()
    short[1, 9:] = 100.0  # frames past the length do not reach the valid outputs
    np.testing.assert_allclose(np.asarray(deep(short, lengths)[0])[1, :2], np.asarray(y3)[1, :2], atol=1e-5)
    with pytest.raises(ValueError, match="depth"):
        ConvSubsampling(depth=0)
    logits = CTCBlankPadding(blank_index=3)(np.zeros((2, 4, 4), np.float32), np.array([4, 1], np.int32))
    assert (np.asarray(logits)[1, 1:].argmax(-1) == 3).all() and (np.asarray(logits)[0] == 0).all()
    with pytest.raises(ValueError, match="normalize"):
        CTCLoss(normalize="frames")


def _synthetic(n, seed):
    rng = np.random.default_rng(seed)
    digits = rng.integers(0, 10, n)
    w = np.zeros((n, 2400), np.float32)
    lengths = np.zeros(n, np.int32)
    for i, d in enumerate(digits):
        x = tone(int(d), int(rng.integers(5)), rng.uniform(0.15, 0.3), rng=rng)
        w[i, :len(x)], lengths[i] = x, len(x)
    return {"waveform": w, "length": lengths}, digits[:, None].astype(np.int32)


def test_learns_isolated_synthetic_digits():
    keras.utils.set_random_seed(0)  # unseeded weights made this test pass or fail by chance
    x, y = _synthetic(240, seed=0)
    xt, yt = _synthetic(100, seed=1)
    model = zoo.create_model("fsdd_ctc", **TINY, freq_masks=0, time_masks=0, dropout=0.0)
    model.compile(keras.optimizers.Adam(1e-2), CTCLoss())
    before = float(model.evaluate(xt, yt, verbose=0))
    model.fit(x, y, batch_size=16, epochs=12, verbose=0)
    after = float(model.evaluate(xt, yt, verbose=0))
    hyp = ids_to_text(greedy_decode(model.predict(xt, verbose=0)))
    accuracy = np.mean([h == DIGIT_WORDS[d] for h, d in zip(hyp, yt[:, 0])])
    assert after < 0.5 * before, (before, after)
    assert accuracy > 0.4, (accuracy, hyp[:10])
    wer = word_error_rate([DIGIT_WORDS[d] for d in yt[:, 0]], hyp)["wer"]
    assert wer < 0.7


def _speaker_states(n=96, speakers=4, frames=6, dim=8, seed=0):
    """Encoder-like states whose mean over valid frames says the speaker; frames past each length are noise."""
    rng = np.random.default_rng(seed)
    who = rng.integers(0, speakers, n)
    centres = rng.normal(size=(speakers, dim)) * 2
    x = rng.normal(size=(n, frames, dim)).astype(np.float32) + centres[who][:, None, :].astype(np.float32)
    lengths = rng.integers(2, frames + 1, n).astype(np.int32)
    for i, k in enumerate(lengths):
        x[i, k:] = rng.normal(size=(frames - k, dim)) * 10
    return x, lengths, who.astype(np.int32)


def test_speaker_adversary_learns_speakers_while_reversing_its_gradient(tmp_path):
    keras.utils.set_random_seed(0)
    x, lengths, who = _speaker_states()
    states, frames = keras.Input((None, 8)), keras.Input((), dtype="int32")
    head = SpeakerAdversary(num_speakers=4, scale=0.5, hidden=16, name="adv")
    model = keras.Model([states, frames], head(states, frames))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    before = model.evaluate([x, lengths], who, verbose=0)
    model.fit([x, lengths], who, epochs=30, batch_size=32, verbose=0)
    after = model.evaluate([x, lengths], who, verbose=0)
    assert after[0] < 0.3 * before[0] and after[1] > 0.9, (before, after)  # the head itself learns

    # the states get the head's gradient reversed and scaled, and none on frames past the length
    twin = SpeakerAdversary(num_speakers=4, scale=1.0, hidden=16)
    twin(x[:2], lengths[:2])
    twin.set_weights(head.get_weights())

    def grad(logits_of):
        v = tf.Variable(x[:16])
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(who[:16], logits_of(v), from_logits=True)
        return tape.gradient(loss, v).numpy()

    g_half, g_one = grad(lambda v: head(v, lengths[:16])), grad(lambda v: twin(v, lengths[:16]))
    # the same classifier without the reversal: what plain training would send the states
    mask = tf.sequence_mask(lengths[:16], 6)
    g_plain = grad(lambda v: head.out(head.dense(head.pool(v, mask=mask))))
    np.testing.assert_allclose(g_one, -g_plain, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(g_half, 0.5 * g_one, rtol=1e-4, atol=1e-7)
    past = np.arange(6)[None, :] >= lengths[:16, None]
    assert np.abs(g_one[past]).max() == 0 and np.abs(g_one[~past]).max() > 0
    model.save(tmp_path / "adv.keras")
    loaded = keras.saving.load_model(tmp_path / "adv.keras")
    np.testing.assert_allclose(loaded.predict([x, lengths], verbose=0), model.predict([x, lengths], verbose=0),
                               atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 speakers"):
        SpeakerAdversary(num_speakers=1)


def test_filled_trim_reads_a_tightly_cut_clip_as_the_same_clip_with_silence(tmp_path):
    word = tone(3, seconds=0.4)
    loose = np.concatenate([np.zeros(4000, np.float32), word, np.zeros(4000, np.float32)])
    waves = np.zeros((2, len(loose)), np.float32)
    waves[0, :len(word)], waves[1] = word, loose
    lengths = np.array([len(word), len(loose)], np.int32)
    keras.utils.set_random_seed(0)
    filled = zoo.create_model("fsdd_ctc", trim_fill=True, **TINY)
    keras.utils.set_random_seed(0)
    unfilled = zoo.create_model("fsdd_ctc", **TINY)  # trim_fill=False, the default
    out, base = (np.asarray(m({"waveform": waves, "length": lengths})) for m in (filled, unfilled))
    kept = np.asarray(filled.get_layer("trim")(*filled.get_layer("log_mel")(waves, lengths))[1])
    assert abs(int(kept[0]) - int(kept[1])) <= 1  # the word plus 10 frames either side, from either clip
    n = (int(kept.min()) + 3) // 4
    # alike up to the STFT frames that straddle the cut: within 10% of the logits' scale
    assert np.abs(out[0, :n] - out[1, :n]).max() < 0.1 * np.abs(out[1, :n]).max()
    # without fill the tight clip starts at the word and the loose one 10 frames before it: over the frames valid
    # in both, the logits differ by as much as the logits themselves
    short = (int(np.asarray(unfilled.get_layer("trim")(*unfilled.get_layer("log_mel")(waves, lengths))[1])[0]) + 3) // 4
    assert np.abs(base[0, :short] - base[1, :short]).max() > 0.3 * np.abs(base[1, :short]).max()
    assert filled.get_layer("trim").fill == pytest.approx(np.log(1e-6))
    path = tmp_path / "filled.keras"
    filled.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(again({"waveform": waves, "length": lengths})), out, atol=1e-5)
    with pytest.raises(ValueError, match="trim_fill"):
        zoo.create_model("fsdd_ctc", trim_fill=True, top_db=60.0, **TINY)
