"""Speech recognizers: float waveforms at 8 kHz (with lengths) in, transcripts out."""

from __future__ import annotations

import numpy as np

from applications.speech.data import DIGIT_WORDS, SAMPLE_RATE, SILENCE_PEAK, pad_waveforms, read_wav
from zoo.serving import SERVINGS, Serving


@SERVINGS.register("speech")
class SpeechServing(Serving):
    """Padded float waveforms + lengths -> transcripts ("three five nine"), greedy CTC decoding in the graph.

    Signature `serving_default(waveform: float32 (batch, samples),
    length: int32 (batch,))` returns `transcript tf.string (batch,)`, digit
    words separated by spaces.  Waveforms are mono, in [-1, 1], at 8 kHz,
    zero-padded after `length` samples; the log-mel front end is part of
    the Keras model, so the serving function adds only CTC decoding
    (`tf.nn.ctc_greedy_decoder` through `keras.ops.ctc_decode`, blank last)
    and the token -> word lookup, all core TensorFlow ops.

    Documented behaviour on odd input: lengths are clipped to
    `[0, samples]`; non-finite samples count as 0; an utterance that is
    silence only (peak below `SILENCE_PEAK` = 1e-3 within its length, or length 0) yields
    the empty transcript.  Other sample rates must be resampled before the
    call; `zoo predict` does that for WAV files (and refuses stereo,
    empty, truncated and non-WAV files with the file named).
    """

    raw_inputs = {"waveform": {"dtype": "float32", "shape": [None, None],
                               "description": "mono samples in [-1, 1] at 8 kHz, zero-padded after `length`"},
                  "length": {"dtype": "int32", "shape": [None], "description": "valid samples of each waveform"}}

    def __init__(self, model, spec, info, preprocessor=None, options=None):
        super().__init__(model, spec, info, preprocessor, options)
        self.tokens = [str(t) for t in (info.get("tokens") or DIGIT_WORDS)]
        self.sample_rate = int(info.get("sample_rate", SAMPLE_RATE))

    def serve(self, waveform, length):
        """float32 `(B, N)` waveforms + int32 `(B,)` lengths -> `{"transcript": tf.string (B,)}`."""
        import tensorflow as tf

        from applications.speech.task import greedy_decode, ids_to_text_tf

        waveform = tf.cast(waveform, tf.float32)
        waveform = tf.where(tf.math.is_finite(waveform), waveform, 0.0)
        samples = tf.shape(waveform)[1]
        length = tf.clip_by_value(tf.cast(length, tf.int32), 0, samples)
        logits = self.model({"waveform": waveform, "length": length}, training=False)
        text = ids_to_text_tf(greedy_decode(logits), self.tokens)
        inside = tf.sequence_mask(length, samples)
        peak = tf.reduce_max(tf.where(inside, tf.abs(waveform), 0.0), axis=1, keepdims=False)
        peak = tf.where(length > 0, peak, 0.0)
        return {"transcript": tf.where(peak < SILENCE_PEAK, tf.constant(""), text)}

    def samples(self):
        sr = self.sample_rate
        rng = np.random.default_rng(0)
        t = np.arange(sr) / sr
        tones = (0.3 * np.sin(2 * np.pi * np.where(t < 0.3, 700, 1500) * t)).astype(np.float32)
        noise = (0.2 * rng.standard_normal(sr)).astype(np.float32)
        wave = np.zeros((4, sr), np.float32)
        wave[0, :int(0.6 * sr)] = tones[:int(0.6 * sr)]
        wave[1] = noise
        wave[3, :800] = 0.5 * np.sin(2 * np.pi * 440 * t[:800])
        return {"waveform": wave, "length": np.array([int(0.6 * sr), sr, int(0.3 * sr), 800], np.int32)}

    def read_inputs(self, items):
        """WAV paths -> `{"waveform": float32 (B, N) zero-padded, "length": int32 (B,)}` at 8 kHz (resampled)."""
        waves = []
        for item in items:
            try:
                waves.append(read_wav(item, sample_rate=self.sample_rate))
            except ValueError as exc:
                raise ValueError(f"{exc} (this speech model takes WAV files)") from None
        return pad_waveforms(waves)

    def rows(self, items, outputs, top_k):
        rows = []
        for i, item in enumerate(items):
            out = outputs["transcript"][i]
            rows.append({"input": str(item), "transcript": out.decode("utf-8") if isinstance(out, bytes) else str(out)})
        return rows
