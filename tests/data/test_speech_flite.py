"""CMU Flite voices: deterministic words, a vocal-tract warp that moves the spectrum, training-only use, clear errors."""

import numpy as np
import pytest

from speech_fixtures import assert_digit_voices, centroid, write_fsdd_archive
from zoo.data import DataError, load_dataset
from applications.speech import synthetic

needs_flite = pytest.mark.skipif(not synthetic.flite_available(), reason="the flite program is not installed")
needs_both = pytest.mark.skipif(not (synthetic.flite_available() and synthetic.available()),
                                reason="needs flite and eSpeak NG")


@pytest.fixture(scope="module")
def tiny_fsdd(tmp_path_factory):
    return write_fsdd_archive(tmp_path_factory.mktemp("tiny-fsdd-flite"), takes=7)


@needs_flite
def test_flite_digits_are_deterministic_words_at_8_khz():
    a = assert_digit_voices(synthetic.flite_digits)
    assert all(m["name"].split(": ")[1].split()[0] in synthetic.FLITE_VOICES for m in a)


@needs_flite
def test_flite_word_is_the_public_single_word():
    """One word in the voice's own pitch (the shift bench's Flite column): int16 samples, longer when stretched."""
    x, rate = synthetic.flite_word("seven", "slt")
    slow, _ = synthetic.flite_word("seven", "slt", stretch=1.3)
    assert x.dtype == np.int16 and x.ndim == 1 and rate in (8000, 16000)
    assert 0.2 * rate < len(x) < 2 * rate and np.abs(x).max() > 1000
    assert 1.15 < len(slow) / len(x) < 1.45


def test_flite_word_without_the_program_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no flite on it
    with pytest.raises(synthetic.SynthesisError, match="apt-get install flite"):
        synthetic.flite_word("seven", "slt")


@needs_flite
def test_the_warp_scales_frequencies_and_durations():
    """warp 1.15 against 0.88 (same voice, rate and pitch): every word shorter by about 0.88 / 1.15, spectrum higher."""
    short = synthetic.flite_digits(2, seed=3, warp=(1.15, 1.15))
    long = synthetic.flite_digits(2, seed=3, warp=(0.88, 0.88))
    ratios = [len(s["audio"]) / len(lo["audio"]) for s, lo in zip(short, long)]
    assert 0.68 < float(np.median(ratios)) < 0.85
    higher = [centroid(s["audio"]) > centroid(lo["audio"]) for s, lo in zip(short, long)]
    assert sum(higher) >= 16, higher


@needs_both
def test_flite_voices_reach_training_only(tiny_fsdd, monkeypatch):
    from applications.speech import data as speech_data

    read = []
    original = speech_data.Recordings.wave
    monkeypatch.setattr(speech_data.Recordings, "wave", lambda self, i: (read.append((i, self)), original(self, i))[1])
    bundle = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, split="speaker:jackson", synthetic=4,
                          synthetic_flite=3)
    info = bundle.info
    assert info["synthetic_voices"] == 4 and info["synthetic_flite_voices"] == 3 and info["num_train_synthetic"] == 40
    assert info["speakers"] == sorted(info["speakers"]) and not any(s.startswith("flite") for s in info["speakers"])
    for _batch in bundle.train:
        pass
    heard = {str(rec.speakers[i]) for i, rec in read}
    assert {s for s in heard if s.startswith(("espeak", "flite"))} == {"espeak0", "flite0", "flite1", "flite2"}
    assert "jackson" not in heard
    del read[:]
    for _batch in bundle.test:
        pass
    assert {str(rec.speakers[i]) for i, rec in read} == {"jackson"}


def test_bad_flite_settings_are_named(tiny_fsdd, monkeypatch):
    with pytest.raises(DataError, match=r"synthetic_flite \(3\) .* \[0, synthetic=2\]"):
        load_dataset("fsdd", data_dir=tiny_fsdd, synthetic=2, synthetic_flite=3)
    monkeypatch.setattr(synthetic, "flite_available", lambda: False)
    with pytest.raises(DataError, match=r"apt-get install flite.*--set data\.synthetic_flite=0"):
        load_dataset("fsdd", data_dir=tiny_fsdd, synthetic=2, synthetic_flite=2)
