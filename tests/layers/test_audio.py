"""Audio front end: shapes, agreement with keras.layers.MelSpectrogram, inert padding, SpecAugment."""

import math

import numpy as np
import keras
import pytest

from zoo.layers import (LogMelSpectrogram, SpecAugment, TimeStretch, TrimSilence, UtteranceNormalization,
                        WaveformAugment)
from zoo.layers.audio import scale_frequencies, vtlp_warp


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


def test_remove_dc_ignores_an_offset_and_keeps_padding_inert():
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(3000) / 8000).astype(np.float32)
    w = np.zeros((3, 4000), np.float32)
    w[0, :3000], w[1, :3000], w[2, :3000] = tone, tone + 0.05, tone + 0.05
    w[2, 3000:] = 9.0  # junk past the length must not leak into the mean
    n = np.full(3, 3000, np.int32)
    plain, frames = LogMelSpectrogram(num_mel_bins=20)(w, n)
    dc, _ = LogMelSpectrogram(num_mel_bins=20, remove_dc=True)(w, n)
    plain, dc, valid = np.asarray(plain), np.asarray(dc), int(np.asarray(frames)[0])
    assert np.abs(plain[1, 3:valid - 3, 0] - plain[0, 3:valid - 3, 0]).max() > 1.0  # the offset fills the lowest filter
    np.testing.assert_allclose(dc[1, :valid], dc[0, :valid], atol=2e-2)  # removed: the same features as without it
    np.testing.assert_allclose(dc[2, :valid], dc[1, :valid], atol=1e-5)
    assert LogMelSpectrogram.from_config(LogMelSpectrogram(remove_dc=True).get_config()).remove_dc


def test_global_variance_keeps_a_quiet_channel_quiet():
    rng = np.random.default_rng(0)
    x = np.zeros((2, 40, 3), np.float32)
    x[:, :, 0] = 5.0 * rng.standard_normal((2, 40))  # a speech band
    x[:, :, 1] = 7.0 + 0.05 * rng.standard_normal((2, 40))  # a nearly constant band (an empty band's floor)
    x[:, :, 2] = 2.0 * rng.standard_normal((2, 40))
    lengths = np.array([40, 25], np.int32)
    per_channel = np.asarray(UtteranceNormalization()(x, lengths))
    overall = np.asarray(UtteranceNormalization(variance="global")(x, lengths))
    assert per_channel[0, :, 1].std() == pytest.approx(1.0, abs=1e-2)  # per channel: the floor blown up to unit variance
    for y, n in zip(overall, lengths):
        valid = y[:n]
        np.testing.assert_allclose(valid.mean(0), 0, atol=1e-5)  # every channel's mean still removed
        np.testing.assert_allclose((valid ** 2).mean(), 1, rtol=1e-3)  # unit variance over all channels
        assert valid[:, 1].std() < 0.05 * valid[:, 0].std()  # the quiet channel stays quiet
        assert np.all(y[n:] == 0)
    with pytest.raises(ValueError, match="variance must be"):
        UtteranceNormalization(variance="frame")
    again = UtteranceNormalization.from_config(UtteranceNormalization(variance="global").get_config())
    assert again.variance == "global"


