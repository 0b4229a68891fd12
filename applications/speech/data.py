"""Free Spoken Digit Dataset (FSDD): WAV decoding, splits, connected digits, batched pipelines.

    >>> from zoo.data import load_dataset
    >>> bundle = load_dataset("fsdd", batch_size=32, connected={"num_train": 2000})
    >>> inputs, labels = next(iter(bundle.train))
    >>> inputs["waveform"].shape, inputs["length"].shape, labels.shape
    (TensorShape([32, N]), TensorShape([32]), TensorShape([32, 7]))

Data: `fsdd-recordings.tar.gz` in the data directory (2,500 WAV recordings,
`recordings/<digit>_<speaker>_<take>.wav`, 8 kHz mono 16-bit PCM, five
speakers), read in memory and decoded once into a cache
(`cache_dir("fsdd", sha256[:16])`); without a data directory the
tensorflow-datasets `spoken_digit` set is used.

Token set (`DIGIT_WORDS`): one token per digit word, ids 0-9 for "zero" ..
"nine"; the CTC blank is id 10 (the last class, as `tf.nn.ctc_greedy_decoder`
expects).  Whole-word tokens rather than characters: the vocabulary is closed
(ten words), a word needs one CTC frame instead of up to six ("three" spells
t-h-r-e-e, whose doubled "e" needs a blank between), so the encoder can
subsample time four-fold, and WER is then exactly the token error rate.

Batches: `({"waveform": float32 (B, N), "length": int32 (B,)}, labels int32 (B, L))`.
Waveforms are in [-1, 1] at 8 kHz, zero-padded after `length` samples to a
multiple of `pad_multiple` samples; labels are token ids **padded with -1**
(0 is the word "zero"), `L = max_digits` (1 for isolated digits only).

Splits:
- `"conventional"`: takes 0-4 of every digit and speaker are the test set
  (250 recordings: 5 speakers x 10 digits x 5 takes), takes 5-49 the
  training set (2,250).
- `"speaker:<name>"` (leave-one-speaker-out): every recording of `<name>` is
  the test set, the other four speakers' recordings the training set.

Connected digits (`connected=dict(...)`): utterances of `min_digits`-
`max_digits` digits made by joining recordings of one speaker with random
silences (`min_gap`-`max_gap` seconds of zeros; `edge` seconds at most at
either end); with `mix_speakers` > 0 that fraction of the *training*
utterances joins recordings of several training speakers instead (the test
utterances always have one speaker).  They are built with `numpy.random.default_rng` from the
seed and the split's name only, and only from recordings of their own split
(`connected_utterances`).  Training draws fresh utterances every epoch
(seed, epoch), the test set is fixed.

Synthetic voices (`synthetic=N`): N eSpeak NG voices, each saying every
digit once (`applications.speech.synthetic`), are appended to the
recordings as speakers `espeak<k>` and join the *training* set only
(`with_synthetic_voices`); `synthetic_flite=M` makes M of them CMU Flite
voices (`flite<k>`) instead, `synthetic_l2=p` gives that share of the eSpeak
ones a second-language accent; `synthetic_connected=True` lets connected
training utterances use them too, and `synthetic_connected_share=p` has
that share of them said by one synthetic voice each.  `converted=K` adds K
voices made from the training recordings themselves (`praat<k>`: one
training speaker's digits with new formants, pitch and duration, Praat's
"Change gender"; `with_converted_voices`), which count as synthetic voices
for the connected utterances.  No test set ever holds one.

Bad input (`read_wav`, `decode_wav`): an empty, truncated or non-WAV file, an
unsupported encoding or a stereo file raises `DataError` naming the file;
another sample rate is resampled to 8 kHz (FFT resampling, `resample`);
recordings that are silence only (peak below `SILENCE_PEAK`) are left out of
the dataset and counted in `info["skipped_silent"]`.
"""

from __future__ import annotations

import io
import itertools
import os
import pathlib
import re
import struct
import tarfile
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from zoo.data import (
    DATASETS,
    atomic_write,
    DataBundle,
    DataError,
    OfflineArchive,
    write_json,
)

__all__ = [
    "SAMPLE_RATE",
    "DIGIT_WORDS",
    "BLANK_INDEX",
    "LABEL_PAD",
    "SPEAKERS",
    "FSDD_ARCHIVE",
    "Recordings",
    "SpeechBundle",
    "decode_wav",
    "read_wav",
    "encode_wav",
    "resample",
    "speed_perturb",
    "load_fsdd_recordings",
    "split_indices",
    "connected_utterances",
    "render_utterance",
    "make_speech_dataset",
    "pad_waveforms",
    "transcript",
    "fsdd",
    "with_synthetic_voices",
    "with_converted_voices",
]

SAMPLE_RATE = 8000
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
BLANK_INDEX = len(DIGIT_WORDS)  # CTC blank: the last class
LABEL_PAD = -1
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "yweweler")
FSDD_ARCHIVE = "fsdd-recordings.tar.gz"
SILENCE_PEAK = 1e-3  # |sample| below this everywhere: a silence-only clip
CONNECTED_DEFAULTS = {"num_train": 2000, "num_test": 500, "min_digits": 1, "max_digits": 7,
                      "min_gap": 0.05, "max_gap": 0.3, "edge": 0.1, "mix_speakers": 0.0}

_CACHE_FORMAT = 1
_MEMBER_RE = re.compile(r"^(?:\./)?(?:.*/)?recordings/(\d)_([A-Za-z]+)_(\d+)\.wav$")
_FORMATS = {1: "PCM", 3: "IEEE float", 0xFFFE: "extensible"}


# ---------------------------------------------------------------------------
# WAV decoding


def _chunks(data: bytes, name: str):
    """{chunk id: (offset, declared size)} of a RIFF/WAVE file (first occurrence of each)."""
    if len(data) == 0:
        raise DataError(f"{name}: empty file (0 bytes); expected a WAV file (RIFF/WAVE, mono PCM)")
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        head = data[:12]
        raise DataError(f"{name}: not a WAV file (starts with {head!r}; expected b'RIFF....WAVE'); "
                        "pass a WAV file (mono PCM, 8 kHz preferred)")
    if data[:4] == b"RIFX":
        raise DataError(f"{name}: big-endian WAV (RIFX) is not supported; convert it to little-endian PCM WAV")
    chunks, pos = {}, 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunks.setdefault(cid, (pos + 8, size))
        if cid == b"data":
            break  # audio runs to the end (or to its declared size)
        pos += 8 + size + (size & 1)
    return chunks


