"""Text export: raw strings in, sentiment out, loadable without zoo."""

import json
import os

import numpy as np
import pytest

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


def test_predict_refuses_empty_text(text_run, capsys):
    assert main(["predict", "imdb_bilstm_attention", "  ", "--run-dir", str(text_run)]) == 2
    assert "empty text" in capsys.readouterr().err


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


def test_tflite_of_a_recurrent_model_fails_clearly_and_leaves_nothing(text_run, tmp_path, capsys):
    out = tmp_path / "sm"
    assert main(["export", "imdb_bilstm_attention", "--run-dir", str(text_run), "--out", str(out), "--tflite"]) == 2
    assert "TF select ops" in capsys.readouterr().err
    assert list((out / "imdb_bilstm_attention").iterdir()) == []