def test_trim_silence_reads_a_loose_clip_as_the_tight_one():
    rng = np.random.default_rng(1)
    t = np.arange(3200) / 8000
    word = (0.3 * np.sin(2 * np.pi * 400 * t) * np.hanning(3200) ** 0.3).astype(np.float32)
    word += 0.003 * rng.standard_normal(3200).astype(np.float32)
    lead, tail = np.zeros(4000, np.float32), np.zeros(2400, np.float32)
    loose = np.concatenate([lead, word, tail])
    toned = loose + 1e-5 * rng.standard_normal(len(loose)).astype(np.float32)  # room tone about 70 dB down
    gap = np.concatenate([word, np.zeros(2400, np.float32), word])  # silence between two words stays
    waves = [word, loose, toned, gap, np.zeros(800, np.float32)]
    x = np.zeros((len(waves), len(loose)), np.float32)
    for i, w in enumerate(waves):
        x[i, :len(w)] = w
    feats, frames = LogMelSpectrogram()(x, np.array([len(w) for w in waves], np.int32))
    out, kept = TrimSilence(threshold_db=50.0, margin=2)(feats, frames)
    out, kept, feats, frames = (np.asarray(v) for v in (out, kept, feats, frames))
    n = int(frames[0])
    assert kept[0] == n  # a tight clip is left as it is
    np.testing.assert_array_equal(out[0, :n], feats[0, :n])
    for row in (1, 2):  # 50 frames of lead and 30 of tail go, but for the 2-frame margins
        assert n <= kept[row] <= n + 2 * 2 + 1
        start = 4000 // 80 - 2
        np.testing.assert_allclose(out[row, :kept[row]], feats[row, start:start + kept[row]], atol=1e-6)
        assert np.all(out[row, kept[row]:] == 0)
    assert kept[3] >= int(frames[3]) - 1  # the gap inside the utterance is kept
    assert kept[4] == frames[4]  # digital silence only: nothing to trim to, every frame kept
    with pytest.raises(ValueError, match="threshold_db"):
        TrimSilence(threshold_db=0)


def test_trim_silence_fill_gives_a_tight_and_a_loose_clip_the_same_edges():
    silence = math.log(1e-6)  # LogMelSpectrogram's features of digital silence (log_floor)
    x = np.full((3, 12, 2), silence, np.float32)
    x[0, 0:4] = 0.0  # a clip cut into the word: sound from its first frame, two quiet frames after it
    x[0, 6:] = 0.0  # past its length of 6: ignored
    x[1, 5:9] = 0.0  # the same word with silence around it
    x[2] = 0.0  # sound throughout (no silence to trim)
    lengths = np.array([6, 12, 12], np.int32)
    layer = TrimSilence(threshold_db=50.0, margin=3, fill=silence)
    out, kept = (np.asarray(v) for v in layer(x, lengths))
    assert out.shape == (3, 12 + 2 * 3, 2) and kept.tolist() == [3 + 4 + 3, 3 + 4 + 3, 3 + 12 + 3]
    np.testing.assert_array_equal(out[0, :kept[0]], out[1, :kept[1]])  # tight and loose clip alike
    assert (out[0, :3] == np.float32(silence)).all() and (out[0, 3:7] == 0).all()  # three frames filled, the word
    assert (out[0, 7:9] == np.float32(silence)).all()  # the clip's own quiet frames, then one filled
    assert (out[2, :3] == np.float32(silence)).all() and (out[2, 3:15] == 0).all()
    assert (out[0, kept[0]:] == 0).all() and (out[1, kept[1]:] == 0).all()  # past a row's length: zeros
    without = np.asarray(TrimSilence(threshold_db=50.0, margin=3)(x, lengths)[1])
    assert without.tolist() == [6, 10, 12]  # no fill: only what the clip has
    again = TrimSilence.from_config(layer.get_config())
    assert again.fill == pytest.approx(silence) and again.margin == 3
    assert layer.compute_output_shape((3, 12, 2), (3,))[0] == (3, 18, 2)


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


@pytest.mark.parametrize("cls", [LogMelSpectrogram, UtteranceNormalization, SpecAugment, WaveformAugment, TimeStretch,
                                 TrimSilence])
def test_configs_round_trip(cls):
    layer = cls()
    assert cls.from_config(layer.get_config()).get_config() == layer.get_config()


def test_empty_batch_of_zero_samples_gives_one_frame():
    feats, frames = LogMelSpectrogram(num_mel_bins=16)(np.zeros((2, 0), np.float32), np.zeros(2, np.int32))
    assert tuple(feats.shape)[::2] == (2, 16) and np.isfinite(np.asarray(feats)).all()
    assert np.asarray(frames).tolist() == [1, 1]


# --- training-only speaker / room augmentation -------------------------------------------------------------