def decode_wav(data: bytes, *, name: str = "<bytes>", sample_rate: int | None = SAMPLE_RATE,
               mono: str = "error") -> tuple[np.ndarray, int]:
    """Decode WAV bytes to float32 samples in [-1, 1].

    Supports PCM 8/16/24/32-bit and IEEE float 32/64-bit (plain or
    WAVE_FORMAT_EXTENSIBLE).  16-bit PCM sample `s` becomes `s / 32768`;
    8-bit (unsigned) `(s - 128) / 128`; 24- and 32-bit likewise scaled by
    `2 ** (bits - 1)`.

    Args:
        data: the file's bytes.
        name: the file or archive member name, used in error messages.
        sample_rate: resample to this rate (FFT resampling); None keeps the file's rate.
        mono: what to do with several channels: "error" (raise) or "mix" (average them).

    Returns:
        (samples float32 `(N,)`, sample rate int).

    Raises:
        DataError: empty, truncated, not WAV, unsupported encoding, several
            channels with `mono="error"`, or no audio frames; the message
            names the file.
    """
    chunks = _chunks(bytes(data), name)
    if b"fmt " not in chunks:
        raise DataError(f"{name}: WAV file without a 'fmt ' chunk (truncated or corrupt); expected a PCM WAV file")
    off, size = chunks[b"fmt "]
    if size < 16 or off + 16 > len(data):
        raise DataError(f"{name}: truncated WAV header ('fmt ' chunk of {size} bytes, file of {len(data)} bytes)")
    tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", data[off:off + 16])
    if tag == 0xFFFE and size >= 40:
        tag = struct.unpack("<H", data[off + 24:off + 26])[0]  # sub-format GUID starts with the real tag
    if tag not in (1, 3) or (tag == 1 and bits not in (8, 16, 24, 32)) or (tag == 3 and bits not in (32, 64)):
        raise DataError(f"{name}: unsupported WAV encoding (format tag {tag} {_FORMATS.get(tag, '?')}, {bits} bits); "
                        "expected PCM 8/16/24/32-bit or float 32/64-bit")
    if channels < 1 or rate < 1:
        raise DataError(f"{name}: invalid WAV header ({channels} channels, {rate} Hz)")
    if channels > 1 and mono != "mix":
        raise DataError(f"{name}: {channels} channels (stereo); expected mono audio: mix it down first "
                        "(e.g. `sox in.wav -c 1 out.wav`)")
    if b"data" not in chunks:
        raise DataError(f"{name}: WAV file without a 'data' chunk (truncated or corrupt)")
    off, size = chunks[b"data"]
    available = len(data) - off
    if size == 0xFFFFFFFF or (size == 0 and available > 0):  # streamed WAV: size unknown
        size = available
    if size > available:
        raise DataError(f"{name}: truncated WAV file: the header announces {size} bytes of audio, "
                        f"the file holds {available}")
    width = bits // 8
    frames = size // (width * channels)
    if frames == 0:
        raise DataError(f"{name}: WAV file with no audio frames (0 samples)")
    raw = data[off:off + frames * width * channels]
    if tag == 3:
        x = np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float32)
    elif bits == 8:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
    else:
        x = (np.frombuffer(raw, "<i2" if bits == 16 else "<i4") / float(1 << (bits - 1))).astype(np.float32)
    x = x.reshape(frames, channels).mean(axis=1, dtype=np.float32) if channels > 1 else x
    if sample_rate is not None and rate != sample_rate:
        x, rate = resample(x, rate, sample_rate), int(sample_rate)
    return np.ascontiguousarray(x, np.float32), int(rate)


def read_wav(path: str | os.PathLike, *, sample_rate: int | None = SAMPLE_RATE, mono: str = "error") -> np.ndarray:
    """Read a WAV file as float32 `(N,)` at `sample_rate` (see `decode_wav`).

    Raises:
        DataError: missing file, or anything `decode_wav` refuses (the path is named).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected a WAV file (mono, 8 kHz)")
    return decode_wav(path.read_bytes(), name=str(path), sample_rate=sample_rate, mono=mono)[0]


def encode_wav(samples, sample_rate: int = SAMPLE_RATE, *, channels: int = 1) -> bytes:
    """float samples in [-1, 1] `(N,)` or `(N, channels)` -> 16-bit PCM WAV bytes (the FSDD format)."""
    x = np.asarray(samples, np.float64).reshape(-1, channels)
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, channels,
                         sample_rate, sample_rate * 2 * channels, 2 * channels, 16, b"data", len(pcm))
    return header + pcm


def resample(x: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited (FFT) resampling of float32 `(N,)` from `orig_rate` to `target_rate` Hz.

    The spectrum is cut (downsampling: an ideal low-pass at the new Nyquist
    frequency) or zero-padded, as `scipy.signal.resample` does.  Output length
    is `round(N * target_rate / orig_rate)`.
    """
    x = np.asarray(x, np.float32)
    if orig_rate == target_rate or len(x) == 0:
        return x
    n_out = max(1, int(round(len(x) * target_rate / orig_rate)))
    spec = np.fft.rfft(x.astype(np.float64))
    keep = n_out // 2 + 1
    out_spec = np.zeros(keep, np.complex128)
    m = min(keep, len(spec))
    out_spec[:m] = spec[:m]
    if n_out % 2 == 0 and m == keep and n_out < len(x):
        out_spec[-1] = out_spec[-1].real  # the new Nyquist bin of a real signal is real
    return (np.fft.irfft(out_spec, n_out) * (n_out / len(x))).astype(np.float32)


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """`x` played `factor` times faster: float32 `(round(N / factor),)`, pitch scaled by `factor`.

    Linear interpolation at `factor`-spaced points: for factors near 1
    (0.9-1.1) it is what band-limited resampling (`resample`) gives up to
    a mild low-pass, at a twentieth of the cost, which matters because it
    runs on every training example of every epoch.  The speed
    perturbation of Ko et al., "Audio Augmentation for Speech
    Recognition", Interspeech 2015.
    """
    factor = float(factor)
    if factor <= 0:
        raise ValueError(f"speed_perturb: factor must be positive, got {factor}")
    x = np.asarray(x, np.float32)
    if factor == 1.0 or len(x) == 0:
        return x
    n_out = max(1, int(round(len(x) / factor)))
    return np.interp(np.arange(n_out) * factor, np.arange(len(x)), x).astype(np.float32)


