"""The README's commands as a user types them, from a copy of the repository.

Relative paths, the default `--out`, a relative `ZOO_DATA_DIR`, the Makefile's
own environment: the path on which `make train` once crashed at its last step
(the export's verification got a relative path and ran in another directory)
while every fixture test, which passed absolute temporary paths, stayed green.

The copy shares this checkout's `.venv` (a symbolic link): `make -o
.venv/.zoo-installed` tells make not to reinstall into it from the copy, which
would point the editable install at a temporary folder.
"""

import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from conftest import write_cifar_archive, write_imdb_archive

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _copy_repo(dst: pathlib.Path) -> pathlib.Path:
    """The files a fresh clone has (tracked and untracked-not-ignored), with mtimes; `.venv` linked."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    (dst / ".venv").symlink_to(ROOT / ".venv")
    return dst


@pytest.fixture(scope="module")
def user_checkout(tmp_path_factory):
    """A copy of the repo with a small data folder inside it, `data/`, reached by a relative path."""
    if not (ROOT / ".venv" / "bin" / "python").exists() or shutil.which("make") is None:
        pytest.skip("needs the Makefile's .venv (run `make test`) and make")
    repo = _copy_repo(tmp_path_factory.mktemp("clone") / "zoo")
    data = repo / "data"
    write_cifar_archive(data, per_class_train=26, per_class_test=4)
    write_imdb_archive(data, per_class_train=40, per_class_test=10)
    import tensorflow as tf

    (repo / "cat.jpg").write_bytes(tf.io.encode_jpeg(np.full((40, 48, 3), (120, 90, 60), np.uint8)).numpy())
    return repo


def _sh(repo, command, timeout=600):
    """Run `command` in a shell in the copy, as a user would, with a relative ZOO_DATA_DIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOO_DATA_DIR", "PYTEST", "TF_CPP"))}
    env.update(ZOO_DATA_DIR="data", ZOO_CACHE_DIR=str(repo.parent / "cache"))
    return subprocess.run(command, shell=True, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


def test_readme_main_job_then_predict_then_text_example(user_checkout):
    repo = user_checkout
    proc = _sh(repo, 'make -o .venv/.zoo-installed train ARGS="--epochs 1 --limit 256 --batch-size 64"')
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    version = repo / "saved_models" / "cifar10_airbench" / "1"
    assert (version / "saved_model.pb").is_file() and (version / "model_card.json").is_file()
    assert not [p for p in version.parent.iterdir() if p.name.startswith(".tmp")]
    assert "I0000" not in proc.stderr and "oneDNN" not in proc.stderr  # no TensorFlow log wall
    assert f"SavedModel: {version}" in proc.stdout or "SavedModel: saved_models/cifar10_airbench/1" in proc.stdout

    proc = _sh(repo, ".venv/bin/zoo predict saved_models/cifar10_airbench/1 cat.jpg")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["input", "label", "probability"] and lines[2].startswith("cat.jpg")
    assert proc.stderr.strip() == ""

    proc = _sh(repo, ".venv/bin/zoo export cifar10_airbench --run-dir runs/cifar10_airbench")  # default --out
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("saved_models/cifar10_airbench/2")

    proc = _sh(repo, ".venv/bin/python examples/train_text.py --model imdb_bilstm_attention --epochs 1 --limit 80")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _sh(repo, '.venv/bin/zoo predict saved_models/imdb_bilstm_attention/1 "A wonderful, moving film."')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "A wonderful, moving film." in proc.stdout and "probability_pos" in proc.stdout


def test_example_scripts_answer_a_data_error_in_one_line(user_checkout):
    proc = _sh(user_checkout, ".venv/bin/python examples/train_cifar10.py --data-dir no/such/folder --epochs 1 --run-dir runs/new")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train_cifar10.py: error: data directory no/such/folder"), err
    assert "Traceback" not in proc.stderr