def _tone(freq, n=4000, rate=8000):
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def test_vtlp_warp_identity_and_direction():
    p = np.random.default_rng(0).random((3, 4, 257)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(vtlp_warp(p, np.ones(3), 8000)), p, atol=1e-6)
    delta = np.zeros((3, 1, 257), np.float32)
    delta[:, 0, 64] = 1.0  # 1000 Hz (bins of 15.625 Hz)
    out = np.asarray(vtlp_warp(delta, np.array([1.1, 0.9, 1.0]), 8000))[:, 0]
    centre = (out * np.arange(257)).sum(1) / out.sum(1)
    np.testing.assert_allclose(centre, [64 * 1.1, 64 * 0.9, 64], atol=0.6)  # the energy moves by the factor
    # the band's ends stay put: Nyquist maps to Nyquist, DC to DC
    ends = np.zeros((2, 1, 257), np.float32)
    ends[:, 0, [0, 256]] = 1.0
    np.testing.assert_allclose(np.asarray(vtlp_warp(ends, np.array([1.1, 0.9]), 8000))[:, 0, [0, 256]], 1.0, atol=1e-5)


def test_log_mel_vtlp_is_training_only_and_moves_a_tone():
    w = np.stack([_tone(1000), _tone(1000)])
    n = np.array([4000, 4000], np.int32)
    plain = np.asarray(LogMelSpectrogram(num_mel_bins=40)(w, n)[0])
    warped = LogMelSpectrogram(num_mel_bins=40, vtlp=0.2, seed=0)
    np.testing.assert_array_equal(np.asarray(warped(w, n)[0]), plain)  # inference: exactly the plain features
    np.testing.assert_array_equal(np.asarray(warped(w, n, training=False)[0]), plain)
    got = np.asarray(warped(w, n, training=True)[0])
    assert got.shape == plain.shape and not np.allclose(got, plain)
    peak = lambda f: int(np.argmax(f[:, 10:40].mean(0)))  # noqa: E731
    shifts = [peak(got[i]) - peak(plain[i]) for i in range(2)]
    assert any(s != 0 for s in shifts) and all(abs(s) <= 4 for s in shifts)  # warp <= 20%: a few mel bins
    with pytest.raises(ValueError, match="vtlp"):
        LogMelSpectrogram(vtlp=0.7)


def test_waveform_augment_training_only_padding_and_snr():
    rng = np.random.default_rng(0)
    w = np.zeros((3, 16000), np.float32)
    w[0, :16000] = _tone(700, 16000)
    w[1, :8000] = 0.1 * rng.standard_normal(8000)
    n = np.array([16000, 8000, 0], np.int32)
    aug = WaveformAugment(noise_snr=(10, 10), noise_prob=1.0, seed=1)
    np.testing.assert_array_equal(np.asarray(aug(w, n)), w)
    np.testing.assert_array_equal(np.asarray(WaveformAugment()(w, n, training=True)), w)  # all off: identity
    y = np.asarray(aug(w, n, training=True))
    assert np.all(y[1, 8000:] == 0) and np.all(y[2] == 0)  # padding (and an empty row) stay silent
    noise = y[0] - w[0]
    snr = 10 * np.log10((w[0] ** 2).mean() / (noise ** 2).mean())
    assert abs(snr - 10) < 0.5
    assert np.isfinite(y).all()


def test_waveform_augment_reverb_is_a_decaying_room_response():
    aug = WaveformAugment(reverb_prob=1.0, reverb_rt60=(0.3, 0.3), reverb_drr=(0, 0), seed=0)
    h = np.asarray(aug.impulse_responses(2))
    assert h.shape == (2, 2400) and np.all(h[:, 0] == 1.0)
    np.testing.assert_allclose((h[:, 1:] ** 2).sum(1), 1.0, rtol=1e-4)  # DRR 0 dB: tail energy = direct
    early, late = (h[:, 1:600] ** 2).sum(1), (h[:, 1800:] ** 2).sum(1)
    assert np.all(late < early * 1e-3)  # -60 dB after rt60: the last quarter holds almost nothing
    w = np.zeros((1, 8000), np.float32)
    w[0, 100:1100] = _tone(500, 1000)
    n = np.array([6000], np.int32)
    y = np.asarray(aug(w, n, training=True))[0]
    assert np.all(y[6000:] == 0) and np.abs(y[1100:6000]).max() > 1e-3  # a tail after the sound, cut at the length
    np.testing.assert_allclose(np.sqrt((y[:6000] ** 2).mean()), np.sqrt((w[0, :6000] ** 2).mean()), rtol=1e-3)