# ---------------------------------------------------------------------------
# Recordings: archive -> cached arrays


@dataclass
class Recordings:
    """All recordings of the dataset, in memory.

    Attributes:
        audio: float32 `(total,)`, every recording back to back.
        offsets: int64 `(R + 1,)`; recording `i` is `audio[offsets[i]:offsets[i + 1]]`.
        digits, takes: int32 `(R,)`.
        speakers: str array `(R,)`.
        names: archive member names `(R,)`.
        source, sha256: where they came from.
        skipped_silent: member names left out as silence-only.
        resampled: how many recordings had another sample rate (resampled to 8 kHz).
    """

    audio: np.ndarray
    offsets: np.ndarray
    digits: np.ndarray
    speakers: np.ndarray
    takes: np.ndarray
    names: np.ndarray
    source: str = ""
    sha256: str | None = None
    skipped_silent: list = field(default_factory=list)
    resampled: int = 0

    def __len__(self) -> int:
        return len(self.digits)

    def wave(self, i: int) -> np.ndarray:
        return self.audio[self.offsets[i]:self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def _build_recordings(items, source, sha256) -> Recordings:
    """[(name, samples, rate_was)] -> Recordings (sorted by name, silent clips left out)."""
    items = sorted(items, key=lambda t: t[0])
    kept, silent, resampled = [], [], 0
    for name, x, was in items:
        resampled += int(was != SAMPLE_RATE)
        if float(np.max(np.abs(x))) < SILENCE_PEAK:
            silent.append(name)
            continue
        kept.append((name, x))
    if silent:
        warnings.warn(f"FSDD: left out {len(silent)} silence-only recording(s): {', '.join(silent[:5])}")
    if not kept:
        raise DataError(f"{source}: no usable recordings (all {len(items)} are silence only)")
    meta = [_MEMBER_RE.match(n) for n, _ in kept]
    lengths = np.array([len(x) for _, x in kept], np.int64)
    return Recordings(
        audio=np.concatenate([x for _, x in kept]).astype(np.float32),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        digits=np.array([int(m.group(1)) for m in meta], np.int32),
        speakers=np.array([m.group(2).lower() for m in meta]),
        takes=np.array([int(m.group(3)) for m in meta], np.int32),
        names=np.array([n for n, _ in kept]),
        source=source, sha256=sha256, skipped_silent=silent, resampled=resampled,
    )


def _read_archive(archive: pathlib.Path) -> list:
    raw = archive.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = zlib.decompress(raw, 31)
        except zlib.error as exc:
            raise DataError(f"{archive}: not a valid gzip file ({exc}); expected {FSDD_ARCHIVE}: "
                            "replace it with the pinned copy") from exc
    items = []
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for m in tar:
                if not m.isfile() or not _MEMBER_RE.match(m.name):
                    continue
                x, rate = decode_wav(tar.extractfile(m).read(), name=f"{archive.name}:{m.name}", sample_rate=None)
                was = rate
                if rate != SAMPLE_RATE:
                    x = resample(x, rate, SAMPLE_RATE)
                items.append((m.name, x, was))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: not a readable tar archive ({exc}); expected {FSDD_ARCHIVE} with layout "
                        "recordings/<digit>_<speaker>_<take>.wav: replace it with the pinned copy") from exc
    if not items:
        raise DataError(f"{archive}: no recordings/<digit>_<speaker>_<take>.wav members; expected the FSDD layout")
    return items


FSDD = OfflineArchive("FSDD", FSDD_ARCHIVE, "recordings/<digit>_<speaker>_<take>.wav", "spoken_digit", "fsdd")


def _from_tfds() -> list:
    def read(tfds):
        items = []
        for ex in tfds.as_numpy(tfds.load("spoken_digit", split="train")):
            fname = ex["audio/filename"].decode() if isinstance(ex["audio/filename"], bytes) else str(ex["audio/filename"])
            name = "recordings/" + pathlib.PurePosixPath(fname).name
            if not _MEMBER_RE.match(name):
                continue
            audio = np.asarray(ex["audio"], np.float32)
            items.append((name, audio / 32768.0 if np.abs(audio).max() > 1.5 else audio, SAMPLE_RATE))
        return items

    return FSDD.from_tfds(read)


def load_fsdd_recordings(data_dir: str | os.PathLike | None = None) -> Recordings:
    """Every FSDD recording, decoded at 8 kHz (cached after the first call).

    With a data folder this reads `<data_dir>/fsdd-recordings.tar.gz`
    (checked against `SHA256SUMS`) in memory and caches the decoded audio
    under `cache_dir("fsdd", sha256[:16])`; without one it uses
    tensorflow-datasets `spoken_digit`.

    Raises:
        DataError: missing/corrupt archive or a bad recording (named).
    """
    found = FSDD.locate(data_dir)
    if found is None:
        return _build_recordings(_from_tfds(), "tensorflow-datasets:spoken_digit", None)
    archive, digest, cache = found
    meta_path = cache / "meta.json"
    if meta_path.is_file() and (cache / "audio.npz").is_file():
        try:
            import json

            meta = json.loads(meta_path.read_text())
            z = np.load(cache / "audio.npz")
            if meta.get("format") == _CACHE_FORMAT:
                return Recordings(z["audio"], z["offsets"], z["digits"], z["speakers"], z["takes"], z["names"],
                                  str(archive), digest, meta.get("skipped_silent", []), meta.get("resampled", 0))
        except (OSError, ValueError, KeyError):
            pass  # corrupt cache: rebuild
    rec = _build_recordings(_read_archive(archive), str(archive), digest)
    with atomic_write(cache / "audio.npz") as tmp:
        np.savez(tmp, audio=rec.audio, offsets=rec.offsets, digits=rec.digits, speakers=rec.speakers,
                 takes=rec.takes, names=rec.names)
    write_json(meta_path, {"format": _CACHE_FORMAT, "source": str(archive), "sha256": digest,
                           "count": len(rec), "sample_rate": SAMPLE_RATE, "skipped_silent": rec.skipped_silent,
                           "resampled": rec.resampled})
    return rec


