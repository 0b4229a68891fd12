"""Data-parallel training on tf.distribute: mirrored == one device, two real workers, kill and resume.

The strategies need a fresh TensorFlow (logical devices and collective ops
are fixed at start-up), so everything that trains runs in subprocesses:
one for the mirrored comparison, two (one thread each) per multi-worker run,
each process group killed after a hard timeout.
"""

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from zoo import distribute

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL_CNN = ["--set", "filters=[8,16,16]", "--set", "dense_units=16"]
SMALL_LSTM = ["--set", "vocabulary_size=300", "--set", "embedding_dim=16", "--set", "units=8",
              "--set", "data.max_tokens=300", "--set", "data.sequence_length=64"]
# Mirrored over 2 logical CPU devices sums two half-batch gradients where one
# device takes the mean over the whole batch: the same maths, rounded differently.
TOLERANCE = 1e-5


def _env(**extra):
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", **extra}


# ---------------------------------------------------------------------------
# In-process: settings, TF_CONFIG, refusals


def test_worker_hosts_write_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "")  # restored after the test
    config = distribute.write_tf_config("a:2222, b:2223", 1)
    assert json.loads(os.environ["TF_CONFIG"]) == config == {
        "cluster": {"worker": ["a:2222", "b:2223"]}, "task": {"type": "worker", "index": 1}}
    assert distribute.num_workers() == 2 and distribute.task() == ("worker", 1) and not distribute.is_chief()
    assert distribute.resolve_kind("auto") == "multi-worker"
    distribute.write_tf_config(["a:2222", "b:2223"], 0)
    assert distribute.is_chief()
    assert distribute.is_chief({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}})
    assert not distribute.is_chief({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}})
    for hosts, index, match in (("a:2222,a:2222", 0, "twice"), ("a", 0, "host:port"), ("a:1,b:2", 2, "0..1"), ("", 0, "empty")):
        with pytest.raises(distribute.DistributeError, match=match):
            distribute.write_tf_config(hosts, index)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(distribute.DistributeError, match="not JSON"):
        distribute.tf_config()


def test_global_batch_must_split_evenly_and_unknown_kinds_are_refused(monkeypatch):
    distribute.check_global_batch(64, 2)
    with pytest.raises(distribute.DistributeError, match="global batch.*3 replicas.*--batch-size 63 or 66"):
        distribute.check_global_batch(64, 3)
    with pytest.raises(distribute.DistributeError, match="unknown distribute 'horovod'"):
        distribute.resolve_kind("horovod")
    monkeypatch.setenv("TF_CONFIG", "")
    with pytest.raises(distribute.DistributeError, match="needs TF_CONFIG"):
        distribute.make_strategy("multi-worker")


def test_a_strategy_asked_for_after_tensorflow_started_gets_a_clear_error(monkeypatch):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("--devices picks GPUs here, not logical CPU devices")
    tf.constant(1.0) + 1.0  # TensorFlow is running now
    with pytest.raises(distribute.DistributeError, match="before TensorFlow runs its first operation.*make_strategy"):
        distribute.make_strategy("mirrored", devices=3)
    monkeypatch.setenv("TF_CONFIG", "")
    distribute.write_tf_config("localhost:1,localhost:2", 0)
    with pytest.raises(distribute.DistributeError, match="MultiWorkerMirroredStrategy.*before TensorFlow runs"):
        distribute.make_strategy("multi-worker")


# ---------------------------------------------------------------------------
# Mirrored over 2 logical CPU devices == one device, on the same global batches