def test_waveform_augment_band_limit_cuts_outside_the_band_and_keeps_rms():
    aug = WaveformAugment(band_prob=1.0, band_low=(200, 250), band_high=(2000, 2100), seed=0)
    mix = _tone(100, 8000) + _tone(1000, 8000) + _tone(3500, 8000)  # below, inside and above the band
    w = np.zeros((2, 10000), np.float32)
    w[0, :8000], w[1, :6000] = mix, mix[:6000]
    n = np.array([8000, 6000], np.int32)
    np.testing.assert_array_equal(np.asarray(aug(w, n)), w)  # inference: identity
    y = np.asarray(aug(w, n, training=True))
    assert np.all(y[0, 8000:] == 0) and np.all(y[1, 6000:] == 0)
    rms = lambda a, k: np.sqrt((a[:, :k] ** 2).mean(1))  # noqa: E731
    np.testing.assert_allclose(rms(y[:1], 8000), rms(w[:1], 8000), rtol=1e-3)
    spectrum = np.abs(np.fft.rfft(y[0, :8000]))  # 1 Hz bins
    assert spectrum[100] < 0.03 * spectrum[1000] and spectrum[3500] < 0.03 * spectrum[1000]
    with pytest.raises(ValueError, match="band_low below band_high"):
        WaveformAugment(band_low=(0, 3000), band_high=(2000, 4000))


def test_waveform_augment_overdrive_clips_at_the_dry_peak():
    w = np.zeros((2, 9000), np.float32)
    w[0, :8000] = 0.5 * _tone(300, 8000)
    w[1, :4000] = 0.2 * _tone(300, 4000)
    n = np.array([8000, 4000], np.int32)
    aug = WaveformAugment(clip_prob=1.0, clip_db=(12, 12), seed=0)
    np.testing.assert_array_equal(np.asarray(aug(w, n)), w)  # inference: identity
    y = np.asarray(aug(w, n, training=True))
    np.testing.assert_allclose(np.abs(y).max(1), np.abs(w).max(1), rtol=1e-5)  # the peak level stays
    assert np.all(y[0, 8000:] == 0) and np.all(y[1, 4000:] == 0)
    # +12 dB clips every sample above a quarter of the peak: a sine spends 1 - 2/pi * asin(1/4) of its time there
    peak = np.abs(w[0]).max()
    flat = np.mean(np.isclose(np.abs(y[0, :8000]), peak, rtol=1e-5))
    assert abs(flat - (1 - 2 / np.pi * np.arcsin(10 ** (-12 / 20)))) < 0.02
    quiet = np.abs(w[0, :8000]) < 0.2 * peak  # below the clip level: only amplified
    np.testing.assert_allclose(y[0, :8000][quiet], 10 ** (12 / 20) * w[0, :8000][quiet], rtol=1e-5)
    # off (the default) draws nothing: the noise a seed gives is the same with the overdrive settings present
    plain = WaveformAugment(noise_snr=(10, 10), noise_prob=1.0, seed=3)(w, n, training=True)
    with_off = WaveformAugment(noise_snr=(10, 10), noise_prob=1.0, clip_prob=0.0, clip_db=(1, 2), seed=3)(
        w, n, training=True)
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(with_off))
    with pytest.raises(ValueError, match="clip_db >= 0"):
        WaveformAugment(clip_db=(-3, 6))


def test_augmentation_round_trips_in_a_keras_file(tmp_path):
    waveform = keras.Input((None,), name="waveform")
    length = keras.Input((), dtype="int32", name="length")
    x = WaveformAugment(noise_snr=(5, 20), reverb_prob=0.3, band_prob=0.5, clip_prob=0.4, clip_db=(6, 18), seed=2,
                        name="aug")(waveform, length)
    feats, _ = LogMelSpectrogram(num_mel_bins=16, vtlp=0.1, pitch_shift=3.0, top_db=50.0, seed=3, name="mel")(x, length)
    model = keras.Model({"waveform": waveform, "length": length}, feats)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    for name in ("aug", "mel"):
        assert again.get_layer(name).get_config() == model.get_layer(name).get_config()
    w, n = _waves([3000, 1200], 3200)
    np.testing.assert_array_equal(np.asarray(again({"waveform": w, "length": n})),
                                  np.asarray(model({"waveform": w, "length": n})))


