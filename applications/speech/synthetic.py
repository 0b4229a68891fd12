"""Synthetic voices: the ten digit words spoken by many eSpeak NG voices, for training only.

FSDD has five speakers, so a leave-one-speaker-out run trains on four
voices; a recogniser trained on four voices has learnt those voices
(bench/RESULTS.md, #15).  Synthetic speech from a text-to-speech engine is
an established way to add speakers when recorded ones are few
(A. Rosenberg et al., "Speech recognition with augmented synthesized
speech", ASRU 2019; J. Lin et al., "Training keyword spotters with limited
and synthesized speech data", ICASSP 2020).  This module uses eSpeak NG, a
formant synthesiser whose voices are rule-based, not learnt from anyone's
recordings, so it adds no recording of any FSDD speaker (split purity).

Each synthetic voice is a random draw of an English accent (`ACCENTS`), a
voice variant (`variants()`: eSpeak's ~100 timbre presets, male, female,
whispered, Klatt), a base pitch, a pitch range and a speaking rate; it
says each digit word once.  With `l2=p`, that share of the voices also
speaks with a random second-language accent (`l2_accent`: substitutions of
`L2_RULES` on the words' phonemes, spoken as eSpeak phoneme input); on
unseen FSDD voices this did not help (bench/RESULTS.md, #15 twenty-second
pass), so the spec leaves it off.  The draw depends only on the seed.  eSpeak's
voicing noise is random and its generator state lives in the library for
the life of the process, so repeated synthesis in one process drifts (a
few samples of length, other noise); `synthetic_digits` therefore speaks
in a fresh Python process whose generators are seeded first
(`espeak_ng_SetRandSeed` and libc `srand`), and the same call gives the
same audio, bit for bit.

The engine is the `espeakng-loader` wheel (the eSpeak NG library and its
data, no system package), called through `ctypes`; a system
`libespeak-ng.so.1` is used when the wheel is absent.

`flite_digits` draws voices from CMU Flite instead (the `flite` program,
Debian's `flite` package): its five built-in voices (`FLITE_VOICES`) are
a diphone voice and statistical-parametric (clustergen) voices built from
four US and Scottish speakers of the CMU ARCTIC and Kal corpora, so their
articulation is learnt from people, not from eSpeak's rules, and none of
them is an FSDD speaker.  Each Flite voice is one of them at a random
speaking rate, pitch and vocal-tract length (the audio read at a rate
`warp` times its own before resampling, which scales every frequency by
`warp`, as a shorter or longer vocal tract does).  Flite has no random
state: the same call gives the same audio.

`converted_digits` makes new voices from the training speakers' own
recordings instead: Praat's "Change gender" (PSOLA resynthesis, through
the `praat-parselmouth` wheel) moves a recording's formants by a factor,
gives it a new median pitch and pitch range and a new duration, each drawn
per voice.  Formants and pitch move independently, as they do between
people (a woman's formants sit about 15-20% above a man's, her pitch
nearly an octave higher), where speed perturbation, VTLP and the feature-
domain pitch shift all scale the whole spectrum at once.  FSDD's five
speakers are men; a model trained on four of them read the fifth's
recordings converted to a woman's formants and pitch (formants x1.18,
median 210 Hz) at 69.8% and 59.4% (george and jackson held out, 88.8% and
83.2% as recorded), and at 81.4% and 76.4% with 100 converted voices in
training (bench/speech_shift.py, RESULTS #15 twenty-sixth pass).  Only
recordings passed in are converted, so a held-out speaker's never are
(split purity).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import json
import pathlib
import shutil
import subprocess
import sys
import threading
import warnings
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["ACCENTS", "DIGIT_PHONEMES", "FLITE_VOICES", "L2_RULES", "available", "flite_available", "variants", "speak",
           "synthetic_digits", "l2_accent", "l2_phonemes", "flite_digits", "flite_word", "converted_available",
           "change_voice", "converted_digits"]

ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")

#: eSpeak NG's phonemes of the digit words (its en-us `espeak_TextToPhonemes`; a test checks each says its word).
#: Accented voices speak these whatever their `ACCENTS` entry, which then shapes only how the phonemes sound.
DIGIT_PHONEMES = ("z'i@roU", "w'Vn", "t'u:", "Tr'i:", "f'o@", "f'aIv", "s'Iks", "s'Ev@n", "'eIt", "n'aIn")

#: Substitutions of second-language (L2) English, on eSpeak's phoneme mnemonics: (name, phoneme, replacements).
#: Each is among the commonest transfers from speakers' first languages (theta as s/t/f: French, German, Dutch,
#: Spanish, Chinese...; w as v: German, Hindi, Polish...; final or initial devoicing: German, Dutch, Polish...;
#: no lax /I/ or reduced schwa: Spanish, Italian, French, Greek...; pure vowels for diphthongs: Spanish, German...).
L2_RULES = (
    ("theta", "T", ("s", "t", "f")),
    ("w-as-v", "w", ("v",)),
    ("devoice-z", "z", ("s",)),
    ("devoice-final-v", "v", ("f",)),
    ("tense-I", "I", ("i:",)),
    ("full-schwa", "@", ("E",)),
    ("lowered-V", "V", ("a", "0")),
    ("pure-eI", "eI", ("e:", "E")),
    ("pure-oU", "oU", ("o:", "O")),
    ("pure-aI", "aI", ("a:", "a")),
)
_TWO_CHAR_PHONEMES = ("eI", "aI", "oU", "aU", "OI", "i@", "e@", "o@", "O@", "U@", "i:", "u:", "e:", "a:", "o:", "O:",
                      "3:", "A:")  # read as one phoneme by `l2_phonemes`
_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER
_CHARS_UTF8 = 1
_PHONEMES = 0x100  # espeakPHONEMES: read [[...]] as phoneme mnemonics
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_lock = threading.Lock()
_engine: dict = {}


class SynthesisError(RuntimeError):
    """eSpeak NG is missing or refused a voice."""


def _locate():
    """(library path, data path or None) of eSpeak NG, or None when neither the wheel nor a system library is found."""
    try:
        import espeakng_loader
    except ImportError:
        name = ctypes.util.find_library("espeak-ng")
        return (name, None) if name else None
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def available() -> bool:
    """True when eSpeak NG can be loaded (the `espeakng-loader` wheel or a system library)."""
    return _locate() is not None


def _init():
    """Load and initialise eSpeak NG once per process: `(library, sample_rate, chunks)`."""
    if _engine:
        return _engine["lib"], _engine["rate"], _engine["chunks"]
    found = _locate()
    if found is None:
        raise SynthesisError("synthetic voices need eSpeak NG: pip install espeakng-loader==0.2.4 "
                             "(or train without synthetic voices: --set data.synthetic=0)")
    lib = ctypes.CDLL(found[0])
    lib.espeak_Initialize.restype = ctypes.c_int
    data = None if found[1] is None else str(found[1]).encode()
    rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, data, 0)
    if rate <= 0:
        raise SynthesisError(f"eSpeak NG failed to initialise (data {found[1]}): code {rate}")
    chunks: list = []

    def collect(wav, n, _events):
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    callback = _CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    _engine.update(lib=lib, rate=rate, chunks=chunks, callback=callback)  # keep the callback alive
    return lib, rate, chunks


def variants() -> list[str]:
    """eSpeak NG's voice variants (`"m3"`, `"f2"`, `"klatt"`, `"whisper"`, ...), sorted; [] if none are installed."""
    found = _locate()
    if found is None or found[1] is None:
        return ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4"]
    return sorted(p.name for p in (pathlib.Path(found[1]) / "voices" / "!v").iterdir() if p.is_file())


