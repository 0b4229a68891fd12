"""The examples end to end on real data slices (slow: `make slow`)."""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


TF_LOG_LINE = re.compile(r"^([EWIF]\d{4} \d\d:\d\d:\d\d|error: ')", re.M)  # C++ logging, MLIR diagnostics


def _run(script, tmp_path, data_dir, *args, stderr=False):
    """Run an example as a user types it (TensorFlow's log level left to the example); its stdout (and stderr)."""
    cmd = [sys.executable, str(ROOT / "examples" / script), "--data-dir", str(data_dir), "--run-dir", str(tmp_path / "run"),
           "--out", str(tmp_path / "sm"), *args]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (proc.stdout, proc.stderr) if stderr else proc.stdout


@pytest.mark.slow
def test_cifar10_example_trains_evaluates_and_exports(tmp_path, shared_data_dir):
    out = _run("train_cifar10.py", tmp_path, shared_data_dir, "--epochs", "1", "--limit", "5000", "--batch-size", "128", "--tta")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["num_examples"] == 5000 and metrics["test"]["accuracy"] > 0.25
    assert (tmp_path / "run" / "confusion.png").exists() and (tmp_path / "run" / "curves.png").exists()
    card = json.loads((tmp_path / "sm" / "cifar10_airbench" / "1" / "model_card.json").read_text())
    assert card["verified"] and "SavedModel:" in out
    assert "epoch 1/1: " in out and "training done" in out  # the per-epoch clock a newcomer watches


@pytest.mark.slow
def test_text_example_trains_evaluates_exports_and_draws_attention(tmp_path, shared_data_dir):
    _run("train_text.py", tmp_path, shared_data_dir, "--epochs", "1", "--limit", "3000")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["num_examples"] == 3000 and metrics["test"]["accuracy"] > 0.6
    rows = json.loads((tmp_path / "run" / "attention.json").read_text())
    assert len(rows) == 6 and all(abs(sum(r["weights"]) - 1) < 0.05 or len(r["words"]) == 40 for r in rows)
    assert (tmp_path / "sm" / "imdb_bilstm_attention" / "1" / "saved_model.pb").exists()


@pytest.mark.slow
def test_speech_example_learns_real_digits_and_exports(tmp_path, shared_data_dir):
    out, err = _run("train_speech.py", tmp_path, shared_data_dir, "--epochs", "20", "--limit", "800", "--batch-size",
                    "16", "--beam-width", "1", "--set", "data.connected.num_train=200", "--set",
                    "data.connected.num_test=50", stderr=True)
    # training and decoding (greedy, single word) print no TensorFlow log lines of their own
    assert not TF_LOG_LINE.search(err), err[-3000:]
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert test["num_isolated"] == 250 and test["num_connected"] == 50
    assert test["isolated_accuracy_single_word"] > 0.5  # chance is 10%
    loss = json.loads((tmp_path / "run" / "history.json").read_text())["loss"]
    assert len(loss) == 20 and loss[-1] < 0.5 * loss[0], loss  # CTC loss falls on real speech
    assert (tmp_path / "run" / "confusion.png").exists() and (tmp_path / "run" / "transcripts.json").exists()
    info = json.loads((tmp_path / "run" / "data_info.json").read_text())
    # the spec's synthetic and converted voices, each capped by --limit at 80 voices of 10 digits
    assert info["synthetic_voices"] == info["converted_voices"] == 80 and info["num_train_synthetic"] == 1600
    card = json.loads((tmp_path / "sm" / "fsdd_ctc" / "1" / "model_card.json").read_text())
    assert card["verified"] and "SavedModel:" in out


@pytest.mark.slow
def test_translator_example_trains_evaluates_and_exports(tmp_path, shared_data_dir):
    out = _run("train_translator.py", tmp_path, shared_data_dir, "--epochs", "1", "--limit", "300", "--beam-width", "2",
               "--set", "embedding_dim=32", "--set", "intermediate_dim=64", "--set", "num_layers=1")
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert test["num_examples"] == 300 and "sacrebleu" in test and "bleu_tokenized_lowercase" in test
    card = json.loads((tmp_path / "sm" / "multi30k_transformer" / "1" / "model_card.json").read_text())
    assert card["verified"] and "A man is riding a bike.  ->  " in out
    assert "[UNK]" not in out and "[START]" not in out and "[PAD]" not in out


