"""Translator export: English strings in, German strings out, loadable without zoo (or tensorflow-text)."""

import gzip
import hashlib
import json
import pathlib

import pytest

from conftest import run_without_zoo
from zoo.cli import main
from zoo.export import export_model, predict
from zoo.training import fit

EN = ["A man is riding a bike.", "Two dogs play in the snow.", "A woman sings.", "Children run on the beach."]
DE = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau singt.", "Kinder laufen am Strand."]


def _write(root, n=64):
    root = pathlib.Path(root)
    (root / "multi30k").mkdir(parents=True)
    sums = []
    for split in ("train", "val", "test_2016_flickr"):
        for lang, lines in (("en", EN), ("de", DE)):
            data = gzip.compress(("\n".join(lines[i % 4] for i in range(n)) + "\n").encode())
            (root / "multi30k" / f"{split}.{lang}.gz").write_bytes(data)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  multi30k/{split}.{lang}.gz")
    (root / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return root


# Training the fixture run takes about a minute on 2 cores: these run with `make slow`
# so that the default run stays under 10 minutes while the translator is in progress.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    data_dir = _write(tmp_path_factory.mktemp("m30k"))
    run = tmp_path_factory.mktemp("translation-run") / "run"
    fit("multi30k_transformer", run_dir=run, data_dir=data_dir, epochs=8, batch_size=8, verbose=0,
        eval_options={"beam_width": 1, "verbose": False},
        overrides={"source_vocabulary_size": 200, "target_vocabulary_size": 200, "max_length": 24, "embedding_dim": 32,
                   "num_layers": 1, "num_heads": 2, "intermediate_dim": 64, "dropout": 0.0, "learning_rate": 5e-3,
                   "warmup": 10, "data": {"vocabulary_size": 200, "max_length": 24}})
    return run


def test_run_has_bleu_both_ways_and_examples(translation_run):
    metrics = json.loads((translation_run / "metrics.json").read_text())["test"]
    assert {"sacrebleu", "bleu_tokenized_lowercase", "labels"} <= set(metrics)
    assert metrics["sacrebleu"] > 50  # four memorised sentences
    assert (translation_run / "translations.txt").exists() and (translation_run / "examples.json").exists()


def test_export_maps_english_strings_to_german_without_zoo(translation_run, tmp_path):
    out = export_model(translation_run, base_dir=tmp_path / "sm")
    card = json.loads((out / "model_card.json").read_text())
    assert card["verified"] and card["signature"]["serving_default"]["inputs"] == {"text": ["string", [None]]}
    assert card["signature"]["serving_default"]["outputs"]["translation"] == ["string", [None]]
    script = (
        "import json\nimport tensorflow as tf\n"
        f"m = tf.saved_model.load({str(out)!r})\n"
        f"r = m.signatures['serving_default'](text=tf.constant({EN[:2] + ['x ' * 50, '', '   ']!r}))\n"
        "print(json.dumps({'t': [x.decode() for x in r['translation'].numpy()], 'cut': r['truncated'].numpy().tolist()}))\n"
    )
    got = json.loads(run_without_zoo(script))
    assert got["t"][:2] == DE[:2] and got["cut"] == [False, False, True, False, False]
    assert got["t"][3:] == ["", ""]  # empty source -> empty translation, not the model's prior
    direct = predict("multi30k_transformer", EN[:2], run_dir=str(translation_run))
    assert [r["translation"] for r in direct] == DE[:2]
    from_export = predict(str(out), EN[:1])
    assert from_export[0]["translation"] == DE[0]


def test_predict_refuses_empty_text(translation_run, capsys):
    assert main(["predict", "multi30k_transformer", " ", "--run-dir", str(translation_run)]) == 2
    assert "empty text" in capsys.readouterr().err


def test_predict_table_with_a_cut_input_after_a_short_one(translation_run, capsys):
    assert main(["predict", "multi30k_transformer", EN[0], "x " * 50, "--run-dir", str(translation_run)]) == 0
    out = capsys.readouterr().out
    assert "note" in out and "cut to the model's maximum length" in out and DE[0] in out
