"""Free Spoken Digit recognizers: log-mel -> convolutional subsampling -> Transformer encoder -> CTC.

The model takes padded 8 kHz waveforms and their lengths,
`{"waveform": float32 (batch, samples), "length": int32 (batch,)}`: the
log-mel front end, per-utterance normalisation and the training-only
augmentation (room reverberation and noise on the waveform, vocal-tract-
length perturbation of the filterbank, SpecAugment) are layers of the
model, so an export needs no preprocessing and the augmentation settings
cannot change it (the inference path is the same with them on or off).  It
returns CTC logits `(batch, frames, 11)` float32, batch-major, over the ten
digit-word tokens ("zero" .. "nine", ids 0-9) and the blank (id 10, the last
class).  One output frame covers 40 ms (10 ms hop, subsampled four times).

**The CTC convention of the zoo** (`applications.speech.task`): frames past an
utterance's end are forced to blank (logit 0 for the blank, -1e4 for every
token), so the logit length of every row is simply the number of frames:
the CTC loss over the padded frames equals the loss over the valid ones
(the forced frames have probability 1 of blank), and greedy or beam
decoding over all frames yields what decoding the valid frames would.
`output_lengths(model, length)` gives the valid frames when needed.

References:
    - A. Graves et al., "Connectionist Temporal Classification", ICML 2006.
    - L. Dong et al., "Speech-Transformer", ICASSP 2018 (convolutional
      subsampling before a Transformer encoder).
    - D. S. Park et al., "SpecAugment", Interspeech 2019.
    - N. Jaitly and G. E. Hinton, "Vocal Tract Length Perturbation (VTLP)
      improves speech recognition", ICML 2013 WDLASL.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from applications.speech.data import BLANK_INDEX, DIGIT_WORDS, SAMPLE_RATE, fsdd
from applications.speech.serving import SpeechServing
from applications.speech.task import RECOGNITION
from zoo.layers import AttentionPooling, GradientReversal, SinusoidalPositionEncoding, TransformerEncoderBlock
from zoo.layers.audio import (LogMelSpectrogram, SpecAugment, TimeStretch, TrimSilence, UtteranceNormalization,
                              WaveformAugment, frame_mask)
from zoo.registry import register_model

__all__ = ["fsdd_ctc", "ConvSubsampling", "CTCBlankPadding", "LengthMaskedEncoderBlock", "SpeakerAdversary",
           "output_lengths"]

_NEG = -1e4


@keras.saving.register_keras_serializable(package="zoo")
class ConvSubsampling(keras.layers.Layer):
    """Stacked 3x3 convolutions of stride 2 over (time, frequency), then a projection.

    With `depth > 1`, each stage adds `depth - 1` residual 3x3 convolutions
    of stride 1 (`x + relu(conv(x))`, zero-padded, frames past the length
    zeroed) after its stride-2 one: a deeper convolutional front end whose
    features depend less on where in frequency a pattern sits.

    Each stage zero-pads one frame/channel on each side and convolves with
    stride 2 ("valid"), so output frame `j` always covers input frames
    `2j - 1 .. 2j + 1` whatever the padded length (TensorFlow's "same"
    padding would shift with the parity of the length).  Frames past the
    input length are zeroed before each stage.

    Args:
        channels: int, filters of every convolution.
        stages: int, halvings of time (and frequency).
        dim: int, output features per frame.
        depth: int, convolutions per stage (1: the stride-2 one only).
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float `(batch, frames, mel_bins)`.
        frame_lengths: int `(batch,)`.

    Returns:
        `(outputs (batch, ceil(frames / 2**stages), dim), lengths int32 (batch,))`
        with `lengths = ceil(frame_lengths / 2**stages)`.
    """

    def __init__(self, channels=32, stages=2, dim=96, depth=1, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.stages, self.dim, self.depth = int(channels), int(stages), int(dim), int(depth)
        if self.depth < 1:
            raise ValueError(f"ConvSubsampling: depth must be >= 1, got {depth}")
        self.convs = [layers.Conv2D(self.channels, 3, strides=2, padding="valid", activation="relu",
                                    name=f"conv{i + 1}") for i in range(self.stages)]
        self.residual = [[layers.Conv2D(self.channels, 3, padding="same", activation="relu",
                                        name=f"conv{i + 1}_{j + 2}") for j in range(self.depth - 1)]
                         for i in range(self.stages)]
        self.project = layers.Dense(self.dim, name="project")

    def build(self, inputs_shape, frame_lengths_shape=None):
        mel = inputs_shape[-1]
        shape = (None, None, mel, 1)
        for conv, residual in zip(self.convs, self.residual):
            conv.build((shape[0], None, shape[2] + 2, shape[3]))
            shape = (None, None, (shape[2] + 2 - 3) // 2 + 1, self.channels)
            for extra in residual:
                extra.build(shape)
        self.project.build((None, None, shape[2] * self.channels))
        self.built = True

    @staticmethod
    def _halve(lengths):
        """Valid frames after one stride-2 stage: `ceil(lengths / 2)`."""
        return (lengths + 1) // 2

    def frame_lengths(self, frame_lengths):
        """Valid output frames for `frame_lengths` input frames: `ceil(frame_lengths / 2**stages)`, int32 `(batch,)`."""
        lengths = ops.cast(frame_lengths, "int32")
        for _ in range(self.stages):
            lengths = self._halve(lengths)
        return lengths

    def call(self, inputs, frame_lengths):
        x = ops.expand_dims(inputs, -1)
        lengths = ops.cast(frame_lengths, "int32")
        def zero_past_lengths(x):
            return x * ops.cast(frame_mask(lengths, ops.shape(x)[1]), x.dtype)[:, :, None, None]

        for conv, residual in zip(self.convs, self.residual):
            x = conv(ops.pad(zero_past_lengths(x), [[0, 0], [1, 1], [1, 1], [0, 0]]))
            lengths = self._halve(lengths)
            for extra in residual:
                x = zero_past_lengths(x)
                x = x + extra(x)
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (b, t, x.shape[2] * x.shape[3]))
        return self.project(x), lengths

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "stages": self.stages, "dim": self.dim,
                "depth": self.depth}


@keras.saving.register_keras_serializable(package="zoo")
class CTCBlankPadding(keras.layers.Layer):
    """Force frames past each utterance's end to the CTC blank.

    Args:
        blank_index: int, the blank's class id.
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        logits: float `(batch, frames, classes)`.
        frame_lengths: int `(batch,)`.

    Returns:
        float32 `(batch, frames, classes)`: unchanged on valid frames; past
        them 0 for the blank and -1e4 for every other class.
    """

    def __init__(self, blank_index=BLANK_INDEX, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.blank_index = int(blank_index)
        self.built = True

    def call(self, logits, frame_lengths):
        logits = ops.cast(logits, "float32")
        classes = ops.shape(logits)[-1]
        forced = ops.where(ops.equal(ops.arange(classes), self.blank_index), 0.0, _NEG)
        valid = frame_mask(frame_lengths, ops.shape(logits)[1])[:, :, None]
        return ops.where(valid, logits, ops.cast(forced, "float32")[None, None, :])

    def compute_output_shape(self, logits_shape, frame_lengths_shape=None):
        return logits_shape

    def get_config(self):
        return {**super().get_config(), "blank_index": self.blank_index}


def output_lengths(model, length):
    """Valid output frames of `model` for waveforms of `length` samples: int32 `(batch,)`.

    With `TrimSilence` in the model (`trim_db`) the count is an upper
    bound: frames past the trimmed utterance are forced to blank, so
    decoding this many frames gives what decoding the real ones would.
    """
    frames = model.get_layer("log_mel").frame_lengths(ops.convert_to_tensor(length, "int32"))
    trim = next((layer for layer in model.layers if layer.name == "trim"), None)
    if trim is not None and trim.fill is not None:  # filled edges: up to 2 * margin frames more than the clip
        frames = frames + 2 * trim.margin
    return model.get_layer("subsample").frame_lengths(frames)


@register_model(
    modality="speech",
    task=RECOGNITION,
    dataset=fsdd,
    serving=SpeechServing,  # no preprocessor: log-mel, normalisation and SpecAugment are layers of the model
    inputs={"waveform": {"shape": [None], "dtype": "float32", "range": [-1, 1], "sample_rate": SAMPLE_RATE},
            "length": {"shape": [], "dtype": "int32"}},
    train={
        # Up to 40 epochs of 132 steps (125 with a speaker held out; synthetic voices below), as many as fit in 15
        # minutes of training here: the first two epochs are timed (the first carries tracing for several input shapes),
        # then the run takes what fits in 95% of the budget and its cosine schedule ends there.  40 against the former
        # 30: unseen voices' five-voice mean over two seeds 86.3% -> 87.8% greedy, connected WER 16.0% -> 15.0%, 6 of 10
        # runs up (bench/RESULTS.md, #15 sixteenth and seventeenth passes); 40 fit in 15 min on an AVX-512 EPYC (epochs
        # of 11-19 s), about 33 on an AVX2 one (23-27 s with 200 voices, so about 38 with 100; a held-out-speaker run
        # took 12.6 min for 30 there, fourteenth pass).  60 went too far: unseen voices' two-seed mean 88.7% -> 88.0%,
        # the conventional split's connected WER 1.56% -> 0.67% (#15 twentieth pass).  `--epochs N` (or
        # `--set budget_minutes=0`) trains exactly the epochs asked for.
        "epochs": 40,
        "budget_minutes": 15,
        "budget_plan_after": 2,
        "batch_size": 32,
        "optimizer": "adamw",
        "learning_rate": 3e-3,  # 1e-3 stays on the all-blank plateau for 10+ epochs
        "schedule": "cosine",
        "warmup": 0.1,
        # 0.1, not 0.01: held-out speakers' connected WER 22.7% -> 17.1% (five voices), conventional 1.28% -> 0.59%,
        # isolated accuracy unchanged on the mean (bench/RESULTS.md, #15 seventh pass)
        "weight_decay": 0.1,
        "clipnorm": 5.0,
        # speed perturbation 0.9-1.1: connected WER 2.86% -> 2.27%, isolated 96.4% -> 97.2% (bench/RESULTS.md)
        # 200 synthetic eSpeak voices in training: unseen speakers' five-voice mean 82.7% -> 85.7% greedy over seeds 0
        # and 1 (jackson, the worst voice, 70.1% -> 80.1%), 8 of 10 runs above the former default at their seed;
        # held-out connected WER 17.4% -> 18.0%, conventional 98.8% -> 98.0% (bench/RESULTS.md, #15 passes 9-11)
        # a quarter of the connected training utterances said by one synthetic voice each (750 recorded + 250):
        # two-seed five-voice mean 85.7% -> 86.8% greedy, held-out connected WER 18.0% -> 15.6%, worst run
        # 79.4% -> 82.8%; conventional WER 1.08% / 1.43% at seeds 0 / 1 (the former 0.89% at seed 0; a half cost it
        # 2.56%) (bench/RESULTS.md, #15 passes 11-13)
        # 100 voices, not 200: two-seed five-voice mean unchanged (88.7% greedy; single word 89.3% -> 89.6%),
        # held-out connected WER 15.4% -> 13.5% (8 of 10 runs lower), worst run 81.6% -> 84.0%, epochs 20% cheaper;
        # conventional 98.4% -> 98.2%, WER 1.37% -> 1.56% over the same two seeds (#15 passes 18-19)
        # no speaker_adversary (a speaker classifier behind gradient reversal, applications.speech.task): at 0.3 the
        # encoder hid the voices (the head stayed at the class prior) but unseen voices' five-voice mean fell 88.2% ->
        # 87.8% at seed 0, 86.8% at 0.05 (bench/RESULTS.md, #15 twenty-first pass)
        # half the isolated training recordings with 0-1 s of silence either side, beside TrimSilence in the model
        # (trim_db=50): george held out, seed 0, with 0.5 s of silence either side 46.6% -> 89.0%; five unseen voices
        # as cut, seed 0, 88.2% -> 88.4% greedy, connected WER 14.0% -> 13.3%; conventional 98.4% -> 97.6%, WER
        # 1.82% -> 0.84% (bench/speech_shift.py; #15 twenty-third pass)
        # 100 voices converted from the training recordings (Praat: formants x0.9-1.25, median pitch 75-280 Hz,
        # duration x0.85-1.2, drawn per voice): unseen voices as recorded level (five voices, two seeds: 88.7% greedy
        # both, single word 89.7% -> 89.2%, connected WER 12.9% -> 13.5%, inside a run's noise); the same voices
        # converted to a woman's formants and pitch 70% / 59% -> 81% / 76%, 15% faster speech 73% / 72% -> 80% / 85%,
        # Flite's female voice 70% / 67% -> 80% / 80% (george / jackson, seed 0); epochs about 20% dearer
        # (bench/speech_shift.py; #15 twenty-sixth pass)
        "data": {"connected": {"num_train": 1000, "num_test": 500}, "speed": 0.1, "synthetic": 100,
                 "synthetic_connected_share": 0.25, "edge_prob": 0.5, "edge_max": 1.0, "converted": 100},
    },
    reference="CTC (Graves et al., 2006) over a Speech-Transformer-style encoder (Dong et al., 2018), SpecAugment",
)
def fsdd_ctc(*, num_tokens: int = len(DIGIT_WORDS), sample_rate: int = SAMPLE_RATE, num_mel_bins: int = 40,
             frame_length: int = 200, frame_step: int = 80, fft_length: int = 512, max_freq=None,
             conv_channels: int = 32, subsample_stages: int = 2, conv_depth: int = 1, dim: int = 96,
             num_layers: int = 3, num_heads: int = 4,
             intermediate_dim: int = 192, dropout: float = 0.1, freq_masks: int = 2, freq_mask_width: int = 6,
             time_masks: int = 2, time_mask_width: int = 10, time_mask_ratio: float = 0.1, vtlp: float = 0.0,
             noise_snr=(10.0, 30.0), noise_prob: float = 0.5, reverb_prob: float = 0.0, reverb_rt60=(0.1, 0.5),
             band_prob: float = 0.0, band_low=(0.0, 300.0), band_high=(2000.0, 4000.0), clip_prob: float = 0.0,
             clip_db=(3.0, 20.0), pitch_shift: float = 0.0,
             top_db=None, cepstra=None, remove_dc: bool = False, normalize_variance: str = "global",
             compression: str = "log", time_stretch: float = 1.0, time_stretch_per: str = "utterance",
             trim_db=50.0, trim_margin: int = 10, trim_fill: bool = False, seed: int = 0):
    """FSDD digit recognizer: log-mel -> conv subsampling -> Transformer encoder -> CTC over digit words.

    Args:
        num_tokens: output tokens besides the blank (10 digit words).
        sample_rate, num_mel_bins, frame_length, frame_step, fft_length: the
            log-mel front end (`LogMelSpectrogram`).
        max_freq: upper edge of the mel filters in Hz (None, the default:
            Nyquist, 4 kHz for FSDD); part of the model, so an export hears
            only that band too.  3000 gained 1.8 points of
            leave-one-speaker-out accuracy on the reduced protocol (two
            seeds, five speakers) and took the conventional connected WER
            from 2.22% to 1.82%, but lost 2.7 points on the full protocol
            (one seed): not shown to help, so off (bench/RESULTS.md, fifth
            pass).
        conv_channels, subsample_stages, conv_depth: `ConvSubsampling`
            (time / 2**stages; `conv_depth` convolutions per stage; 3 lowered
            connected WER but not unseen-speaker accuracy, at 3x the time).
        dim, num_layers, num_heads, intermediate_dim, dropout: the
            pre-norm `TransformerEncoderBlock` stack.
        freq_masks, freq_mask_width, time_masks, time_mask_width,
        time_mask_ratio: SpecAugment (training only).
        vtlp: vocal-tract-length perturbation, warp factors in
            `[1 - vtlp, 1 + vtlp]` per training utterance (0: off, the
            default: no gain measured, bench/RESULTS.md).
        noise_snr, noise_prob: white noise at an SNR uniform in
            `noise_snr = (low, high)` dB on `noise_prob` of the training
            utterances (`noise_prob=0`: off; `WaveformAugment`).  On by default:
            leave-one-speaker-out nicolas 54.0% -> 68.6%, jackson 51.0% ->
            62.6% (reduced protocol, bench/RESULTS.md).
        reverb_prob, reverb_rt60: synthetic room reverberation of
            `reverb_prob` of the training utterances, RT60 uniform in
            `reverb_rt60` seconds (0: off, the default: it hurt, 54.0% ->
            48.0% on nicolas).
        band_prob, band_low, band_high: training-only microphone band limit
            of `band_prob` of the training utterances, low and high
            cut-offs uniform in `band_low` and `band_high` Hz
            (`WaveformAugment`; 0: off, the default: no gain measured).
        clip_prob, clip_db: training-only overdrive of `clip_prob` of the
            training utterances: a gain uniform in `clip_db` dB, clipped at
            the utterance's own peak (`WaveformAugment`; 0: off).
        pitch_shift: training-only pitch shift of up to this many semitones
            either way, the tempo unchanged (`LogMelSpectrogram`; 0: off).
        top_db: per-utterance dynamic range of the log-mel features in dB
            (`LogMelSpectrogram`; part of the model, at inference too;
            None: no floor but `log_floor`).
        cepstra: keep this many DCT components of each log-mel frame
            (cepstral smoothing, `LogMelSpectrogram`; part of the model; None: off).
        remove_dc: subtract each waveform's mean first (`LogMelSpectrogram`;
            part of the model, at inference too; off: no gain measured).
        time_stretch: training-only tempo change of the features, duration
            factors log-uniform in `[1 / time_stretch, time_stretch]` per
            utterance (`TimeStretch`; 1: off); `time_stretch_per="batch"`
            draws one factor per batch instead, at a fraction of the cost.
            Off by default: 1.4 per batch gained 2.5 points on the
            five-voice leave-one-speaker-out mean at seed 0 and lost 2.6 at
            seed 1 (bench/RESULTS.md, eighth pass).
        compression: "log" (the default) or "pcen", how the mel power
            becomes features (`LogMelSpectrogram`; part of the model).
        normalize_variance: "global" (the default) or "channel", the
            per-utterance variance normalisation of the log-mel features
            (`UtteranceNormalization`).  Global keeps a band that barely
            moves (a microphone's noise floor) quiet instead of scaling it
            up to unit variance: leave-one-speaker-out mean 64.6% -> 71.8%
            greedy, connected WER 48.8% -> 43.6% (reduced protocol, five
            speakers); conventional split 98.0% -> 98.4%, WER 2.91% ->
            2.22% (bench/RESULTS.md, fourth pass).
        trim_db, trim_margin: drop the frames before the first and after
            the last frame within `trim_db` dB of the loudest, keeping
            `trim_margin` frames either side (`TrimSilence`; part of the
            model, so the export does it too; 0: off).  On by default
            (50 dB, where FSDD's own clips lose nothing): half a second of
            silence around a word had halved unseen-voice accuracy
            (bench/speech_shift.py, #15 twenty-third pass).
        trim_fill: give every clip exactly `trim_margin` frames either side
            of its sound, filled with digital silence's features where the
            clip has fewer (`TrimSilence(fill=...)`; part of the model), so
            a clip cut into the word and the same clip with silence around
            it look alike.  Off by default: it took the conventional split
            to 99.2% / 99.6% at seeds 0 / 1 (WER 1.04% / 2.00%) from
            97.6% / 97.6% (0.84% / 1.50%), but unseen voices fell (george
            88.8% -> 87.2%, jackson 83.2% -> 79.0%, seed 0)
            (bench/RESULTS.md, #15 twenty-fourth pass).
        seed: seed of the augmentation layers' random streams.

    Returns:
        keras.Model: `{"waveform": float32 (B, N), "length": int32 (B,)}` ->
        logits float32 `(B, T', num_tokens + 1)`, blank last, frames past the
        end forced to blank.
    """
    waveform = keras.Input((None,), dtype="float32", name="waveform")
    length = keras.Input((), dtype="int32", name="length")
    # training only: identity at inference, so none of these settings changes an export
    augmented = WaveformAugment(noise_snr=noise_snr, noise_prob=noise_prob, reverb_prob=reverb_prob,
                                reverb_rt60=reverb_rt60, band_prob=band_prob, band_low=band_low,
                                band_high=band_high, clip_prob=clip_prob, clip_db=clip_db, sample_rate=sample_rate,
                                seed=seed + 1,
                                name="waveform_augment")(waveform, length)
    log_mel = LogMelSpectrogram(sample_rate=sample_rate, num_mel_bins=num_mel_bins, frame_length=frame_length,
                                frame_step=frame_step, fft_length=fft_length, max_freq=max_freq, vtlp=vtlp,
                                pitch_shift=pitch_shift, top_db=top_db, cepstra=cepstra, remove_dc=remove_dc,
                                compression=compression, seed=seed + 2, name="log_mel")
    feats, frames = log_mel(augmented, length)
    if trim_db:
        fill = None
        if trim_fill:  # the features of digital silence: log(0 + log_floor) in every band
            if compression != "log" or top_db is not None or cepstra is not None:
                raise ValueError("fsdd_ctc: trim_fill needs compression='log', top_db=None and cepstra=None")
            fill = math.log(log_mel.log_floor)
        feats, frames = TrimSilence(trim_db, trim_margin, fill=fill, name="trim")(feats, frames)
    feats = UtteranceNormalization(variance=normalize_variance, name="normalize")(feats, frames)
    feats, frames = TimeStretch(time_stretch, per=time_stretch_per, seed=seed + 3, name="time_stretch")(feats, frames)
    feats = SpecAugment(freq_masks=freq_masks, freq_mask_width=freq_mask_width, time_masks=time_masks,
                        time_mask_width=time_mask_width, time_mask_ratio=time_mask_ratio, seed=seed,
                        name="spec_augment")(feats, frames)
    x, frames = ConvSubsampling(conv_channels, subsample_stages, dim, depth=conv_depth, name="subsample")(feats, frames)
    x = layers.Add(name="add_position")([x, SinusoidalPositionEncoding(name="position")(x)])
    x = layers.Dropout(dropout, name="dropout")(x)
    for i in range(num_layers):
        x = LengthMaskedEncoderBlock(num_heads=num_heads, intermediate_dim=intermediate_dim, dropout=dropout,
                                name=f"encoder_{i}")(x, frames)
    x = layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    logits = layers.Dense(num_tokens + 1, dtype="float32", name="logits")(x)
    logits = CTCBlankPadding(blank_index=num_tokens, name="blank_padding")(logits, frames)
    return keras.Model({"waveform": waveform, "length": length}, logits, name="fsdd_ctc")


@keras.saving.register_keras_serializable(package="zoo")
class LengthMaskedEncoderBlock(TransformerEncoderBlock):
    """A pre-norm `TransformerEncoderBlock` whose padding mask comes from frame lengths.

    Args:
        num_heads: int, attention heads (head size `dim // num_heads`).
        intermediate_dim: int, hidden size of the feed-forward network.
        dropout: float, dropout of attention weights and residual branches.
        normalize_first: bool, pre-norm (default) or post-norm.
        **kwargs: other `TransformerEncoderBlock` arguments.

    Call arguments:
        inputs: `(batch, frames, dim)`.
        frame_lengths: int `(batch,)`; frames past them are masked out as keys.
        training: dropout on/off.

    Returns:
        `(batch, frames, dim)`; rows past `frame_lengths` are computed but
        never attended to.
    """

    def __init__(self, num_heads, intermediate_dim, dropout=0.0, normalize_first=True, **kwargs):
        super().__init__(num_heads=num_heads, intermediate_dim=intermediate_dim, dropout=dropout,
                         normalize_first=normalize_first, **kwargs)

    def build(self, inputs_shape, frame_lengths_shape=None):
        super().build(inputs_shape)

    def call(self, inputs, frame_lengths=None, training=None):
        mask = None if frame_lengths is None else frame_mask(frame_lengths, ops.shape(inputs)[1])
        return super().call(inputs, padding_mask=mask, training=training)

    def compute_output_shape(self, inputs_shape, frame_lengths_shape=None):
        return inputs_shape


@keras.saving.register_keras_serializable(package="zoo")
class SpeakerAdversary(keras.layers.Layer):
    """A speaker classifier behind gradient reversal: encoder states -> speaker logits (training only).

    Domain-adversarial training (Ganin & Lempitsky, 2015) with the speaker
    as the domain, as in speaker-invariant training for ASR (Z. Meng et
    al., "Speaker-Invariant Training via Adversarial Learning", ICASSP
    2018): the head learns to tell the training speakers apart from the
    encoder's states, and `GradientReversal(scale)` hands the encoder the
    opposite of its gradient, so the encoder learns states that say the
    words but not who says them.  The states are pooled over the valid
    frames by `AttentionPooling`, then a hidden ReLU layer and the speaker
    logits.  `applications.speech.task.speaker_adversarial` hangs it on the
    recogniser's final encoder states in a training-only model; the
    recogniser (and so its export) never contains it.

    Args:
        num_speakers: int, speaker classes.
        scale: float >= 0, weight of the reversed gradient the encoder gets.
        hidden: int, units of the hidden layer.
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float `(batch, frames, dim)` encoder states.
        frame_lengths: int `(batch,)` valid frames of each row.

    Returns:
        float32 `(batch, num_speakers)` speaker logits.
    """

    def __init__(self, num_speakers, scale=0.1, hidden=128, **kwargs):
        super().__init__(**kwargs)
        if int(num_speakers) < 2:
            raise ValueError(f"SpeakerAdversary: need at least 2 speakers to tell apart, got {num_speakers}")
        self.num_speakers, self.scale, self.hidden = int(num_speakers), float(scale), int(hidden)
        self.reverse = GradientReversal(self.scale, dtype=self.dtype_policy, name="reverse")
        self.pool = AttentionPooling(dtype=self.dtype_policy, name="pool")
        self.dense = layers.Dense(self.hidden, activation="relu", dtype=self.dtype_policy, name="hidden")
        self.out = layers.Dense(self.num_speakers, dtype="float32", name="speaker_logits")

    def build(self, inputs_shape, frame_lengths_shape=None):
        self.pool.build(inputs_shape)
        self.dense.build((inputs_shape[0], inputs_shape[-1]))
        self.out.build((inputs_shape[0], self.hidden))

    def call(self, inputs, frame_lengths):
        mask = frame_mask(frame_lengths, ops.shape(inputs)[1])
        return self.out(self.dense(self.pool(self.reverse(inputs), mask=mask)))

    def compute_output_shape(self, inputs_shape, frame_lengths_shape=None):
        return (inputs_shape[0], self.num_speakers)

    def get_config(self):
        return {**super().get_config(), "num_speakers": self.num_speakers, "scale": self.scale, "hidden": self.hidden}
