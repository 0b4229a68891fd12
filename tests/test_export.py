"""Export: TF Serving layout, clean-process verification, atomicity, model cards, predict."""

import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import export as zexport
from conftest import run_without_zoo
from zoo.cli import main
from zoo.export import ExportError, export_model, predict
from zoo.training import fit


@pytest.fixture(scope="module")
def image_run(tiny_cifar, tmp_path_factory):
    """A finished tiny cifar10_cnn run."""
    run = tmp_path_factory.mktemp("image-run") / "run"
    fit("cifar10_cnn", run_dir=run, data_dir=tiny_cifar, epochs=2, batch_size=20, verbose=0,
        overrides={"filters": [8, 16, 16], "dense_units": 16, "learning_rate": 3e-3})
    return run


def _jpeg(path, value=(200, 30, 30), size=(32, 32)):
    path.write_bytes(tf.io.encode_jpeg(np.full((*size, 3), value, np.uint8)).numpy())
    return path


def test_export_layout_card_and_clean_process_load(image_run, tmp_path):
    out = export_model(image_run, base_dir=tmp_path / "saved_models")
    assert out == tmp_path / "saved_models" / "cifar10_cnn" / "1"
    assert (out / "saved_model.pb").exists() and (out / "variables").is_dir()
    card = json.loads((out / "model_card.json").read_text())
    assert card["version"] == 1 and card["model"] == "cifar10_cnn" and card["verified"] is True
    assert card["signature"]["serving_default"]["inputs"] == {"image_bytes": ["string", [None]]}
    assert card["signature"]["serving_default"]["outputs"]["probabilities"] == ["float32", [None, 10]]
    assert card["hyperparameters"]["model"]["dense_units"] == 16
    assert card["metrics"]["test"]["num_examples"] == 40 and card["data"]["class_names"][3] == "cat"
    assert "version 1" in (out / "README.md").read_text()
    # our own check: a process with TensorFlow only, zoo unimportable, raw JPEG bytes in
    img = _jpeg(tmp_path / "red.jpg", size=(48, 40))
    script = (
        "import json\nimport tensorflow as tf\n"
        f"m = tf.saved_model.load({str(out)!r})\n"
        f"r = m.signatures['serving_default'](image_bytes=tf.constant([open({str(img)!r}, 'rb').read()]))\n"
        "print(json.dumps({'p': r['probabilities'].numpy().tolist(), 'label': r['label'].numpy()[0].decode()}))\n"
    )
    got = json.loads(run_without_zoo(script))
    _, model, _ = zoo.training.load_run(image_run)
    decoded = tf.image.resize(tf.io.decode_jpeg(img.read_bytes()), [32, 32], method="area")
    want = tf.nn.softmax(model(tf.cast(tf.round(decoded), tf.uint8)[None])).numpy()
    np.testing.assert_allclose(got["p"], want, atol=1e-5)
    assert got["label"] == card["data"]["class_names"][int(np.argmax(want))]


def test_versions_count_up_and_crash_leaves_nothing(image_run, tmp_path, monkeypatch):
    base = tmp_path / "sm"
    assert export_model(image_run, base_dir=base, verify=False).name == "1"

    def boom(*a, **k):
        raise ExportError("simulated crash during verification")

    monkeypatch.setattr(zexport, "verify_saved_model", boom)
    with pytest.raises(ExportError, match="simulated crash"):
        export_model(image_run, base_dir=base)
    assert sorted(p.name for p in (base / "cifar10_cnn").iterdir()) == ["1"]  # no version 2, no temp dir
    monkeypatch.undo()
    assert export_model(image_run, base_dir=base, verify=False).name == "2"


def test_failed_verification_is_reported_and_removed(image_run, tmp_path, monkeypatch):
    monkeypatch.setattr(zexport, "TOLERANCE", -1.0)  # nothing can be within a negative tolerance
    with pytest.raises(ExportError, match="disagrees with the in-memory model.*probabilities"):
        export_model(image_run, base_dir=tmp_path / "sm")
    assert not (tmp_path / "sm" / "cifar10_cnn").exists()  # no version, no temporary, no empty model folder


def test_export_bad_inputs_have_clear_errors(image_run, tmp_path):
    with pytest.raises(ExportError, match="does not exist: train first"):
        export_model(tmp_path / "nope", base_dir=tmp_path / "sm")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text(json.dumps({"model": "cifar10_cnn"}))
    with pytest.raises(ValueError, match="no trained model yet"):
        export_model(unfinished, base_dir=tmp_path / "sm")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    if os.access(readonly, os.W_OK):
        pytest.skip("running as a user who can write anywhere (root)")
    with pytest.raises(ExportError, match="cannot write exports"):
        export_model(image_run, base_dir=readonly)


