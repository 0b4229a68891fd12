"""Audio front end: waveform -> log-mel features, per-utterance normalisation, SpecAugment.

All layers take the true lengths alongside the padded batch and make the
padding inert: the features of an utterance are the same whatever it is
padded to (tested), so a batch decodes like each utterance alone.

    frontend = LogMelSpectrogram(sample_rate=8000, num_mel_bins=40)
    feats, frames = frontend(waveform, length)        # (B, T, 40), (B,)
    feats = UtteranceNormalization()(feats, frames)   # zero mean, unit variance per bin
    feats = SpecAugment()(feats, frames, training=True)

References:
    - D. S. Park et al., "SpecAugment: A Simple Data Augmentation Method for
      Automatic Speech Recognition", Interspeech 2019.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["LogMelSpectrogram", "UtteranceNormalization", "SpecAugment", "frame_mask"]


def frame_mask(frame_lengths, num_frames):
    """bool `(B, T)`: True for the first `frame_lengths[b]` of `num_frames` frames."""
    return ops.less(ops.expand_dims(ops.arange(num_frames, dtype="int32"), 0),
                    ops.expand_dims(ops.cast(frame_lengths, "int32"), 1))


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

    Args:
        sample_rate: int, Hz of the waveforms.
        num_mel_bins: int, mel filters.
        frame_length: int, window length in samples (25 ms at 8 kHz: 200).
        frame_step: int, hop in samples (10 ms at 8 kHz: 80).
        fft_length: int >= frame_length.
        min_freq, max_freq: float, mel filter range in Hz (max: Nyquist if None).
        log_floor: float, added to the mel power before the log.
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        waveform: float `(batch, samples)`, zero-padded (`samples` may be 0:
            treated as one silent sample).
        length: int `(batch,)`, true samples of each waveform (clipped to [0, samples]).

    Returns:
        `(features, frame_lengths)`: float32 `(batch, frames, num_mel_bins)`
        with `frames = 1 + (samples + fft_length // 2) // frame_step`, and
        int32 `(batch,)`.
    """

    def __init__(self, sample_rate=8000, num_mel_bins=40, frame_length=200, frame_step=80, fft_length=512,
                 min_freq=20.0, max_freq=None, log_floor=1e-6, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        self.num_mel_bins = int(num_mel_bins)
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)
        self.fft_length = int(fft_length)
        self.min_freq = float(min_freq)
        self.max_freq = None if max_freq is None else float(max_freq)
        self.log_floor = float(log_floor)
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

    def call(self, waveform, length):
        waveform = ops.cast(waveform, "float32")
        # a batch padded to 0 samples gets one zero sample: the STFT's reflect padding needs some signal
        waveform = ops.pad(waveform, [[0, 0], [0, ops.maximum(1 - ops.shape(waveform)[1], 0)]])
        samples = ops.shape(waveform)[1]
        length = ops.clip(ops.cast(length, "int32"), 0, samples)
        keep = ops.less(ops.expand_dims(ops.arange(samples, dtype="int32"), 0), ops.expand_dims(length, 1))
        waveform = ops.where(keep, waveform, 0.0)
        waveform = ops.pad(waveform, [[0, 0], [0, self.fft_length // 2]])
        mel = ops.transpose(self.mel(waveform), (0, 2, 1))  # (B, T, M)
        feats = ops.log(mel + self.log_floor)
        return feats, self.frame_lengths(length)

    def get_config(self):
        config = super().get_config()
        config.update({"sample_rate": self.sample_rate, "num_mel_bins": self.num_mel_bins,
                       "frame_length": self.frame_length, "frame_step": self.frame_step,
                       "fft_length": self.fft_length, "min_freq": self.min_freq, "max_freq": self.max_freq,
                       "log_floor": self.log_floor})
        return config


@keras.saving.register_keras_serializable(package="zoo")
class UtteranceNormalization(keras.layers.Layer):
    """Per-utterance, per-channel mean and variance normalisation over the valid frames.

    `y = (x - mean) / sqrt(var + epsilon)` with mean and variance of each
    channel over the first `frame_lengths[b]` frames of utterance `b`;
    frames past the length are set to 0.  A constant input (silence) maps to
    0, never NaN.

    Args:
        epsilon: float, added to the variance.
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float `(batch, frames, channels)`.
        frame_lengths: int `(batch,)`, valid frames.

    Returns:
        float32 `(batch, frames, channels)`.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.built = True

    def call(self, inputs, frame_lengths):
        x = ops.cast(inputs, "float32")
        mask = ops.expand_dims(ops.cast(frame_mask(frame_lengths, ops.shape(x)[1]), "float32"), -1)
        count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
        mean = ops.sum(x * mask, axis=1, keepdims=True) / count
        var = ops.sum(ops.square(x - mean) * mask, axis=1, keepdims=True) / count
        return (x - mean) * ops.rsqrt(var + self.epsilon) * mask

    def compute_output_shape(self, inputs_shape, frame_lengths_shape=None):
        return inputs_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


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