def test_scale_frequencies_identity_direction_and_band_edge():
    p = np.random.default_rng(0).random((2, 3, 257)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(scale_frequencies(p, np.ones(2), 8000)), p, atol=1e-6)
    delta = np.zeros((3, 1, 257), np.float32)
    delta[:, 0, 64] = 1.0  # 1000 Hz
    up, down = 2 ** (3 / 12), 2 ** (-3 / 12)  # three semitones either way
    out = np.asarray(scale_frequencies(delta, np.array([up, down, 1.0]), 8000))[:, 0]
    centre = (out * np.arange(257)).sum(1) / out.sum(1)
    np.testing.assert_allclose(centre, [64 * up, 64 * down, 64], atol=0.6)
    # scaling up pushes the top of the band out: nothing is invented above Nyquist / factor's source
    flat = np.ones((1, 1, 257), np.float32)
    got = np.asarray(scale_frequencies(flat, np.array([down]), 8000))[0, 0]
    assert np.all(got[int(np.ceil(256 * down)) + 1:] == 0) and np.allclose(got[:int(256 * down)], 1.0)


def test_log_mel_pitch_shift_is_training_only_keeps_frames_and_moves_a_tone():
    w = np.stack([_tone(1000), _tone(1000), _tone(1000)])
    n = np.array([4000, 4000, 4000], np.int32)
    plain, frames = LogMelSpectrogram(num_mel_bins=40)(w, n)
    plain = np.asarray(plain)
    shifted = LogMelSpectrogram(num_mel_bins=40, pitch_shift=4.0, seed=1)
    np.testing.assert_array_equal(np.asarray(shifted(w, n)[0]), plain)  # inference: exactly the plain features
    got, got_frames = shifted(w, n, training=True)
    got = np.asarray(got)
    assert got.shape == plain.shape and np.asarray(got_frames).tolist() == np.asarray(frames).tolist()  # same tempo
    peak = lambda f: int(np.argmax(f[5:45].mean(0)))  # noqa: E731
    shifts = [peak(got[i]) - peak(plain[i]) for i in range(3)]
    assert any(s != 0 for s in shifts) and all(abs(s) <= 6 for s in shifts)  # <= 4 semitones: a few mel bins
    with pytest.raises(ValueError, match="pitch_shift"):
        LogMelSpectrogram(pitch_shift=-1)


def test_log_mel_top_db_floors_each_utterance_below_its_own_peak():
    w, n = _waves([4000, 2000], 4000, seed=3)
    w[1] *= 0.01  # a much quieter recording: the floor follows each utterance's own peak
    w[:, 1000:1800] = 0.0  # a pause of digital silence
    plain = np.asarray(LogMelSpectrogram(num_mel_bins=24)(w, n)[0])
    layer = LogMelSpectrogram(num_mel_bins=24, top_db=40.0)
    feats, frames = layer(w, n)
    feats = np.asarray(feats)
    for i in range(2):
        valid = feats[i, :int(frames[i])]
        assert valid.max() - valid.min() <= 40.0 * np.log(10) / 10 + 1e-3  # 40 dB in natural-log units
        assert plain[i, :int(frames[i])].max() - plain[i, :int(frames[i])].min() > 10  # without it: far more
        np.testing.assert_allclose(valid.max(), plain[i, :int(frames[i])].max(), atol=1e-4)  # the peak is kept
    # padding stays inert: junk past the length changes nothing
    junk = np.where(np.arange(4000)[None] >= n[:, None], 1.0, w).astype(np.float32)
    again = np.asarray(layer(junk, n)[0])
    np.testing.assert_allclose(again[1, :int(frames[1])], feats[1, :int(frames[1])], atol=1e-4)
    config = LogMelSpectrogram(pitch_shift=2.5, top_db=45.0, vtlp=0.1, seed=4).get_config()
    assert LogMelSpectrogram.from_config(config).get_config() == config and config["top_db"] == 45.0
    with pytest.raises(ValueError, match="top_db"):
        LogMelSpectrogram(top_db=0)


