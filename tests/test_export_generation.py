"""imdb_gpt end to end on the tiny IMDB archive: train (per-epoch test perplexity), export (prompt strings ->
generated strings, verified without zoo), `zoo predict` on the SavedModel == on the run for a fixed seed,
bad prompts; the classifier fine-tuned from that run exports like the other text classifiers."""

import json
import subprocess
import sys

import numpy as np
import pytest

from zoo.cli import main

TINY = {"vocabulary_size": 120, "max_length": 32, "embedding_dim": 32, "num_layers": 1, "num_heads": 2,
        "intermediate_dim": 64, "data": {"vocabulary_size": 120, "max_length": 32}}


@pytest.fixture(scope="module")
def lm_run(tiny_imdb, tmp_path_factory):
    from zoo.training import fit

    run = tmp_path_factory.mktemp("runs") / "imdb_gpt"
    result = fit("imdb_gpt", data_dir=tiny_imdb, run_dir=run, epochs=2, batch_size=16, overrides=dict(TINY),
                 verbose=0)
    return run, result


def test_training_reports_test_perplexity_per_epoch_and_in_metrics(lm_run):
    run, result = lm_run
    history = json.loads((run / "history.json").read_text())
    assert len(history["val_perplexity"]) == 2 and history["val_perplexity"][1] < history["val_perplexity"][0]
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert test["perplexity"] == pytest.approx(np.exp(test["token_cross_entropy"]), rel=1e-5)
    assert 1 < test["perplexity"] < 120 and test["tokens"] > 0
    assert set(test["samples_greedy"]) == {"This movie was", "I have never seen", "The acting"}


@pytest.fixture(scope="module")
def exported(lm_run, tmp_path_factory):
    from zoo.export import export_model

    run, _ = lm_run
    return export_model(run, base_dir=tmp_path_factory.mktemp("saved"))  # verified in a process without zoo


@pytest.mark.slow
def test_export_loads_without_zoo_and_documents_its_signature(exported):
    card = json.loads((exported / "model_card.json").read_text())
    assert card["verified"] is True
    assert set(card["signature"]["serving_default"]["inputs"]) == {
        "text", "sampler", "max_length", "num_return_sequences", "temperature", "top_k", "top_p", "seed"}
    assert card["signature"]["serving_default"]["outputs"]["generated"][1] == [None, None]
    readme = (exported / "README.md").read_text()
    assert "| `sampler` | tf.string `()` |" in readme and "num_return_sequences=1" in readme
    script = (
        "import sys, importlib.abc\n"
        "class B(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, n, p=None, t=None):\n"
        "        if n.split('.')[0] in ('zoo', 'applications'): raise ImportError(n)\n"
        "sys.meta_path.insert(0, B())\n"
        "import tensorflow as tf\n"
        f"f = tf.saved_model.load({str(exported)!r}).signatures['serving_default']\n"
        "kw = dict(sampler=tf.constant('top_p'), max_length=tf.constant(20), num_return_sequences=tf.constant(3),\n"
        "          temperature=tf.constant(1.0), top_k=tf.constant(5), top_p=tf.constant(0.9),\n"
        "          seed=tf.constant(1, tf.int64))\n"
        "a = f(text=tf.constant(['This movie was', 'A']), **kw)\n"
        "b = f(text=tf.constant(['This movie was', 'A']), **kw)\n"
        "assert a['generated'].shape == (2, 3), a['generated'].shape\n"
        "assert (a['generated'].numpy() == b['generated'].numpy()).all()\n"
        "try:\n"
        "    f(text=tf.constant(['x']), **{**kw, 'sampler': tf.constant('nucleus')})\n"
        "    raise SystemExit('no error')\n"
        "except tf.errors.InvalidArgumentError as e:\n"
        "    assert 'unknown sampler' in str(e)\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_zoo_predict_on_the_export_matches_the_run_for_a_fixed_seed(lm_run, exported, capsys):
    run, _ = lm_run
    args = ["This movie was", "--num-return-sequences", "3", "--sampler", "top_p", "--top-p", "0.9", "--seed", "1",
            "--max-length", "20", "--json"]
    assert main(["predict", str(exported), *args]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert main(["predict", "imdb_gpt", "--run-dir", str(run), *args]) == 0
    in_memory = json.loads(capsys.readouterr().out)
    assert [r["n"] for r in saved] == [1, 2, 3]
    assert [r["continuation"] for r in saved] == [r["continuation"] for r in in_memory]
    assert len({r["continuation"] for r in saved}) > 1  # three different samples


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["greedy", "beam"])
def test_deterministic_samplers_through_predict(exported, capsys, sampler):
    assert main(["predict", str(exported), "This movie was", "--sampler", sampler, "--max-length", "16",
                 "--num-return-sequences", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    if sampler == "greedy":
        assert rows[0]["continuation"] == rows[1]["continuation"]


def test_bad_prompts_get_a_clear_result_or_error(exported, capsys):
    long_prompt = " ".join(["this movie was great fun"] * 60)
    assert main(["predict", str(exported), "", long_prompt, "--seed", "1", "--max-length", "20", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["note"].startswith("empty prompt") and rows[1]["note"].startswith("prompt was cut")
    bad = b"bad \xff bytes".decode("utf-8", "surrogateescape")  # what argv holds for non-UTF-8 bytes
    assert main(["predict", str(exported), bad]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err
    assert main(["predict", str(exported), "x", "--sampler", "nucleus"]) == 2
    assert "unknown sampler 'nucleus'" in capsys.readouterr().err
    assert main(["predict", str(exported), "x", "--sampler", "beam", "--num-return-sequences", "9"]) == 2
    assert "beam search keeps 4 beams" in capsys.readouterr().err


@pytest.mark.slow
def test_classifier_fine_tuned_from_the_run_exports_raw_strings(lm_run, tiny_imdb, tmp_path, capsys):
    from zoo.export import export_model
    from zoo.training import fit

    run, _ = lm_run
    overrides = {k: v for k, v in TINY.items()}
    overrides.update(init_from=str(run), pooling="last")
    result = fit("imdb_gpt_classifier", data_dir=tiny_imdb, run_dir=tmp_path / "clf", epochs=1, batch_size=16,
                 overrides=overrides, verbose=0)
    vocab = (run / "preprocessor" / "vocabulary.txt").read_text()
    assert (tmp_path / "clf" / "preprocessor" / "vocabulary.txt").read_text() == vocab  # the LM's tokenizer
    config = json.loads((tmp_path / "clf" / "config.json").read_text())
    assert config["train"]["data"]["preprocessor_from"] == str(run)  # so `zoo evaluate` reads the same ids
    assert 0.0 <= result.metrics["test"]["accuracy"] <= 1.0
    path = export_model(tmp_path / "clf", base_dir=tmp_path / "saved")
    assert main(["predict", str(path), "A wonderful film.", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["label"] in ("neg", "pos")
    assert main(["predict", str(path), "A wonderful film.", "--sampler", "greedy"]) == 2
    assert "generation settings are for text-generation models" in capsys.readouterr().err
