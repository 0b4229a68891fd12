"""Data-parallel training on `tf.distribute`: one switch, one place.

    zoo train cifar10_cnn --distribute mirrored --devices 2          # 2 logical CPU devices (testing)
    zoo train cifar10_cnn --worker-hosts a:2222,b:2222 --task-index 0  # on a; index 1 on b

Everything `zoo` knows about distribution lives here:

- `make_strategy(kind, devices)`: the process's one strategy ("auto", "none",
  "mirrored", "multi-worker"), made before any other TensorFlow op (logical
  devices and collective ops can only be configured before TensorFlow
  starts; a late call raises `DistributeError` saying so).
- `write_tf_config(worker_hosts, task_index)`: `TF_CONFIG` for users without a
  cluster manager (the pattern of TF Model Garden's `configure_cluster`).
- `check_global_batch`: a spec's `batch_size` is the *global* batch, split
  evenly over the replicas; a batch that does not divide is refused.
- `shard_by_data`: every worker reads the whole pipeline and keeps its part
  of each global batch (auto-shard policy DATA), so every worker runs the
  same number of steps every epoch.
- `worker_run_dir` / `finish_worker_run_dir`: the chief writes the run
  directory; other workers save into a temporary sibling directory (saving
  reads sync-on-read variables, which needs every worker) that is seeded from
  the chief's backup on a restart and removed when the run ends.
- `patch_keras`: the one shim for Keras 3.15's multi-worker `fit`.

Nothing here all-reduces by hand: gradients, metrics and data all go through
`tf.distribute`.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any, Sequence

__all__ = [
    "KINDS",
    "DistributeError",
    "make_strategy",
    "write_tf_config",
    "tf_config",
    "num_workers",
    "task",
    "is_chief",
    "check_global_batch",
    "describe",
    "shard_by_data",
    "worker_run_dir",
    "finish_worker_run_dir",
    "patch_keras",
]

KINDS = ("auto", "none", "mirrored", "multi-worker")

_STATE: dict[str, Any] = {"strategy": None, "kind": None, "devices": None}


class DistributeError(ValueError):
    """A strategy that cannot be made as asked (too late, bad cluster, bad batch)."""


# ---------------------------------------------------------------------------
# TF_CONFIG
# ---------------------------------------------------------------------------


def free_local_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on localhost, for a cluster of local worker processes (tests, benchmarks)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def write_tf_config(worker_hosts: str | Sequence[str], task_index: int) -> dict:
    """Set `TF_CONFIG` for a cluster of equal workers and return it.

    Args:
        worker_hosts: "host1:port1,host2:port2" (or a list), the same on every worker.
        task_index: this worker's position in `worker_hosts` (0 is the chief).
    """
    hosts = [h.strip() for h in (worker_hosts.split(",") if isinstance(worker_hosts, str) else worker_hosts)]
    hosts = [h for h in hosts if h]
    for h in hosts:
        host, sep, port = h.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise DistributeError(f"--worker-hosts expects host:port[,host:port...], got {h!r}")
    if not hosts:
        raise DistributeError("--worker-hosts is empty; give host:port for every worker, e.g. a:2222,b:2222")
    if len(set(hosts)) != len(hosts):
        raise DistributeError(f"--worker-hosts names a worker twice: {','.join(hosts)}")
    if task_index is None or not 0 <= int(task_index) < len(hosts):
        raise DistributeError(f"--task-index must be in 0..{len(hosts) - 1} for {len(hosts)} worker hosts, got {task_index}")
    config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": int(task_index)}}
    os.environ["TF_CONFIG"] = json.dumps(config)
    return config


def tf_config() -> dict:
    """The parsed `TF_CONFIG` ({} when unset); a malformed one raises `DistributeError`."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DistributeError(f"TF_CONFIG is not JSON ({exc}): {raw[:200]!r}") from None
    if not isinstance(config, dict):
        raise DistributeError(f"TF_CONFIG must be a JSON object with 'cluster' and 'task', got {raw[:200]!r}")
    return config


def num_workers(config: dict | None = None) -> int:
    """Workers (chief included) that `TF_CONFIG` names; 0 without one."""
    cluster = (tf_config() if config is None else config).get("cluster", {})
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def task(config: dict | None = None) -> tuple[str, int]:
    """This process's (task type, index); ("chief", 0) without `TF_CONFIG`."""
    config = tf_config() if config is None else config
    t = config.get("task") or {}
    if not config.get("cluster"):
        return "chief", 0
    return str(t.get("type", "worker")), int(t.get("index", 0))