def test_log_mel_cepstral_smoothing_keeps_the_envelope_and_drops_fine_structure():
    w, n = _waves([4000], 4000, seed=5)
    plain = np.asarray(LogMelSpectrogram(num_mel_bins=32)(w, n)[0])[0]
    full = np.asarray(LogMelSpectrogram(num_mel_bins=32, cepstra=32)(w, n)[0])[0]
    np.testing.assert_allclose(full, plain, atol=1e-3)  # every component kept: the identity
    smooth = np.asarray(LogMelSpectrogram(num_mel_bins=32, cepstra=8)(w, n)[0])[0]
    np.testing.assert_allclose(smooth.mean(1), plain.mean(1), atol=1e-3)  # DC (the frame's level) kept
    # what is removed is the fast ripple along the mel axis: it has no low-order DCT content left
    rough = lambda f: np.abs(np.diff(f, 2, axis=1)).mean()  # noqa: E731
    assert rough(smooth) < 0.5 * rough(plain)
    m = 32  # orthonormal DCT-II written out: an independent reference
    basis = np.cos(np.pi * np.arange(m)[:, None] * (2 * np.arange(m)[None, :] + 1) / (2 * m)) * np.sqrt(2 / m)
    basis[0] /= np.sqrt(2)
    np.testing.assert_allclose(basis @ basis.T, np.eye(m), atol=1e-6)
    c = smooth @ basis.T
    assert np.abs(c[:, 8:]).max() < 1e-3 and np.abs(c[:, :8]).max() > 1.0
    with pytest.raises(ValueError, match="cepstra"):
        LogMelSpectrogram(num_mel_bins=32, cepstra=33)


def _pcen_reference(energy, smoothing, gain=0.98, bias=2.0, power=0.5, eps=1e-6):
    """librosa.pcen's recursion written out as a loop over frames: an independent reference."""
    level = np.empty_like(energy)
    level[:, 0] = energy[:, 0]
    for t in range(1, energy.shape[1]):
        level[:, t] = (1 - smoothing) * level[:, t - 1] + smoothing * energy[:, t]
    return (energy / (eps + level) ** gain + bias) ** power - bias ** power


def test_pcen_matches_the_recursion_and_its_time_constant():
    from zoo.layers.audio import pcen

    energy = np.random.default_rng(0).uniform(0, 1e9, (2, 50, 6)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(pcen(energy, smoothing=0.1)), _pcen_reference(energy, 0.1),
                               rtol=1e-4, atol=1e-6)
    # librosa's coefficient for 0.4 s at a 10 ms hop (40 frames): (sqrt(1 + 4 * 40**2) - 1) / (2 * 40**2) = 0.02469
    assert LogMelSpectrogram(compression="pcen").pcen_smoothing == pytest.approx(0.02469, abs=1e-5)


def test_pcen_front_end_quiets_a_steady_band_and_marks_an_onset():
    t = np.arange(16000) / 8000
    hum = np.sin(2 * np.pi * 500 * t)  # through the whole 2 s
    burst = np.where((t > 1.0) & (t < 1.3), 0.3 * np.sin(2 * np.pi * 2500 * t), 0.0)  # a 300 ms event
    w = np.stack([0.3 * hum + burst, 0.003 * hum + burst]).astype(np.float32)  # the hum 40 dB quieter in the second
    feats = {}
    for compression in ("pcen", "log"):
        layer = LogMelSpectrogram(num_mel_bins=24, compression=compression)
        feats[compression] = np.asarray(layer(w, np.array([16000, 16000]))[0])
    f = feats["pcen"]
    low = int(np.argmax(f[0, 20:80].mean(0)))  # the hum's band
    high = int(np.argmax(f[0, 101:110].mean(0)))  # the burst's band
    assert high > low
    # a steady band settles at nearly the same level whatever its loudness (the log front end: 100x apart)
    assert abs(f[0, 50, low] - f[1, 50, low]) < 0.15 * f[0, 50, low]
    assert feats["log"][0, 50, low] - feats["log"][1, 50, low] > 8.0
    # an onset stands far above where the same band settles while the event goes on
    assert f[0, 101:104, high].max() > 2 * f[0, 125:128, high].max()


