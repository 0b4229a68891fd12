"""Synthetic eSpeak NG voices: deterministic audio, training-only use, split purity, clear errors."""

import pytest

from speech_fixtures import assert_digit_voices, write_fsdd_archive
from zoo.data import DataError, load_dataset
from applications.speech import synthetic
from applications.speech.data import DIGIT_WORDS, load_fsdd_recordings

pytestmark = pytest.mark.skipif(not synthetic.available(), reason="eSpeak NG (espeakng-loader) not installed")


@pytest.fixture(scope="module")
def tiny_fsdd(tmp_path_factory):
    return write_fsdd_archive(tmp_path_factory.mktemp("tiny-fsdd-synth"), takes=7)


def test_synthetic_digits_are_deterministic_words_at_8_khz():
    assert_digit_voices(synthetic.synthetic_digits)


def test_speak_rejects_an_unknown_voice():
    with pytest.raises(synthetic.SynthesisError, match="no voice 'xx-nowhere'"):
        synthetic.speak("one", "xx-nowhere")


def test_synthetic_voices_reach_training_only(tiny_fsdd, monkeypatch):
    """Training hears the recorded speakers plus the synthetic voices; the test sets hear the held-out speaker only."""
    from applications.speech import data as speech_data

    read = []
    original = speech_data.Recordings.wave
    monkeypatch.setattr(speech_data.Recordings, "wave", lambda self, i: (read.append((i, self)), original(self, i))[1])
    bundle = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, split="speaker:jackson", synthetic=4,
                          connected={"num_train": 40, "num_test": 10, "max_digits": 3})
    info = bundle.info
    assert info["num_train_synthetic"] == 40 and info["synthetic_voices"] == 4
    assert info["num_train"] == info["num_train_recordings"] + 40 + 40
    assert "espeak0" not in info["speakers"] and info["test_speakers_in_split"] == ["jackson"]

    def speakers():
        return {str(rec.speakers[i]) for i, rec in read}

    for _batch in bundle.train:
        pass
    heard = speakers()
    assert {"george", "lucas", "nicolas", "yweweler"} <= heard and "jackson" not in heard
    assert {s for s in heard if s.startswith("espeak")} == {f"espeak{k}" for k in range(4)}
    del read[:]
    for _batch in bundle.test:
        pass
    for _batch in bundle.test_connected:
        pass
    assert speakers() == {"jackson"}


def test_connected_training_utterances_use_synthetic_voices_only_when_asked(tiny_fsdd, monkeypatch):
    from applications.speech import data as speech_data

    made = []
    original = speech_data.connected_utterances
    monkeypatch.setattr(speech_data, "connected_utterances",
                        lambda rec, idx, *a, **k: (made.append(set(rec.speakers[idx].tolist())),
                                                   original(rec, idx, *a, **k))[1])
    for flag in (False, True):
        del made[:]
        bundle = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, split="speaker:lucas", synthetic=2,
                              synthetic_connected=flag, connected={"num_train": 20, "num_test": 5})
        bundle.train.take(1).get_single_element()  # epoch 0's utterances are drawn
        pools = [s for s in made if "lucas" not in s]  # the training calls (the test one draws from lucas only)
        assert pools and all(("espeak0" in s) == flag for s in pools)
        assert bundle.info["synthetic_connected"] is flag


def test_a_share_of_connected_training_utterances_says_synthetic_voices(tiny_fsdd, monkeypatch):
    """`synthetic_connected_share=0.25`: a quarter of each epoch's connected utterances are one synthetic voice's digits,
    the rest are recorded speakers' and the same utterances as without the option."""
    from applications.speech import data as speech_data

    drawn = {}
    original = speech_data.connected_utterances

    def spy(rec, idx, count, **kw):
        utts = original(rec, idx, count, **kw)
        drawn[kw["stream"]] = [[str(rec.speakers[i]) for i in u.recordings] for u in utts], utts
        return utts

    monkeypatch.setattr(speech_data, "connected_utterances", spy)
    runs = {}
    for share in (0.0, 0.25):
        drawn.clear()
        bundle = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, split="speaker:lucas", synthetic=2,
                              synthetic_connected_share=share, connected={"num_train": 20, "num_test": 5})
        bundle.train.take(1).get_single_element()
        runs[share] = {k: v for k, v in drawn.items() if "/train/epoch0" in k}
        assert bundle.info["synthetic_connected_share"] == share and bundle.info["synthetic_connected"] is False
    assert list(runs[0.0]) == ["speaker:lucas/train/epoch0"]
    recorded, synthetic = runs[0.25]["speaker:lucas/train/epoch0"], runs[0.25]["speaker:lucas/train/epoch0/synthetic"]
    assert len(recorded[0]) == 15 and len(synthetic[0]) == 5
    assert all(len(set(u)) == 1 and u[0].startswith("espeak") for u in synthetic[0])  # one voice per utterance
    assert not any(s.startswith("espeak") for u in recorded[0] for s in u)
    assert recorded[1] == runs[0.0]["speaker:lucas/train/epoch0"][1][:15]  # the recorded ones are unchanged
    with pytest.raises(DataError, match=r"synthetic_connected_share must be in \[0, 1\], got 1.5"):
        load_dataset("fsdd", data_dir=tiny_fsdd, synthetic=2, synthetic_connected_share=1.5)
    with pytest.raises(DataError, match=r"not both; .*--set data\.synthetic_connected_share=0"):
        load_dataset("fsdd", data_dir=tiny_fsdd, synthetic=2, synthetic_connected=True, synthetic_connected_share=0.5)