def speak(text: str, voice: str = "en-us", *, rate: int = 175, pitch: int = 50, pitch_range: int = 50):
    """Synthesise `text`: `(float32 (N,) in [-1, 1], sample_rate)` at eSpeak's own rate (22,050 Hz).

    Args:
        text: what to say; `[[...]]` holds eSpeak phoneme mnemonics (e.g. "[[Tr'i:]]": "three").
        voice: an eSpeak voice name, `"<accent>"` or `"<accent>+<variant>"`.
        rate: words per minute (80-450).
        pitch, pitch_range: base pitch and its range, 0-99 (50: the voice's default).

    eSpeak's noise generators run on across calls, so two calls with the
    same arguments in one process differ slightly; `synthetic_digits` is the
    reproducible path.

    Raises:
        SynthesisError: eSpeak NG missing or the voice unknown.
    """
    with _lock:
        lib, sample_rate, chunks = _init()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SynthesisError(f"eSpeak NG has no voice {voice!r}")
        for key, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            lib.espeak_SetParameter(key, int(value), 0)
        chunks.clear()
        data = text.encode()
        flags = _CHARS_UTF8 | (_PHONEMES if "[[" in text else 0)
        lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, flags, None, None)  # position 0 in characters
        lib.espeak_Synchronize()
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        chunks.clear()
    return audio.astype(np.float32) / 32768.0, sample_rate