def _cifar10_example():
    """examples/train_cifar10.py as a module."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import train_cifar10 as example
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return example


def _fit_arguments(example, monkeypatch, argv) -> dict:
    """The keyword arguments the example's main(argv) hands to zoo.fit (which is not run)."""
    seen = {}

    class Stop(Exception):
        pass

    def fake_fit(name, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(example.zoo, "fit", fake_fit)
    with pytest.raises(Stop):
        example.main(argv)
    return seen


def test_cifar10_preset_narrows_where_training_runs_in_float32(monkeypatch):
    example = _cifar10_example()
    import zoo.training

    bf16 = example.preset("cifar10_airbench", "mixed_bfloat16")
    assert bf16 == example.CPU_PRESETS["cifar10_airbench"] and bf16 is not example.CPU_PRESETS["cifar10_airbench"]
    f32 = example.preset("cifar10_airbench", "float32")
    assert f32["widths"] == [32, 128, 128] and f32["epochs"] == 16
    assert {k: v for k, v in f32.items() if k not in ("widths", "epochs", "data")} == \
        {k: v for k, v in bf16.items() if k not in ("widths", "epochs", "data")}  # the same recipe, narrower
    # the same data settings, the first 8 epochs smaller (a progressive ramp from 16x16 pixels), and each
    # epoch's check on 2,000 test images
    assert f32["data"] == {**bf16["data"], "progressive_size": 16, "progressive_epochs": 8,
                           "progressive_ramp": True, "val_limit": 2000}
    assert "progressive_size" not in example.CPU_PRESETS["cifar10_airbench"]["data"]  # merged into a copy
    monkeypatch.setattr(zoo.training, "_cpu_has_bf16", lambda: False)  # a CPU without AVX512-BF16/AMX
    monkeypatch.setattr("tensorflow.config.list_physical_devices", lambda kind=None: [])
    assert example.preset("cifar10_airbench", "mixed") == f32
    monkeypatch.setattr(zoo.training, "_cpu_has_bf16", lambda: True)
    assert example.preset("cifar10_airbench", "mixed") == bf16
    full = example.preset("cifar10_airbench", "float32", full=True)  # airbench94_muon at the spec's widths, any precision
    assert full == {"optimizer": "muon", "warmup": 0.0, "data": {"alternate_flip": True, "jpeg_prob": 0.0}} and "widths" not in full
    full["data"]["alternate_flip"] = False  # a copy: --set on one run cannot change the recipe
    assert example.FULL_RECIPES["cifar10_airbench"]["data"]["alternate_flip"] is True
    assert example.preset("cifar10_resnet", "mixed_bfloat16", full=True) == {}  # no full recipe: the spec's own
    assert example.preset("cifar10_resnet", "float32") == example.CPU_PRESETS["cifar10_resnet"]


def test_cifar10_float32_message_names_the_settings_that_will_run(monkeypatch, capsys):
    example = _cifar10_example()
    seen = _fit_arguments(example, monkeypatch, ["--precision", "float32", "--epochs", "3", "--set", "widths=[40,160,160]"])
    out = capsys.readouterr().out
    assert "{'widths': [40, 160, 160], 'epochs': 3, 'data': {" in out  # not the preset's 12 epochs and 32-128-128
    assert seen["epochs"] == 3 and seen["overrides"]["widths"] == [40, 160, 160]


def test_cifar10_presets_run_under_a_budget_unless_epochs_are_given(monkeypatch):
    example = _cifar10_example()
    for argv, expected in (([], 20.0), (["--epochs", "3"], None), (["--full"], None), (["--budget-minutes", "0"], None),
                           (["--budget-minutes", "7.5"], 7.5), (["--epochs", "3", "--budget-minutes", "5"], 5.0)):
        assert _fit_arguments(example, monkeypatch, ["--precision", "float32", *argv])["budget_minutes"] == expected, argv
    assert example.budget("cifar10_vit", False, None, None) == 20.0  # every CPU preset
    with pytest.raises(ValueError, match="budget-minutes"):
        example.budget("cifar10_airbench", False, None, -1)
