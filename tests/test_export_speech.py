"""Speech export: waveform + length -> transcript SavedModel, loaded without zoo; predict on WAV files."""

import json

import keras
import numpy as np
import pytest

import zoo
from conftest import run_without_zoo
from speech_fixtures import tone, write_fsdd_archive
from training_fixtures import CrashInEpoch2
from applications.speech.data import DIGIT_WORDS, encode_wav
from zoo.export import export_model, predict
from zoo.serving import load_serving
from zoo.training import fit

TINY = dict(dim=16, num_layers=1, num_heads=2, intermediate_dim=32, conv_channels=4, num_mel_bins=16, fft_length=256)


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    """A finished (barely trained) fsdd_ctc run on a tiny synthetic FSDD."""
    data = write_fsdd_archive(tmp_path_factory.mktemp("fsdd-export"), takes=6, speakers=("george", "lucas"))
    run = tmp_path_factory.mktemp("speech-run") / "run"
    result = fit("fsdd_ctc", run_dir=run, data_dir=data, epochs=1, batch_size=8, verbose=0,
                 overrides={**TINY, "data": {"connected": {"num_train": 0, "num_test": 4, "max_digits": 2},
                                              "pad_multiple": 8000, "synthetic": 0}},  # the export, not the data
                 eval_options={"beam_width": 1, "verbose": False})
    return run, result


def test_run_metrics(speech_run):
    run, result = speech_run
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert test["num_isolated"] == 100 and test["num_connected"] == 4
    assert 0 <= test["isolated_accuracy"] <= 1 and test["wer"] >= 0
    assert set(test["per_speaker_accuracy"]) == {"george", "lucas"}
    assert (run / "transcripts.json").exists() and (run / "confusion.png").exists()
    cm = np.array(test["confusion_matrix"])
    assert cm.shape == (11, 11) and test["class_names"][-1] == "other"
    assert cm.sum() == 100 and cm[-1].sum() == 0  # every reference is one digit word
    assert np.trace(cm) / cm.sum() == pytest.approx(test["isolated_accuracy"])


@pytest.mark.slow  # a full export verified in a fresh process, then another: ~12-30 s; `make slow`
def test_export_serving_default_without_zoo(speech_run, tmp_path):
    run, result = speech_run
    out = export_model(run, base_dir=tmp_path / "sm")
    card = json.loads((out / "model_card.json").read_text())
    assert card["verified"] is True and card["model"] == "fsdd_ctc"
    sig = card["signature"]["serving_default"]
    assert sig["inputs"] == {"waveform": ["float32", [None, None]], "length": ["int32", [None]]}
    assert sig["outputs"] == {"transcript": ["string", [None]]}
    assert card["data"]["tokens"][3] == "three" and card["data"]["blank_index"] == 10

    w = np.zeros((3, 4000), np.float32)
    w[0, :2000] = tone(4, seconds=0.25)
    w[1] = np.concatenate([tone(1, seconds=0.2), np.zeros(800, np.float32), tone(9, seconds=0.2)])
    lengths = np.array([2000, 4000, 3000], np.int32)  # row 2 is silence
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "n.npy", lengths)
    script = (
        "import json\nimport numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(out)!r})\n"
        f"r = m.signatures['serving_default'](waveform=tf.constant(np.load({str(tmp_path / 'w.npy')!r})),"
        f" length=tf.constant(np.load({str(tmp_path / 'n.npy')!r})))\n"
        "print(json.dumps([t.decode() for t in r['transcript'].numpy()]))\n"
    )
    got = json.loads(run_without_zoo(script))
    serving = load_serving(result.spec, result.model, card["data"])
    import tensorflow as tf

    want = [t.decode() for t in serving.serve(tf.constant(w), tf.constant(lengths))["transcript"].numpy()]
    assert got == want and got[2] == ""
    assert all(set(t.split()) <= set(card["data"]["tokens"]) for t in got)


def test_predict_reads_wav_files_and_refuses_bad_ones(speech_run, tmp_path):
    run, _ = speech_run
    out = export_model(run, base_dir=tmp_path / "sm", verify=False)
    good = tmp_path / "five.wav"
    good.write_bytes(encode_wav(tone(5, seconds=0.3)))
    fast = tmp_path / "five16k.wav"
    fast.write_bytes(encode_wav(tone(5, seconds=0.3, rate=16000), sample_rate=16000))
    rows = predict(str(out), [str(good), str(fast)])
    assert [r["input"] for r in rows] == [str(good), str(fast)] and all(isinstance(r["transcript"], str) for r in rows)
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    with pytest.raises(ValueError, match="notes.txt.*not a WAV"):
        predict(str(out), [str(bad)])
    stereo = tmp_path / "stereo.wav"
    stereo.write_bytes(encode_wav(np.zeros((100, 2)), channels=2))
    with pytest.raises(ValueError, match="stereo.wav.*stereo"):
        predict(str(out), [str(stereo)])


AUGMENT = dict(vtlp=0.15, pitch_shift=3.0, noise_snr=[5, 20], noise_prob=1.0, reverb_prob=1.0, band_prob=1.0,
               clip_prob=1.0, time_stretch=1.4)