def _trim(x: np.ndarray, sample_rate: int, margin: float = 0.02, threshold: float = 0.02) -> np.ndarray:
    """Cut leading and trailing silence (below `threshold` of the peak), keeping `margin` seconds."""
    loud = np.flatnonzero(np.abs(x) >= threshold * float(np.max(np.abs(x))))
    if len(loud) == 0:
        return x
    pad = int(margin * sample_rate)
    return x[max(0, loud[0] - pad):loud[-1] + pad + 1]


def _seed(seed: int) -> None:
    """Seed eSpeak NG's noise generators (its own and libc's `rand`)."""
    lib = _init()[0]
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed(ctypes.c_long(int(seed)))
    ctypes.CDLL(None).srand(ctypes.c_uint(int(seed) & 0xFFFFFFFF))


def _speak_fresh(jobs: list[dict], seed: int) -> tuple[list[np.ndarray], int]:
    """Speak `jobs` ([{text, voice, rate, pitch, pitch_range}]) in a fresh, seeded process: (int16 audio, rate).

    This file runs as a script there (`python synthetic.py`, the request as
    JSON on stdin, an .npz on stdout), importing numpy and ctypes only;
    nothing is written to disk, and the child dies with its parent.
    """
    from zoo.io import die_with_parent

    request = json.dumps({"seed": int(seed), "jobs": jobs}).encode()
    done = subprocess.run([sys.executable, str(pathlib.Path(__file__).resolve())], input=request,
                          capture_output=True, timeout=600, preexec_fn=die_with_parent)
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise SynthesisError(last.split(": ", 1)[-1] if "SynthesisError" in last else
                             f"eSpeak NG synthesis failed (exit {done.returncode}): {last}")
    with np.load(io.BytesIO(done.stdout)) as z:
        audio, offsets, rate = z["audio"], z["offsets"], int(z["rate"])
    return [audio[a:b] for a, b in zip(offsets[:-1], offsets[1:])], rate


def l2_accent(rng, rule_prob: float = 0.5) -> dict[str, str]:
    """A random second-language accent: each of `L2_RULES` with probability `rule_prob`, one replacement each.

    Returns `{phoneme: replacement}` (possibly empty); `l2_phonemes` applies it.
    """
    accent = {}
    for _, phoneme, replacements in L2_RULES:
        take, pick = rng.random(), int(rng.integers(len(replacements)))
        if take < rule_prob:
            accent[phoneme] = replacements[pick]
    return accent


def l2_phonemes(phonemes: str, accent: dict[str, str]) -> str:
    """`phonemes` (eSpeak mnemonics, e.g. "Tr'i:") with `accent`'s substitutions, phoneme by phoneme.

    Two-character phonemes (diphthongs, long vowels) are read as one, so
    `l2_phonemes("'eIt", {"I": "i:"})` -> "'eIt" and `l2_phonemes("Tr'i:", {"T": "s"})` -> "sr'i:".
    """
    out, i = [], 0
    while i < len(phonemes):
        unit = phonemes[i:i + 2] if phonemes[i:i + 2] in _TWO_CHAR_PHONEMES else phonemes[i]
        out.append(accent.get(unit, unit))
        i += len(unit)
    return "".join(out)