def is_chief(config: dict | None = None) -> bool:
    """True for the worker that owns the run directory and exports.

    The "chief" task if the cluster has one, else worker 0 (TensorFlow's rule).
    """
    config = tf_config() if config is None else config
    kind, index = task(config)
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and not config.get("cluster", {}).get("chief")


# ---------------------------------------------------------------------------
# The strategy
# ---------------------------------------------------------------------------


def _tf_started() -> bool:
    """Whether TensorFlow's runtime is up (after it, devices and collectives are fixed)."""
    from tensorflow.python.eager import context

    return context.context()._context_handle is not None


def _too_late(what: str) -> DistributeError:
    return DistributeError(
        f"{what} must be set up before TensorFlow runs its first operation, and something already ran one "
        "(a model, a tensor, a dataset). Make the strategy first: `zoo train --distribute ...` does; in Python call "
        "`zoo.distribute.make_strategy(...)` (or `zoo.fit(..., distribute=...)`) at the start of the program, "
        "before `keras.utils.set_random_seed`, building models or loading data"
    )


def resolve_kind(kind: str = "auto", devices: int | None = None) -> str:
    """"auto" -> "multi-worker" (TF_CONFIG names >1 worker), "mirrored" (>1 GPU or `devices` > 1) or "none"."""
    if kind not in KINDS:
        raise DistributeError(f"unknown distribute {kind!r}; choose {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    if num_workers() > 1:
        return "multi-worker"
    if devices is not None and int(devices) > 1:
        return "mirrored"
    import tensorflow as tf

    return "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "none"


def _mirrored(devices: int | None):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        n = len(gpus) if devices is None else int(devices)
        if not 1 <= n <= len(gpus):
            raise DistributeError(f"--devices {n}: {len(gpus)} GPUs are visible")
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(n)])
    n = 1 if devices is None else int(devices)
    if n < 1:
        raise DistributeError(f"--devices must be >= 1, got {n}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if n > 1 and len(current or []) != n:
        if _tf_started():
            raise _too_late(f"{n} logical CPU devices (--devices {n})")
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(n)])


def _multi_worker():
    import tensorflow as tf

    if num_workers() < 1:
        raise DistributeError("--distribute multi-worker needs TF_CONFIG (set it, or pass --worker-hosts and --task-index)")
    if _tf_started():
        raise _too_late("MultiWorkerMirroredStrategy (collective ops)")
    patch_keras()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as exc:  # TensorFlow's own "Collective ops must be configured at program startup"
        if "program startup" in str(exc):
            raise _too_late("MultiWorkerMirroredStrategy (collective ops)") from exc
        raise


def make_strategy(kind: str = "auto", devices: int | None = None):
    """The process's `tf.distribute.Strategy`, made once and then reused.

    Args:
        kind: "auto", "none" (the default strategy), "mirrored"
            (`MirroredStrategy` over the local GPUs, or `devices` logical CPU
            devices), "multi-worker" (`MultiWorkerMirroredStrategy` from
            `TF_CONFIG`).  "auto" reuses a strategy made earlier in the process.
        devices: replicas for "mirrored" (logical CPU devices when no GPU is visible).

    Raises:
        DistributeError: unknown kind, no `TF_CONFIG` for multi-worker, a
            strategy asked for after TensorFlow started, or a different one
            than the process already made.

    A `tf.distribute.Strategy` passed as `kind` is returned as it is.
    """
    import tensorflow as tf

    if not isinstance(kind, str):  # a strategy the caller made (e.g. OneDeviceStrategy, TPUStrategy)
        return kind
    made = _STATE["strategy"]
    if kind == "auto" and made is not None and devices in (None, _STATE["devices"]):
        return made
    kind = resolve_kind(kind, devices)
    if kind == "none":
        return tf.distribute.get_strategy()
    if made is not None:
        if (kind, devices) == (_STATE["kind"], _STATE["devices"]) or (kind == _STATE["kind"] == "multi-worker"):
            return made
        raise DistributeError(f"this process already made a {_STATE['kind']} strategy "
                              f"(devices={_STATE['devices']}); one process trains under one strategy")
    strategy = _mirrored(devices) if kind == "mirrored" else _multi_worker()
    _STATE.update(strategy=strategy, kind=kind, devices=devices)
    return strategy