def _twins():
    """fsdd_ctc with augmentation on and off, same weights (logits scaled so untrained transcripts are not empty)."""
    on = zoo.create_model("fsdd_ctc", **TINY, **AUGMENT, seed=5)
    off = zoo.create_model("fsdd_ctc", **TINY, vtlp=0.0, pitch_shift=0.0, noise_prob=0.0, reverb_prob=0.0, band_prob=0.0,
                            clip_prob=0.0)
    kernel, bias = on.get_layer("logits").get_weights()
    on.get_layer("logits").set_weights([kernel * 20.0, bias])
    off.set_weights(on.get_weights())
    w = np.zeros((3, 6400), np.float32)
    w[0, :2400] = tone(4, seconds=0.3)
    w[1] = np.concatenate([tone(1, seconds=0.3), np.zeros(1600, np.float32), tone(9, seconds=0.3)])
    w[2] = 0.2 * np.random.default_rng(0).standard_normal(6400)
    return on, off, {"waveform": w, "length": np.array([2400, 6400, 6400], np.int32)}


def test_augmentation_settings_do_not_change_inference_or_serving():
    import tensorflow as tf

    on, off, x = _twins()
    want = np.asarray(off(x, training=False))
    np.testing.assert_array_equal(np.asarray(on(x, training=False)), want)
    trained_on, trained_off = np.asarray(on(x, training=True)), np.asarray(off(x, training=True))
    assert trained_on.shape != trained_off.shape or not np.allclose(trained_on, trained_off, atol=1e-3)
    info = {"tokens": list(DIGIT_WORDS), "sample_rate": 8000}
    spec = zoo.get_spec("fsdd_ctc")
    args = (tf.constant(x["waveform"]), tf.constant(x["length"]))
    got = [load_serving(spec, m, info).serve(*args)["transcript"].numpy().tolist() for m in (on, off)]
    assert got[0] == got[1] and any(got[0])


@pytest.mark.slow  # two exports: ~20-40 s; `make slow`
def test_exports_identical_with_augmentation_on_and_off(tmp_path):
    import tensorflow as tf

    on, off, x = _twins()
    info = {"tokens": list(DIGIT_WORDS), "sample_rate": 8000, "blank_index": 10}
    outs = []
    for tag, model in (("on", on), ("off", off)):
        path = export_model(model, "fsdd_ctc", tmp_path / tag, info=info, verify=False)
        loaded = tf.saved_model.load(str(path))
        outs.append(loaded.signatures["serving_default"](waveform=tf.constant(x["waveform"]),
                                                         length=tf.constant(x["length"]))["transcript"].numpy())
    assert outs[0].tolist() == outs[1].tolist() and any(outs[0].tolist())


def test_pcen_front_end_serves_any_padding_like_the_model():
    import tensorflow as tf

    model = zoo.create_model("fsdd_ctc", **TINY, compression="pcen")
    kernel, bias = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([kernel * 20.0, bias])  # untrained transcripts not empty
    _, _, x = _twins()
    serving = load_serving(zoo.get_spec("fsdd_ctc"), model, {"tokens": list(DIGIT_WORDS), "sample_rate": 8000})
    got = serving.serve(tf.constant(x["waveform"]), tf.constant(x["length"]))["transcript"].numpy().tolist()
    wider = np.pad(x["waveform"], [[0, 0], [0, 3200]])  # a batch padded further: the scan runs over more frames
    again = serving.serve(tf.constant(wider), tf.constant(x["length"]))["transcript"].numpy().tolist()
    assert got == again and any(got)
    assert model.get_layer("log_mel").compression == "pcen"


def test_speaker_adversarial_training_saves_and_exports_the_plain_recogniser(tmp_path):
    """The speaker head trains beside the recogniser; model.keras and last.keras hold the recogniser alone."""
    data = write_fsdd_archive(tmp_path / "fsdd", takes=4, speakers=("george", "lucas", "jackson"))
    run = tmp_path / "run"

    def train(callbacks=()):
        return fit("fsdd_ctc", run_dir=run, data_dir=data, epochs=3, batch_size=8, verbose=0, callbacks=list(callbacks),
                   overrides={**TINY, "speaker_adversary": 0.5,
                              "data": {"split": "speaker:jackson", "synthetic": 0, "pad_multiple": 8000,
                                       "connected": {"num_train": 8, "num_test": 4, "max_digits": 2}}},
                   eval_options={"beam_width": 1, "verbose": False})

    with pytest.raises(RuntimeError, match="simulated crash"):
        train([CrashInEpoch2()])  # the process dies in epoch 2; the rerun resumes the adversarial model
    assert json.loads((run / "history.json").read_text())["epoch"] == [1]
    result = train()
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3]
    assert len(history["speaker_adversary_loss"]) == 3 and all(v > 0 for v in history["speaker_adversary_loss"])
    assert history["val_speaker_adversary_loss"] == [0.0] * 3  # jackson has no training class: nothing to score
    assert history["blank_padding_loss"][-1] < history["blank_padding_loss"][0]  # the recogniser still learns
    plain = zoo.create_model("fsdd_ctc", **TINY)
    for path in (run / "model.keras", run / "checkpoints" / "last.keras"):
        model = keras.saving.load_model(path)
        assert sorted(model.input) == ["length", "waveform"] and len(model.outputs) == 1
        assert "speaker_adversary" not in [layer.name for layer in model.layers]
        assert [w.shape for w in model.weights] == [w.shape for w in plain.weights]
    assert result.model.name == "fsdd_ctc" and "test" in result.metrics
    out = export_model(run, base_dir=tmp_path / "sm", verify=False)
    assert (out / "saved_model.pb").exists()


def test_speaker_adversary_is_refused_where_there_are_no_speakers(tmp_path):
    with pytest.raises(ValueError, match="speaker_adversary is a setting of speech recognition"):
        fit("cifar10_cnn", run_dir=tmp_path / "run", epochs=1, overrides={"speaker_adversary": 0.1})
    assert not (tmp_path / "run").exists()  # nothing left behind to block the corrected command