def synthetic_digits(voices: int, *, seed: int = 0, words=None, sample_rate: int = 8000,
                     rate=(120, 240), pitch=(10, 90), pitch_range=(10, 90), l2: float = 0.0) -> list[dict]:
    """`voices` random eSpeak NG voices saying each digit word once, resampled to `sample_rate`.

    Args:
        voices: how many voices to draw.
        seed: seed of the draw and of eSpeak's noise (the same seed gives
            the same voices and the same audio, bit for bit).
        words: the words to say (default: `DIGIT_WORDS`, ids 0-9).
        sample_rate: output rate in Hz (FSDD's 8 kHz).
        rate, pitch, pitch_range: uniform ranges of words per minute, base
            pitch and pitch range (0-99) per voice.
        l2: share of the voices (drawn per voice) that speak with a random
            second-language accent (`l2_accent`: substitutions of
            `L2_RULES` applied to `DIGIT_PHONEMES`, spoken as eSpeak phoneme
            input); digit words only.  0 leaves every other draw as it was.

    Returns:
        `voices * len(words)` dicts `{"digit": int, "voice": int, "name": str
        ("<digit>_espeak<voice>_0: <accent>+<variant> rate pitch range"),
        "audio": float32 (N,) in [-1, 1]}`, silence trimmed to 20 ms either side,
        peak scaled to a random level in [0.3, 0.9].

    Raises:
        SynthesisError: eSpeak NG missing.
    """
    from applications.speech.data import DIGIT_WORDS

    if _locate() is None:
        _init()  # raises the SynthesisError that says what to install
    words = DIGIT_WORDS if words is None else tuple(words)
    if l2 and words != tuple(DIGIT_WORDS):
        raise ValueError("synthetic_digits: l2 accents are defined for the digit words only")
    rng = np.random.default_rng([int(seed), 0x5EEC])
    accent_rng = np.random.default_rng([int(seed), 0x12])  # its own stream: l2=0 draws exactly as before
    names = variants()
    jobs, meta = [], []
    for v in range(int(voices)):
        voice = f"{ACCENTS[rng.integers(len(ACCENTS))]}+{names[rng.integers(len(names))]}"
        wpm, base, spread = (int(rng.integers(lo, hi + 1)) for lo, hi in (rate, pitch, pitch_range))
        accent = l2_accent(accent_rng) if l2 and accent_rng.random() < l2 else {}
        tag = (" l2=" + ",".join(f"{k}>{v2}" for k, v2 in accent.items())) if accent else ""
        for digit, word in enumerate(words):
            text = f"[[{l2_phonemes(DIGIT_PHONEMES[digit], accent)}]]" if accent else word
            jobs.append({"text": text, "voice": voice, "rate": wpm, "pitch": base, "pitch_range": spread})
            meta.append((digit, v, f"{digit}_espeak{v}_0: {voice} rate={wpm} pitch={base} range={spread}{tag}"))
    spoken, native = _speak_fresh(jobs, seed) if jobs else ([], sample_rate)
    return [{"digit": digit, "voice": v, "name": name, "audio": _word(x, native, sample_rate, rng)}
            for (digit, v, name), x in zip(meta, spoken)]


def _word(x: np.ndarray, native_rate: float, sample_rate: int, rng) -> np.ndarray:
    """int16 engine audio at `native_rate` -> float32 at `sample_rate`, trimmed in band, peak at a random 0.3-0.9."""
    from applications.speech.data import resample

    x = _trim(resample(x.astype(np.float32) / 32768.0, native_rate, sample_rate), sample_rate)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0:
        x = x * (rng.uniform(0.3, 0.9) / peak)
    return x.astype(np.float32)


def flite_available() -> bool:
    """True when the `flite` program is on the PATH (Debian: `apt-get install flite`)."""
    return shutil.which("flite") is not None


def flite_word(word: str, voice: str, stretch: float = 1.0, f0: float | None = None) -> tuple[np.ndarray, int]:
    """One word said by a CMU Flite voice, read from the `flite` program's stdout (no file is written).

    Args:
        word: the text to say (e.g. "seven").
        voice: one of `FLITE_VOICES` (or any voice the program knows).
        stretch: Flite's duration stretch (>1: slower).
        f0: pitch factor (`f0_shift`, with the diphone voices' mean pitch
            100 Hz times it); None keeps the voice's own pitch (`slt`, a
            woman's, included).

    Returns:
        `(int16 (N,), sample_rate)` as the voice speaks (8 or 16 kHz), untrimmed.

    Raises:
        SynthesisError: `flite` missing, failing or writing no audio.
    """
    pitch = [] if f0 is None else ["--setf", f"f0_shift={f0:.4f}", "--setf", f"int_f0_target_mean={100.0 * f0:.2f}"]
    try:  # the program's absence is found by running it, not by a PATH search before each word
        done = subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.4f}", *pitch,
                               "-t", word, "-o", "/dev/stdout"], capture_output=True, timeout=60)
    except FileNotFoundError:
        raise SynthesisError("Flite voices need the flite program: apt-get install flite") from None
    if done.returncode != 0 or not done.stdout.startswith(b"RIFF"):
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise SynthesisError(f"flite failed for voice {voice!r} (exit {done.returncode}): {last}")
    with wave.open(io.BytesIO(done.stdout), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).copy(), w.getframerate()