def kind_of(strategy) -> str:
    """"multi-worker", "mirrored", "one-device", "none" (the default strategy), else the class name."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi-worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return "one-device"
    name = type(strategy).__name__
    return "none" if name.startswith("_Default") else name


def describe(strategy, global_batch: int) -> dict:
    """What config.json and metrics.json record: strategy, replicas, workers, global and per-replica batch."""
    replicas = int(strategy.num_replicas_in_sync)
    return {"strategy": kind_of(strategy), "replicas": replicas, "workers": max(num_workers(), 1)
            if kind_of(strategy) == "multi-worker" else 1,
            "global_batch": int(global_batch), "per_replica_batch": int(global_batch) // replicas}


def check_global_batch(global_batch: int, replicas: int) -> None:
    """Refuse a global batch that does not split evenly over the replicas."""
    if int(global_batch) % int(replicas):
        lo = int(global_batch) // int(replicas) * int(replicas)
        raise DistributeError(
            f"batch_size {global_batch} is the global batch and must divide evenly over {replicas} replicas; "
            f"use --batch-size {lo or replicas} or {lo + int(replicas)}"
        )


def shard_by_data(dataset):
    """`dataset` with auto-shard policy DATA: each worker keeps its share of every global batch.

    Every worker runs the same (seeded) pipeline, so all see the same global
    batches in the same order and take equal parts of each: the step count
    per epoch is the same on every worker, and no worker waits for a batch
    another never gets.  (The default policy, FILE, needs one file per worker.)
    """
    import tensorflow as tf

    if dataset is None:
        return None
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


# ---------------------------------------------------------------------------
# Run directories under multi-worker
# ---------------------------------------------------------------------------


def worker_run_dir(run_dir: str | os.PathLike) -> pathlib.Path:
    """Where this worker writes: the run dir on the chief, else a temporary sibling.

    A non-chief worker saves too (every save reads sync-on-read variables, a
    collective), into `<parent>/.<name>.worker-<index>/`.  When the chief's
    backup is readable (same machine or a shared file system) that directory
    starts as a copy of it, so after a restart every worker restores the same
    epoch; otherwise the worker's own backup from the previous attempt is kept.
    `finish_worker_run_dir` removes it at the end.  A finished run (the
    chief's `state.json` is there) is the run dir itself, for every worker
    to load.
    """
    run_dir = pathlib.Path(run_dir)
    if is_chief() or (run_dir / "state.json").exists():  # a finished run: every worker just loads it
        return run_dir
    _, index = task()
    tmp = run_dir.parent / f".{run_dir.name}.worker-{index}"
    chief_backup = run_dir / "backup"
    if chief_backup.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        shutil.copytree(chief_backup, tmp / "backup")
        for name in ("history.json", "config.json"):
            if (run_dir / name).exists():
                shutil.copy2(run_dir / name, tmp / name)
    else:
        tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def finish_worker_run_dir(run_dir: pathlib.Path, chief_dir: pathlib.Path) -> None:
    """Remove a non-chief worker's temporary directory (no-op on the chief)."""
    if pathlib.Path(run_dir) != pathlib.Path(chief_dir):
        shutil.rmtree(run_dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# Keras shim
# ---------------------------------------------------------------------------

_PATCHED = False
# Keras versions known to need the shim (measured: 3.15.1 with TF 2.21).  A
# newer Keras is left alone; if multi-worker `fit` still fails there, the
# multi-worker test says so, and this bound moves.
_SHIM_MAX_KERAS = (3, 15)


def patch_keras() -> bool:
    """Make Keras' TensorFlow `fit` run under a real `MultiWorkerMirroredStrategy`.

    Keras 3.15 fails twice there (two local workers, TF 2.21):

    1. `TensorFlowTrainer._maybe_symbolic_build` MEAN-reduces the first data
       batch across workers to build the model ("Attempt to convert a value
       (PerReplica...)"; and text batches differ in shape between workers).
       The shim builds from this worker's first local replica batch instead:
       building needs shapes, not averaged data.
    2. `reduce_per_replica` reduces the logged scalar metrics with
       `strategy.reduce("MEAN", v, axis=0)` ("Invalid reduction dimension 0
       for input with 0 dimensions").  The shim reduces them with `axis=None`.

    Upstream: https://github.com/keras-team/keras/issues/20585 and
    https://github.com/tensorflow/tensorflow/issues/72388 .  Remove this when
    Keras fixes them (the multi-worker test fails without the shim).
    Applied only for Keras <= 3.15 and only by the multi-worker strategy;
    `ZOO_KERAS_SHIM=0` turns it off (to check whether Keras still needs it).

    Returns:
        True when the shim is (now) in place.
    """
    global _PATCHED
    import keras

    if _PATCHED:
        return True
    if os.environ.get("ZOO_KERAS_SHIM", "1") == "0":
        return False
    if tuple(int(p) for p in keras.__version__.split(".")[:2]) > _SHIM_MAX_KERAS or keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tree.map_structure(
                    lambda x: self.distribute_strategy.experimental_local_results(x)[0]
                    if isinstance(x, tf.distribute.DistributedValues) else x, batch)
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    _PATCHED = True
    return True
