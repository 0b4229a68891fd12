"""FSDD loading: WAV decoding against known values, bad files, splits, connected digits, batches."""

import struct
import wave

import numpy as np
import pytest

from speech_fixtures import tone, write_fsdd_archive
from zoo.data import DataError, load_dataset
from applications.speech.data import (
    BLANK_INDEX,
    DIGIT_WORDS,
    connected_utterances,
    decode_wav,
    encode_wav,
    load_fsdd_recordings,
    read_wav,
    render_utterance,
    resample,
    speed_perturb,
    split_indices,
)


def _wav_bytes(samples_int16, rate=8000, channels=1):
    import io

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:  # Python's own writer: an independent reference
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples_int16, "<i2").tobytes())
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny_fsdd(tmp_path_factory):
    return write_fsdd_archive(tmp_path_factory.mktemp("tiny-fsdd"), takes=7)


def test_decode_wav_known_values():
    data = _wav_bytes([0, 16384, -32768, 32767, -1])
    x, rate = decode_wav(data)
    assert rate == 8000 and x.dtype == np.float32
    np.testing.assert_array_equal(x, np.array([0, 0.5, -1, 32767 / 32768, -1 / 32768], np.float32))
    # 8-bit unsigned, 24-bit and float WAVs decode to the same scale
    pcm8 = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 39, b"WAVE", b"fmt ", 16, 1, 1, 8000, 8000, 1, 8, b"data", 3) + bytes([128, 192, 0])
    np.testing.assert_array_equal(decode_wav(pcm8)[0], [0.0, 0.5, -1.0])
    f32 = np.array([0.25, -0.75], "<f4").tobytes()
    flt = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + 8, b"WAVE", b"fmt ", 16, 3, 1, 8000, 32000, 4, 32, b"data", 8) + f32
    np.testing.assert_array_equal(decode_wav(flt)[0], [0.25, -0.75])
    # our writer round-trips through Python's wave module
    y = np.array([0.1, -0.2, 0.3], np.float32)
    with wave.open(__import__("io").BytesIO(encode_wav(y))) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, 8000, 2)
        np.testing.assert_array_equal(np.frombuffer(w.readframes(3), "<i2"), np.round(y * 32768))


def test_bad_wav_files_raise_clear_errors(tmp_path):
    good = _wav_bytes(np.arange(100))
    cases = {
        "empty.wav": (b"", "empty file"),
        "text.wav": (b"hello, not audio at all", "not a WAV file"),
        "truncated.wav": (good[:-60], "truncated"),
        "header_only.wav": (good[:30], "truncated"),
        "stereo.wav": (_wav_bytes(np.zeros(20), channels=2), "stereo"),
        "no_frames.wav": (_wav_bytes([]), "no audio frames"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataError, match=words) as info:
            read_wav(path)
        assert name in str(info.value)
    with pytest.raises(DataError, match="no such file"):
        read_wav(tmp_path / "missing.wav")
    # stereo mixes down when asked
    st = _wav_bytes(np.array([[1000, 3000], [-2000, 2000]]).reshape(-1), channels=2)
    np.testing.assert_allclose(decode_wav(st, mono="mix")[0], [2000 / 32768, 0.0])


def test_other_sample_rates_are_resampled():
    rate = 16000
    t = np.arange(rate) / rate
    x16 = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    x, got = decode_wav(_wav_bytes(x16, rate=rate))
    assert got == 8000 and len(x) == 8000
    want = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    np.testing.assert_allclose(x[200:-200], want[200:-200], atol=2e-3)
    assert decode_wav(_wav_bytes(x16, rate=rate), sample_rate=None)[1] == 16000
    assert len(resample(np.ones(300, np.float32), 8000, 11025)) == round(300 * 11025 / 8000)


def test_speed_perturbation_scales_tempo_and_pitch():
    t = np.arange(8000) / 8000
    x = np.sin(2 * np.pi * 500 * t).astype(np.float32)
    for factor in (0.9, 1.1):
        y = speed_perturb(x, factor)
        assert len(y) == round(8000 / factor)
        peak = np.argmax(np.abs(np.fft.rfft(y))) * 8000 / len(y)  # Hz
        assert peak == pytest.approx(500 * factor, abs=2)
    np.testing.assert_array_equal(speed_perturb(x, 1.0), x)
    with pytest.raises(ValueError, match="positive"):
        speed_perturb(x, 0)


def test_speed_perturbation_applies_to_training_only(tiny_fsdd):
    plain = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, seed=1)
    fast = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, seed=1, speed=0.2)
    assert fast.info["speed"] == 0.2 and plain.info["speed"] == 0.0

    def lengths(ds):
        return sorted(np.concatenate([x["length"].numpy() for x, _ in ds]).tolist())

    a, b = lengths(plain.train), lengths(fast.train)
    assert len(a) == len(b) and a != b
    ratio = np.array(b) / np.array(a)  # sorted lengths: roughly 1 / factor
    assert 1 / 1.25 < ratio.min() and ratio.max() < 1 / 0.75
    assert lengths(plain.test) == lengths(fast.test)
    with pytest.raises(DataError, match="speed"):
        load_dataset("fsdd", data_dir=tiny_fsdd, speed=0.6)