def flite_digits(voices: int, *, seed: int = 0, words=None, sample_rate: int = 8000, stretch=(0.8, 1.35),
                 f0=(0.75, 1.5), warp=(0.88, 1.15)) -> list[dict]:
    """`voices` random CMU Flite voices saying each digit word once, resampled to `sample_rate`.

    Args:
        voices: how many voices to draw.
        seed: seed of the draw (Flite itself is deterministic).
        words: the words to say (default: `DIGIT_WORDS`, ids 0-9).
        sample_rate: output rate in Hz (FSDD's 8 kHz).
        stretch, f0, warp: uniform ranges, per voice, of Flite's duration
            stretch (>1: slower), its pitch factor (`f0_shift`, and the
            diphone voices' mean pitch 100 Hz times it) and the
            vocal-tract warp (every frequency times `warp`, duration over it).

    Returns:
        `voices * len(words)` dicts `{"digit": int, "voice": int, "name": str
        ("<digit>_flite<voice>_0: <base> stretch f0 warp"), "audio": float32
        (N,) in [-1, 1]}`, silence trimmed to 20 ms either side, peak scaled
        to a random level in [0.3, 0.9].

    Raises:
        SynthesisError: `flite` missing or failing.
    """
    from applications.speech.data import DIGIT_WORDS

    if voices and not flite_available():
        raise SynthesisError("Flite voices need the flite program: apt-get install flite "
                             "(or train without them: --set data.synthetic_flite=0)")
    words = DIGIT_WORDS if words is None else tuple(words)
    rng = np.random.default_rng([int(seed), 0xF117E])
    jobs, meta = [], []
    for v in range(int(voices)):
        base = FLITE_VOICES[rng.integers(len(FLITE_VOICES))]
        s, f, w = (float(rng.uniform(lo, hi)) for lo, hi in (stretch, f0, warp))
        for digit, word in enumerate(words):
            jobs.append((word, base, s, f, w))
            meta.append((digit, v, f"{digit}_flite{v}_0: {base} stretch={s:.3f} f0={f:.3f} warp={w:.3f}"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        spoken = list(pool.map(lambda job: flite_word(*job[:4]), jobs))
    return [{"digit": digit, "voice": v, "name": name, "audio": _word(x, native * job[4], sample_rate, rng)}
            for (digit, v, name), (x, native), job in zip(meta, spoken, jobs)]


def converted_available() -> bool:
    """True when Praat is importable (the `praat-parselmouth` wheel, a dependency of zoo)."""
    try:
        import parselmouth  # noqa: F401
    except ImportError:
        return False
    return True


def _log_uniform(rng, bounds) -> float:
    lo, hi = (float(b) for b in bounds)
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def change_voice(audio: np.ndarray, sample_rate: int, *, formant: float = 1.0, pitch: float = 0.0,
                 pitch_range: float = 1.0, duration: float = 1.0, seed: int = 0) -> np.ndarray:
    """One recording with Praat's "Change gender": float32 `(N,)` -> float32 `(M,)`, `M ~ N * duration`.

    Args:
        audio: float32 `(N,)` in [-1, 1].
        sample_rate: its rate in Hz.
        formant: formant shift ratio (>1: a shorter vocal tract; 1: none).
        pitch: new median pitch in Hz (0: keep the recording's).
        pitch_range: factor on the pitch's spread around its median.
        duration: factor on the length (>1: slower).
        seed: seed of Praat's random numbers (its resynthesis copies
            unvoiced stretches from random points): the same call gives the
            same audio, bit for bit.

    Returns:
        The converted audio with the input's peak.  In a recording with no
        voiced frame (75-600 Hz) the pitch stays; formants and duration
        still change.  One that Praat refuses is returned unchanged.
    """
    import parselmouth
    from parselmouth.praat import call

    x = np.asarray(audio, np.float64)
    try:
        with _lock, warnings.catch_warnings():  # "no voiced segments": Praat keeps the pitch, moves the formants
            warnings.simplefilter("ignore", parselmouth.PraatWarning)
            parselmouth.praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({int(seed)})\n")
            y = call(parselmouth.Sound(x, sampling_frequency=float(sample_rate)), "Change gender", 75.0, 600.0,
                     float(formant), float(pitch), float(pitch_range), float(duration)).values[0]
    except parselmouth.PraatError:
        return np.asarray(audio, np.float32)
    peak, out = float(np.max(np.abs(x))), float(np.max(np.abs(y))) if len(y) else 0.0
    if not np.all(np.isfinite(y)) or out <= 0.0:
        return np.asarray(audio, np.float32)
    return (y * (peak / out)).astype(np.float32)


def converted_digits(voices: int, recordings, *, seed: int = 0, sample_rate: int = 8000, formant=(0.9, 1.25),
                     pitch=(75.0, 280.0), pitch_range=(0.5, 1.5), duration=(0.85, 1.2)) -> list[dict]:
    """`voices` new voices, each one training speaker's digits converted by Praat (`change_voice`).

    Args:
        voices: how many voices to make.
        recordings: `(speaker, digit, audio float32 (N,))` triples to draw
            from (training recordings only: nothing else is read).
        seed: seed of every draw, Praat's random numbers included (a
            seed per clip for `change_voice`): the same call gives the same
            audio, bit for bit.
        sample_rate: the recordings' rate in Hz.
        formant, pitch, duration: log-uniform ranges, per voice, of the
            formant shift ratio, the new median pitch in Hz and the
            duration factor; `pitch_range`: uniform range of the pitch
            spread factor.

    Returns:
        Up to `voices * 10` dicts `{"digit": int, "voice": int, "name": str
        ("<digit>_praat<voice>_0: <speaker> formant pitch range duration"),
        "audio": float32 (M,)}`: each voice converts one speaker (drawn per
        voice) saying each digit that speaker has, one take drawn per digit.

    Raises:
        SynthesisError: Praat missing.
    """
    if voices and not converted_available():
        raise SynthesisError("converted voices need Praat: pip install praat-parselmouth "
                             "(or train without them: --set data.converted=0)")
    by_speaker: dict[str, dict[int, list]] = {}
    for speaker, digit, audio in recordings:
        by_speaker.setdefault(str(speaker), {}).setdefault(int(digit), []).append(audio)
    speakers = sorted(by_speaker)
    if voices and not speakers:
        raise SynthesisError("converted voices need training recordings to convert; none were given")
    rng = np.random.default_rng([int(seed), 0x9AA7])
    made = []
    for v in range(int(voices)):
        speaker = speakers[int(rng.integers(len(speakers)))]
        f, p = _log_uniform(rng, formant), _log_uniform(rng, pitch)
        r, d = float(rng.uniform(*pitch_range)), _log_uniform(rng, duration)
        for digit in sorted(by_speaker[speaker]):
            takes = by_speaker[speaker][digit]
            audio = takes[int(rng.integers(len(takes)))]
            made.append({"digit": digit, "voice": v,
                         "name": f"{digit}_praat{v}_0: {speaker} formant={f:.3f} pitch={p:.0f} range={r:.2f} "
                                 f"duration={d:.3f}",
                         "audio": change_voice(audio, sample_rate, formant=f, pitch=p, pitch_range=r, duration=d,
                                               seed=int(rng.integers(2 ** 31)))})
    return made


def _main() -> None:
    """Child process: the request (JSON) on stdin -> an .npz (int16 audio back to back, offsets, rate) on stdout."""
    request = json.load(sys.stdin)
    _seed(request["seed"])
    parts = []
    for job in request["jobs"]:
        x, native = speak(job["text"], job["voice"], rate=job["rate"], pitch=job["pitch"],
                          pitch_range=job["pitch_range"])
        parts.append(np.round(x * 32768.0).clip(-32768, 32767).astype(np.int16))
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    audio = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    buffer = io.BytesIO()
    np.savez(buffer, audio=audio, offsets=offsets, rate=np.int64(_engine["rate"] if _engine else 22050))
    sys.stdout.buffer.write(buffer.getvalue())


if __name__ == "__main__":
    _main()
