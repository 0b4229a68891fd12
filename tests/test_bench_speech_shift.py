"""bench/speech_shift.py: each recording change does what its name says (the bench's figures rest on them)."""

import numpy as np
import pytest

from bench_fixtures import load_bench
from speech_fixtures import centroid, median_f0, vowel


@pytest.fixture(scope="module")
def shift():
    return load_bench("speech_shift")


def _db(a, b):
    return 20 * np.log10(np.sqrt(np.mean(a ** 2)) / np.sqrt(np.mean(b ** 2)))


def test_changes_do_what_their_names_say(shift):
    t = np.arange(4000) / 8000
    word = 0.3 * np.sin(2 * np.pi * 1000 * t)
    low = 0.3 * np.sin(2 * np.pi * 100 * t)
    change = shift.changes()
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    padded = change["silence_0.5s"](word, rng())
    assert len(padded) == 8000 + 4000 and not padded[:4000].any() and not padded[-4000:].any()
    toned = change["room_tone_0.5s"](word, rng())
    assert _db(toned[4000:-4000], toned[:4000]) == pytest.approx(50, abs=1.5)  # the tone 50 dB below the speech
    louder = change["room_tone_30db_0.5s"](word, rng())
    assert _db(louder[4000:-4000], louder[:4000]) == pytest.approx(30, abs=1.5)
    for snr in (20, 10):
        noisy = change[f"white_noise_{snr}db"](word, rng())
        assert _db(word, noisy - word) == pytest.approx(snr, abs=0.5)
    assert _db(change["quiet_-30db"](word, rng()), word) == pytest.approx(-30, abs=1e-6)
    clipped = change["clipped_+12db"](word, rng())
    assert np.abs(clipped).max() == 1.0 and (np.abs(clipped) == 1.0).mean() > 0.2
    assert _db(change["telephone"](word, rng()), word) == pytest.approx(0, abs=0.5)  # 1 kHz passes
    assert _db(change["telephone"](low, rng()), low) < -35  # 100 Hz does not
    room = change["reverb_0.4s"](word, rng())
    assert len(room) == 4000 + 3200 - 1 and np.abs(room[4000:]).max() > 0.01  # a tail after the word
    hum = change["hum_50hz"](word, rng())
    assert _db(word, hum - word) == pytest.approx(20, abs=0.5)
    assert len(change["tempo_0.85"](word, rng())) == round(4000 / 0.85)  # slower: longer
    assert len(change["tempo_1.15"](word, rng())) == round(4000 / 1.15)


def test_voice_changes_move_pitch_and_formants_and_nothing_else(shift):
    """resynthesis keeps the voice; the female voice is higher in pitch and formants, the deeper one lower."""
    pytest.importorskip("parselmouth")
    x = vowel(f0=120.0)
    change = shift.changes()
    rng = np.random.default_rng(0)
    same, female, deeper = (change[k](x, rng) for k in ("resynthesis", "voice_female", "voice_deeper"))
    assert all(abs(len(y) - len(x)) <= 0.01 * len(x) for y in (same, female, deeper))  # tempo kept
    assert 110 < median_f0(same) < 130 and 190 < median_f0(female) < 230 and 75 < median_f0(deeper) < 95
    assert centroid(female) > 1.1 * centroid(same) and centroid(deeper) < centroid(same)