def test_edge_silence_pads_training_examples_only(tiny_fsdd):
    def batches(ds):
        return [(x["waveform"].numpy(), x["length"].numpy(), y.numpy()) for x, y in ds]

    plain = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, seed=1, speed=0.1)
    off = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, seed=1, speed=0.1, edge_prob=0.0, edge_max=0.5)
    for (xa, la, ya), (xb, lb, yb) in zip(batches(plain.train), batches(off.train)):  # 0: the batches as before
        np.testing.assert_array_equal(xa, xb), np.testing.assert_array_equal(la, lb), np.testing.assert_array_equal(ya, yb)
    padded = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, seed=1, edge_prob=1.0, edge_max=0.5)
    nopad = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, seed=1)
    assert padded.info["edge_prob"] == 1.0 and padded.info["edge_max"] == 0.5
    rec = load_fsdd_recordings(tiny_fsdd)
    clips = {(int(rec.digits[i]), rec.wave(i).tobytes()): len(rec.wave(i)) for i in range(len(rec))}
    found = 0
    for x, n, y in batches(padded.train):
        for row, length, label in zip(x, n, y):
            w = row[:length]
            nz = np.flatnonzero(w)
            core = w[nz[0]:nz[-1] + 1]  # the tone fixtures start and end away from zero
            lead, tail = nz[0], length - 1 - nz[-1]
            assert 0 <= lead <= 4000 and 0 <= tail <= 4000
            found += (int(label[0]), core.tobytes()) in clips
            assert lead + tail > 0 or len(core) == length
    assert found >= 0.9 * sum(len(b[1]) for b in batches(padded.train))  # the recordings themselves, with zeros around
    total = lambda ds: sum(int(b[1].sum()) for b in batches(ds))  # noqa: E731
    assert total(padded.train) > total(nopad.train) + 0.2 * 8000 * sum(len(b[1]) for b in batches(padded.train))
    assert [b[1].tolist() for b in batches(padded.test)] == [b[1].tolist() for b in batches(nopad.test)]
    # connected utterances keep their own edges (`connected`'s `edge`): the same lengths with and without padding
    conn = {"num_train": 16, "num_test": 0, "min_digits": 2, "max_digits": 3}
    rows = lambda ds: sorted(int(n) for _, ns, ys in batches(ds) for n, y in zip(ns, ys) if (y >= 0).sum() > 1)  # noqa: E731
    with_pad = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=4, seed=1, connected=conn, edge_prob=1.0)
    without = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=4, seed=1, connected=conn)  # 116 examples: no batch dropped
    first, plain_first = rows(with_pad.train), rows(without.train)  # each pass is a new epoch: one pass each
    assert len(first) == 16 and first == plain_first
    with pytest.raises(DataError, match="edge_prob"):
        load_dataset("fsdd", data_dir=tiny_fsdd, edge_prob=1.5)