MIRRORED_SCRIPT = r"""
import json, pathlib, sys
import numpy as np
import tensorflow as tf
import zoo
from zoo import distribute

distribute.make_strategy("mirrored", 2)      # first: logical devices are fixed once TensorFlow runs
cifar, imdb, out = sys.argv[1:4]
cases = {
    "cifar10_cnn": dict(data_dir=cifar, batch_size=20, overrides={"filters": [8, 16, 16], "dense_units": 16}),
    "imdb_lstm": dict(data_dir=imdb, batch_size=16, overrides={     # an Embedding: sparse gradients
        "vocabulary_size": 300, "embedding_dim": 16, "units": 8, "learning_rate": 5e-3,
        "data": {"max_tokens": 300, "sequence_length": 64}}),
}
# One device through a strategy too: Keras then builds the model from one
# batch under either strategy, so both runs see the same batches in epoch 1.
one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
result = {}
for name, kw in cases.items():
    runs = {k: zoo.fit(name, run_dir=pathlib.Path(out) / f"{name}-{k}", epochs=1, verbose=0, evaluate_test=False,
                       distribute=s, devices=d, **kw)
            for k, s, d in (("mirrored", "mirrored", 2), ("one", one_device, None))}
    w = {k: r.model.get_weights() for k, r in runs.items()}
    result[name] = {
        "config": {k: r.config["distribute"] for k, r in runs.items()},
        "steps": {k: len(r.history["loss"]) for k, r in runs.items()},
        "max_abs_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(w["mirrored"], w["one"])),
        "max_abs_update": max(float(np.max(np.abs(a - b))) for a, b in
                              zip(w["one"], zoo.create_model(name, **{k: v for k, v in kw["overrides"].items()
                                                                      if k in zoo.get_spec(name).defaults}).get_weights())),
        "history": {k: r.history["loss"] for k, r in runs.items()},
    }
try:  # a global batch that does not split over the 2 replicas
    zoo.fit("cifar10_cnn", run_dir=pathlib.Path(out) / "odd", batch_size=21, distribute="mirrored", devices=2, **{
        k: v for k, v in cases["cifar10_cnn"].items() if k != "batch_size"})
except distribute.DistributeError as exc:
    result["odd_batch_error"] = str(exc)
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def mirrored_vs_one_device(tmp_path_factory, tiny_cifar, tiny_imdb):
    out = tmp_path_factory.mktemp("mirrored")
    script = out / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tiny_cifar), str(tiny_imdb), str(out)],
                          capture_output=True, text=True, timeout=300, env=_env(), cwd=str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["cifar10_cnn", "imdb_lstm"])
def test_mirrored_on_two_devices_equals_one_device(name, mirrored_vs_one_device):
    r = mirrored_vs_one_device[name]
    assert r["config"]["mirrored"]["strategy"] == "mirrored" and r["config"]["mirrored"]["replicas"] == 2
    assert r["config"]["mirrored"]["per_replica_batch"] * 2 == r["config"]["one"]["global_batch"]
    assert r["max_abs_update"] > 100 * TOLERANCE, "training should have moved the weights"
    assert r["max_abs_diff"] < TOLERANCE, r
    assert r["history"]["mirrored"] == pytest.approx(r["history"]["one"], rel=1e-4)


def test_a_global_batch_that_does_not_split_over_the_replicas_is_refused(mirrored_vs_one_device):
    assert "batch_size 21 is the global batch and must divide evenly over 2 replicas" in mirrored_vs_one_device["odd_batch_error"]


# ---------------------------------------------------------------------------
# Two local workers (MultiWorkerMirroredStrategy from TF_CONFIG)

WORKER_SCRIPT = r"""
import hashlib, pathlib, sys, tempfile
import numpy as np
import zoo.training
from zoo.cli import main

fit = zoo.training.fit

def fit_and_print_checksum(*args, **kwargs):
    result = fit(*args, **kwargs)
    data = b"".join(np.ascontiguousarray(w).tobytes() for w in result.model.get_weights())
    print("CHECKSUM", hashlib.sha256(data).hexdigest(), flush=True)
    pre = result.data.preprocessor if result.data is not None else None
    if pre is not None:  # every worker fits its own vocabulary: it must be the chief's
        with tempfile.TemporaryDirectory() as tmp:
            pre.save(pathlib.Path(tmp) / "p")
            files = sorted((pathlib.Path(tmp) / "p").rglob("*"))
            digest = hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files if f.is_file()))
        print("PREPROCESSOR", digest.hexdigest(), flush=True)
    return result

