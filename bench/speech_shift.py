"""A speech export on recordings it never heard in this form: silence, noise, level, band, room, tempo.

    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/speech_shift.py saved_models/fsdd_ctc/1 --out OUT.json
    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/speech_shift.py EXPORT --speaker george --out OUT.json

A caller's recording is rarely cut as tightly, levelled as evenly or
recorded as quietly as FSDD's.  Each test recording is changed in one way
(deterministic, seed 0) and fed to the export's `serving_default`
(`tf.saved_model.load`: no zoo code in the call, waveform and length in,
transcript out); a recording counts as right when the transcript is its
digit word and nothing else (greedy, as the model card's figure):

- `clean`: the recording as it is;
- `silence_0.5s`: 0.5 s of digital silence before and after (an
  untrimmed clip, a push-to-talk button);
- `room_tone_0.5s`: the same 0.5 s filled with a quiet noise floor,
  50 dB below the speech's RMS, which also lies under the speech;
  `room_tone_30db_0.5s` the same with a floor 30 dB below (a noisy room);
- `white_noise_20db`, `white_noise_10db`: white noise at that SNR;
- `quiet_-30db`: the whole clip 30 dB quieter (a far microphone);
- `clipped_+12db`: 12 dB louder, clipped at +-1 (an overdriven input);
- `telephone`: band-limited to 300-3400 Hz (a fourth-order Butterworth's
  magnitude, zero phase);
- `reverb_0.4s`: convolved with a synthetic room (exponentially decaying
  noise, RT60 0.4 s; the direct sound kept);
- `hum_50hz`: 50 Hz mains hum with its harmonics, 20 dB below the speech;
- `tempo_0.85`, `tempo_1.15`: played 15% slower and faster (pitch with it);
- `resynthesis`: Praat's PSOLA resynthesis with nothing changed (the
  control for the next three: what the resynthesis alone costs);
- `voice_deeper`, `voice_higher`, `voice_female`: the same speaker with
  other formants and pitch (Praat's "Change gender": formants x0.92 and
  median pitch 85 Hz; x1.10 and 150 Hz; x1.18 and 210 Hz, about where a
  woman's sit against a man's), tempo kept.  FSDD's speakers are all men.

`--flite` adds voices the model never heard that were learnt from other
people: CMU Flite's five voices (four men, `slt` a woman; Debian's `flite`
program) saying each digit at three speaking rates (duration x0.85, 1, 1.2),
150 clips, scored per voice.

Which recordings: `--speaker S` scores all of S's recordings (for a
model that held S out, `bench/speech.py`'s leave-one-speaker-out runs);
the default is the conventional test split (takes 0-4 of every speaker,
the model card's set).  Writes accuracy per change to `--out` and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from collections import Counter

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from common import cpu_info, load_export  # noqa: E402  (one definition of the machine report)

RATE = 8000


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x)) + 1e-12))


def _room(rt60, rng):
    """A synthetic room impulse response: a unit direct path, then noise decaying 60 dB in `rt60` s."""
    n = int(rt60 * RATE)
    t = np.arange(n) / RATE
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    tail[:int(0.005 * RATE)] = 0.0  # 5 ms to the first reflection
    h = 0.5 * tail / np.sqrt(np.sum(tail ** 2))
    h[0] = 1.0
    return h


def _band(x, low, high):
    """`x` band-limited to `low`-`high` Hz: the spectrum times a fourth-order Butterworth band-pass's magnitude."""
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    gain = 1 / np.sqrt(1 + (low / np.maximum(f, 1e-3)) ** 8) / np.sqrt(1 + (f / high) ** 8)
    return np.fft.irfft(np.fft.rfft(x) * gain, len(x))


def _convolve(x, h):
    """Full linear convolution of `x` with `h` (FFT): `(len(x) + len(h) - 1,)`."""
    n = len(x) + len(h) - 1
    return np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(h, n), n)


def changes():
    """name -> function (waveform float32 (n,), numpy Generator) -> changed waveform (m,)."""
    half = int(0.5 * RATE)

    def padded(x):
        return np.concatenate([np.zeros(half), x, np.zeros(half)])

    def noise(n, speech, db, rng):
        """`n` samples of white noise `db` below the RMS of `speech`."""
        return rng.standard_normal(n) * _rms(speech) / 10 ** (db / 20)

    def room_tone(db):
        return lambda x, rng: padded(x) + noise(len(x) + 2 * half, x, db, rng)

    def hum(x, rng):
        t = np.arange(len(x)) / RATE
        phase = rng.uniform(0, 2 * np.pi)
        h = sum(np.sin(2 * np.pi * 50 * k * t + phase * k) / k for k in (1, 2, 3))
        return x + h * _rms(x) / _rms(h) / 10.0

    def tempo(factor):
        from applications.speech.data import speed_perturb

        return lambda x, rng: speed_perturb(x.astype(np.float32), factor)

    def voice(formant, pitch):
        from applications.speech.synthetic import change_voice

        return lambda x, rng: change_voice(x.astype(np.float32), RATE, formant=formant, pitch=pitch)

    return {
        "silence_0.5s": lambda x, rng: padded(x),
        "room_tone_0.5s": room_tone(50.0),
        "room_tone_30db_0.5s": room_tone(30.0),
        "white_noise_20db": lambda x, rng: x + noise(len(x), x, 20.0, rng),
        "white_noise_10db": lambda x, rng: x + noise(len(x), x, 10.0, rng),
        "quiet_-30db": lambda x, rng: x * 10 ** (-30 / 20),
        "clipped_+12db": lambda x, rng: np.clip(x * 10 ** (12 / 20), -1.0, 1.0),
        "telephone": lambda x, rng: _band(x, 300.0, 3400.0),
        "reverb_0.4s": lambda x, rng: _convolve(x, _room(0.4, rng)),
        "hum_50hz": hum,
        "tempo_0.85": tempo(0.85),
        "tempo_1.15": tempo(1.15),
        "resynthesis": voice(1.0, 0.0),
        "voice_deeper": voice(0.92, 85.0),
        "voice_higher": voice(1.10, 150.0),
        "voice_female": voice(1.18, 210.0),
    }


