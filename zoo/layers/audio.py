"""Audio front end: waveform -> log-mel features, per-utterance normalisation, SpecAugment; speaker augmentation.

All layers take the true lengths alongside the padded batch and make the
padding inert: the features of an utterance are the same whatever it is
padded to (tested), so a batch decodes like each utterance alone.

    frontend = LogMelSpectrogram(sample_rate=8000, num_mel_bins=40)
    feats, frames = frontend(waveform, length)        # (B, T, 40), (B,)
    feats = UtteranceNormalization()(feats, frames)   # zero mean, unit variance per bin
    feats = SpecAugment()(feats, frames, training=True)

Training-only augmentation against unseen voices, microphones and rooms
(all identity at inference, so an export does not depend on them):
`LogMelSpectrogram(vtlp=0.1)` warps each training utterance's frequency axis
(vocal-tract-length perturbation), `WaveformAugment` adds reverberation
(a synthetic exponentially decaying impulse response) and noise at a random
SNR to the waveform.

References:
    - D. S. Park et al., "SpecAugment: A Simple Data Augmentation Method for
      Automatic Speech Recognition", Interspeech 2019.
    - N. Jaitly and G. E. Hinton, "Vocal Tract Length Perturbation (VTLP)
      improves speech recognition", ICML 2013 Workshop on Deep Learning for
      Audio, Speech and Language.
    - T. Ko et al., "A Study on Data Augmentation of Reverberant Speech for
      Robust Speech Recognition", ICASSP 2017 (simulated room responses).
"""

from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["LogMelSpectrogram", "UtteranceNormalization", "SpecAugment", "WaveformAugment", "frame_mask", "vtlp_warp",
           "scale_frequencies", "pcen", "TimeStretch", "TrimSilence"]


def frame_mask(frame_lengths, num_frames):
    """bool `(B, T)`: True for the first `frame_lengths[b]` of `num_frames` frames."""
    return ops.less(ops.expand_dims(ops.arange(num_frames, dtype="int32"), 0),
                    ops.expand_dims(ops.cast(frame_lengths, "int32"), 1))


def vtlp_warp(power, factors, sample_rate, boundary=0.8):
    """Warp the frequency axis of power spectra by a factor per utterance (Jaitly & Hinton, 2013).

    The piecewise-linear warp `phi(f) = factor * f` below
    `f0 = boundary * nyquist * min(factor, 1) / factor`, then the straight
    line from `(f0, phi(f0))` to `(nyquist, nyquist)`, so the band stays
    `[0, nyquist]`.  The output at frequency `f` is the input at
    `phi^-1(f)` (linear interpolation between FFT bins): with `factor > 1`
    energy moves up in frequency (a shorter vocal tract), `factor < 1` down.

    Args:
        power: float `(batch, frames, bins)`, `bins = fft_length // 2 + 1`
            linearly spaced from 0 to `sample_rate / 2`.
        factors: float `(batch,)`, warp factors (1: identity).
        sample_rate: int, Hz.
        boundary: float in (0, 1), where the warp turns, as a fraction of Nyquist.

    Returns:
        float32 `(batch, frames, bins)`.
    """
    power = ops.cast(power, "float32")
    bins = ops.shape(power)[-1]
    nyquist = sample_rate / 2.0
    alpha = ops.cast(ops.reshape(factors, (-1, 1)), "float32")  # (B, 1)
    freqs = ops.cast(ops.arange(bins), "float32")[None, :] * (nyquist / ops.cast(bins - 1, "float32"))  # (1, F)
    f0 = boundary * nyquist * ops.minimum(alpha, 1.0) / alpha
    g0 = boundary * nyquist * ops.minimum(alpha, 1.0)  # phi(f0)
    upper = nyquist - (nyquist - f0) / (nyquist - g0) * (nyquist - freqs)
    source = ops.where(freqs <= g0, freqs / alpha, upper)  # phi^-1(f), (B, F)
    return _read_bins(power, source / nyquist * ops.cast(bins - 1, "float32"))


def _read_bins(power, source):
    """`power` `(batch, frames, bins)` read at fractional bins `source` `(batch, out)` (clipped; linear interpolation).

    Returns `(batch, frames, out)`.
    """
    bins = ops.shape(power)[-1]
    pos = ops.clip(source, 0.0, ops.cast(bins - 1, "float32"))
    lo = ops.floor(pos)
    frac = (pos - lo)[:, None, :]
    lo = ops.cast(lo, "int32")
    hi = ops.minimum(lo + 1, bins - 1)
    shape = (ops.shape(power)[0], ops.shape(power)[1], ops.shape(source)[1])
    take = lambda idx: ops.take_along_axis(power, ops.broadcast_to(idx[:, None, :], shape), axis=2)  # noqa: E731
    return take(lo) * (1.0 - frac) + take(hi) * frac


def scale_frequencies(power, factors, sample_rate):
    """Scale the frequency axis of power spectra by a factor per utterance: a pitch shift that keeps the tempo.

    The output at frequency `f` is the input at `f / factor` (linear
    interpolation between FFT bins), zero where `f / factor` is above
    Nyquist: every component (fundamental, harmonics, formants) moves by the
    same ratio, as when a recording is played `factor` times faster, but the
    frames - and so the duration - stay as they are.  `factor = 2 ** (s / 12)`
    shifts by `s` semitones.  Unlike `vtlp_warp` the whole band is scaled, up
    to Nyquist.

    Args:
        power: float `(batch, frames, bins)`, `bins = fft_length // 2 + 1`
            linearly spaced from 0 to `sample_rate / 2`.
        factors: float `(batch,)`, > 0 (1: identity).
        sample_rate: int, Hz.

    Returns:
        float32 `(batch, frames, bins)`.
    """
    power = ops.cast(power, "float32")
    bins = ops.shape(power)[-1]
    top = ops.cast(bins - 1, "float32")
    alpha = ops.cast(ops.reshape(factors, (-1, 1)), "float32")  # (B, 1)
    source = ops.cast(ops.arange(bins), "float32")[None, :] / alpha  # source bin of each output bin, (B, F)
    inside = ops.cast(source <= top, "float32")[:, None, :]
    return _read_bins(power, source) * inside