def test_archive_recordings_cache_and_splits(tiny_fsdd):
    rec = load_fsdd_recordings(tiny_fsdd)
    assert len(rec) == 5 * 10 * 7 and rec.audio.dtype == np.float32
    again = load_fsdd_recordings(tiny_fsdd)  # from the cache
    np.testing.assert_array_equal(again.audio, rec.audio)
    i = int(np.flatnonzero(rec.names == "recordings/3_lucas_4.wav")[0])
    assert (rec.digits[i], rec.speakers[i], rec.takes[i]) == (3, "lucas", 4)
    train, test = split_indices(rec, "conventional")
    assert set(rec.takes[test]) == {0, 1, 2, 3, 4} and set(rec.takes[train]) == {5, 6}
    train, test = split_indices(rec, "speaker:george")
    assert set(rec.speakers[test]) == {"george"} and "george" not in set(rec.speakers[train])
    with pytest.raises(DataError, match="unknown speaker"):
        split_indices(rec, "speaker:bob")
    with pytest.raises(DataError, match="unknown split"):
        split_indices(rec, "random")


def test_corrupt_member_is_named(tmp_path):
    root = write_fsdd_archive(tmp_path, takes=1, speakers=("george",),
                              override={"recordings/2_george_0.wav": b"RIFF\x00\x00"})
    with pytest.raises(DataError, match="2_george_0.wav"):
        load_fsdd_recordings(root)


def test_silent_recordings_are_left_out(tmp_path):
    root = write_fsdd_archive(tmp_path, takes=1, speakers=("george",),
                              override={"recordings/4_george_0.wav": encode_wav(np.zeros(800))})
    with pytest.warns(UserWarning, match="silence-only"):
        rec = load_fsdd_recordings(root)
    assert len(rec) == 9 and rec.skipped_silent == ["recordings/4_george_0.wav"]


def test_connected_digits_reproducible_and_split_pure(tiny_fsdd):
    rec = load_fsdd_recordings(tiny_fsdd)
    train, test = split_indices(rec, "conventional")
    a = connected_utterances(rec, test, 50, seed=3, stream="test")
    b = connected_utterances(rec, test, 50, seed=3, stream="test")
    c = connected_utterances(rec, test, 50, seed=4, stream="test")
    assert a == b and a != c
    assert all(set(u.recordings) <= set(test.tolist()) for u in a)
    assert all(1 <= len(u.recordings) <= 7 and len(u.gaps) == len(u.recordings) + 1 for u in a)
    assert all(len(set(rec.speakers[list(u.recordings)])) == 1 for u in a)  # one speaker per utterance
    wave_, digits = render_utterance(rec, a[0])
    assert len(wave_) == sum(a[0].gaps) + int(rec.lengths[list(a[0].recordings)].sum())
    assert digits == rec.digits[list(a[0].recordings)].tolist()
    gap = 0.05 * 8000 <= np.array([g for u in a for g in u.gaps[1:-1]])
    assert gap.all()
    # mixing speakers: off by default (the same utterances as without the option), on: several voices, same split
    assert connected_utterances(rec, test, 50, seed=3, stream="test", mix_speakers=0.0) == a
    mixed = connected_utterances(rec, train, 50, seed=3, stream="train", mix_speakers=1.0)
    assert all(set(u.recordings) <= set(train.tolist()) for u in mixed)
    assert sum(len(set(rec.speakers[list(u.recordings)])) > 1 for u in mixed) > 20


