"""The `zoo` command line: list, info, --set parsing and one-line errors."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from zoo.cli import main, parse_set


def test_list_prints_sorted_table(capsys):
    assert main(["list", "cifar10_*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["name", "modality", "task", "dataset"]
    names = [line.split()[0] for line in out[2:]]
    assert names == ["cifar10_airbench", "cifar10_cnn", "cifar10_resnet", "cifar10_vit"]


def test_list_filters_by_modality(capsys):
    assert main(["list", "--modality", "image"]) == 0
    assert "cifar10_resnet" in capsys.readouterr().out
    assert main(["list", "nothing_like_this*"]) == 1


def test_info_is_json(capsys):
    assert main(["info", "cifar10_cnn", "--params"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "cifar10_cnn" and info["params"] == 122570
    assert info["train"]["epochs"] == 10


def test_unknown_model_is_a_one_line_error(capsys):
    assert main(["info", "cifar10_resnte"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zoo info: error: unknown model 'cifar10_resnte'") and "cifar10_resnet" in err
    assert "\n" not in err and "Traceback" not in err


def test_train_with_unknown_setting_fails_before_any_work(capsys, tmp_path):
    assert main(["train", "cifar10_cnn", "--run-dir", str(tmp_path / "r"), "--set", "widht=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown setting 'widht'" in err and "training settings:" in err


def test_parse_set_types_and_nesting():
    assert parse_set(["width=32", "lr=1e-3", "nesterov=true", "optimizer=sgd", "data.cutout=8", "data.flip=false"]) == {
        "width": 32, "lr": 0.001, "nesterov": True, "optimizer": "sgd", "data": {"cutout": 8, "flip": False}}
    with pytest.raises(ValueError, match="key=value"):
        parse_set(["width"])


def test_console_script_is_installed():
    exe = shutil.which("zoo", path=os.path.dirname(sys.executable)) or shutil.which("zoo")
    if exe is None:
        pytest.skip("console script not installed (run `make test`)")
    proc = subprocess.run([exe, "list", "--modality", "image"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "cifar10_vit" in proc.stdout
    assert proc.stderr == "", proc.stderr  # no TensorFlow start-up lines before (or after) the command's output