def test_a_limited_smoke_run_caps_the_synthetic_voices(tiny_fsdd):
    """`limit` keeps a smoke run small even when the spec asks for many voices: ceil(limit / 10) voices at most."""
    info = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, limit=25, synthetic=200).info
    assert info["synthetic_voices"] == 3 and info["num_train_synthetic"] == 30
    assert info["num_train_recordings"] == 25
    info = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, limit=25, synthetic=2).info
    assert info["synthetic_voices"] == 2 and info["num_train_synthetic"] == 20  # under the cap: as asked


def test_bad_synthetic_settings_are_named(tiny_fsdd, monkeypatch):
    with pytest.raises(DataError, match="synthetic must be a number of voices >= 0"):
        load_dataset("fsdd", data_dir=tiny_fsdd, synthetic=-1)
    monkeypatch.setattr(synthetic, "_locate", lambda: None)
    monkeypatch.setattr(synthetic, "_engine", {})
    with pytest.raises(DataError, match=r"pip install espeakng-loader.*--set data\.synthetic=0"):
        load_dataset("fsdd", data_dir=tiny_fsdd, synthetic=1)
    rec = load_fsdd_recordings(tiny_fsdd)
    assert set(DIGIT_WORDS) and len(rec) == 350  # the recordings themselves are untouched by the failed call


def test_digit_phonemes_say_the_digit_words():
    """eSpeak reads `[[DIGIT_PHONEMES[d]]]` as phonemes (not letters): the audio is as long as the word's own."""
    import numpy as np

    for word, phonemes in zip(DIGIT_WORDS, synthetic.DIGIT_PHONEMES):
        plain = synthetic._trim(*synthetic.speak(word))
        spoken = synthetic._trim(*synthetic.speak(f"[[{phonemes}]]"))
        assert abs(len(spoken) - len(plain)) < 0.05 * len(plain), (word, len(plain), len(spoken))
    spelled = synthetic._trim(*synthetic.speak("[[s'i:ks]]"))  # read as phonemes, not "ess i colon kay ess"
    assert len(spelled) < 1.5 * len(synthetic._trim(*synthetic.speak("six")))
    assert np.isfinite(spelled).all()


def test_l2_accents_substitute_whole_phonemes():
    assert synthetic.l2_phonemes("Tr'i:", {"T": "s"}) == "sr'i:"
    assert synthetic.l2_phonemes("'eIt", {"I": "i:"}) == "'eIt"  # eI is one phoneme
    assert synthetic.l2_phonemes("s'Iks", {"I": "i:"}) == "s'i:ks"
    assert synthetic.l2_phonemes("z'i@roU", {"oU": "o:", "@": "E"}) == "z'i@ro:"  # i@ is one phoneme too
    import numpy as np

    rng = np.random.default_rng(0)
    accents = [synthetic.l2_accent(rng) for _ in range(200)]
    rules = {phoneme: replacements for _, phoneme, replacements in synthetic.L2_RULES}
    assert all(a[p] in rules[p] for a in accents for p in a)
    share = np.mean([len(a) for a in accents]) / len(rules)
    assert 0.4 < share < 0.6  # each rule about half the time


def test_l2_voices_are_drawn_apart_from_the_rest():
    """`l2=0` draws the voices exactly as before (their own stream); `l2=1` gives every voice an accent, same timbres."""
    plain = synthetic.synthetic_digits(3, seed=5)
    again = synthetic.synthetic_digits(3, seed=5, l2=0.0)
    accented = synthetic.synthetic_digits(3, seed=5, l2=1.0)
    assert [m["name"] for m in plain] == [m["name"] for m in again]
    assert all((m["audio"] == n["audio"]).all() for m, n in zip(plain, again))
    assert all(" l2=" in m["name"] for m in accented)
    assert [m["name"].split(" l2=")[0] for m in accented] == [m["name"] for m in plain]
    assert any(len(m["audio"]) != len(n["audio"]) for m, n in zip(plain, accented))
    with pytest.raises(ValueError, match="digit words only"):
        synthetic.synthetic_digits(1, words=["yes"], l2=0.5)
    with pytest.raises(DataError, match="synthetic_l2 is a share"):
        load_dataset("fsdd", data_dir=None, synthetic=2, synthetic_l2=1.5)