def test_bundle_batches_and_info(tiny_fsdd):
    b = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, seed=1,
                     connected={"num_train": 20, "num_test": 10, "max_digits": 4})
    assert b.info["tokens"] == list(DIGIT_WORDS) and b.info["blank_index"] == BLANK_INDEX == 10
    assert b.info["label_padding"] == -1 and b.info["num_train"] == 100 + 20 and b.info["num_test"] == 250
    # epochs differ, and rebuilding with the same seed repeats them
    first = [t[1].numpy().tolist() for t in b.train]
    second = [t[1].numpy().tolist() for t in b.train]
    again = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, seed=1,
                         connected={"num_train": 20, "num_test": 10, "max_digits": 4})
    assert first != second and first == [t[1].numpy().tolist() for t in again.train]
    assert int(b.train.cardinality()) == 120 // 8 == len(first)
    (x, y), = b.train.take(1)
    assert x["waveform"].dtype.name == "float32" and x["length"].dtype.name == "int32"
    assert x["waveform"].shape[0] == 8 and x["waveform"].shape[1] % 1600 == 0 and y.shape == (8, 4)
    w, n, y = x["waveform"].numpy(), x["length"].numpy(), y.numpy()
    assert all(np.all(w[i, n[i]:] == 0) for i in range(8))
    assert np.all((y >= -1) & (y < 10)) and np.all((y >= 0).sum(1) >= 1)
    # test set: in order, every recording once; connected references match the members
    labels = np.concatenate([t[1].numpy()[:, 0] for t in b.test])
    assert b.test_references == [DIGIT_WORDS[d] for d in labels]
    assert len(b.connected_references) == 10 == sum(len(t[1]) for t in b.test_connected)
    for ref, members in zip(b.connected_references, b.connected_members):
        assert ref.split() == [DIGIT_WORDS[int(m.split("/")[-1][0])] for m in members]
        assert all(int(m.rsplit("_", 1)[1][:-4]) < 5 for m in members)  # test takes only
    loso = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, split="speaker:nicolas", limit=30)
    assert set(loso.test_speakers) == {"nicolas"} and loso.info["num_train"] == 30


def test_speaker_labelled_pipelines_match_the_plain_ones_and_name_each_speaker(tiny_fsdd):
    """speaker_pipelines() is (train, val) with a speaker id per example; a held-out speaker, or a mixed utterance, is -1."""
    from applications.speech.data import Utterance, make_speech_dataset

    conn = {"num_train": 20, "num_test": 10, "max_digits": 3}
    b = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, seed=1, split="speaker:lucas", connected=conn)
    assert b.info["train_speakers"] == ["george", "jackson", "nicolas", "yweweler"]  # lucas never reaches training
    speaker_train, speaker_val = b.speaker_pipelines()
    plain, labelled = list(b.train), list(speaker_train)  # first epoch of each: the same draws
    assert len(plain) == len(labelled) == int(b.train.cardinality())
    for (x, y), (xs, (ys, who)) in zip(plain, labelled):
        np.testing.assert_array_equal(x["waveform"].numpy(), xs["waveform"].numpy())
        np.testing.assert_array_equal(y.numpy(), ys.numpy())
        assert who.dtype.name == "int32" and who.shape == (8,) and set(who.numpy()) <= {0, 1, 2, 3}
    assert {int(k) for _, (_, who) in labelled for k in who.numpy()} == {0, 1, 2, 3}
    assert all(set(who.numpy()) == {-1} for _, (_, who) in speaker_val)  # lucas: no training class
    assert sum(len(who) for _, (_, who) in speaker_val) == b.info["num_test"]

    rec = load_fsdd_recordings(tiny_fsdd)
    g, j = np.flatnonzero(rec.speakers == "george")[:2], np.flatnonzero(rec.speakers == "jackson")[:1]
    items = [int(g[0]), int(j[0]), Utterance((int(g[0]), int(g[1])), (80, 80, 80)),
             Utterance((int(g[0]), int(j[0])), (80, 80, 80))]
    ds = make_speech_dataset(rec, items, batch_size=4, training=False, label_width=2, speaker_ids={"george": 5})
    (_, (labels, who)), = list(ds)
    assert who.numpy().tolist() == [5, -1, 5, -1]  # jackson is not in the mapping; the last utterance mixes voices
    assert labels.numpy()[2].tolist() == [int(rec.digits[g[0]]), int(rec.digits[g[1]])]


