"""Diagnostics of the unseen-speaker gap of `fsdd_ctc` (#15): is it the seed, or the model family?

    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/speech_probe.py ensemble SPEAKER RUN_DIR [RUN_DIR ...]
    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/speech_probe.py cnn SPEAKER [--epochs 30]
    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/speech_probe.py spectra all
    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/speech_probe.py durations all
    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/speech_probe.py margins SPEAKER RUN_DIR [--margins 10,5,0]

`margins`: RUN_DIR is one run directory (holding `model.keras`) of a model
with `TrimSilence`; every recording of SPEAKER (`conventional`: the
conventional test split) as cut, with 0.5 s of digital silence either side
and with room tone 50 dB down there (`bench/speech_shift.py`'s changes) is
decoded greedily with the trim layer's `margin` set to each value at
inference only (the weights are the run's): how much of a padded clip's
edge the model should see.

`durations`: per speaker and digit, the mean duration of speech in the
recordings (10 ms frames within 30 dB of the recording's loudest): how
fast the five voices speak.

`spectra`: per speaker, the share of energy above 2 kHz, the DC offset
over the RMS, and the log-mel standard deviation over time of every
fourth mel band (mean over every tenth recording): how the five
microphones differ.

`ensemble`: each RUN_DIR is the run root of a finished leave-SPEAKER-out
run of `bench/speech.py` (e.g. `/tmp/sp2/n_base`, holding
`fsdd_ctc_speaker_SPEAKER/model.keras`).  Every recording of SPEAKER is
decoded by each model alone and by the models together, greedy and single
word: their frame posteriors averaged (`ensemble`), their per-frame
log-probabilities averaged (`ensemble_log_average`), and, single word only,
their single-word CTC log-likelihoods summed
(`sequence_level_single_word`).  If averaging several seeds does not help,
the errors are systematic, not seed noise.

`cnn`: an isolated-digit classifier with the same front end as
`fsdd_ctc` (noise augmentation, log-mel, per-utterance normalisation,
SpecAugment) and a VGG-style 2-D CNN (3 x 2 convolutions 32-64-128 with
BatchNorm, max-pooling, global average pooling), trained on the other four
speakers' recordings (first second of each) and tested on SPEAKER: how far
a different model family gets on the same data, with no CTC and no
connected digits.  Prints JSON; `--out F` writes it too.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from common import cpu_info  # noqa: E402
from zoo.io import write_json  # noqa: E402


def ensemble(args, rec, idx, labels) -> dict:
    """Greedy / single-word accuracy of each run alone and of three ways of combining them.

    - `ensemble`: the members' frame posteriors (probabilities) averaged, then decoded;
    - `ensemble_log_average`: their per-frame log-probabilities averaged, then decoded;
    - `sequence_level_single_word`: each member's CTC log-likelihood of every single-word transcript
      (`single_token_scores`) summed over the members, the best word wins (CTC models of different runs put
      their one-frame spikes at different frames, so this is the fair way to combine them).
    """
    import keras
    from keras import ops

    from applications.speech.data import pad_waveforms
    from applications.speech.models import output_lengths
    from applications.speech.task import greedy_decode, single_token_scores

    inputs = [pad_waveforms([rec.wave(i) for i in idx[s:s + 50]]) for s in range(0, len(idx), 50)]
    members = []  # per run, per batch of 50: ((B, T, C) log-probabilities, (B, C - 1) single-word scores)
    frames = None  # per batch: (B,) valid frames (the same front end in every run: taken from the first)
    for run in args.runs:
        model = keras.saving.load_model(pathlib.Path(run) / f"fsdd_ctc_speaker_{args.speaker}" / "model.keras",
                                        compile=False)
        if frames is None:
            frames = [np.asarray(output_lengths(model, x["length"])) for x in inputs]
        logps = [np.asarray(ops.log_softmax(model(x, training=False), -1)) for x in inputs]
        members.append([(lp, np.asarray(single_token_scores(lp, n))) for lp, n in zip(logps, frames)])

    def truth(b):
        return labels[b * 50:b * 50 + len(frames[b])]

    def single_right(scores, b):
        return int((scores.argmax(-1) == truth(b)).sum())

    def right(logp, scores, b):
        """(greedy, single word) right answers of batch `b` decoded from `logp` and scored by `scores`."""
        ids = np.asarray(greedy_decode(logp, frames[b]))
        return (sum([int(t) for t in row if t >= 0] == [int(y)] for row, y in zip(ids, truth(b))),
                single_right(scores, b))

    def accuracy(combine):
        """Accuracies of the per-batch `(log-probabilities, single-word scores)` that `combine(b)` returns."""
        counts = np.sum([right(*combine(b), b) for b in range(len(frames))], axis=0)
        return {"greedy": counts[0] / len(labels), "single_word": counts[1] / len(labels)}

    def frame_average(average):
        def combine(b):
            logp = average([m[b][0] for m in members])
            return logp, np.asarray(single_token_scores(logp, frames[b]))
        return combine

    runs = {run: accuracy(lambda b, m=m: members[m][b]) for m, run in enumerate(args.runs)}
    return {"runs": runs,
            "ensemble": accuracy(frame_average(lambda lps: np.log(np.mean(np.exp(lps), 0) + 1e-12))),
            "ensemble_log_average": accuracy(frame_average(lambda lps: np.mean(lps, 0))),
            "sequence_level_single_word": sum(single_right(sum(m[b][1] for m in members), b)
                                              for b in range(len(frames))) / len(labels),
            "mean_of_runs": {k: float(np.mean([r[k] for r in runs.values()])) for k in ("greedy", "single_word")}}


def cnn(args, rec, idx, labels) -> dict:
    """Train the CNN classifier on the other speakers; its accuracy on `args.speaker`."""
    import keras
    from keras import layers, ops

    from zoo.layers.audio import LogMelSpectrogram, SpecAugment, UtteranceNormalization, WaveformAugment

    keras.utils.set_random_seed(args.seed)
    n = 8000  # the first second: 99% of FSDD's recordings are shorter
    waves, lengths = np.zeros((len(rec), n), np.float32), np.zeros(len(rec), np.int32)
    for i in range(len(rec)):
        w = rec.wave(i)[:n]
        waves[i, :len(w)], lengths[i] = w, len(w)
    test = rec.speakers == args.speaker
    wave, length = keras.Input((n,), name="waveform"), keras.Input((), dtype="int32", name="length")
    x = WaveformAugment(noise_snr=(10, 30), noise_prob=0.5, seed=1)(wave, length)
    feats, frames = LogMelSpectrogram(num_mel_bins=40, seed=2)(x, length)
    h = ops.expand_dims(SpecAugment(seed=3)(UtteranceNormalization()(feats, frames), frames), -1)
    for channels in (32, 64, 128):
        for _ in range(2):
            h = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(channels, 3, padding="same", use_bias=False)(h)))
        h = layers.MaxPooling2D(2)(h)
    logits = layers.Dense(10)(layers.Dropout(0.3)(layers.GlobalAveragePooling2D()(h)))
    model = keras.Model({"waveform": wave, "length": length}, logits)
    steps = args.epochs * int(np.ceil((~test).sum() / 32))
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=2e-3, warmup_steps=steps // 10)
    model.compile(keras.optimizers.AdamW(schedule, weight_decay=0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.time()
    model.fit({"waveform": waves[~test], "length": lengths[~test]}, rec.digits[~test].astype("int32"), batch_size=32,
              epochs=args.epochs, verbose=2)
    acc = model.evaluate({"waveform": waves[test], "length": lengths[test]}, rec.digits[test].astype("int32"), verbose=0)[1]
    return {"epochs": args.epochs, "params": model.count_params(), "held_out_accuracy": float(acc),
            "train_seconds": time.time() - start}


def spectra(args, rec, idx, labels) -> dict:
    """Per speaker: energy above 2 kHz, DC offset / RMS, log-mel std over time of every fourth band."""
    from applications.speech.data import pad_waveforms
    from zoo.layers.audio import LogMelSpectrogram

    mel, out = LogMelSpectrogram(), {}
    for speaker in sorted(set(rec.speakers)):
        rows = np.where(rec.speakers == speaker)[0]
        high, dc = [], []
        for i in rows:
            w = rec.wave(i).astype(np.float64)
            power, freqs = np.abs(np.fft.rfft(w, 8192)) ** 2, np.fft.rfftfreq(8192, 1 / 8000)
            high.append(power[freqs >= 2000].sum() / power.sum())
            dc.append(abs(w.mean()) / np.sqrt(np.mean(w ** 2)))
        batch = pad_waveforms([rec.wave(i) for i in rows[::10]])
        feats, frames = (np.asarray(t) for t in mel(batch["waveform"], batch["length"]))
        std = np.mean([feats[k, :frames[k]].std(0) for k in range(len(frames))], 0)
        out[speaker] = {"energy_above_2khz": float(np.mean(high)), "dc_over_rms": float(np.mean(dc)),
                        "log_mel_std_every_4th_band": [round(float(x), 2) for x in std[::4]]}
    return {"speakers": out}


def durations(args, rec, idx, labels) -> dict:
    """Per speaker: mean seconds of speech (10 ms frames within 30 dB of the loudest) per digit and overall."""
    out = {}
    for speaker in sorted(set(rec.speakers)):
        per_digit = {}
        for digit in range(10):
            seconds = []
            for i in np.where((rec.speakers == speaker) & (rec.digits.astype(int) == digit))[0]:
                w = rec.wave(i).astype(np.float64)
                energy = (w[: len(w) // 80 * 80].reshape(-1, 80) ** 2).mean(1)
                seconds.append(float((energy > energy.max() * 1e-3).sum()) * 0.01)
            per_digit[str(digit)] = round(float(np.mean(seconds)), 3)
        out[speaker] = {"mean_speech_seconds": round(float(np.mean(list(per_digit.values()))), 3),
                        "per_digit": per_digit}
    return {"speakers": out}


def margins(args, rec, idx, labels) -> dict:
    """Greedy accuracy per inference-time `TrimSilence.margin` on SPEAKER's clips as cut and with silence around them."""
    import keras

    from applications.speech.data import DIGIT_WORDS, pad_waveforms
    from applications.speech.task import transcribe
    from speech_shift import changes  # bench/ is on sys.path: the same changes as the export bench

    path = pathlib.Path(args.runs[0]) / "model.keras"
    model = keras.saving.load_model(path)
    if "trim" not in [layer.name for layer in model.layers]:
        sys.exit(f"speech_probe margins: the model in {args.runs[0]} has no TrimSilence (trained with trim_db=0); "
                 "give a run of the default spec")
    waves = [rec.wave(i).astype(np.float64) for i in idx]
    words = [DIGIT_WORDS[d] for d in labels]
    change = changes()
    sets = {"clean": waves}
    for name in ("silence_0.5s", "room_tone_0.5s"):
        rng = np.random.default_rng(0)  # one stream per change, as bench/speech_shift.py draws it
        sets[name] = [change[name](w, rng) for w in waves]
    out = {}
    for k, margin in enumerate(int(m) for m in args.margins.split(",")):
        if k:  # a fresh model each margin: `transcribe` traces once per model, and the margin is read when it traces
            model = keras.saving.load_model(path)
        model.get_layer("trim").margin = margin
        row = {}
        for name, data in sets.items():
            batches = [pad_waveforms([w.astype(np.float32) for w in data[i:i + 64]]) for i in range(0, len(data), 64)]
            said = transcribe(model, batches)
            row[name] = float(np.mean([s == w for s, w in zip(said, words)]))
        out[str(margin)] = row
        print(f"margin {margin}: " + ", ".join(f"{k} {v:.1%}" for k, v in row.items()), file=sys.stderr, flush=True)
    return {"run": args.runs[0], "accuracy_by_margin": out}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("ensemble", "cnn", "spectra", "durations", "margins"))
    p.add_argument("speaker", help="the held-out speaker (spectra, durations: ignored)")
    p.add_argument("runs", nargs="*", help="ensemble: run roots of bench/speech.py holding SPEAKER's held-out model; "
                   "margins: one run directory")
    p.add_argument("--margins", default="10,5,0", help="margins: TrimSilence margins to try, comma-separated")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.mode == "ensemble" and len(args.runs) < 2:
        p.error("ensemble needs two or more RUN_DIRs")
    if args.mode == "margins" and (len(args.runs) != 1 or not (pathlib.Path(args.runs[0]) / "model.keras").is_file()):
        p.error("margins needs one run directory holding model.keras")

    from zoo._tf import import_tensorflow

    import_tensorflow()
    import applications  # noqa: F401  (registers the layers)
    from applications.speech.data import load_fsdd_recordings

    rec = load_fsdd_recordings(args.data_dir)
    if args.mode == "margins" and args.speaker == "conventional":
        from applications.speech.data import split_indices

        idx = split_indices(rec, "conventional")[1]
    else:
        idx = np.where(rec.speakers == args.speaker)[0]
    if args.mode in ("ensemble", "cnn", "margins") and not len(idx):
        p.error(f"unknown speaker {args.speaker!r}; speakers: {', '.join(sorted(set(rec.speakers.tolist())))}")
    if args.mode == "ensemble":
        model_file = f"fsdd_ctc_speaker_{args.speaker}/model.keras"
        missing = [r for r in args.runs if not (pathlib.Path(r) / model_file).is_file()]
        if missing:
            p.error(f"no {model_file} in {', '.join(missing)}; give run roots of bench/speech.py runs that held out "
                    f"{args.speaker}")
    probe = {"ensemble": ensemble, "cnn": cnn, "spectra": spectra, "durations": durations, "margins": margins}[args.mode]
    result = probe(args, rec, idx, rec.digits[idx].astype(int))
    out = {"command": " ".join(sys.argv), "cpu": cpu_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "speaker": args.speaker, "mode": args.mode, **result}
    print(json.dumps(out, indent=2))
    if args.out:
        write_json(args.out, out)


if __name__ == "__main__":
    main()