def flite_clips():
    """CMU Flite's five voices saying each digit at durations x0.85, 1 and 1.2: [(voice, digit, float32 (n,))]."""
    from applications.speech.data import DIGIT_WORDS, resample
    from applications.speech.synthetic import FLITE_VOICES, flite_word

    clips = []
    for voice in FLITE_VOICES:
        for stretch in (0.85, 1.0, 1.2):
            for digit, word in enumerate(DIGIT_WORDS):
                x, rate = flite_word(word, voice, stretch)
                x = resample(x.astype(np.float32) / 32768.0, rate, RATE)
                clips.append((voice, digit, (0.5 * x / max(float(np.max(np.abs(x))), 1e-6)).astype(np.float32)))
    return clips


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export", help="a SavedModel version directory of a speech recognizer (fsdd_ctc)")
    p.add_argument("--speaker", help="score all of this speaker's recordings (default: the conventional test split)")
    p.add_argument("--data-dir", default=os.environ.get("ZOO_DATA_DIR"), help="folder of fsdd-recordings.tar.gz")
    p.add_argument("--limit", type=int, help="first N recordings only (smoke runs)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--flite", action="store_true", help="also score CMU Flite's five voices (needs `flite`)")
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)

    from zoo._tf import import_tensorflow

    tf = import_tensorflow()
    from applications.speech.data import DIGIT_WORDS, load_fsdd_recordings, pad_waveforms, split_indices
    from zoo.io import write_json

    rec = load_fsdd_recordings(args.data_dir)
    if args.speaker:
        if args.speaker not in set(rec.speakers):
            p.error(f"no recordings of speaker {args.speaker!r}; the speakers are {sorted(set(rec.speakers))}")
        index = np.flatnonzero(rec.speakers == args.speaker)
    else:
        index = split_indices(rec, "conventional")[1]
    index = index[:args.limit]
    waves = [rec.wave(i).astype(np.float64) for i in index]
    words = [DIGIT_WORDS[d] for d in rec.digits[index]]
    if args.flite:
        from applications.speech.synthetic import flite_available

        if not flite_available():
            p.error("--flite needs the flite program: apt-get install flite (or leave --flite out)")
    card, fn = load_export(args.export)

    def accuracy(data, words=words):
        said = []
        for i in range(0, len(data), args.batch):
            batch = pad_waveforms([w.astype(np.float32) for w in data[i:i + args.batch]])
            out = fn(waveform=tf.constant(batch["waveform"]), length=tf.constant(batch["length"]))["transcript"]
            said += [s.decode() for s in out.numpy()]
        wrong = Counter(f"{w} -> {s or '(nothing)'}" for s, w in zip(said, words) if s != w)
        return {"accuracy": float(np.mean([s == w for s, w in zip(said, words)])),
                "top_errors": dict(wrong.most_common(5))}

    rows = {"clean": accuracy(waves)}
    print(f"clean: {rows['clean']['accuracy']:.2%}", flush=True)
    for name, change in changes().items():
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        rows[name] = {**accuracy([change(w, rng) for w in waves]), "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{name}: {rows[name]['accuracy']:.2%}", flush=True)
    voices = {}
    if args.flite:
        clips = flite_clips()
        for name in sorted({v for v, _, _ in clips}):
            mine = [(d, x) for v, d, x in clips if v == name]
            voices[name] = accuracy([x for _, x in mine], [DIGIT_WORDS[d] for d, _ in mine])
            print(f"flite {name}: {voices[name]['accuracy']:.2%}", flush=True)
    report = {"command": " ".join(sys.argv), "cpu": cpu_info(), "export": args.export, "model": card["model"],
              "recordings": len(index), "speaker": args.speaker or "conventional test split",
              "card_split": card.get("data", {}).get("split"), "changes": rows, "flite_voices": voices}
    write_json(pathlib.Path(args.out), report)
    print("| change | accuracy | vs clean | most frequent errors |\n|---|---|---|---|")
    for name, row in rows.items():
        top = ", ".join(f"{k} {v}" for k, v in list(row["top_errors"].items())[:3])
        print(f"| {name} | {row['accuracy']:.2%} | {row['accuracy'] - rows['clean']['accuracy']:+.2%} | {top} |")
    for name, row in voices.items():
        top = ", ".join(f"{k} {v}" for k, v in list(row["top_errors"].items())[:3])
        print(f"| flite {name} (30 clips) | {row['accuracy']:.2%} | | {top} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