zoo.training.fit = fit_and_print_checksum
sys.exit(main(sys.argv[1:]))
"""




class Workers:
    """`n` local `zoo train` workers, one thread each, in their own process groups."""

    def __init__(self, tmp_path, args, n=2):
        self.script = tmp_path / "worker.py"
        self.script.write_text(WORKER_SCRIPT)
        hosts = ",".join(f"localhost:{p}" for p in distribute.free_local_ports(n))
        self.procs = []
        for i in range(n):
            log = open(tmp_path / f"worker{i}.log", "w")
            self.procs.append(subprocess.Popen(
                [sys.executable, str(self.script), "train", *args, "--worker-hosts", hosts, "--task-index", str(i)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=str(tmp_path),
                env=_env(TF_NUM_INTRAOP_THREADS="1", OMP_NUM_THREADS="1")))
        self.logs = [tmp_path / f"worker{i}.log" for i in range(n)]

    def kill(self, i):
        try:
            os.killpg(self.procs[i].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.procs[i].wait()

    def wait(self, timeout):
        deadline = time.time() + timeout
        try:
            for p in self.procs:
                p.wait(max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            for i in range(len(self.procs)):
                self.kill(i)
            pytest.fail(f"workers still running after {timeout} s:\n" + self.tail())
        return [p.returncode for p in self.procs]

    def tail(self):
        return "\n".join(f"--- {log.name}\n" + log.read_text()[-2500:] for log in self.logs)

    def checksums(self, what="CHECKSUM"):
        return [next((line.split()[1] for line in log.read_text().splitlines() if line.startswith(what)), None)
                for log in self.logs]


@pytest.mark.slow  # two worker processes: ~20 s each; the default run keeps the mirrored equality test
@pytest.mark.parametrize("name", ["cifar10_cnn", "imdb_lstm"])
def test_two_workers_train_the_same_model_and_the_chief_exports_it(name, tmp_path, tiny_cifar, tiny_imdb):
    data, small = (tiny_cifar, SMALL_CNN) if name == "cifar10_cnn" else (tiny_imdb, SMALL_LSTM)
    run = tmp_path / "run"
    workers = Workers(tmp_path, [name, "--data-dir", str(data), "--run-dir", str(run), "--epochs", "2",
                                 "--batch-size", "20", *small, "--export", str(tmp_path / "saved")])
    assert workers.wait(timeout=150) == [0, 0], workers.tail()
    checksums = workers.checksums()
    assert checksums[0] and checksums[0] == checksums[1], workers.tail()
    if name == "imdb_lstm":
        vocabularies = workers.checksums("PREPROCESSOR")
        assert vocabularies[0] and vocabularies[0] == vocabularies[1], workers.tail()
    for part in ("config.json", "history.json", "metrics.json", "model.keras", "checkpoints/last.keras", "state.json"):
        assert (run / part).exists(), part
    config = json.loads((run / "config.json").read_text())["distribute"]
    assert config == {"strategy": "multi-worker", "replicas": 2, "workers": 2, "global_batch": 20, "per_replica_batch": 10}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["distribute"] == config and metrics["test"]["num_examples"] == 40
    assert json.loads((run / "history.json").read_text())["epoch"] == [1, 2]
    # the chief exported, once; the other worker left nothing behind
    assert sorted(p.name for p in (tmp_path / "saved" / name).iterdir()) == ["1"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    # every worker ran the same number of steps each epoch
    steps = [[line.split()[0] for line in log.read_text().splitlines() if "/step" in line] for log in workers.logs]
    assert steps[0] == steps[1] and len(steps[0]) == 2, workers.tail()


@pytest.mark.slow  # ~20 s; single-process kill-and-resume stays in the default run (test_training.py)
def test_killed_worker_resumes_when_both_restart_with_the_same_command(tmp_path, tiny_cifar):
    run = tmp_path / "run"
    args = ["cifar10_cnn", "--data-dir", str(tiny_cifar), "--run-dir", str(run), "--epochs", "3",
            "--batch-size", "20", *SMALL_CNN]
    workers = Workers(tmp_path, args)
    history, backup = run / "history.json", run / "backup" / "training_metadata.json"

    def saved_epochs():  # what a restart resumes from (the backup is written last at an epoch's end)
        try:
            return json.loads(backup.read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            return 0

    deadline = time.time() + 120
    while time.time() < deadline and all(p.poll() is None for p in workers.procs) and saved_epochs() < 1:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    workers.kill(1)  # one worker dies mid-epoch; the chief then waits on its collective: stop it too
    workers.kill(0)
    saved = saved_epochs()
    assert 1 <= saved < 3 and not (run / "state.json").exists(), f"killed too late: {saved} epochs saved"

    again = Workers(tmp_path, args)
    assert again.wait(timeout=150) == [0, 0], again.tail()
    assert json.loads(history.read_text())["epoch"] == [1, 2, 3]  # no epoch lost, none twice
    assert json.loads((run / "state.json").read_text())["status"] == "complete"
    first_epoch = [int(line.split()[1].split("/")[0]) for line in again.logs[0].read_text().splitlines()
                   if line.startswith("Epoch ")]
    assert first_epoch[0] == saved + 1, again.tail()  # resumed, not restarted
    checksums = again.checksums()
    assert checksums[0] and checksums[0] == checksums[1]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ---------------------------------------------------------------------------
# Every family trains under mirrored (slow: about 2 minutes on 2 cores)

FAMILIES_SCRIPT = r"""
import json, pathlib, sys
import numpy as np
import tensorflow as tf
import zoo
from zoo import distribute