@pytest.mark.slow  # ~8 s; the TFLite parity of text exports stays in the default run (test_export_text.py)
def test_cli_export_tflite_and_predict(image_run, tmp_path, capsys):
    assert main(["export", "cifar10_cnn", "--run-dir", str(image_run), "--out", str(tmp_path / "sm"), "--tflite"]) == 0
    version = pathlib.Path(capsys.readouterr().out.strip())
    card = json.loads((version / "model_card.json").read_text())
    assert (version / "model.tflite").exists() and card["tflite"]["top1_agreement"] >= 0.99
    img = _jpeg(tmp_path / "a.jpg")
    assert main(["predict", str(version), str(img), "--json", "--top-k", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["input"] == str(img) and len(rows[0]["top_k"]) == 2
    assert 0.0 <= rows[0]["probability"] <= 1.0 and rows[0]["label"] in card["data"]["class_names"]
    # the same prediction from the run (no SavedModel involved)
    direct = predict("cifar10_cnn", [str(img)], run_dir=str(image_run))
    assert direct[0]["label"] == rows[0]["label"]
    assert direct[0]["probability"] == pytest.approx(rows[0]["probability"], abs=1e-5)
    # wrong modality and corrupt SavedModels get one-line errors
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    assert main(["predict", str(version), str(wav)]) == 2
    assert "not a JPEG, PNG, GIF or BMP image" in capsys.readouterr().err
    (version / "saved_model.pb").write_bytes(b"garbage")
    assert main(["predict", str(version), str(img)]) == 2
    assert "is not a loadable SavedModel" in capsys.readouterr().err


def test_cli_evaluate_reproduces_the_run_metrics(image_run, tiny_cifar, capsys):
    assert main(["evaluate", "cifar10_cnn", "--run-dir", str(image_run), "--data-dir", str(tiny_cifar)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((image_run / "evaluation.json").read_text())
    expected = json.loads((image_run / "metrics.json").read_text())["test"]
    assert printed["accuracy"] == written["accuracy"] == pytest.approx(expected["accuracy"])
    assert written["confusion_matrix"] == expected["confusion_matrix"]
    assert main(["evaluate", "cifar10_vit", "--run-dir", str(image_run)]) == 2
    assert "holds a cifar10_cnn run, not cifar10_vit" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# test-time augmentation: the export serves what the run's test metrics measured
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tta_run(tiny_cifar, tmp_path_factory):
    """A finished tiny cifar10_cnn run evaluated with flip + 1-pixel translate TTA (as the main job's airbench)."""
    run = tmp_path_factory.mktemp("tta-run") / "run"
    fit("cifar10_cnn", run_dir=run, data_dir=tiny_cifar, epochs=2, batch_size=20, verbose=0,
        overrides={"filters": [8, 16, 16], "dense_units": 16, "learning_rate": 3e-3},
        eval_options={"tta_flip": True, "tta_translate": 1})
    return run


def test_export_serves_the_runs_test_time_augmentation(tta_run, tiny_cifar, tmp_path):
    """Default export of a TTA-evaluated run: the signature averages the same views as the evaluation, so the
    SavedModel on the test JPEGs scores exactly the run's reported test accuracy; `--no-tta` serves one view."""
    from zoo.tasks.classification import tta_logits

    metrics = json.loads((tta_run / "metrics.json").read_text())["test"]
    assert metrics["tta_flip"] is True and metrics["tta_translate"] == 1
    out = export_model(tta_run, base_dir=tmp_path / "sm")
    card = json.loads((out / "model_card.json").read_text())
    assert card["serving_options"] == {"tta_flip": True, "tta_translate": 1}
    assert "flip + 1-pixel translate" in (out / "README.md").read_text()
    from applications.image.data import load_cifar10_jpegs

    blobs, labels = load_cifar10_jpegs("test", tiny_cifar)
    served = tf.saved_model.load(str(out)).signatures["serving_default"](image_bytes=tf.constant(blobs))
    probs = served["probabilities"].numpy()
    assert float((probs.argmax(-1) == labels).mean()) == pytest.approx(metrics["accuracy"])
    _, model, _ = zoo.training.load_run(tta_run)
    images = tf.stack([tf.io.decode_jpeg(b) for b in blobs])
    want = tf.nn.softmax(tta_logits(model, images, tta_flip=True, tta_translate=1)).numpy()
    np.testing.assert_allclose(probs, want, atol=1e-5)
    plain = tf.nn.softmax(model(images)).numpy()
    assert np.abs(probs - plain).max() > 1e-3  # the views do change the output
    # zoo predict on the run directory serves the same as its export
    rows = predict("cifar10_cnn", [str(_jpeg(tmp_path / "x.jpg"))], run_dir=str(tta_run), top_k=10)
    one = tf.saved_model.load(str(out)).signatures["serving_default"](
        image_bytes=tf.constant([(tmp_path / "x.jpg").read_bytes()]))["probabilities"].numpy()[0]
    names = card["data"]["class_names"]
    np.testing.assert_allclose([rows[0]["top_k"][n] for n in names], one, atol=1e-5)
    # --no-tta: one view, nothing recorded
    assert main(["export", "cifar10_cnn", "--run-dir", str(tta_run), "--out", str(tmp_path / "sm"), "--no-tta"]) == 0
    card2 = json.loads((out.parent / "2" / "model_card.json").read_text())
    assert "serving_options" not in card2 and card2["serving_options_not_served"] == card["serving_options"]
    assert "which this export does not serve" in (out.parent / "2" / "README.md").read_text()
    tflite = json.loads((export_model(tta_run, base_dir=tmp_path / "lite", tflite=True) / "model_card.json")
                        .read_text())["tflite"]  # the pixels endpoint carries the views too (reverse, mirror pad)
    assert tflite["top1_agreement"] >= 0.99 and tflite["max_probability_diff"] < 1e-4
    plain_served = tf.saved_model.load(str(out.parent / "2")).signatures["serving_default"](image_bytes=tf.constant(blobs))
    np.testing.assert_allclose(plain_served["probabilities"].numpy(), plain, atol=1e-5)


def test_serving_options_follow_the_run_and_the_recipe():
    from zoo.export import serving_options
    from zoo.serving import load_serving

    image, text = zoo.get_spec("cifar10_cnn"), zoo.get_spec("imdb_lstm")
    tested = {"test": {"accuracy": 0.9, "tta_flip": True, "tta_translate": 2}}
    assert serving_options(image, tested) == {"tta_flip": True, "tta_translate": 2}
    assert serving_options(image, tested, tta=False) == {}
    assert serving_options(image, {"test": {"accuracy": 0.9, "tta_flip": False}}) == {}
    assert serving_options(image, None) == {} and serving_options(text, tested) == {}
    with pytest.raises(ValueError, match="takes no option tta_flip"):
        load_serving(text, None, {"class_names": ["neg", "pos"]}, None, {"tta_flip": True})
    with pytest.raises(ValueError, match="tta_translate"):
        load_serving(image, None, {"class_names": list("abcdefghij")}, None, {"tta_translate": -1})

    class Older(type(load_serving(image, None, {"class_names": list("abcdefghij")}))):  # a plugin's recipe
        def __init__(self, model, spec, info, preprocessor=None):  # written before recipes took options
            super().__init__(model, spec, info, preprocessor)

    import dataclasses

    older = dataclasses.replace(image, serving=Older)
    assert isinstance(load_serving(older, None, {"class_names": list("abcdefghij")}), Older)


def test_tflite_conversion_failure_is_one_line_and_leaves_nothing(image_run, tmp_path, monkeypatch, capfd):
    """A model with an op TFLite cannot run (as Erfc, exact GELU in bf16, before float32 twins): the converter's
    MLIR dump on stderr is silenced, the error names the op and the fix, the CLI exits 2, no version is left."""

    class Converter:
        target_spec = type("T", (), {"supported_ops": None})()

        def convert(self):
            os.write(2, b"MLIR module dump, hundreds of lines\n")
            raise RuntimeError("Could not translate MLIR to FlatBuffer. error: 'tf.Erfc' op is neither a custom op "
                               "nor a flex op")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", lambda *a, **k: Converter())
    out = tmp_path / "sm"
    assert main(["export", "cifar10_cnn", "--run-dir", str(image_run), "--out", str(out), "--tflite"]) == 2
    err = capfd.readouterr().err
    assert "MLIR module dump" not in err
    assert "no TFLite kernel for the op(s) Erfc" in err and "without --tflite" in err
    assert len(err.strip().splitlines()) == 1
    assert not (out / "cifar10_cnn").exists()


def test_float32_twin_has_the_weights_and_computes_in_float32():
    """A mixed-precision model's twin: every layer float32, the same weights, the original untouched; a float32
    model is its own twin."""
    import keras

    from zoo.export import float32_twin

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = zoo.create_model("cifar10_airbench", widths=(8, 16, 16))
    finally:
        keras.config.set_dtype_policy(previous)
    twin = float32_twin(model)
    assert {layer.dtype_policy.name for layer in twin._flatten_layers()} == {"float32"}
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in model._flatten_layers()}
    for a, b in zip(model.weights, twin.weights, strict=True):
        assert a.path == b.path and np.array_equal(np.asarray(a), np.asarray(b))
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    bf16, f32 = np.asarray(model(x), np.float32), np.asarray(twin(x))
    assert f32.dtype == np.float32 and np.abs(bf16 - f32).max() < 0.05 * np.abs(f32).max() + 1e-3
    plain = zoo.create_model("cifar10_cnn", filters=[8, 16, 16], dense_units=16)
    assert float32_twin(plain) is plain


def test_tflite_export_of_a_bf16_model_converts_its_float32_twin(tiny_cifar, tmp_path, capsys, monkeypatch):
    """cifar10_airbench trained in mixed_bfloat16 (the main job on bf16 CPUs): exact GELU in bf16 has no TFLite
    kernel (Erfc), so `--tflite` converts the float32 twin; the card says so and what it agrees with."""
    from applications.image.data import load_cifar10_arrays

    run = tmp_path / "run"
    fit("cifar10_airbench", run_dir=run, data_dir=tiny_cifar, epochs=1, batch_size=20, verbose=0,
        precision="mixed_bfloat16", overrides={"widths": (8, 16, 16)})
    out = tmp_path / "sm"
    assert main(["export", "cifar10_airbench", "--run-dir", str(run), "--out", str(out), "--tflite"]) == 0
    version = out / "cifar10_airbench" / "1"
    lite = json.loads((version / "model_card.json").read_text())["tflite"]
    assert lite["model_dtype_policy"] == "mixed_bfloat16" and lite["compute_dtype"] == "float32"
    assert lite["top1_agreement"] >= 0.99 and lite["max_probability_diff"] < 1e-4
    assert lite["top1_agreement_with_saved_model"] >= 0.9
    readme = (version / "README.md").read_text()
    assert "its float32 copy with the same weights" in readme
    snippet = readme.split("## TensorFlow Lite")[1].split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(out)  # the README's paths are relative to the export root, as TF Serving's layout
    space = {}
    exec(snippet.replace("\nrun(", "\nresult = run("), space)  # the README's code as a user pastes it
    assert np.asarray(space["result"]).shape == (1, 10)
    assert sorted(p.name for p in (out / "cifar10_airbench").iterdir()) == ["1"]  # no float32 SavedModel left beside
    images, _ = load_cifar10_arrays("test", tiny_cifar)
    runner = tf.lite.Interpreter(model_path=str(version / "model.tflite")).get_signature_runner("serve_pixels")
    got = np.concatenate([runner(image=images[i:i + 1])["probabilities"] for i in range(len(images))])
    want = tf.saved_model.load(str(version)).signatures["serve_pixels"](image=tf.constant(images))["probabilities"]
    assert np.abs(got - want.numpy()).max() < 0.05  # bf16 rounding in the SavedModel, float32 in the file
    # `zoo predict` on the file: image bytes decoded here as the SavedModel decodes them, then the file runs
    monkeypatch.chdir(tmp_path)
    jpegs = []
    for i in range(3):
        jpegs.append(tmp_path / f"{i}.jpg")
        jpegs[-1].write_bytes(tf.io.encode_jpeg(images[i]).numpy())
    capsys.readouterr()
    lite_file = "sm/cifar10_airbench/1/model.tflite"  # relative, as typed
    assert main(["predict", lite_file, *map(str, jpegs), "--json", "--top-k", "2"]) == 0
    lite_rows = json.loads(capsys.readouterr().out)
    assert main(["predict", "sm/cifar10_airbench/1", *map(str, jpegs), "--json", "--top-k", "2"]) == 0
    saved_rows = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in lite_rows] == [str(j) for j in jpegs] and all(len(r["top_k"]) == 2 for r in lite_rows)
    for a, b in zip(lite_rows, saved_rows):
        assert a["probability"] == pytest.approx(b["probability"], abs=0.05) and set(a) == set(b)
    decoded = np.stack([tf.io.decode_jpeg(j.read_bytes()).numpy() for j in jpegs])
    direct = np.concatenate([runner(image=decoded[i:i + 1])["probabilities"] for i in range(3)])
    assert [r["probability"] for r in lite_rows] == pytest.approx(direct.max(-1).tolist(), abs=1e-6)
    # bad targets: one line each, the fix named
    assert main(["predict", "sm/cifar10_airbench/1/other.tflite", str(jpegs[0])]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "stray.tflite").write_bytes(b"x")
    assert main(["predict", "stray.tflite", str(jpegs[0])]) == 2
    assert "not a TensorFlow Lite file written by `zoo export --tflite`" in capsys.readouterr().err