SYNTHETIC_PREFIXES = ("espeak", "flite", "praat")


def _append_voices(rec: Recordings, made: list) -> tuple[Recordings, np.ndarray]:
    """`rec` with `made` ([(prefix, {"digit", "voice", "name", "audio"})]) appended, and their indices (int64)."""
    lengths = np.array([len(m["audio"]) for _, m in made], np.int64)
    start = len(rec)
    merged = Recordings(
        audio=np.concatenate([rec.audio] + [m["audio"] for _, m in made]).astype(np.float32),
        offsets=np.concatenate([rec.offsets, rec.offsets[-1] + np.cumsum(lengths)]).astype(np.int64),
        digits=np.concatenate([rec.digits, [m["digit"] for _, m in made]]).astype(np.int32),
        speakers=np.concatenate([rec.speakers, [f"{engine}{m['voice']}" for engine, m in made]]),
        takes=np.concatenate([rec.takes, np.zeros(len(made), np.int32)]).astype(np.int32),
        names=np.concatenate([rec.names, [m["name"] for _, m in made]]),
        source=rec.source, sha256=rec.sha256, skipped_silent=rec.skipped_silent, resampled=rec.resampled)
    return merged, np.arange(start, start + len(made), dtype=np.int64)


def with_synthetic_voices(rec: Recordings, voices: int, *, seed: int = 0, flite: int = 0, l2: float = 0.0
                          ) -> tuple[Recordings, np.ndarray]:
    """`rec` with `voices` synthetic voices' digits appended, and the appended indices (int64 `(voices * 10,)`).

    The first `voices - flite` are eSpeak NG voices (`synthetic.synthetic_digits`),
    speakers `"espeak<k>"`; the last `flite` are CMU Flite voices
    (`synthetic.flite_digits`), speakers `"flite<k>"`; all take 0.
    `split_indices` never returns them (they are not FSDD speakers), so they
    reach training only through these indices.  `l2`: the share of the
    eSpeak voices with a second-language accent (`synthetic.l2_accent`).
    """
    from applications.speech.synthetic import SynthesisError, flite_digits, synthetic_digits

    flite = min(int(flite), int(voices))
    try:
        made = [(SYNTHETIC_PREFIXES[0], m) for m in
                (synthetic_digits(voices - flite, seed=seed, sample_rate=SAMPLE_RATE, l2=l2) if voices > flite else [])]
        made += [(SYNTHETIC_PREFIXES[1], m) for m in
                 (flite_digits(flite, seed=seed, sample_rate=SAMPLE_RATE) if flite else [])]
    except SynthesisError as e:
        raise DataError(f"fsdd: {e}") from None
    return _append_voices(rec, made)


def with_converted_voices(rec: Recordings, indices: Sequence[int], voices: int, *, seed: int = 0
                          ) -> tuple[Recordings, np.ndarray]:
    """`rec` with `voices` Praat-converted voices appended (`synthetic.converted_digits`), and their indices.

    Each voice is one speaker of `indices` (the training recordings: nothing
    else is converted) saying each digit once with new formants, pitch and
    duration; speakers `"praat<k>"`, take 0, returned int64 `(<= voices * 10,)`.
    """
    from applications.speech.synthetic import SynthesisError, converted_digits

    sources = [(rec.speakers[i], int(rec.digits[i]), rec.wave(i)) for i in indices]
    try:
        made = converted_digits(voices, sources, seed=seed, sample_rate=SAMPLE_RATE)
    except SynthesisError as e:
        raise DataError(f"fsdd: {e}") from None
    return _append_voices(rec, [(SYNTHETIC_PREFIXES[2], m) for m in made])


# ---------------------------------------------------------------------------
# Splits and connected digits


