"""Synthetic FSDD-layout data for the speech tests (imported by them; tests/ is on sys.path).

Recording `<digit>_<speaker>_<take>.wav` is a learnable "word": a tone whose
frequency says the digit (400 + 250 * digit Hz, shifted a little per
speaker), 0.15-0.3 s long under a smooth envelope, plus faint noise; 8 kHz
mono 16-bit PCM like FSDD.
"""

from __future__ import annotations

import numpy as np

from conftest import write_archive

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "yweweler")


def tone(digit: int, speaker: int = 0, seconds: float = 0.2, rate: int = 8000, rng=None) -> np.ndarray:
    """float32 samples of the synthetic word for `digit`."""
    rng = rng or np.random.default_rng(0)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    freq = (400 + 250 * digit) * (1 + 0.02 * (speaker - 2))
    env = np.sin(np.pi * np.arange(n) / n) ** 0.5
    x = 0.4 * env * np.sin(2 * np.pi * freq * t) + 0.005 * rng.standard_normal(n)
    return x.astype(np.float32)


def write_fsdd_archive(root, takes: int = 8, speakers=SPEAKERS, seed: int = 0, override=None):
    """A tiny FSDD-layout archive plus SHA256SUMS; `override={member: bytes}` replaces members. Returns the dir."""
    from applications.speech.data import encode_wav

    rng = np.random.default_rng(seed)

    def members():
        for s, who in enumerate(speakers):
            for d in range(10):
                for k in range(takes):
                    name = f"recordings/{d}_{who}_{k}.wav"
                    data = encode_wav(tone(d, s, rng.uniform(0.15, 0.3), rng=rng))
                    yield name, (override or {}).get(name, data)
        for name, data in (override or {}).items():
            if not name.startswith("recordings/") or name.count("_") != 2:
                yield name, data

    return write_archive(root, "fsdd-recordings.tar.gz", members())


def assert_digit_voices(make) -> list[dict]:
    """The contract of a synthetic-voice engine (`make(voices, seed=...)`): every digit once per voice, the same
    audio for the same seed, other voices for another, 8 kHz words trimmed to 20 ms and scaled to a 0.3-0.9 peak.
    Returns the first draw (3 voices, seed 5)."""
    rate = 8000
    a, b, c = make(3, seed=5), make(3, seed=5), make(3, seed=6)
    assert [m["digit"] for m in a] == list(range(10)) * 3 and [m["voice"] for m in a] == sorted([0, 1, 2] * 10)
    assert all(np.array_equal(x["audio"], y["audio"]) for x, y in zip(a, b))
    assert [m["name"] for m in a] != [m["name"] for m in c]  # another seed draws other voices
    for m in a:
        x = m["audio"]
        assert x.dtype == np.float32 and 0.1 < len(x) / rate < 1.5, m["name"]
        assert 0.29 < np.max(np.abs(x)) <= 0.9 + 1e-6
        loud = np.flatnonzero(np.abs(x) >= 0.02 * np.abs(x).max())
        assert loud[0] <= 0.025 * rate and len(x) - loud[-1] <= 0.025 * rate  # no silence kept but 20 ms
    # a voice's words differ from each other (the engine says the word it is given, not one fixed sound)
    assert len({len(m["audio"]) for m in a[:10]}) > 5
    return a


def vowel(f0=110.0, formants=(700.0, 1200.0, 2500.0), seconds=0.5):
    """A glottal pulse train at `f0` through second-order resonators at `formants`: float32 `(seconds * 8000,)`."""
    n = int(seconds * 8000)
    x = np.zeros(n)
    periods = np.random.default_rng(0).normal(8000 / f0, 0.01 * 8000 / f0, n)  # 1% jitter, as voices
    x[np.round(np.cumsum(periods)).astype(int)[np.cumsum(periods) < n - 1]] = 1.0
    for f in formants:  # y[t] = x[t] + 2 r cos(w) y[t-1] - r^2 y[t-2]
        r, w = np.exp(-np.pi * 80.0 / 8000), 2 * np.pi * f / 8000
        y = np.zeros(n)
        for t in range(n):
            y[t] = x[t] + 2 * r * np.cos(w) * (y[t - 1] if t else 0.0) - r * r * (y[t - 2] if t > 1 else 0.0)
        x = y
    x *= np.hanning(n)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def median_f0(x):
    """Praat's median pitch in Hz of the voiced frames of `x` (8 kHz)."""
    import parselmouth

    f0 = parselmouth.Sound(x.astype(np.float64), sampling_frequency=8000).to_pitch().selected_array["frequency"]
    return float(np.median(f0[f0 > 0]))


def centroid(x, rate: int = 8000) -> float:
    """The spectral centroid of `x` in Hz: where its power sits, on average, in frequency."""
    power = np.abs(np.fft.rfft(x)) ** 2
    return float(np.sum(np.fft.rfftfreq(len(x), 1 / rate) * power) / np.sum(power))