def pcen(energy, smoothing=0.0247, gain=0.98, bias=2.0, power=0.5, eps=1e-6):
    """Per-channel energy normalisation (Wang et al., 2017): an automatic gain control per band, then root compression.

    `M[t] = (1 - smoothing) * M[t-1] + smoothing * E[t]` (`M[0] = E[0]`,
    the filter's steady state for the first frame, as `librosa.pcen`) is a
    causal running average of each band's energy, and the output is
    `(E / (eps + M) ** gain + bias) ** power - bias ** power`: each band is
    divided by its own recent level, so a stationary microphone or channel
    gain and a steady noise floor cancel, and onsets stand out.  The
    running average is a `keras.ops.scan` over frames, exact for any length;
    a frame depends only on earlier ones, so padding after the end of an
    utterance leaves its valid frames unchanged.

    Args:
        energy: float `(batch, frames, bands)`, non-negative filterbank
            magnitudes (`LogMelSpectrogram` passes the square root of its mel
            power times `2**31`, the scale `librosa.pcen` is documented with).
        smoothing: float in (0, 1], the running average's coefficient per
            frame (0.0247 for a time constant of 0.4 s at a 10 ms hop).
        gain, bias, power, eps: float, the AGC exponent, the bias and root
            of the compression, and the floor of the divisor.

    Returns:
        float32 `(batch, frames, bands)`.
    """
    energy = ops.cast(energy, "float32")
    by_frame = ops.transpose(energy, (1, 0, 2))  # (T, B, F): scan runs over the leading axis

    def step(level, frame):
        level = (1.0 - smoothing) * level + smoothing * frame
        return level, level

    _, level = ops.scan(step, by_frame[0], by_frame)
    level = ops.transpose(level, (1, 0, 2))
    return ops.power(energy / ops.power(eps + level, gain) + bias, power) - bias ** power