distribute.make_strategy("mirrored", 2)
cifar, imdb, m30k, fsdd, out = sys.argv[1:6]
cases = {
    "cifar10_resnet": dict(data_dir=cifar, batch_size=20, overrides={"width": 8}),
    "imdb_transformer": dict(data_dir=imdb, batch_size=16, overrides={
        "vocabulary_size": 300, "embedding_dim": 16, "num_heads": 2, "intermediate_dim": 16, "num_layers": 1,
        "data": {"max_tokens": 300, "sequence_length": 64}}),
    "multi30k_transformer": dict(data_dir=m30k, batch_size=8, eval_options={"beam_width": 1, "verbose": False},
        overrides={"source_vocabulary_size": 200, "target_vocabulary_size": 200, "max_length": 24, "embedding_dim": 16,
                   "num_layers": 1, "num_heads": 2, "intermediate_dim": 32, "dropout": 0.0, "learning_rate": 5e-3,
                   "warmup": 2, "data": {"vocabulary_size": 200, "max_length": 24}}),
    "fsdd_ctc": dict(data_dir=fsdd, batch_size=8, eval_options={"beam_width": 1, "verbose": False}, overrides={
        "dim": 16, "num_layers": 1, "num_heads": 2, "intermediate_dim": 32, "conv_channels": 4, "num_mel_bins": 16,
        "fft_length": 256, "dropout": 0.0,
        "data": {"connected": {"num_train": 0, "num_test": 4, "max_digits": 2}, "pad_multiple": 8000,
                 "synthetic": 0}}),  # the strategy, not the data: no synthetic voices
}
one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
result = {}
for name, kw in cases.items():
    r = zoo.fit(name, run_dir=pathlib.Path(out) / name, epochs=1, verbose=0, distribute="mirrored", devices=2, **kw)
    result[name] = {"distribute": r.metrics["distribute"], "loss": r.history["loss"],
                    "test": sorted(k for k, v in r.metrics["test"].items() if isinstance(v, (int, float)))}
    if name == "multi30k_transformer":  # a loss averaged over tokens: the same update on 1 device and on 2
        one = zoo.fit(name, run_dir=pathlib.Path(out) / (name + "-one"), epochs=1, verbose=0, evaluate_test=False,
                      distribute=one_device, **{k: v for k, v in kw.items() if k != "eval_options"})
        result[name]["one_device_loss"] = one.history["loss"]
print(json.dumps(result))
"""


@pytest.mark.slow
def test_every_family_trains_under_mirrored_on_two_devices(tmp_path, tiny_cifar, tiny_imdb):
    from speech_fixtures import write_fsdd_archive
    from test_export_translation import _write as write_multi30k

    m30k, fsdd = write_multi30k(tmp_path / "m30k"), write_fsdd_archive(tmp_path / "fsdd", takes=6, speakers=("george", "lucas"))
    script = tmp_path / "families.py"
    script.write_text(FAMILIES_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), *map(str, (tiny_cifar, tiny_imdb, m30k, fsdd, tmp_path / "runs"))],
                          capture_output=True, text=True, timeout=900, env=_env(), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(result) == ["cifar10_resnet", "fsdd_ctc", "imdb_transformer", "multi30k_transformer"]
    for name, r in result.items():
        assert r["distribute"]["replicas"] == 2 and r["test"], (name, r)
        assert all(np.isfinite(r["loss"])), (name, r)
    m = result["multi30k_transformer"]
    assert m["loss"] == pytest.approx(m["one_device_loss"], rel=0.05), m
