"""Voices converted from training recordings (Praat's "Change gender"): what moves, determinism, purity, errors."""

import numpy as np
import pytest

from speech_fixtures import centroid, median_f0 as _median_f0, vowel as _vowel, write_fsdd_archive
from zoo.data import DataError, load_dataset
from applications.speech import synthetic
from applications.speech.data import SAMPLE_RATE

needs_praat = pytest.mark.skipif(not synthetic.converted_available(), reason="praat-parselmouth is not installed")


@pytest.fixture(scope="module")
def tiny_fsdd(tmp_path_factory):
    return write_fsdd_archive(tmp_path_factory.mktemp("tiny-fsdd-converted"), takes=7)


@needs_praat
def test_change_voice_moves_pitch_formants_and_duration_apart():
    """pitch alone moves F0 and not the spectrum's centre; formants alone the reverse; duration the length."""
    x = _vowel()
    assert 100 < _median_f0(x) < 120
    same = synthetic.change_voice(x, SAMPLE_RATE)
    higher = synthetic.change_voice(x, SAMPLE_RATE, pitch=220.0)
    brighter = synthetic.change_voice(x, SAMPLE_RATE, formant=1.25)
    slower = synthetic.change_voice(x, SAMPLE_RATE, duration=1.2)
    assert np.array_equal(higher, synthetic.change_voice(x, SAMPLE_RATE, pitch=220.0))  # seeded: bit for bit
    for y in (same, higher, brighter, slower):
        assert y.dtype == np.float32 and np.isclose(np.max(np.abs(y)), np.max(np.abs(x)), rtol=1e-5)  # peak kept
    assert 100 < _median_f0(same) < 120 and abs(len(same) - len(x)) <= 0.01 * len(x)
    assert 200 < _median_f0(higher) < 240
    assert abs(centroid(higher) / centroid(same) - 1) < 0.1
    assert centroid(brighter) > 1.12 * centroid(same)
    assert 100 < _median_f0(brighter) < 120
    assert 1.15 < len(slower) / len(x) < 1.25 and 100 < _median_f0(slower) < 120


@needs_praat
def test_converted_digits_are_deterministic_and_come_from_the_given_speakers_only():
    recordings = [(who, d, _vowel(f0=100 + 10 * d + 30 * k)) for k, who in enumerate(("ann", "bob"))
                  for d in range(10) for _ in range(2)]
    a = synthetic.converted_digits(4, recordings, seed=5)
    b = synthetic.converted_digits(4, recordings, seed=5)
    c = synthetic.converted_digits(4, recordings, seed=6)
    assert [m["digit"] for m in a] == list(range(10)) * 4 and [m["voice"] for m in a] == sorted(list(range(4)) * 10)
    assert all(np.array_equal(x["audio"], y["audio"]) for x, y in zip(a, b))
    assert [m["name"] for m in a] != [m["name"] for m in c]
    for m in a:
        fields = dict(kv.split("=") for kv in m["name"].split(": ")[1].split()[1:])
        assert m["name"].split(": ")[1].split()[0] in {"ann", "bob"}
        assert 0.9 <= float(fields["formant"]) <= 1.25 and 75 <= float(fields["pitch"]) <= 280
        assert 0.5 <= float(fields["range"]) <= 1.5 and 0.85 <= float(fields["duration"]) <= 1.2
    assert synthetic.converted_digits(0, [], seed=0) == []


@needs_praat
def test_converted_voices_reach_training_only(tiny_fsdd, monkeypatch):
    """A held-out speaker's recordings are never read to make a voice, and converted voices never reach a test set."""
    from applications.speech import data as speech_data

    read = []
    original = speech_data.Recordings.wave
    monkeypatch.setattr(speech_data.Recordings, "wave", lambda self, i: (read.append((i, self)), original(self, i))[1])
    bundle = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, split="speaker:jackson", converted=3)
    info = bundle.info
    assert info["converted_voices"] == 3 and info["num_train_synthetic"] == 30 and info["synthetic_voices"] == 0
    assert not any(s.startswith("praat") for s in info["speakers"])
    assert "jackson" not in {str(rec.speakers[i]) for i, rec in read}  # not even to convert
    for _batch in bundle.train:
        pass
    heard = {str(rec.speakers[i]) for i, rec in read}
    assert {s for s in heard if s.startswith("praat")} == {"praat0", "praat1", "praat2"}
    assert "jackson" not in heard
    del read[:]
    for _batch in bundle.test:
        pass
    assert {str(rec.speakers[i]) for i, rec in read} == {"jackson"}


@needs_praat
def test_a_limited_smoke_run_caps_the_converted_voices(tiny_fsdd):
    info = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, limit=25, converted=100).info
    assert info["converted_voices"] == 3  # ceil(25 / 10); each says the digits its speaker has among the 25
    assert 3 <= info["num_train_synthetic"] <= 30 and info["num_train_recordings"] == 25


def test_bad_converted_settings_are_named(tiny_fsdd, monkeypatch):
    with pytest.raises(DataError, match="converted must be a number of voices >= 0"):
        load_dataset("fsdd", data_dir=tiny_fsdd, converted=-1)
    monkeypatch.setattr(synthetic, "converted_available", lambda: False)
    with pytest.raises(DataError, match=r"pip install praat-parselmouth.*--set data\.converted=0"):
        load_dataset("fsdd", data_dir=tiny_fsdd, converted=2)