def test_pcen_front_end_keeps_padding_inert_and_round_trips():
    layer = LogMelSpectrogram(num_mel_bins=20, compression="pcen", pcen_time_constant=0.2)
    w, n = _waves([3000, 1200], 3200, seed=3)
    junk = np.where(np.arange(4800)[None] >= n[:, None], 0.7, np.pad(w, [[0, 0], [0, 1600]])).astype(np.float32)
    f1, frames = layer(w, n)
    f2, _ = layer(junk, n)
    for i in range(2):
        valid = int(np.asarray(frames)[i])
        np.testing.assert_allclose(np.asarray(f2)[i, :valid], np.asarray(f1)[i, :valid], atol=1e-5)
    assert np.isfinite(np.asarray(f1)).all()
    config = layer.get_config()
    again = LogMelSpectrogram.from_config(config)
    assert again.get_config() == config and config["compression"] == "pcen"
    np.testing.assert_allclose(np.asarray(again(w, n)[0]), np.asarray(f1), atol=1e-6)
    with pytest.raises(ValueError, match="compression"):
        LogMelSpectrogram(compression="db")


def test_time_stretch_resamples_each_utterance_in_time_and_only_in_training():
    frames, channels = 40, 3
    ramp = np.repeat(np.arange(frames, dtype=np.float32)[None, :, None], 4, 0).repeat(channels, 2)  # frame t holds t
    lengths = np.array([40, 25, 9, 1], np.int32)
    x = np.where(np.arange(frames)[None, :, None] < lengths[:, None, None], ramp, 999.0).astype(np.float32)  # junk after
    layer = TimeStretch(1.5, seed=3)
    same, same_lengths = layer(x, lengths)  # inference: unchanged
    np.testing.assert_array_equal(np.asarray(same), x)
    np.testing.assert_array_equal(np.asarray(same_lengths), lengths)
    seen = []
    for _ in range(5):
        y, new = layer(x, lengths, training=True)
        y, new = np.asarray(y), np.asarray(new)
        assert y.shape == (4, 60, channels)
        for b, n in enumerate(lengths):
            m = int(new[b])
            assert 1 <= m <= int(np.ceil(n * 1.5)) and m >= int(np.floor(n / 1.5))
            assert (y[b, m:] == 0).all() and y[b, :m].max() <= n - 1  # zero past the end; no junk read
            if n > 1:  # a ramp stays a ramp: slope 1 / d, the same in every channel
                slope = np.diff(y[b, :m, 0])[: m // 2].mean()
                seen.append(slope)
                assert 1 / 1.5 - 1e-3 <= slope <= 1.5 + 1e-3
                np.testing.assert_allclose(y[b, :m, 1], y[b, :m, 0])
    assert max(seen) - min(seen) > 0.1  # factors differ between utterances and calls
    config = layer.get_config()
    assert TimeStretch.from_config(config).get_config() == config
    off, _ = TimeStretch(1.0)(x, lengths, training=True)
    np.testing.assert_array_equal(np.asarray(off), x)
    with pytest.raises(ValueError, match="max_stretch"):
        TimeStretch(0.8)
    # one factor per batch: every utterance stretched alike, the batch padded only as far as that factor
    batch = TimeStretch(1.5, per="batch", seed=1)
    for _ in range(3):
        y, new = batch(x, lengths, training=True)
        y, new = np.asarray(y), np.asarray(new)
        factor = (new[0] - 1) / 39  # ceil(40 d) frames: d within one frame of it
        assert y.shape[1] == new[0] and abs(new[1] - np.ceil(25 * (y.shape[1] / 40))) <= 1
        assert abs(np.diff(y[0, : new[0], 0]).mean() - 1 / factor) < 0.1 * (1 / factor)
        np.testing.assert_allclose(y[1, : new[1] // 2, 0], y[0, : new[1] // 2, 0], atol=1e-5)  # the same factor
    assert TimeStretch.from_config(batch.get_config()).per == "batch"
