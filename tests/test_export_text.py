"""Text export: raw strings in, sentiment out, loadable without zoo."""

import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_without_zoo
from zoo.cli import main
from zoo.export import export_model, predict
from zoo.training import fit


@pytest.fixture(scope="module")
def text_run(tiny_imdb, tmp_path_factory):
    run = tmp_path_factory.mktemp("text-run") / "run"
    fit("imdb_bilstm_attention", run_dir=run, data_dir=tiny_imdb, epochs=3, batch_size=16, verbose=0,
        overrides={"vocabulary_size": 300, "embedding_dim": 16, "units": 12, "learning_rate": 1e-2,
                   "data": {"max_tokens": 300, "sequence_length": 64}})
    return run


def test_export_takes_raw_strings_without_zoo(text_run, tmp_path):
    out = export_model(text_run, base_dir=tmp_path / "sm")
    card = json.loads((out / "model_card.json").read_text())
    assert card["signature"]["serving_default"]["inputs"] == {"text": ["string", [None]]}
    assert card["verified"] and (text_run / "preprocessor" / "vocabulary.txt").exists()
    reviews = ["A wonderful, superb film!", "Awful. Boring; a waste.", ""]
    script = (
        "import json\nimport tensorflow as tf\n"
        f"m = tf.saved_model.load({str(out)!r})\n"
        f"r = m.signatures['serving_default'](text=tf.constant({reviews!r}))\n"
        "print(json.dumps({'p': r['probability'].numpy().tolist(), 'l': [x.decode() for x in r['label'].numpy()]}))\n"
    )
    got = json.loads(run_without_zoo(script))
    direct = predict("imdb_bilstm_attention", reviews[:2], run_dir=str(text_run))
    np.testing.assert_allclose(got["p"][:2], [r["probability_pos"] for r in direct], atol=1e-5)
    assert got["l"][:2] == ["pos", "neg"]
    assert 0.0 <= got["p"][2] <= 1.0  # empty review: defined output (the model's prior)


def test_a_review_alone_and_padded_in_a_batch_with_a_long_one_scores_the_same(text_run):
    import tensorflow as tf

    from zoo.export import load_run_preprocessor
    from zoo.serving import load_serving
    from zoo.training import load_run

    spec, model, _ = load_run(text_run)
    serving = load_serving(spec, model, {"class_names": ["neg", "pos"]}, load_run_preprocessor(text_run))
    short = "A superb, moving film."
    long = " ".join(["the plot was boring and the actor was awful"] * 30)  # longer than sequence_length
    alone = serving.serve(text=tf.constant([short]))["probability"].numpy()
    batch = serving.serve(text=tf.constant([long, short, "", "   "]))["probability"].numpy()
    np.testing.assert_allclose(batch[1], alone[0], atol=1e-5)
    np.testing.assert_allclose(batch[2], batch[3], atol=1e-6)  # empty == whitespace-only: all padding


def test_predict_refuses_empty_text(text_run, capsys):
    assert main(["predict", "imdb_bilstm_attention", "  ", "--run-dir", str(text_run)]) == 2
    assert "empty text" in capsys.readouterr().err


def test_evaluate_refuses_a_limit_that_would_refit_the_vocabulary(text_run, tiny_imdb, capsys):
    args = ["evaluate", "imdb_bilstm_attention", "--run-dir", str(text_run), "--data-dir", str(tiny_imdb)]
    assert main([*args, "--limit", "7"]) == 2
    assert "new vocabulary" in capsys.readouterr().err


@pytest.mark.slow  # a training run, a full export and a TFLite conversion: ~1 min on 2 cores
def test_tflite_export_of_the_token_signature_matches(tiny_imdb, tmp_path, capsys):
    run = tmp_path / "run"
    fit("imdb_transformer", run_dir=run, data_dir=tiny_imdb, epochs=1, batch_size=16, verbose=0,
        overrides={"vocabulary_size": 300, "sequence_length": 64, "embedding_dim": 16, "num_layers": 1,
                   "intermediate_dim": 32, "data": {"max_tokens": 300, "sequence_length": 64}})
    assert main(["export", "imdb_transformer", "--run-dir", str(run), "--out", str(tmp_path / "sm"), "--tflite"]) == 0
    version = capsys.readouterr().out.strip()
    card = json.loads(open(os.path.join(version, "model_card.json")).read())
    assert card["tflite"]["signature"] == "serve_tokens" and card["tflite"]["top1_agreement"] >= 0.99
    assert card["tflite"]["max_probability_diff"] < 1e-3
    # the file takes token ids: the tokenizer is written beside it, and `zoo predict` on the file uses it
    assert card["tflite"]["preprocessor"] == "preprocessor"
    assert (pathlib.Path(version) / "preprocessor" / "vocabulary.txt").exists()
    assert "line k, counting from 0, has id k + 2" in (pathlib.Path(version) / "README.md").read_text()
    from zoo.data import load_preprocessor  # the README's rule, checked against the tokenizer itself

    words = (pathlib.Path(version) / "preprocessor" / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    ids = load_preprocessor(pathlib.Path(version) / "preprocessor")(tf.constant([f"{words[0]} {words[5]} qqqzx"]))
    assert ids.numpy()[0].tolist() == [2, 7, 1]
    reviews = ["A wonderful, moving film. Loved it!", "Dull and far too long; I left early."]
    assert main(["predict", os.path.join(version, "model.tflite"), *reviews, "--json"]) == 0
    lite = json.loads(capsys.readouterr().out)
    assert main(["predict", version, *reviews, "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in lite] == [r["label"] for r in saved]
    assert [r["probability_pos"] for r in lite] == pytest.approx([r["probability_pos"] for r in saved], abs=1e-3)


@pytest.mark.slow  # a full export and a failed conversion: ~30 s on 2 cores
def test_tflite_of_a_recurrent_model_fails_clearly_and_leaves_nothing(text_run, tmp_path, capsys):
    out = tmp_path / "sm"
    assert main(["export", "imdb_bilstm_attention", "--run-dir", str(text_run), "--out", str(out), "--tflite"]) == 2
    assert "TF select ops" in capsys.readouterr().err
    assert not (out / "imdb_bilstm_attention").exists()  # no version, no temporary, no empty model folder
