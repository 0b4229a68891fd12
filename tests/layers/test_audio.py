"""Audio front end: shapes, agreement with keras.layers.MelSpectrogram, inert padding, SpecAugment."""

import numpy as np
import keras
import pytest

from zoo.layers import LogMelSpectrogram, SpecAugment, UtteranceNormalization


def _waves(lengths, width, seed=0):
    rng = np.random.default_rng(seed)
    w = np.zeros((len(lengths), width), np.float32)
    for i, n in enumerate(lengths):
        w[i, :n] = 0.3 * rng.standard_normal(n)
    return w, np.array(lengths, np.int32)


def test_log_mel_shapes_and_frame_lengths():
    layer = LogMelSpectrogram(num_mel_bins=24)
    w, n = _waves([8000, 4000, 81, 0], 8000)
    feats, frames = layer(w, n)
    assert feats.shape == (4, 1 + (8000 + 256) // 80, 24) and feats.dtype == "float32"
    np.testing.assert_array_equal(frames, [100, 50, 2, 1])
    assert np.isfinite(np.asarray(feats)).all()


def test_log_mel_matches_keras_mel_spectrogram():
    layer = LogMelSpectrogram(num_mel_bins=32, log_floor=1e-6)
    w, n = _waves([4000], 4000)
    ref = keras.layers.MelSpectrogram(fft_length=512, sequence_stride=80, sequence_length=200, sampling_rate=8000,
                                      num_mel_bins=32, min_freq=20.0, max_freq=4000, power_to_db=False)
    want = np.log(np.asarray(ref(np.pad(w, [[0, 0], [0, 256]]))).transpose(0, 2, 1) + 1e-6)
    got = np.asarray(layer(w, n)[0])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_padding_is_inert():
    layer, norm = LogMelSpectrogram(), UtteranceNormalization()
    w, n = _waves([3000, 1200], 3200, seed=1)
    wide = np.concatenate([w, np.zeros((2, 1600), np.float32)], 1)
    junk = np.random.default_rng(2).standard_normal(wide.shape).astype(np.float32)
    past = np.arange(wide.shape[1])[None, :] >= n[:, None]
    wide = np.where(past, junk, wide)  # junk right after each length: only the zeroing keeps it out
    f1, l1 = layer(w, n)
    f2, l2 = layer(wide, n)
    alone, _ = layer(w[1:, :1200], n[1:])
    t = f1.shape[1]
    for i in range(2):
        np.testing.assert_allclose(np.asarray(f2)[i, :l1[i]], np.asarray(f1)[i, :l1[i]], atol=1e-4)
    np.testing.assert_allclose(np.asarray(alone)[0, :l1[1]], np.asarray(f1)[1, :l1[1]], atol=1e-4)
    y = np.asarray(norm(f1, l1))
    valid = y[1, :int(l1[1])]
    np.testing.assert_allclose(valid.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(valid.std(0), 1, atol=1e-2)
    assert np.all(y[1, int(l1[1]):] == 0)


def test_normalization_of_silence_is_zero_not_nan():
    layer, norm = LogMelSpectrogram(), UtteranceNormalization()
    f, lengths = layer(np.zeros((1, 800), np.float32), np.array([800], np.int32))
    y = np.asarray(norm(f, lengths))
    assert np.isfinite(y).all() and np.abs(y).max() < 1e-2


def test_spec_augment_training_only_and_inside_lengths():
    x = np.ones((4, 50, 16), np.float32)
    lengths = np.array([50, 30, 10, 1], np.int32)
    aug = SpecAugment(freq_masks=2, freq_mask_width=4, time_masks=2, time_mask_width=8, time_mask_ratio=0.2, seed=3)
    np.testing.assert_array_equal(aug(x, lengths), x)
    np.testing.assert_array_equal(aug(x, lengths, training=False), x)
    y = np.asarray(aug(x, lengths, training=True))
    assert y.shape == x.shape and set(np.unique(y)) <= {0.0, 1.0} and (y == 0).any()
    # time masks: at most ratio * length frames per mask, never past the length (frames there stay 1)
    time_masked = (y == 0).all(axis=2)  # (B, T): whole frame zeroed
    assert time_masked.sum(1)[2] <= 2 * 2 and not time_masked[1, 30:].any() and not time_masked[3].any()
    freq_masked = (y == 0).all(axis=1)  # (B, C)
    assert (freq_masked.sum(1) <= 8).all()
    # serialisation round trip
    again = SpecAugment.from_config(aug.get_config())
    assert again.get_config() == aug.get_config()


@pytest.mark.parametrize("cls", [LogMelSpectrogram, UtteranceNormalization, SpecAugment])
def test_configs_round_trip(cls):
    layer = cls()
    assert cls.from_config(layer.get_config()).get_config() == layer.get_config()


def test_empty_batch_of_zero_samples_gives_one_frame():
    feats, frames = LogMelSpectrogram(num_mel_bins=16)(np.zeros((2, 0), np.float32), np.zeros(2, np.int32))
    assert tuple(feats.shape)[::2] == (2, 16) and np.isfinite(np.asarray(feats)).all()
    assert np.asarray(frames).tolist() == [1, 1]