def split_indices(rec: Recordings, split: str = "conventional") -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) into `rec` for a split name.

    Args:
        split: "conventional" (takes 0-4 test) or "speaker:<name>" (that speaker is the test set).

    Raises:
        DataError: unknown split or speaker, or an empty side.
    """
    if split == "conventional":
        test = rec.takes < 5
    elif isinstance(split, str) and split.startswith("speaker:"):
        who = split.split(":", 1)[1].lower()
        known = sorted(set(rec.speakers.tolist()))
        if who not in known:
            raise DataError(f"fsdd: unknown speaker {who!r} in split {split!r}; speakers: {', '.join(known)}")
        test = rec.speakers == who
    else:
        raise DataError(f"fsdd: unknown split {split!r}; use 'conventional' or 'speaker:<name>' "
                        f"(speakers: {', '.join(SPEAKERS)})")
    train, test = np.flatnonzero(~test), np.flatnonzero(test)
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"fsdd: split {split!r} leaves {len(train)} training and {len(test)} test recordings")
    return train, test


@dataclass(frozen=True)
class Utterance:
    """A connected-digit utterance: recordings joined with silences.

    `recordings[i]` is an index into `Recordings`; `gaps` has one more entry
    than `recordings` (lead, between each pair, tail), in samples.
    """

    recordings: tuple
    gaps: tuple


def _settings(connected) -> dict:
    if connected is True:
        connected = {}
    unknown = set(connected) - set(CONNECTED_DEFAULTS)
    if unknown:
        raise DataError(f"fsdd: unknown connected-digit settings {sorted(unknown)}; valid: {sorted(CONNECTED_DEFAULTS)}")
    s = {**CONNECTED_DEFAULTS, **connected}
    if not 1 <= int(s["min_digits"]) <= int(s["max_digits"]):
        raise DataError(f"fsdd: need 1 <= min_digits <= max_digits, got {s['min_digits']}, {s['max_digits']}")
    if not 0 <= float(s["mix_speakers"]) <= 1:
        raise DataError(f"fsdd: need 0 <= mix_speakers <= 1, got {s['mix_speakers']}")
    if not 0 <= float(s["min_gap"]) <= float(s["max_gap"]):
        raise DataError(f"fsdd: need 0 <= min_gap <= max_gap, got {s['min_gap']}, {s['max_gap']}")
    return s


def connected_utterances(rec: Recordings, indices: Sequence[int], count: int, *, seed: int, stream: str,
                         min_digits: int = 1, max_digits: int = 7, min_gap: float = 0.05, max_gap: float = 0.3,
                         edge: float = 0.1, mix_speakers: float = 0.0, **_) -> list[Utterance]:
    """`count` connected-digit utterances drawn from the recordings `indices` only.

    Each utterance picks a speaker (uniformly among those in `indices`), a
    length in `[min_digits, max_digits]`, that many of the speaker's
    recordings (with replacement), gaps of `min_gap`-`max_gap` seconds
    between them and 0-`edge` seconds before and after.  With probability
    `mix_speakers` an utterance draws its recordings from all of `indices`
    instead (digits of several speakers in one utterance: speaker changes
    inside an utterance, for training; 0, the default, draws nothing extra,
    so the utterances are exactly those of before the option).  The result depends
    only on (`seed`, `stream`, the settings and `indices`): the same call
    gives the same utterances.

    Args:
        stream: names the random stream, e.g. "train/epoch3" or "test".
    """
    indices = np.asarray(indices)
    rng = np.random.default_rng([int(seed), zlib.crc32(stream.encode())])
    speakers = rec.speakers[indices]
    by_speaker = {s: indices[speakers == s] for s in sorted(set(speakers.tolist()))}
    names = list(by_speaker)
    out = []
    for _ in range(int(count)):
        pool = by_speaker[names[rng.integers(len(names))]]
        if mix_speakers > 0 and rng.random() < float(mix_speakers):
            pool = indices
        k = int(rng.integers(int(min_digits), int(max_digits) + 1))
        picks = tuple(int(i) for i in rng.choice(pool, k))
        gaps = rng.uniform(min_gap, max_gap, k + 1)
        gaps[[0, -1]] = rng.uniform(0, edge, 2)
        out.append(Utterance(picks, tuple(int(round(g * SAMPLE_RATE)) for g in gaps)))
    return out


def render_utterance(rec: Recordings, utt: Utterance) -> tuple[np.ndarray, list[int]]:
    """(waveform float32 `(N,)`, digit labels) of a connected utterance."""
    parts = [np.zeros(utt.gaps[0], np.float32)]
    for i, g in zip(utt.recordings, utt.gaps[1:]):
        parts += [rec.wave(i), np.zeros(g, np.float32)]
    return np.concatenate(parts), [int(rec.digits[i]) for i in utt.recordings]


def transcript(labels, tokens: Sequence[str] = DIGIT_WORDS) -> str:
    """Token ids `(L,)` (ids outside the token set, such as -1 padding, dropped) -> "three five nine"."""
    return " ".join(tokens[int(t)] for t in np.asarray(labels).reshape(-1) if 0 <= int(t) < len(tokens))


# ---------------------------------------------------------------------------
# Pipelines


def pad_waveforms(waves: Sequence[np.ndarray], pad_multiple: int = 1) -> dict:
    """Waveforms of any lengths -> `{"waveform": float32 (B, N), "length": int32 (B,)}`, the model's inputs.

    Each row is zero-padded after its own length; `N` is the longest (at
    least 1) rounded up to a multiple of `pad_multiple`.
    """
    n = max(1, max((len(w) for w in waves), default=1))
    n = -(-n // pad_multiple) * pad_multiple
    x = np.zeros((len(waves), n), np.float32)
    for i, w in enumerate(waves):
        x[i, :len(w)] = w
    return {"waveform": x, "length": np.array([len(w) for w in waves], np.int32)}


def _pad_batch(waves: list, labels: list, label_width: int, pad_multiple: int, speakers=None):
    y = np.full((len(waves), label_width), LABEL_PAD, np.int32)
    for i, lab in enumerate(labels):
        y[i, :len(lab)] = lab
    if speakers is not None:
        return pad_waveforms(waves, pad_multiple), (y, np.asarray(speakers, np.int32))
    return pad_waveforms(waves, pad_multiple), y


def make_speech_dataset(rec: Recordings, items: Any, *, batch_size: int, training: bool, seed: int = 0,
                        label_width: int, pad_multiple: int = 1600, bucket: int = 8,
                        connected_per_epoch=None, speed: float = 0.0, speaker_ids=None, edge_prob: float = 0.0,
                        edge_max: float = 1.0):
    """Batched, prefetched `tf.data` pipeline over recordings and connected utterances.

    Args:
        rec: the recordings.
        items: a list whose entries are recording indices (isolated digits)
            or `Utterance`s (connected digits).
        batch_size: examples per batch.
        training: shuffle every epoch (seeded by (`seed`, epoch)), bucket by
            length and drop the last partial batch; else fixed order, all examples.
        label_width: labels are padded with -1 to this width.
        pad_multiple: waveforms are zero-padded to a multiple of this many samples
            (few distinct shapes -> few retraces).
        bucket: when training, sort windows of `bucket` batches by length
            before batching (less padding), then shuffle the batches.
        connected_per_epoch: optional callable `epoch -> list[Utterance]`
            adding fresh connected utterances to every training epoch.
        speed: when training, play each example at a random speed in
            `[1 - speed, 1 + speed]` (`speed_perturb`: tempo and pitch
            change together, the usual speed perturbation); 0: off.
        speaker_ids: optional `{speaker name: class id}`; when given, the
            labels are `(transcript ids, speaker id)`, the speaker id of an
            example -1 when its speaker is not in the mapping or a connected
            utterance mixes speakers (for a speaker-adversarial head).
        edge_prob, edge_max: when training, `edge_prob` of the isolated
            recordings get silence (zeros) before and after, each uniform in
            `[0, edge_max]` seconds (after the speed perturbation; the
            model's training noise then lies under it too), drawn from a
            random stream of their own, so 0 (off) leaves every other draw
            as it was.  A caller's clip is rarely cut as tightly as FSDD's.
            Connected utterances have edges of their own (`connected_utterances`'
            `edge`).

    Training epochs are planned from the examples' lengths alone (order,
    speed factors, length buckets, batch order: the same random draws as
    rendering everything first would take) and each batch is rendered when
    the pipeline asks for it, so the first batch is ready after one batch's
    work and rendering overlaps training (`prefetch`).

    Returns:
        tf.data.Dataset of `({"waveform": float32 (B, N), "length": int32 (B,)}, int32 (B, label_width))`;
        with `speaker_ids`, the labels are `(int32 (B, label_width), int32 (B,))`.
    """
    import tensorflow as tf

    items = list(items)
    extra = len(connected_per_epoch(0)) if connected_per_epoch else 0
    total = len(items) + extra
    if total == 0:
        raise DataError("fsdd: no examples in this split (check limit and split)")
    batch_size = int(batch_size)
    drop = bool(training and total >= batch_size)
    num_batches = total // batch_size if drop else -(-total // batch_size)
    epochs = itertools.count()

    def example(item):
        if isinstance(item, Utterance):
            return render_utterance(rec, item)
        return rec.wave(int(item)), [int(rec.digits[int(item)])]

    lengths = rec.lengths

    def speaker(item):
        members = item.recordings if isinstance(item, Utterance) else (int(item),)
        names = set(rec.speakers[list(members)].tolist())
        return int(speaker_ids.get(names.pop(), -1)) if len(names) == 1 else -1

    def batch(chosen, rendered):
        """`_pad_batch` of the items `chosen`, rendered as `[(waveform, labels), ...]`."""
        who = [speaker(it) for it in chosen] if speaker_ids is not None else None
        return _pad_batch([w for w, _ in rendered], [lab for _, lab in rendered], label_width, pad_multiple, who)

    def raw_length(item):
        if isinstance(item, Utterance):
            return int(sum(item.gaps) + sum(int(lengths[i]) for i in item.recordings))
        return int(lengths[int(item)])

    def perturbed_length(n, factor):
        """`len(speed_perturb(x, factor))` for `len(x) == n`, without rendering `x`."""
        if factor == 1.0 or n == 0:
            return n
        return max(1, int(round(n / float(factor))))

    def gen():
        if not training:
            for s in range(0, total, batch_size):
                chosen = items[s:s + batch_size]
                yield batch(chosen, [example(i) for i in chosen])
            return
        # The epoch's order, speeds and batches are planned from lengths alone (the same random draws, in the
        # same order, as rendering first would take), then each batch is rendered when it is asked for: the
        # first batch is ready after one batch's work, not the whole epoch's.
        epoch = next(epochs)
        rng = np.random.default_rng([int(seed), epoch])
        pool = items + (list(connected_per_epoch(epoch)) if connected_per_epoch else [])
        order = [pool[i] for i in rng.permutation(len(pool))]
        factors = rng.uniform(1.0 - speed, 1.0 + speed, len(order)) if speed else np.ones(len(order))
        sizes = [perturbed_length(raw_length(it), f) for it, f in zip(order, factors)]
        edges = np.zeros((len(order), 2), np.int64)
        if edge_prob:
            edge_rng = np.random.default_rng([int(seed), epoch, zlib.crc32(b"edges")])
            padded = (edge_rng.random(len(order)) < float(edge_prob)) & np.array(
                [not isinstance(it, Utterance) for it in order], bool)
            edges = np.round(edge_rng.uniform(0.0, float(edge_max) * SAMPLE_RATE, (len(order), 2))).astype(np.int64)
            edges[~padded] = 0
            sizes = [n + int(e.sum()) for n, e in zip(sizes, edges)]
        window = batch_size * max(1, int(bucket))
        batches = []
        for s in range(0, len(order), window):
            chunk = sorted(range(s, min(s + window, len(order))), key=lambda k: sizes[k])  # stable, as before
            batches += [chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size)]
        if drop:  # windows hold whole batches, so only the last one can be short
            batches = [b for b in batches if len(b) == batch_size]
        for k in rng.permutation(len(batches)):
            rendered = []
            for j in batches[k]:
                w, lab = example(order[j])
                w = speed_perturb(w, factors[j]) if speed else w
                if edges[j].any():
                    w = np.concatenate([np.zeros(edges[j, 0], np.float32), w, np.zeros(edges[j, 1], np.float32)])
                rendered.append((w, lab))
            yield batch([order[j] for j in batches[k]], rendered)

    labels = tf.TensorSpec([None, label_width], tf.int32)
    if speaker_ids is not None:
        labels = (labels, tf.TensorSpec([None], tf.int32))
    sig = ({"waveform": tf.TensorSpec([None, None], tf.float32), "length": tf.TensorSpec([None], tf.int32)},
           labels)
    ds = tf.data.Dataset.from_generator(gen, output_signature=sig)
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    return ds.prefetch(tf.data.AUTOTUNE)


@dataclass
class SpeechBundle(DataBundle):
    """A `DataBundle` with the connected-digit test set and per-example facts for the metrics.

    Attributes:
        test_connected: connected-digit test pipeline (same structure), or None.
        test_speakers: speaker of each isolated test example, in `test` order.
        test_references: reference transcript of each isolated test example.
        connected_references: reference transcript of each connected test utterance.
        connected_members: recording names of each connected test utterance (split purity).
        speaker_pipelines: `() -> (train, val)` like `train` and `val` but
            whose labels are `(transcript ids, speaker id)`
            (`make_speech_dataset(speaker_ids=...)`; ids index
            `info["train_speakers"]`, -1 for a speaker training never hears):
            for a speaker-adversarial head
            (`applications.speech.task.speaker_adversarial`), which alone
            builds them, so a plain load pays nothing for them.
    """

    test_connected: Any = None
    test_speakers: list = field(default_factory=list)
    test_references: list = field(default_factory=list)
    connected_references: list = field(default_factory=list)
    connected_members: list = field(default_factory=list)
    speaker_pipelines: Any = None


@DATASETS.register("fsdd")
def fsdd(
    data_dir: str | os.PathLike | None = None,
    *,
    batch_size: int = 32,
    limit: int | None = None,
    seed: int = 0,
    split: str = "conventional",
    connected: bool | Mapping[str, Any] = False,
    isolated: bool = True,
    pad_multiple: int = 1600,
    bucket: int = 8,
    speed: float = 0.0,
    synthetic: int = 0,
    synthetic_connected: bool = False,
    synthetic_connected_share: float = 0.0,
    synthetic_flite: int = 0,
    synthetic_l2: float = 0.0,
    converted: int = 0,
    edge_prob: float = 0.0,
    edge_max: float = 1.0,
) -> SpeechBundle:
    """FSDD as a `SpeechBundle` of waveform pipelines (see the module docstring).

    Args:
        data_dir: folder holding `fsdd-recordings.tar.gz`; None: `$ZOO_DATA_DIR`, else TFDS.
        batch_size: examples per batch.
        limit: keep the first `limit` recordings of each side of the split
            after a seeded shuffle (smoke runs); connected counts are capped by
            it too, and so are synthetic voices (at most ceil(limit / 10), so a
            smoke run adds at most about `limit` synthetic recordings).
        seed: seed of the subsets, shuffling and connected utterances.
        split: "conventional" or "speaker:<name>" (leave-one-speaker-out).
        connected: False (isolated digits only), True or a dict of
            `CONNECTED_DEFAULTS` overrides (`num_train` fresh utterances per
            epoch added to training, `num_test` fixed test utterances,
            `min_digits`, `max_digits`, `min_gap`, `max_gap`, `edge` seconds,
            `mix_speakers`: fraction of training utterances mixing speakers).
        isolated: train on the isolated recordings too (with connected digits).
        pad_multiple: pad waveforms to a multiple of this many samples.
        bucket: length-bucketing window, in batches (1: no bucketing).
        speed: speed perturbation of training examples, factors in
            `[1 - speed, 1 + speed]` (0: off; see `speed_perturb`).
        synthetic: add this many synthetic eSpeak NG voices to the training
            set, each saying every digit once (`synthetic.synthetic_digits`,
            seeded by `seed`; training only, never in a test set; 0: off).
        synthetic_connected: let connected training utterances use the
            synthetic voices too: each utterance's speaker is drawn from
            the recorded speakers and the voices together, so nearly all
            are synthetic when the voices outnumber the speakers (False:
            recorded speakers only).
        synthetic_connected_share: instead, this share (in [0, 1]) of
            each epoch's `num_train` connected utterances (rounded) says
            digits of one synthetic voice, the rest one recorded
            speaker's; the recorded ones are the first of the utterances
            that 0 (the default) would draw.
        synthetic_flite: of the `synthetic` voices, this many are CMU Flite
            voices (`synthetic.flite_digits`: five voices learnt from real
            speakers, at random rates, pitches and vocal-tract lengths; needs
            the `flite` program), the rest eSpeak NG's (0: all eSpeak).
        synthetic_l2: the share (in [0, 1]) of the eSpeak voices that speak
            with a random second-language accent (`synthetic.l2_accent`:
            theta as s/t/f, w as v, devoicing, full vowels for lax and
            reduced ones, pure vowels for diphthongs; 0: none).
        converted: add this many voices converted from the training
            recordings (`synthetic.converted_digits`: one training speaker
            each, formants x0.9-1.25, median pitch 75-280 Hz, pitch spread
            x0.5-1.5, duration x0.85-1.2, drawn per voice; seeded by
            `seed`; capped like `synthetic` by `limit`; 0: off).  They join
            the synthetic voices' pool of connected utterances.
        edge_prob, edge_max: this share of the isolated training recordings
            get 0-`edge_max` seconds of silence before and after, each drawn
            apart (`make_speech_dataset`; 0: off; connected utterances have
            `connected`'s `edge`).

    Returns:
        SpeechBundle: `train` (shuffled every epoch), `val` (the isolated test
        set: monitoring only, nothing is selected on it), `test` (isolated
        test recordings, in order), `test_connected`; `info` has the token
        set, blank index, label padding, counts, speakers and source.
        `preprocessor` is None: the log-mel front end is part of the model.

    Raises:
        DataError: missing/corrupt data or a bad setting.
    """
    if limit is not None and int(limit) < 1:
        raise DataError(f"fsdd: limit must be a positive number of examples or None, got {limit}")
    if int(batch_size) < 1:
        raise DataError(f"fsdd: batch_size must be >= 1, got {batch_size}")
    if not 0.0 <= float(speed) < 0.5:
        raise DataError(f"fsdd: speed must be in [0, 0.5) (factors 1 +- speed), got {speed}")
    if int(synthetic) < 0:
        raise DataError(f"fsdd: synthetic must be a number of voices >= 0, got {synthetic}")
    if not 0 <= int(synthetic_flite) <= int(synthetic):
        raise DataError(f"fsdd: synthetic_flite ({synthetic_flite}) counts Flite voices among the synthetic "
                        f"ones, so it must be in [0, synthetic={synthetic}]; raise data.synthetic or lower it")
    if int(converted) < 0:
        raise DataError(f"fsdd: converted must be a number of voices >= 0, got {converted}")
    if not 0.0 <= float(synthetic_l2) <= 1.0:
        raise DataError(f"fsdd: synthetic_l2 is a share of the synthetic voices in [0, 1], got {synthetic_l2}")
    if not 0.0 <= float(synthetic_connected_share) <= 1.0:
        raise DataError(f"fsdd: synthetic_connected_share must be in [0, 1], got {synthetic_connected_share}")
    if not 0.0 <= float(edge_prob) <= 1.0 or float(edge_max) < 0:
        raise DataError(f"fsdd: edge_prob is a share in [0, 1] and edge_max seconds >= 0, got {edge_prob}, {edge_max}")
    if synthetic_connected and synthetic_connected_share:
        raise DataError("fsdd: set synthetic_connected (pool voices and speakers) or synthetic_connected_share, not both; "
                        "with synthetic_connected, pass synthetic_connected_share=0 "
                        "(`--set data.synthetic_connected_share=0`: fsdd_ctc's spec sets a share)")
    rec = load_fsdd_recordings(data_dir)
    train_idx, test_idx = split_indices(rec, split)
    rng = np.random.default_rng(seed)
    if limit:
        train_idx = np.sort(rng.permutation(train_idx)[:int(limit)])
        test_idx = np.sort(rng.permutation(test_idx)[:int(limit)])
    recorded_train = train_idx
    cap = -(-int(limit) // len(DIGIT_WORDS)) if limit else None  # a smoke run: about `limit` made recordings
    voices, converted = (int(n) if cap is None else min(int(n), cap) for n in (synthetic, converted))
    flite = min(int(synthetic_flite), voices)
    synth_idx = np.zeros(0, np.int64)
    if voices:
        rec, synth_idx = with_synthetic_voices(rec, voices, seed=seed, flite=flite, l2=float(synthetic_l2))
    if converted:
        rec, conv_idx = with_converted_voices(rec, recorded_train, converted, seed=seed)
        synth_idx = np.concatenate([synth_idx, conv_idx])
    train_idx = np.concatenate([train_idx, synth_idx])
    pooled = bool(synthetic_connected and len(synth_idx))
    share = float(synthetic_connected_share) if len(synth_idx) else 0.0
    conn = _settings(connected) if connected else None
    label_width = int(conn["max_digits"]) if conn else 1
    if conn and limit:
        conn = {**conn, "num_train": min(int(conn["num_train"]), int(limit)),
                "num_test": min(int(conn["num_test"]), int(limit))}
    if not isolated and not conn:
        raise DataError("fsdd: isolated=False needs connected digits (connected=True or a dict)")
    per_epoch = None
    if conn and int(conn["num_train"]) > 0:
        def per_epoch(epoch):
            stream, count = f"{split}/train/epoch{epoch}", int(conn["num_train"])
            if pooled:
                return connected_utterances(rec, train_idx, count, seed=seed, stream=stream, **conn)
            synthetic_count = int(round(share * count))
            recorded = connected_utterances(rec, recorded_train, count - synthetic_count, seed=seed, stream=stream,
                                            **conn)
            if not synthetic_count:
                return recorded
            return recorded + connected_utterances(rec, synth_idx, synthetic_count, seed=seed,
                                                   stream=f"{stream}/synthetic", **conn)
    common = dict(batch_size=batch_size, label_width=label_width, pad_multiple=int(pad_multiple))
    training = dict(training=True, seed=seed, bucket=bucket, connected_per_epoch=per_epoch, speed=float(speed),
                    edge_prob=float(edge_prob), edge_max=float(edge_max), **common)
    train = make_speech_dataset(rec, list(train_idx) if isolated else [], **training)
    test = make_speech_dataset(rec, list(test_idx), training=False, **common)
    train_speakers = sorted(set(rec.speakers[train_idx].tolist()))

    def speaker_pipelines():
        ids = {name: k for k, name in enumerate(train_speakers)}
        return (make_speech_dataset(rec, list(train_idx) if isolated else [], speaker_ids=ids, **training),
                make_speech_dataset(rec, list(test_idx), training=False, speaker_ids=ids, **common))
    test_conn, conn_utts = None, []
    if conn and int(conn["num_test"]) > 0:
        # the test set is one speaker per utterance whatever mix_speakers is (mixing is a training augmentation)
        conn_utts = connected_utterances(rec, test_idx, int(conn["num_test"]), seed=seed,
                                         stream=f"{split}/test", **{**conn, "mix_speakers": 0.0})
        test_conn = make_speech_dataset(rec, conn_utts, training=False, **common)
    num_train = (len(train_idx) if isolated else 0) + (int(conn["num_train"]) if per_epoch else 0)
    lengths = rec.lengths
    info: dict[str, Any] = {
        "name": "fsdd",
        "tokens": list(DIGIT_WORDS),
        "token_type": "digit words (one token per digit word)",
        "blank_index": BLANK_INDEX,
        "num_classes": BLANK_INDEX + 1,
        "label_padding": LABEL_PAD,
        "label_width": label_width,
        "sample_rate": SAMPLE_RATE,
        "split": split,
        "speakers": sorted(s for s in set(rec.speakers.tolist()) if not s.startswith(SYNTHETIC_PREFIXES)),
        "test_speakers_in_split": sorted(set(rec.speakers[test_idx].tolist())),
        "train_speakers": train_speakers,  # recorded and synthetic: the classes of a speaker-adversarial head
        "num_train": int(num_train),
        "num_train_recordings": int(len(recorded_train)),
        "num_train_synthetic": int(len(train_idx) - len(recorded_train)),
        "synthetic_voices": voices,
        "synthetic_flite_voices": flite if voices else 0,
        "synthetic_l2": float(synthetic_l2) if voices else 0.0,
        "converted_voices": converted,
        "synthetic_connected": pooled,
        "synthetic_connected_share": share,
        "num_val": int(len(test_idx)),
        "val_source": "test (isolated digits; monitoring only)",
        "num_test": int(len(test_idx)),
        "num_test_connected": len(conn_utts),
        "connected": conn,
        "isolated": bool(isolated),
        "source": rec.source,
        "sha256": rec.sha256,
        "batch_size": int(batch_size),
        "seed": int(seed),
        "limit": None if limit is None else int(limit),
        "pad_multiple": int(pad_multiple),
        "bucket": int(bucket),
        "speed": float(speed),
        "edge_prob": float(edge_prob),
        "edge_max": float(edge_max),
        "seconds": {"min": float(lengths.min() / SAMPLE_RATE), "max": float(lengths.max() / SAMPLE_RATE),
                    "mean": float(lengths.mean() / SAMPLE_RATE)},
        "skipped_silent": list(rec.skipped_silent),
        "resampled": int(rec.resampled),
        "drop_remainder": bool(num_train >= int(batch_size)),
        "steps_per_epoch": int(train.cardinality()),
    }
    return SpeechBundle(
        train=train, val=test, test=test, info=info, preprocessor=None, test_connected=test_conn,
        test_speakers=rec.speakers[test_idx].tolist(),
        test_references=[DIGIT_WORDS[int(d)] for d in rec.digits[test_idx]],
        connected_references=[transcript(rec.digits[list(u.recordings)]) for u in conn_utts],
        connected_members=[[str(rec.names[i]) for i in u.recordings] for u in conn_utts],
        speaker_pipelines=speaker_pipelines,
    )