def test_training_batches_are_rendered_as_they_are_asked_for(tiny_fsdd, monkeypatch):
    """The first batch of an epoch needs about one batch of reads, not the whole epoch's (input headroom)."""
    from applications.speech import data as speech_data

    rec = load_fsdd_recordings(tiny_fsdd)
    train, _ = split_indices(rec, "conventional")
    read = []
    original = speech_data.Recordings.wave
    monkeypatch.setattr(speech_data.Recordings, "wave", lambda self, i: (read.append(int(i)), original(self, i))[1])
    ds = speech_data.make_speech_dataset(rec, list(train), batch_size=4, training=True, seed=0, label_width=1,
                                         speed=0.1)
    it = iter(ds)
    next(it)
    first = len(read)
    for _ in it:
        pass
    assert len(read) == len(train) // 4 * 4  # an epoch reads every example it yields once
    assert first < len(read) // 4  # prefetching may run a few batches ahead, never the whole epoch


def test_bad_settings(tiny_fsdd):
    with pytest.raises(DataError, match="unknown connected-digit settings"):
        load_dataset("fsdd", data_dir=tiny_fsdd, connected={"digits": 3})
    with pytest.raises(DataError, match="mix_speakers"):
        load_dataset("fsdd", data_dir=tiny_fsdd, connected={"mix_speakers": 1.5})
    with pytest.raises(DataError, match="limit"):
        load_dataset("fsdd", data_dir=tiny_fsdd, limit=0)
    with pytest.raises(DataError, match="not found"):
        load_dataset("fsdd", data_dir=tiny_fsdd.parent)


def test_real_fsdd_first_recording(shared_data_dir):
    rec = load_fsdd_recordings(shared_data_dir)
    assert len(rec) == 2500 and sorted(set(rec.speakers)) == ["george", "jackson", "lucas", "nicolas", "yweweler"]
    assert 0.1 < rec.lengths.min() / 8000 and rec.lengths.max() / 8000 < 2.5
    train, test = split_indices(rec, "conventional")
    assert (len(train), len(test)) == (2250, 250)


def test_no_recording_of_the_held_out_speaker_reaches_training(tiny_fsdd, monkeypatch):
    """Leave-one-speaker-out purity: isolated, connected (mixed speakers too), speed-perturbed examples, every epoch."""
    from applications.speech import data as speech_data

    read = []
    original = speech_data.Recordings.wave
    monkeypatch.setattr(speech_data.Recordings, "wave", lambda self, i: (read.append(int(i)), original(self, i))[1])
    bundle = load_dataset("fsdd", data_dir=tiny_fsdd, batch_size=8, split="speaker:jackson", speed=0.1,
                          connected={"num_train": 40, "num_test": 10, "max_digits": 3, "mix_speakers": 0.5})
    rec = load_fsdd_recordings(tiny_fsdd)
    for _ in range(2):  # two epochs: fresh connected utterances and perturbations each time
        for _batch in bundle.train:
            pass
    heard = set(rec.speakers[read].tolist())
    assert read and heard == {"george", "lucas", "nicolas", "yweweler"}
    del read[:]
    for _batch in bundle.test_connected:
        pass
    assert set(rec.speakers[read].tolist()) == {"jackson"}  # the recorder sees test reads: the check can fail
    assert all(m.split("/")[-1].split("_")[1] == "jackson" for u in bundle.connected_members for m in u)
    assert bundle.info["connected"]["mix_speakers"] == 0.5
    # no statistic is fitted on data: no preprocessor, and the model has no adapted (data-fitted) layer
    assert bundle.preprocessor is None
    import zoo

    model = zoo.create_model("fsdd_ctc", vtlp=0.1, pitch_shift=3.0, noise_snr=[10, 30], reverb_prob=0.5)
    assert not [layer.name for layer in model._flatten_layers() if hasattr(layer, "adapt")]
