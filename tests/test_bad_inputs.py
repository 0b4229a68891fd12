"""Mistakes a user makes: each gets one line naming the problem and the fix, a non-zero exit, and no leftovers.

Every case asserts the exit code and the first line of the message, and that
the failed command left nothing behind that blocks the corrected one.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.cli import main
from zoo.training import fit

SMALL_CNN = ["--set", "filters=[8,16,16]", "--set", "dense_units=16"]


def _err(capsys) -> list[str]:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err), err
    return err


# ---------------------------------------------------------------------------
# zoo train: settings are checked before anything is written


@pytest.mark.parametrize("args, first", [
    (["--set", "width=abc"], "zoo train: error: cifar10_resnet: width must be an integer, got 'abc'"),
    (["--set", "width.depth=3"], "zoo train: error: cifar10_resnet: width must be an integer, got {'depth': 3}"),
    (["--set", "width=-1"], "zoo train: error: cifar10_resnet: width must not be negative, got -1"),
    (["--set", "data.nonsense=1"], "zoo train: error: cifar10_resnet: unknown data setting 'nonsense'"),
    (["--set", "data=5"], "zoo train: error: cifar10_resnet: data must be a group of loader settings"),
    (["--set", "data.cutout=-2"], "zoo train: error: cifar10_resnet: data.cutout must not be negative, got -2"),
    (["--set", "learning_rate=-1"], "zoo train: error: cifar10_resnet: learning_rate must be a number above 0, got -1"),
    (["--set", "epochs=0"], "zoo train: error: cifar10_resnet: epochs must be an integer of at least 1, got 0"),
    (["--set", "label_smoothing=1.5"], "zoo train: error: cifar10_resnet: label_smoothing must be a number in [0, 1)"),
    (["--set", "optimizer=rmsprop"], "zoo train: error: cifar10_resnet: optimizer must be adamw | sgd | adam"),
])
def test_bad_settings_fail_in_one_line_and_write_nothing(tmp_path, capsys, tiny_cifar, args, first):
    run = tmp_path / "run"
    assert main(["train", "cifar10_resnet", "--run-dir", str(run), "--data-dir", str(tiny_cifar), *args]) == 2
    err = _err(capsys)
    assert len(err) == 1 and err[0].startswith(first), err
    assert not run.exists()


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--epochs", "-1"), ("--batch-size", "0"),
                                         ("--limit", "-5"), ("--epochs", "two"), ("--budget-minutes", "0"),
                                         ("--budget-minutes", "-3"), ("--budget-minutes", "soon")])
def test_bad_numbers_on_the_command_line_are_refused(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as info:
        main(["train", "cifar10_cnn", "--run-dir", str(tmp_path / "r"), flag, value])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"zoo train: error: argument {flag}:"), err
    assert not (tmp_path / "r").exists()


def test_fit_refuses_untrainable_numbers_from_python(tmp_path):
    for kw, match in (({"epochs": 0}, "epochs must be an integer of at least 1"),
                      ({"epochs": -1}, "epochs must be an integer of at least 1"),
                      ({"limit": 0}, "limit must be an integer of at least 1"),
                      ({"overrides": {"learning_rate": 0}}, "learning_rate must be a number above 0")):
        with pytest.raises(ValueError, match=match):
            fit("cifar10_cnn", run_dir=tmp_path / "r", **kw)
    assert not (tmp_path / "r").exists()


def test_create_model_names_the_bad_argument():
    with pytest.raises(ValueError, match="cifar10_resnet: width must not be negative, got -1"):
        zoo.create_model("cifar10_resnet", width=-1)
    with pytest.raises(ValueError, match="cifar10_resnet: width must be at least 1, got 0"):
        zoo.create_model("cifar10_resnet", width=0)
    with pytest.raises(ValueError, match="fsdd_ctc: dropout must be in \\[0, 1\\)"):
        zoo.create_model("fsdd_ctc", dropout=1.5)
    assert zoo.create_model("fsdd_ctc", time_masks=0, dim=32, intermediate_dim=32, num_layers=1).built  # 0 masks is valid


def test_run_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    assert main(["train", "cifar10_cnn", "--run-dir", str(f)]) == 2
    assert _err(capsys)[0] == f"zoo train: error: run directory {f} is a file, not a directory: pass another --run-dir"
    assert f.read_text() == "mine"


def test_a_failed_train_leaves_nothing_that_blocks_the_corrected_one(tmp_path, capsys, tiny_cifar):
    run = str(tmp_path / "run")
    base = ["train", "cifar10_cnn", "--run-dir", run, "--data-dir", str(tiny_cifar), "--epochs", "1", *SMALL_CNN]
    assert main([*base, "--batch-size", "20", "--set", "data.augment=maybe"]) == 2
    assert "data.augment must be true or false, got 'maybe'" in _err(capsys)[0]
    wrong = ["train", "cifar10_cnn", "--run-dir", run, "--data-dir", str(tmp_path / "nowhere"), "--epochs", "1", *SMALL_CNN]
    assert main([*wrong, "--batch-size", "20"]) == 2  # fails once the run dir is held, while loading data
    assert "does not exist" in _err(capsys)[0]
    assert not (tmp_path / "run").exists()  # the folder the failed command made for its lock went with it
    assert main([*base, "--batch-size", "20"]) == 0
    assert json.loads((tmp_path / "run" / "state.json").read_text())["status"] == "complete"


def test_a_run_dir_that_failed_before_training_is_removed_with_the_parents_it_created(tmp_path, monkeypatch):
    from zoo.run import Run

    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError):
        with Run("runs/a/b").lock():
            raise RuntimeError("data loading failed")
    assert list(tmp_path.iterdir()) == []  # runs/a/b, runs/a and runs all came from this lock
    (tmp_path / "mine").mkdir()
    with Run("mine/r").lock():
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["mine"] and list((tmp_path / "mine").iterdir()) == []
    with Run("kept").lock() as run:
        run.write("config", {"a": 1})  # something was recorded: the folder stays
    assert (tmp_path / "kept" / "config.json").exists()


def test_a_second_train_on_a_held_run_dir_is_refused_with_the_holder(tmp_path, capsys):
    from zoo.run import Run

    with Run(tmp_path / "run").lock():
        assert main(["train", "cifar10_cnn", "--run-dir", str(tmp_path / "run")]) == 2
        err = _err(capsys)
    assert err[0].startswith(f"zoo train: error: {tmp_path / 'run'} is in use by another zoo process (pid {os.getpid()})")


# ---------------------------------------------------------------------------
# run directories and data files that are damaged


@pytest.fixture(scope="module")
def cnn_run(tiny_cifar, tmp_path_factory):
    run = tmp_path_factory.mktemp("cnn") / "run"
    fit("cifar10_cnn", run_dir=run, data_dir=tiny_cifar, epochs=1, batch_size=20, verbose=0,
        overrides={"filters": [8, 16, 16], "dense_units": 16})
    return run


def _copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_truncated_config_json_is_named(cnn_run, tmp_path, capsys):
    run = _copy_run(cnn_run, tmp_path / "run")
    (run / "config.json").write_text('{"model": "cifar10_')
    assert main(["export", "cifar10_cnn", "--run-dir", str(run), "--out", str(tmp_path / "sm")]) == 2
    err = _err(capsys)
    assert err[0].startswith(f"zoo export: error: {run / 'config.json'} is corrupt"), err


def test_corrupt_model_keras_is_named_as_corrupt(cnn_run, tmp_path, capsys):
    run = _copy_run(cnn_run, tmp_path / "run")
    (run / "model.keras").write_bytes((run / "model.keras").read_bytes()[:500])
    assert main(["evaluate", "cifar10_cnn", "--run-dir", str(run)]) == 2
    err = _err(capsys)
    assert err[0].startswith(f"zoo evaluate: error: {run / 'model.keras'} cannot be loaded"), err
    assert "corrupt" in err[0] and "File not found" not in err[0]


def test_model_from_a_newer_zoo_names_the_missing_layer(cnn_run, tmp_path, capsys):
    import re
    import zipfile

    run = _copy_run(cnn_run, tmp_path / "run")
    src = zipfile.ZipFile(cnn_run / "model.keras")
    config = src.read("config.json").decode()
    # a layer class that a later zoo registers and this one does not
    config, n = re.subn(r'"class_name": "Dense", "config"', '"class_name": "FutureDense", "config"', config, count=1)
    config = config.replace('"registered_name": null', '"registered_name": "zoo>FutureDense"', 1)
    assert n == 1 and "zoo>FutureDense" in config
    with zipfile.ZipFile(run / "model.keras", "w") as dst:
        for item in src.infolist():
            dst.writestr(item, config if item.filename == "config.json" else src.read(item.filename))
    assert main(["evaluate", "cifar10_cnn", "--run-dir", str(run)]) == 2
    err = _err(capsys)
    assert err[0].startswith(f"zoo evaluate: error: {run / 'model.keras'} was saved by a newer zoo"), err
    assert "FutureDense" in err[0] and "update zoo" in err[0] and len(err) <= 2


def test_non_utf8_checksum_list_is_named(tmp_path):
    from zoo.data import DataError, verify_file

    (tmp_path / "a.bin").write_bytes(b"x")
    (tmp_path / "SHA256SUMS").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(DataError, match=f"{tmp_path / 'SHA256SUMS'} is not a UTF-8 checksum list"):
        verify_file("a.bin", tmp_path)


def test_relative_data_dir_is_not_joined_twice(tiny_cifar, tmp_path, monkeypatch):
    from applications.image.data import load_cifar10_arrays

    monkeypatch.chdir(tiny_cifar.parent)
    images, labels = load_cifar10_arrays("test", data_dir=tiny_cifar.name)
    assert images.shape == (40, 32, 32, 3)
    monkeypatch.setenv("ZOO_DATA_DIR", tiny_cifar.name)
    assert load_cifar10_arrays("test")[0].shape == (40, 32, 32, 3)


# ---------------------------------------------------------------------------
# zoo export


def test_export_refuses_a_run_of_another_model(cnn_run, tmp_path, capsys):
    out = tmp_path / "sm"
    assert main(["export", "cifar10_resnet", "--run-dir", str(cnn_run), "--out", str(out)]) == 2
    assert _err(capsys)[0].startswith(f"zoo export: error: {cnn_run} holds a cifar10_cnn run, not cifar10_resnet")
    assert not out.exists() or not any(out.iterdir())


def test_export_with_relative_out_and_run_dir(cnn_run, tmp_path, monkeypatch, capsys):
    """The README's default `--out saved_models`, from the directory holding the run (make train's last step)."""
    import shutil

    shutil.copytree(cnn_run, tmp_path / "runs" / "cnn")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "cifar10_cnn", "--run-dir", "runs/cnn"]) == 0
    assert (tmp_path / "saved_models" / "cifar10_cnn" / "1" / "saved_model.pb").exists()
    assert zoo.export_model("runs/cnn", verify=True).name == "2"


def test_export_removes_what_a_killed_export_left(cnn_run, tmp_path):
    model_dir = tmp_path / "sm" / "cifar10_cnn"
    dead = model_dir / ".tmp-export-999999-abc"  # no such pid
    (dead / ".verify").mkdir(parents=True)
    old = model_dir / ".tmp-export-xyz"  # an old-style name: nobody owns it
    old.mkdir()
    live = model_dir / f".tmp-export-{os.getppid()}-live"  # a live process's export in progress
    live.mkdir()
    zoo.export_model(cnn_run, base_dir=tmp_path / "sm", verify=False)
    assert not dead.exists() and not old.exists() and live.exists()
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(["1", live.name])


def test_verifier_child_dies_with_a_killed_parent(tmp_path):
    """`die_with_parent`: the clean-process verification never outlives a killed export."""
    script = (
        "import subprocess, sys, time\n"
        "from zoo.io import die_with_parent\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], preexec_fn=die_with_parent)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the child outlived its killed parent")


# ---------------------------------------------------------------------------
# zoo predict


@pytest.fixture(scope="module")
def cnn_export(cnn_run, tmp_path_factory):
    return zoo.export_model(cnn_run, base_dir=tmp_path_factory.mktemp("sm"), verify=False)


def _jpeg(path, colour=(200, 30, 30)):
    path.write_bytes(tf.io.encode_jpeg(np.full((32, 32, 3), colour, np.uint8)).numpy())
    return path


def test_predict_names_a_truncated_image_and_still_predicts_the_others(cnn_export, tmp_path, capsys):
    good = _jpeg(tmp_path / "good.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:200])
    assert main(["predict", str(cnn_export), str(good), str(bad), "--json"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err == [f"zoo predict: error: {bad}: the image cannot be decoded (truncated or corrupt file)"]
    rows = json.loads(captured.out)
    assert rows[0]["input"] == str(good) and "label" in rows[0] and rows[1] == {"input": str(bad), "error": err[0][20:]}


def test_saved_model_fails_only_the_undecodable_item(cnn_export, tmp_path):
    good = _jpeg(tmp_path / "good.jpg").read_bytes()
    fn = tf.saved_model.load(str(cnn_export)).signatures["serving_default"]
    out = fn(image_bytes=tf.constant([good, b"garbage", good[:200], good]))
    assert out["valid"].numpy().tolist() == [True, False, False, True]
    assert out["class_id"].numpy()[1] == -1 and out["label"].numpy()[2] == b""
    np.testing.assert_allclose(out["probabilities"].numpy()[0], out["probabilities"].numpy()[3], atol=1e-6)
    assert abs(out["probabilities"].numpy()[0].sum() - 1) < 1e-5 and out["probabilities"].numpy()[1].sum() == 0
    card = json.loads((cnn_export / "model_card.json").read_text())
    assert "fails alone" in card["notes"]


@pytest.mark.parametrize("k", ["0", "-1"])
def test_predict_top_k_must_be_positive(cnn_export, tmp_path, capsys, k):
    with pytest.raises(SystemExit) as info:
        main(["predict", str(cnn_export), str(_jpeg(tmp_path / "a.jpg")), "--top-k", k])
    assert info.value.code == 2 and "argument --top-k: must be at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--top-k must be at least 1"):
        zoo.export.predict(str(cnn_export), [str(tmp_path / "a.jpg")], top_k=int(k))


def test_predict_on_a_missing_export_path(tmp_path, capsys):
    assert main(["predict", "saved_models/nothing/1", "cat.jpg"]) == 2
    assert _err(capsys)[0].startswith("zoo predict: error: saved_models/nothing/1: no such SavedModel directory")


def test_text_predict_refuses_a_file_name_as_text_unless_asked_to_read_it(tiny_imdb, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    fit("imdb_lstm", run_dir=run, data_dir=tiny_imdb, epochs=1, batch_size=20, verbose=0,
        overrides={"embedding_dim": 8, "units": 8, "data": {"max_tokens": 200, "sequence_length": 32}})
    monkeypatch.chdir(tmp_path)
    pathlib.Path("review.txt").write_text("A wonderful, superb film.")
    assert main(["predict", "imdb_lstm", "review.txt", "--run-dir", str(run)]) == 2
    assert "'review.txt' is an existing file, not text: pass --read-files" in _err(capsys)[0]
    assert main(["predict", "imdb_lstm", "review.txt", "--run-dir", str(run), "--read-files", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["input"] == "review.txt" and 0 <= rows[0]["probability_pos"] <= 1