@keras.saving.register_keras_serializable(package="zoo")
class LogMelSpectrogram(keras.layers.Layer):
    """Padded waveforms and their lengths -> log-mel features and frame counts.

    The mel power spectrogram is `keras.layers.MelSpectrogram` (Hann window
    of `frame_length` samples, hop `frame_step`, `fft_length`-point FFT,
    centred frames, power, triangular mel filters); its own dB scaling is
    off because its `top_db` floor is taken over the whole batch.  The
    features are `log(mel + floor)`.

    Padding is made inert: samples past `length` are zeroed and
    `fft_length // 2` zeros are appended before the STFT, so each valid frame
    sees the same samples whatever the batch is padded to.  Frame `t` is
    centred on sample `t * frame_step`; the valid frames of an utterance of
    `n` samples are the `ceil(n / frame_step)` centred inside it (at least 1).

    Vocal-tract-length perturbation (training only, `vtlp > 0`): each
    utterance's power spectrum is warped by a factor drawn uniformly from
    `[1 - vtlp, 1 + vtlp]` (`vtlp_warp`) before the mel filters.  At
    inference (and with `vtlp=0`) the features are exactly those without it.

    Pitch shift (training only, `pitch_shift > 0`): each utterance's power
    spectrum is scaled in frequency by `2 ** (s / 12)`, `s` uniform in
    `[-pitch_shift, pitch_shift]` semitones (`scale_frequencies`), after
    VTLP and before the mel filters.  The frames are untouched, so the
    tempo does not change (the waveform speed perturbation of the data
    pipeline changes both); identity at inference.

    Dynamic range (`top_db`, training and inference alike, so it is part of
    the model): when set, the mel power of each utterance is floored at
    `top_db` decibels below its own peak over its valid frames before the
    log, so how quiet a recording's pauses are (microphone and room noise
    floor) stops mattering below that level.  None: only `log_floor`.

    DC removal (`remove_dc`, training and inference alike): each waveform's
    mean over its valid samples is subtracted first, so a microphone's DC
    offset does not fill the lowest mel filter.

    Cepstral smoothing (`cepstra`, training and inference alike): when set,
    each frame's log-mel vector is projected onto its first `cepstra`
    orthonormal DCT-II components and transformed back (the MFCCs of that
    order, liftered, returned on the mel axis): the spectral envelope
    (formants) stays, the fine structure - pitch harmonics, a
    speaker-specific cue - goes.  Shapes are unchanged.  None: off.

    Compression (`compression`, training and inference alike): "log" (the
    default) takes `log(mel + log_floor)`; "pcen" takes per-channel energy
    normalisation (`pcen`, Wang et al. 2017, the keyword-spotting front end
    made for unseen microphones and rooms) of the mel magnitudes, with
    `librosa.pcen`'s defaults and a time constant of `pcen_time_constant`
    seconds; `log_floor` is then unused.

    Args:
        sample_rate: int, Hz of the waveforms.
        num_mel_bins: int, mel filters.
        frame_length: int, window length in samples (25 ms at 8 kHz: 200).
        frame_step: int, hop in samples (10 ms at 8 kHz: 80).
        fft_length: int >= frame_length.
        min_freq, max_freq: float, mel filter range in Hz (max: Nyquist if None).
        log_floor: float, added to the mel power before the log.
        vtlp: float in [0, 0.5), largest relative frequency warp in training (0: off).
        vtlp_boundary: float in (0, 1), where the warp turns (fraction of Nyquist).
        pitch_shift: float in [0, 12], largest pitch shift in training, in semitones (0: off).
        top_db: None or float > 0, per-utterance dynamic range of the mel power in dB.
        cepstra: None or int in [1, num_mel_bins], DCT components kept per frame.
        remove_dc: bool, subtract each waveform's mean over its valid samples.
        compression: "log" or "pcen", how the mel power becomes features.
        pcen_time_constant: float > 0, seconds, PCEN's running average (with "pcen").
        seed: int or None, seed of the warp factors' random stream.
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        waveform: float `(batch, samples)`, zero-padded (`samples` may be 0:
            treated as one silent sample).
        length: int `(batch,)`, true samples of each waveform (clipped to [0, samples]).
        training: bool, warp (when `vtlp > 0` or `pitch_shift > 0`) only when True.

    Returns:
        `(features, frame_lengths)`: float32 `(batch, frames, num_mel_bins)`
        with `frames = 1 + (samples + fft_length // 2) // frame_step`, and
        int32 `(batch,)`.
    """

    def __init__(self, sample_rate=8000, num_mel_bins=40, frame_length=200, frame_step=80, fft_length=512,
                 min_freq=20.0, max_freq=None, log_floor=1e-6, vtlp=0.0, vtlp_boundary=0.8, pitch_shift=0.0,
                 top_db=None, cepstra=None, remove_dc=False, compression="log", pcen_time_constant=0.4, seed=None,
                 **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.compression = str(compression)
        self.pcen_time_constant = float(pcen_time_constant)
        if self.compression not in ("log", "pcen") or self.pcen_time_constant <= 0:
            raise ValueError(f"LogMelSpectrogram: compression must be 'log' or 'pcen' and pcen_time_constant > 0, "
                             f"got {compression!r}, {pcen_time_constant}")
        self.remove_dc = bool(remove_dc)
        self.sample_rate = int(sample_rate)
        self.num_mel_bins = int(num_mel_bins)
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)
        self.fft_length = int(fft_length)
        self.min_freq = float(min_freq)
        self.max_freq = None if max_freq is None else float(max_freq)
        self.log_floor = float(log_floor)
        self.vtlp = float(vtlp)
        self.vtlp_boundary = float(vtlp_boundary)
        if not 0.0 <= self.vtlp < 0.5 or not 0.0 < self.vtlp_boundary < 1.0:
            raise ValueError(f"LogMelSpectrogram: need 0 <= vtlp < 0.5 and 0 < vtlp_boundary < 1, "
                             f"got {vtlp}, {vtlp_boundary}")
        self.pitch_shift = float(pitch_shift)
        self.top_db = None if top_db is None else float(top_db)
        if not 0.0 <= self.pitch_shift <= 12.0 or (self.top_db is not None and self.top_db <= 0):
            raise ValueError(f"LogMelSpectrogram: need 0 <= pitch_shift <= 12 semitones and top_db None or > 0, "
                             f"got {pitch_shift}, {top_db}")
        self.cepstra = None if cepstra is None else int(cepstra)
        if self.cepstra is not None and not 1 <= self.cepstra <= self.num_mel_bins:
            raise ValueError(f"LogMelSpectrogram: cepstra must be None or in [1, num_mel_bins], got {cepstra}")
        self.seed = seed
        # only a warping layer owns a random stream, so the variables of a layer without it are as before
        warps = self.vtlp > 0 or self.pitch_shift > 0
        self.seed_generator = keras.random.SeedGenerator(seed) if warps else None
        self.mel = keras.layers.MelSpectrogram(
            fft_length=self.fft_length, sequence_stride=self.frame_step, sequence_length=self.frame_length,
            window="hann", sampling_rate=self.sample_rate, num_mel_bins=self.num_mel_bins,
            min_freq=self.min_freq, max_freq=self.max_freq, power_to_db=False, mag_exp=2.0,
            dtype="float32", name="mel_spectrogram")

    def build(self, waveform_shape, length_shape=None):
        self.mel.build(waveform_shape)
        self.built = True

    def frame_lengths(self, length, samples=None):
        """Valid frames `ceil(length / frame_step)`, at least 1 (int32 `(batch,)`)."""
        length = ops.cast(length, "int32")
        if samples is not None:
            length = ops.clip(length, 0, samples)
        return ops.maximum((length + self.frame_step - 1) // self.frame_step, 1)

    def call(self, waveform, length, training=None):
        waveform = ops.cast(waveform, "float32")
        # a batch padded to 0 samples gets one zero sample: the STFT's reflect padding needs some signal
        waveform = ops.pad(waveform, [[0, 0], [0, ops.maximum(1 - ops.shape(waveform)[1], 0)]])
        samples = ops.shape(waveform)[1]
        length = ops.clip(ops.cast(length, "int32"), 0, samples)
        keep = ops.less(ops.expand_dims(ops.arange(samples, dtype="int32"), 0), ops.expand_dims(length, 1))
        if self.remove_dc:  # mean over the valid samples, whose count is the clipped length
            total = ops.sum(ops.where(keep, waveform, 0.0), axis=1, keepdims=True)
            waveform = waveform - total / ops.cast(ops.maximum(length, 1), "float32")[:, None]
        waveform = ops.where(keep, waveform, 0.0)
        waveform = ops.pad(waveform, [[0, 0], [0, self.fft_length // 2]])
        if training and (self.vtlp > 0 or self.pitch_shift > 0):
            power = self.mel._spectrogram(waveform)  # (B, T, F): keras' own STFT and power
            batch = ops.shape(waveform)[0]
            if self.vtlp > 0:
                factors = keras.random.uniform((batch,), 1.0 - self.vtlp, 1.0 + self.vtlp, seed=self.seed_generator)
                power = vtlp_warp(power, factors, self.sample_rate, self.vtlp_boundary)
            if self.pitch_shift > 0:
                semitones = keras.random.uniform((batch,), -self.pitch_shift, self.pitch_shift,
                                                 seed=self.seed_generator)
                power = scale_frequencies(power, ops.power(2.0, semitones / 12.0), self.sample_rate)
            mel = self.mel._melscale(power)
        else:
            mel = ops.transpose(self.mel(waveform), (0, 2, 1))  # (B, T, M)
        frame_lengths = self.frame_lengths(length)
        floor = self.log_floor
        if self.top_db is not None:
            valid = ops.cast(frame_mask(frame_lengths, ops.shape(mel)[1]), "float32")[:, :, None]
            peak = ops.max(mel * valid, axis=(1, 2), keepdims=True)  # (B, 1, 1) over the valid frames only
            mel = ops.maximum(mel, peak * (10.0 ** (-self.top_db / 10.0)))
        if self.compression == "pcen":
            feats = pcen(ops.sqrt(mel) * 2.0 ** 31, smoothing=self.pcen_smoothing)
        else:
            feats = ops.log(mel + floor)
        if self.cepstra is not None:
            feats = ops.matmul(feats, ops.convert_to_tensor(self._lifter_matrix(), "float32"))
        return feats, frame_lengths

    @property
    def pcen_smoothing(self):
        """PCEN's running-average coefficient per frame for `pcen_time_constant` (`librosa.pcen`'s formula)."""
        t = self.pcen_time_constant * self.sample_rate / self.frame_step  # the time constant in frames
        return ((1.0 + 4.0 * t * t) ** 0.5 - 1.0) / (2.0 * t * t)

    def _lifter_matrix(self):
        """float32 `(num_mel_bins, num_mel_bins)`: projection onto the first `cepstra` orthonormal DCT-II rows."""
        import numpy as np

        m = self.num_mel_bins
        k, n = np.arange(self.cepstra)[:, None], np.arange(m)[None, :]
        dct = np.sqrt(2.0 / m) * np.cos(np.pi * k * (2 * n + 1) / (2 * m))
        dct[0] /= np.sqrt(2.0)
        return (dct.T @ dct).astype("float32")

    def get_config(self):
        config = super().get_config()
        config.update({"pitch_shift": self.pitch_shift, "top_db": self.top_db, "cepstra": self.cepstra,
                       "remove_dc": self.remove_dc, "compression": self.compression,
                       "pcen_time_constant": self.pcen_time_constant})
        config.update({"sample_rate": self.sample_rate, "num_mel_bins": self.num_mel_bins,
                       "frame_length": self.frame_length, "frame_step": self.frame_step,
                       "fft_length": self.fft_length, "min_freq": self.min_freq, "max_freq": self.max_freq,
                       "log_floor": self.log_floor, "vtlp": self.vtlp, "vtlp_boundary": self.vtlp_boundary,
                       "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="zoo")
class UtteranceNormalization(keras.layers.Layer):
    """Per-utterance, per-channel mean and variance normalisation over the valid frames.

    `y = (x - mean) / sqrt(var + epsilon)` with mean and variance of each
    channel over the first `frame_lengths[b]` frames of utterance `b`;
    frames past the length are set to 0.  A constant input (silence) maps to
    0, never NaN.  With `variance="global"` the variance is one number per
    utterance (of all its mean-removed channels), so a channel that barely
    moves (a microphone's empty band, a DC offset) stays small instead of
    being scaled up to unit variance.

    Args:
        epsilon: float, added to the variance.
        variance: "channel" (each channel's own) or "global" (one per utterance).
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float `(batch, frames, channels)`.
        frame_lengths: int `(batch,)`, valid frames.

    Returns:
        float32 `(batch, frames, channels)`.
    """

    def __init__(self, epsilon=1e-5, variance="channel", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if variance not in ("channel", "global"):
            raise ValueError(f"UtteranceNormalization: variance must be 'channel' or 'global', got {variance!r}")
        self.epsilon = float(epsilon)
        self.variance = variance
        self.built = True

    def call(self, inputs, frame_lengths):
        x = ops.cast(inputs, "float32")
        mask = ops.expand_dims(ops.cast(frame_mask(frame_lengths, ops.shape(x)[1]), "float32"), -1)
        count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
        mean = ops.sum(x * mask, axis=1, keepdims=True) / count
        var = ops.sum(ops.square(x - mean) * mask, axis=1, keepdims=True) / count
        if self.variance == "global":
            var = ops.mean(var, axis=2, keepdims=True)
        return (x - mean) * ops.rsqrt(var + self.epsilon) * mask

    def compute_output_shape(self, inputs_shape, frame_lengths_shape=None):
        return inputs_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "variance": self.variance}


@keras.saving.register_keras_serializable(package="zoo")
class TrimSilence(keras.layers.Layer):
    """Drop the frames before an utterance's first sound and after its last: a loose clip read as a tight one.

    A frame is sound when its energy (log of the summed mel power; the
    inputs are log mel powers) lies within `threshold_db` dB of the
    utterance's loudest valid frame.  Row `b` keeps its frames from the
    first sound frame minus `margin` to the last plus `margin` (inside its
    length), moved to the front; its length becomes their count and the
    frames after it are 0.  Silence between words stays.  A row with
    nothing but one level (digital silence) keeps every frame.  Training
    and inference alike (it is part of the model): half a second of
    silence or quiet room tone around a word then reaches the rest of the
    model as the tightly cut word, which FSDD's recordings are.

    With `fill` (the features of digital silence, e.g. `log(log_floor)`),
    the edges are made the same for every clip: exactly `margin` frames
    before the first sound and after the last, the clip's own frames where
    it has them and `fill` where it does not.  A clip cut tightly into the
    word and the same clip with silence around it then reach the model
    alike (up to the STFT frames that straddle the cut).

    Args:
        threshold_db: float > 0, how far below the loudest frame a frame still counts as sound.
        margin: int >= 0, frames kept on either side of the sound.
        fill: None (the default: keep what the clip has, up to `margin`) or
            float, the value of the frames added where the clip has fewer
            than `margin` frames beyond its sound.
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float `(batch, frames, channels)` log mel powers.
        frame_lengths: int `(batch,)`, valid frames.

    Returns:
        `(outputs float32 (batch, frames', channels), lengths int32 (batch,))`:
        `frames' = frames` and `lengths <= frame_lengths` without `fill`;
        with it `frames' = frames + 2 * margin` and
        `lengths <= frame_lengths + 2 * margin`.
    """

    def __init__(self, threshold_db=50.0, margin=10, fill=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not float(threshold_db) > 0 or int(margin) < 0:
            raise ValueError(f"TrimSilence: threshold_db must be > 0 and margin >= 0, got {threshold_db}, {margin}")
        self.threshold_db, self.margin = float(threshold_db), int(margin)
        self.fill = None if fill is None else float(fill)
        self.built = True

    def call(self, inputs, frame_lengths):
        x = ops.cast(inputs, "float32")
        frames = ops.shape(x)[1]
        lengths = ops.cast(frame_lengths, "int32")
        valid = frame_mask(lengths, frames)
        energy = ops.logsumexp(x, axis=2)  # (B, T)
        loudest = ops.max(ops.where(valid, energy, -1e30), axis=1, keepdims=True)
        sound = ops.logical_and(valid, energy >= loudest - self.threshold_db * 0.23025851)  # dB -> nepers (power)
        position = ops.arange(frames, dtype="int32")[None, :]
        first = ops.min(ops.where(sound, position, frames), axis=1)
        last = ops.max(ops.where(sound, position, -1), axis=1)
        found = last >= first
        start, end = first - self.margin, last + self.margin
        extra = 0 if self.fill is None else 2 * self.margin  # output frames beyond the input's
        if self.fill is None:  # only what the clip has
            start, end = ops.maximum(start, 0), ops.minimum(end, lengths - 1)
        start = ops.where(found, start, 0)  # with fill it may be negative: frames before the clip
        end = ops.where(found, end, lengths - 1)
        kept = ops.maximum(end - start + 1, 0)
        source = start[:, None] + ops.arange(frames + extra, dtype="int32")[None, :]  # input frame of each output
        index = ops.broadcast_to(ops.clip(source, 0, frames - 1)[:, :, None],
                                 (ops.shape(x)[0], frames + extra, ops.shape(x)[2]))
        out = ops.take_along_axis(x, index, axis=1)
        if self.fill is not None:
            inside = ops.logical_and(source >= 0, source < lengths[:, None])
            out = ops.where(inside[:, :, None], out, self.fill)
        return out * ops.cast(frame_mask(kept, frames + extra), "float32")[:, :, None], kept

    def compute_output_shape(self, inputs_shape, frame_lengths_shape=None):
        frames = inputs_shape[1]
        if self.fill is not None and frames is not None:
            frames += 2 * self.margin
        return (inputs_shape[0], frames, *inputs_shape[2:]), frame_lengths_shape

    def get_config(self):
        return {**super().get_config(), "threshold_db": self.threshold_db, "margin": self.margin, "fill": self.fill}


@keras.saving.register_keras_serializable(package="zoo")
class TimeStretch(keras.layers.Layer):
    """Training-only tempo change of feature sequences: each utterance resampled in time by a random factor.

    Speakers differ in speaking rate far more than the waveform speed
    perturbation's 0.9-1.1 (FSDD: an average digit lasts 0.28 s for one
    voice and 0.44 s for another), and that perturbation also moves pitch
    and formants.  This layer stretches the frame sequence alone (Nguyen et
    al., 2020): utterance `b` gets a duration factor `d_b`, log-uniform in
    `[1 / max_stretch, max_stretch]` (with `per="batch"`, one factor for the
    whole batch, so the batch is not padded to its most stretched
    utterance: about 2% more frames on average at 1.4 instead of about
    35%); output frame `j` is the input at
    frame `j / d_b`, linearly interpolated between the two nearest valid
    frames; its length becomes `ceil(length * d_b)`, and frames past it are
    0.  The spectrum of each frame is untouched.  At inference (and with
    `max_stretch=1`) the inputs are returned unchanged, so an export does
    not depend on it.

    Args:
        max_stretch: float in [1, 4], the largest duration factor either way (1: off).
        per: "utterance" or "batch", what shares one factor.
        seed: int or None, seed of the factors' random stream.
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float `(batch, frames, channels)`.
        frame_lengths: int `(batch,)`, valid frames (>= 1).
        training: bool, stretch only when True.

    Returns:
        `(features, frame_lengths)`: float32 `(batch, frames', channels)`
        with `frames' = ceil(frames * max_stretch)` in training per
        utterance, `ceil(frames * d)` per batch (`frames` at inference), and
        int32 `(batch,)`.
    """

    def __init__(self, max_stretch=1.0, per="utterance", seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.max_stretch = float(max_stretch)
        self.per = str(per)
        if not 1.0 <= self.max_stretch <= 4.0 or self.per not in ("utterance", "batch"):
            raise ValueError(f"TimeStretch: need max_stretch in [1, 4] and per 'utterance' or 'batch', "
                             f"got {max_stretch}, {per!r}")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.max_stretch > 1.0 else None

    def build(self, inputs_shape, frame_lengths_shape=None):
        self.built = True

    def call(self, inputs, frame_lengths, training=None):
        x = ops.cast(inputs, "float32")
        lengths = ops.cast(frame_lengths, "int32")
        if not training or self.max_stretch == 1.0:
            return x, lengths
        shape = ops.shape(x)
        batch, frames = shape[0], shape[1]
        bound = math.log(self.max_stretch)
        draws = (batch,) if self.per == "utterance" else (1,)
        factor = ops.exp(keras.random.uniform(draws, -bound, bound, seed=self.seed_generator))
        widest = self.max_stretch if self.per == "utterance" else factor[0]
        out_frames = ops.cast(ops.ceil(ops.cast(frames, "float32") * widest), "int32")
        factor = ops.broadcast_to(factor, (batch,))  # (B,)
        valid = ops.cast(ops.maximum(lengths, 1), "float32")
        new_lengths = ops.clip(ops.cast(ops.ceil(valid * factor), "int32"), 1, out_frames)
        source = ops.cast(ops.arange(out_frames), "float32")[None, :] / factor[:, None]  # (B, T')
        source = ops.minimum(source, (valid - 1.0)[:, None])  # stay inside the valid frames
        out = ops.transpose(_read_bins(ops.transpose(x, (0, 2, 1)), source), (0, 2, 1))  # (B, T', C)
        keep = ops.cast(frame_mask(new_lengths, out_frames), "float32")[:, :, None]
        return out * keep, new_lengths

    def compute_output_shape(self, inputs_shape, frame_lengths_shape=None):
        return (inputs_shape[0], None, inputs_shape[2]), (inputs_shape[0],)

    def get_config(self):
        return {**super().get_config(), "max_stretch": self.max_stretch, "per": self.per, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class SpecAugment(keras.layers.Layer):
    """SpecAugment time and frequency masking (Park et al., 2019), in training only.

    In training, `freq_masks` bands of `[0, freq_mask_width]` channels and
    `time_masks` spans of `[0, min(time_mask_width, time_mask_ratio * length)]`
    frames, placed uniformly inside the valid frames, are set to
    `mask_value` (0: the mean after `UtteranceNormalization`).  At inference
    the input is returned unchanged.  No time warping.

    Args:
        freq_masks: int, frequency masks per utterance.
        freq_mask_width: int, largest frequency mask (channels).
        time_masks: int, time masks per utterance.
        time_mask_width: int, largest time mask (frames).
        time_mask_ratio: float, largest time mask as a fraction of the utterance's frames.
        mask_value: float written into the masked cells.
        seed: int or None, seed of the masks' random stream.
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float `(batch, frames, channels)`.
        frame_lengths: int `(batch,)`, valid frames (time masks stay inside them).
        training: bool, mask only when True.

    Returns:
        float32 `(batch, frames, channels)`.
    """

    def __init__(self, freq_masks=2, freq_mask_width=8, time_masks=2, time_mask_width=20, time_mask_ratio=0.1,
                 mask_value=0.0, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.freq_masks = int(freq_masks)
        self.freq_mask_width = int(freq_mask_width)
        self.time_masks = int(time_masks)
        self.time_mask_width = int(time_mask_width)
        self.time_mask_ratio = float(time_mask_ratio)
        self.mask_value = float(mask_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, inputs_shape, frame_lengths_shape=None):
        self.built = True

    def _spans(self, batch, limit, max_width, count, positions):
        """bool `(B, count, positions)`: random spans of width [0, max_width] starting in [0, limit - width]."""
        u = keras.random.uniform((batch, count, 2), seed=self.seed_generator)
        width = ops.floor(u[..., 0] * (ops.cast(max_width, "float32") + 1.0))  # (B, count)
        start = ops.floor(u[..., 1] * ops.maximum(ops.cast(limit, "float32") - width + 1.0, 1.0))
        pos = ops.cast(ops.arange(positions), "float32")[None, None, :]
        return ops.logical_and(pos >= start[..., None], pos < (start + width)[..., None])

    def call(self, inputs, frame_lengths, training=None):
        x = ops.cast(inputs, "float32")
        if not training:
            return x
        batch, frames, channels = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        masked = ops.zeros((batch, frames, channels), "bool")
        if self.freq_masks > 0 and self.freq_mask_width > 0:
            f = ops.any(self._spans(batch, ops.full((batch, 1), channels), self.freq_mask_width,
                                    self.freq_masks, channels), axis=1)  # (B, C)
            masked = ops.logical_or(masked, f[:, None, :])
        if self.time_masks > 0 and self.time_mask_width > 0:
            lengths = ops.cast(ops.expand_dims(frame_lengths, 1), "float32")  # (B, 1)
            width = ops.minimum(float(self.time_mask_width), ops.floor(self.time_mask_ratio * lengths))
            t = ops.any(self._spans(batch, lengths, width, self.time_masks, frames), axis=1)  # (B, T)
            masked = ops.logical_or(masked, t[:, :, None])
        return ops.where(masked, self.mask_value, x)

    def compute_output_shape(self, inputs_shape, frame_lengths_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"freq_masks": self.freq_masks, "freq_mask_width": self.freq_mask_width,
                       "time_masks": self.time_masks, "time_mask_width": self.time_mask_width,
                       "time_mask_ratio": self.time_mask_ratio, "mask_value": self.mask_value,
                       "seed": self.seed})
        return config


def _pairs(value, name):
    """None or a (low, high) pair of floats with low <= high."""
    if value is None:
        return None
    low, high = (float(v) for v in value)
    if low > high:
        raise ValueError(f"WaveformAugment: {name} needs low <= high, got {value}")
    return (low, high)


@keras.saving.register_keras_serializable(package="zoo")
class WaveformAugment(keras.layers.Layer):
    """Training-only room and microphone augmentation of padded waveforms: reverberation, band limit, overdrive, noise.

    In training, each utterance is, with probability `reverb_prob`,
    convolved with a synthetic room impulse response: a unit direct path
    followed by Gaussian noise decaying exponentially (-60 dB after `rt60`
    seconds, `rt60` uniform in `reverb_rt60`), scaled so the direct-to-
    reverberant energy ratio is uniform in `reverb_drr` dB; the result is
    cut at the utterance's length and rescaled to its dry RMS.  Then, with
    probability `band_prob`, it is band-limited as a different microphone
    would: its spectrum is multiplied by a smooth band-pass gain (logistic
    edges about 50 Hz wide) from a low cut-off uniform in `band_low` Hz to a
    high cut-off uniform in `band_high` Hz, then rescaled to its RMS.  Then,
    with probability `clip_prob`, it is overdriven as a loud caller on a
    preamplifier is: amplified by a gain uniform in `clip_db` dB and hard-
    clipped at its own dry peak, so the peak level stays and the loudest
    parts flatten (12 dB clips every sample above a quarter of the peak).
    Then, with probability `noise_prob`, white Gaussian noise is added at an SNR
    uniform in `noise_snr` dB, measured over the utterance's valid samples.
    Samples past each length stay zero.  At inference (or with all four
    off) the waveform is returned unchanged.

    Args:
        noise_snr: None (no noise) or (low, high) SNR in dB.
        noise_prob: float in [0, 1], fraction of utterances that get noise.
        reverb_prob: float in [0, 1], fraction of utterances reverberated (0: off).
        reverb_rt60: (low, high) reverberation time in seconds.
        reverb_drr: (low, high) direct-to-reverberant ratio in dB.
        band_prob: float in [0, 1], fraction of utterances band-limited (0: off).
        band_low: (low, high) range of the low cut-off in Hz.
        band_high: (low, high) range of the high cut-off in Hz.
        clip_prob: float in [0, 1], fraction of utterances overdriven (0: off).
        clip_db: (low, high) gain in dB before clipping at the dry peak (>= 0).
        sample_rate: int, Hz (sets the impulse response's length in samples).
        seed: int or None, seed of the random stream.
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        waveform: float `(batch, samples)`, zero-padded.
        length: int `(batch,)`, valid samples.
        training: bool, augment only when True.

    Returns:
        float32 `(batch, samples)`.
    """

    def __init__(self, noise_snr=None, noise_prob=0.5, reverb_prob=0.0, reverb_rt60=(0.1, 0.5),
                 reverb_drr=(0.0, 10.0), band_prob=0.0, band_low=(0.0, 300.0), band_high=(2000.0, 4000.0),
                 clip_prob=0.0, clip_db=(3.0, 20.0), sample_rate=8000, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.noise_snr = _pairs(noise_snr, "noise_snr")
        self.noise_prob = float(noise_prob)
        self.reverb_prob = float(reverb_prob)
        self.reverb_rt60 = _pairs(reverb_rt60, "reverb_rt60")
        self.reverb_drr = _pairs(reverb_drr, "reverb_drr")
        self.band_prob = float(band_prob)
        self.band_low = _pairs(band_low, "band_low")
        self.band_high = _pairs(band_high, "band_high")
        self.clip_prob = float(clip_prob)
        self.clip_db = _pairs(clip_db, "clip_db")
        self.sample_rate = int(sample_rate)
        if (not all(0 <= p <= 1 for p in (self.noise_prob, self.reverb_prob, self.band_prob, self.clip_prob))
                or self.reverb_rt60[0] <= 0 or self.band_low[1] >= self.band_high[0] or self.clip_db[0] < 0):
            raise ValueError(f"WaveformAugment: need probabilities in [0, 1], rt60 > 0, band_low below band_high and "
                             f"clip_db >= 0, got noise_prob={noise_prob}, reverb_prob={reverb_prob}, "
                             f"band_prob={band_prob}, clip_prob={clip_prob}, reverb_rt60={reverb_rt60}, "
                             f"band_low={band_low}, band_high={band_high}, clip_db={clip_db}")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    @property
    def active(self):
        """Whether training changes anything."""
        return ((self.noise_snr is not None and self.noise_prob > 0) or self.reverb_prob > 0 or self.band_prob > 0
                or self.clip_prob > 0)

    def _coin(self, batch, prob):
        return ops.less(keras.random.uniform((batch, 1), seed=self.seed_generator), prob)

    def _uniform(self, batch, bounds):
        return keras.random.uniform((batch, 1), bounds[0], bounds[1] + 1e-9, seed=self.seed_generator)

    @staticmethod
    def _rms(x, mask):
        return ops.sqrt(ops.sum(ops.square(x) * mask, axis=1, keepdims=True)
                        / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0) + 1e-12)

    def impulse_responses(self, batch):
        """float32 `(batch, taps)` synthetic room impulse responses, `taps = ceil(max rt60 * sample_rate)`."""
        taps = max(2, int(-(-self.reverb_rt60[1] * self.sample_rate // 1)))
        t = ops.cast(ops.arange(taps), "float32")[None, :] / float(self.sample_rate)
        rt60 = self._uniform(batch, self.reverb_rt60)
        drr = self._uniform(batch, self.reverb_drr)
        tail = keras.random.normal((batch, taps), seed=self.seed_generator) * ops.exp(-6.9078 * t / rt60)
        tail = ops.where(ops.arange(taps)[None, :] == 0, 0.0, tail)
        energy = ops.sum(ops.square(tail), axis=1, keepdims=True) + 1e-12
        tail = tail * ops.sqrt(ops.power(10.0, -drr / 10.0) / energy)
        return ops.where(ops.arange(taps)[None, :] == 0, 1.0, tail)

    @staticmethod
    def _fft_length(n):
        """int32 scalar: the smallest power of two >= `n` samples (FFT filtering without wrap-around)."""
        return ops.cast(ops.power(2.0, ops.ceil(ops.log(ops.cast(n, "float32")) / 0.6931472)), "int32")

    @staticmethod
    def _rfft(x, n_fft):
        """`(real, imag)` of the `n_fft`-point rFFT of `x` `(batch, samples)`, zero-padded to `n_fft`."""
        return ops.rfft(ops.pad(x, [[0, 0], [0, n_fft - ops.shape(x)[1]]]))

    def band_gains(self, batch, bins):
        """float32 `(batch, bins)` band-pass gains over `bins` rFFT bins from 0 Hz to Nyquist, random cut-offs."""
        step = (self.sample_rate / 2.0) / ops.cast(ops.maximum(bins - 1, 1), "float32")
        freqs = ops.cast(ops.arange(bins), "float32")[None, :] * step
        low, high = self._uniform(batch, self.band_low), self._uniform(batch, self.band_high)
        return ops.sigmoid((freqs - low) / 12.5) * ops.sigmoid((high - freqs) / 12.5)

    def band_limit(self, x, mask):
        """`x` `(batch, samples)` band-limited by `band_gains` (zero-padded FFT, no wrap-around), RMS kept."""
        samples = ops.shape(x)[1]
        n_fft = self._fft_length(samples + 256)
        xr, xi = self._rfft(x, n_fft)
        gain = self.band_gains(ops.shape(x)[0], ops.shape(xr)[1])
        y = ops.irfft((xr * gain, xi * gain), n_fft)[:, :samples] * mask
        return y * self._rms(x, mask) / self._rms(y, mask)

    def overdrive(self, x):
        """`x` `(batch, samples)` amplified by a gain uniform in `clip_db` dB and clipped at its dry peak."""
        peak = ops.max(ops.abs(x), axis=1, keepdims=True)
        gain = ops.power(10.0, self._uniform(ops.shape(x)[0], self.clip_db) / 20.0)
        return ops.minimum(ops.maximum(x * gain, -peak), peak)

    def call(self, waveform, length, training=None):
        x = ops.cast(waveform, "float32")
        if not training or not self.active:
            return x
        batch, samples = ops.shape(x)[0], ops.shape(x)[1]
        mask = ops.cast(frame_mask(ops.clip(length, 0, samples), samples), "float32")
        x = x * mask
        if self.reverb_prob > 0:
            h = self.impulse_responses(batch)
            n_fft = self._fft_length(samples + h.shape[1])
            (xr, xi), (hr, hi) = self._rfft(x, n_fft), self._rfft(h, n_fft)
            wet = ops.irfft((xr * hr - xi * hi, xr * hi + xi * hr), n_fft)[:, :samples] * mask
            wet = wet * self._rms(x, mask) / self._rms(wet, mask)
            x = ops.where(self._coin(batch, self.reverb_prob), wet, x)
        if self.band_prob > 0:
            x = ops.where(self._coin(batch, self.band_prob), self.band_limit(x, mask), x)
        if self.clip_prob > 0:  # drawn only when on: the other settings' random streams stay as they were
            x = ops.where(self._coin(batch, self.clip_prob), self.overdrive(x), x)
        if self.noise_snr is not None and self.noise_prob > 0:
            snr = self._uniform(batch, self.noise_snr)
            scale = self._rms(x, mask) * ops.power(10.0, -snr / 20.0)
            noise = keras.random.normal((batch, samples), seed=self.seed_generator) * scale * mask
            x = ops.where(self._coin(batch, self.noise_prob), x + noise, x)
        return x

    def compute_output_shape(self, waveform_shape, length_shape=None):
        return waveform_shape

    def get_config(self):
        config = super().get_config()
        config.update({"noise_snr": self.noise_snr, "noise_prob": self.noise_prob, "reverb_prob": self.reverb_prob,
                       "reverb_rt60": self.reverb_rt60, "reverb_drr": self.reverb_drr, "band_prob": self.band_prob,
                       "band_low": self.band_low, "band_high": self.band_high, "clip_prob": self.clip_prob,
                       "clip_db": self.clip_db, "sample_rate": self.sample_rate,
                       "seed": self.seed})
        return config
