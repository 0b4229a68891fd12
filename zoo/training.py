"""Training core: `fit(name, ...)` turns a registered spec and its data into a run.

A run directory holds everything a run produced and everything needed to
resume it:

    config.json      the resolved model and training settings
    backup/          Keras BackupAndRestore state (weights, optimizer, epoch)
    checkpoints/last.keras   the model after the latest finished epoch
    logs/            TensorBoard
    history.json     per-epoch loss/metrics, learning rate, seconds
    curves.png       training curves
    model.keras      the final model
    metrics.json     test metrics, training time, parameter count
    state.json       {"status": "complete"} once finished

Running the same command again after a crash or kill resumes from the last
finished epoch (the epoch in progress is redone); on a complete run it just
loads the result.  A different model or settings in the same directory is an
error, so runs are never silently mixed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time
from typing import Any, Mapping, Sequence

import keras
import numpy as np

from zoo import distribute as distribution
from zoo.data import DataBundle, atomic_write, load_dataset, write_json
from zoo.evaluation import evaluate
from zoo.losses import SparseCategoricalCrossentropy, WarmupSchedule
from zoo.registry import ModelSpec, Registry, create_model, get_spec

__all__ = ["fit", "RunResult", "RunDirError", "make_optimizer", "TASKS", "precision_policy", "load_run"]



def _load_tasks() -> None:
    import zoo.tasks  # noqa: F401  (task modules register their losses)


TASKS = Registry("task", loader=_load_tasks)


class RunDirError(ValueError):
    """The run directory holds a different run, or no run where one is needed."""


@dataclasses.dataclass
class RunResult:
    """What `fit` returns: the trained model and where its run lives."""

    run_dir: pathlib.Path
    model: keras.Model
    spec: ModelSpec
    history: dict[str, list]
    metrics: dict[str, Any]
    config: dict[str, Any]
    data: DataBundle | None = None


@TASKS.register("classification")
def classification_task(spec: ModelSpec, train: Mapping[str, Any]):
    """Loss and metrics of a classifier returning logits `(batch, K)` on int labels `(batch,)`."""
    loss = SparseCategoricalCrossentropy(from_logits=True, label_smoothing=train.get("label_smoothing", 0.0))
    return loss, [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def make_optimizer(train: Mapping[str, Any], total_steps: int) -> keras.optimizers.Optimizer:
    """The optimizer and learning-rate schedule a spec's training settings ask for.

    Args:
        train: training settings (`optimizer`, `learning_rate`, `schedule`,
            `warmup`, `weight_decay`, `momentum`, `nesterov`, `clipnorm`).
        total_steps: optimizer steps in the whole run (for the schedule).
    """
    lr = float(train.get("learning_rate", 1e-3))
    kind = train.get("schedule", "constant")
    if kind == "warmup_rsqrt":
        kind = "rsqrt"
    warmup = float(train.get("warmup", 0.0))
    schedule = lr if kind == "constant" and not warmup else WarmupSchedule(lr, total_steps, warmup, kind)
    wd = float(train.get("weight_decay", 0.0) or 0.0) or None
    common = {"clipnorm": train.get("clipnorm")}
    name = train.get("optimizer", "adamw").lower()
    if name == "sgd":
        return keras.optimizers.SGD(schedule, momentum=float(train.get("momentum", 0.9)),
                                    nesterov=bool(train.get("nesterov", False)), weight_decay=wd, **common)
    if name == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=wd or 0.0, **common)
    if name == "adam":
        return keras.optimizers.Adam(schedule, weight_decay=wd, **common)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, adam or adamw")


def _cpu_has_bf16() -> bool:
    try:
        flags = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_policy(precision: str = "float32") -> str:
    """The Keras dtype policy for `precision`: "float32", "mixed", or an explicit policy.

    "mixed" picks `mixed_float16` on a GPU and `mixed_bfloat16` on a CPU with
    bf16 instructions (AVX512-BF16 or AMX); elsewhere it stays float32, since
    emulated bf16 is slower than float32.
    """
    if precision in ("float32", "mixed_float16", "mixed_bfloat16"):
        return precision
    if precision != "mixed":
        raise ValueError(f"unknown precision {precision!r}; choose float32, mixed, mixed_float16 or mixed_bfloat16")
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if _cpu_has_bf16() else "float32"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def save_model(model: keras.Model, path) -> pathlib.Path:
    """`model.save(path)` written atomically: a crash never leaves a half-written `.keras`."""
    path = pathlib.Path(path)
    with atomic_write(path) as tmp:
        model.save(tmp)
    return path


class _RunLogger(keras.callbacks.Callback):
    """Appends each epoch to history.json, checkpoints last.keras, redraws curves.png."""

    def __init__(self, run_dir: pathlib.Path, title: str):
        super().__init__()
        self.run_dir = run_dir
        self.title = title
        self.history: dict[str, list] = {}

    def on_train_begin(self, logs=None):
        path = self.run_dir / "history.json"
        start = int(getattr(self.model, "_initial_epoch", 0) or 0)
        old = json.loads(path.read_text()) if path.exists() else {}
        # keep only the epochs the restored state has finished
        self.history = {k: list(v)[:start] for k, v in old.items()}
        self._seconds = self.history.get("wall_seconds", [0.0])[-1] if self.history.get("wall_seconds") else 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        took = time.perf_counter() - self._t0
        self._seconds += took
        row = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        row.pop("learning_rate", None)
        row.update(epoch=epoch + 1, seconds=took, wall_seconds=self._seconds,
                   learning_rate=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        for k, v in row.items():
            self.history.setdefault(k, []).append(v)
        write_json(self.run_dir / "history.json", self.history)
        save_model(self.model, self.run_dir / "checkpoints" / "last.keras")
        from zoo.plots import plot_curves

        plot_curves(self.history, self.run_dir / "curves.png", title=self.title)


def _config(spec: ModelSpec, model_kw, train_kw, limit, data_dir, precision, jit_compile) -> dict:
    return _jsonable({
        "model": spec.name,
        "model_args": model_kw,
        "train": train_kw,
        "limit": limit,
        "data_dir": str(data_dir) if data_dir else None,
        "precision": precision,
        "jit_compile": jit_compile,
        "versions": {"keras": keras.__version__, "backend": keras.backend.backend()},
    })


def _check_same_run(run_dir: pathlib.Path, config: dict) -> None:
    path = run_dir / "config.json"
    if not path.exists():
        return
    old = json.loads(path.read_text())
    ignore = {"versions", "data_dir", "distribute"}  # the global batch is the same on any number of replicas
    diffs = [k for k in set(old) | set(config) if k not in ignore and old.get(k) != config.get(k)]
    if diffs:
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in sorted(diffs))
        raise RunDirError(
            f"{run_dir} holds a different run ({detail}); use a new --run-dir, or delete it to start over"
        )


def load_run(run_dir, *, compile: bool = False) -> tuple[ModelSpec, keras.Model, dict]:
    """Load a finished (or checkpointed) run: (spec, model, config).

    Raises:
        RunDirError: the directory holds no trained model.
    """
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise RunDirError(f"{run_dir} is not a run directory (no config.json): train one with `zoo train NAME --run-dir {run_dir}`")
    config = json.loads((run_dir / "config.json").read_text())
    for candidate in (run_dir / "model.keras", run_dir / "checkpoints" / "last.keras"):
        if candidate.exists():
            import applications  # noqa: F401  (registers the layers of every family)

            model = keras.saving.load_model(candidate, compile=compile)
            return get_spec(config["model"]), model, config
    raise RunDirError(f"{run_dir} has no trained model yet (no model.keras or checkpoints/last.keras): "
                      "finish training first (rerun the same `zoo train` command to resume)")


def fit(
    name: str,
    data: DataBundle | None = None,
    *,
    run_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    seed: int | None = None,
    precision: str = "float32",
    jit_compile: bool | str = False,
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    evaluate_test: bool = True,
    eval_options: Mapping[str, Any] | None = None,
    distribute: str = "auto",
    devices: int | None = None,
) -> RunResult:
    """Train the registered model `name` into `run_dir`, resuming if it was interrupted.

    Args:
        name: registered model name.
        data: a ready `DataBundle`; default: the spec's dataset loaded with the
            spec's `data` settings, `batch_size`, `limit` and `seed`.
        run_dir: directory for checkpoints, history, metrics and plots.
        data_dir: where the offline datasets are (else `ZOO_DATA_DIR`).
        epochs, batch_size, seed: override the spec's training settings.
        limit: train (and evaluate) on the first `limit` examples of each split.
        overrides: model arguments and training settings (`--set key=value`).
        precision: "float32", "mixed" (bf16 on capable CPUs, fp16 on GPUs) or a policy name.
        jit_compile: XLA compile the train step (True/False/"auto").
        verbose: Keras fit verbosity; "auto" shows progress bars on a terminal.
        callbacks: extra Keras callbacks.
        evaluate_test: evaluate on the test split after training (writes metrics.json).
        eval_options: options for the task's evaluator (e.g. {"tta_flip": True}).
        distribute: "auto", "none", "mirrored" or "multi-worker" (see
            `zoo.distribute.make_strategy`); `batch_size` stays the global batch.
        devices: replicas for "mirrored" (logical CPU devices when no GPU is visible).

    Returns:
        RunResult with the trained model, history and test metrics.
    """
    spec = get_spec(name)
    strategy = distribution.make_strategy(distribute, devices)  # before any other TensorFlow op
    overrides = dict(overrides or {})
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)):
        if value is not None:
            overrides[key] = value
    model_kw, train_kw = spec.resolve(overrides)
    train_kw.setdefault("seed", 0)
    train_kw.setdefault("epochs", 10)
    train_kw.setdefault("batch_size", 64)
    distribution.check_global_batch(train_kw["batch_size"], strategy.num_replicas_in_sync)
    chief_dir = pathlib.Path(run_dir)
    run_dir = distribution.worker_run_dir(chief_dir)  # the chief's; other workers: a temporary directory
    run_dir.mkdir(parents=True, exist_ok=True)
    policy = precision_policy(precision)
    config = _config(spec, model_kw, train_kw, limit, data_dir, policy, jit_compile)
    config["distribute"] = distribution.describe(strategy, train_kw["batch_size"])
    _check_same_run(run_dir, config)
    if distribution.is_chief() or run_dir != chief_dir:  # a worker never writes into the chief's run dir
        write_json(run_dir / "config.json", config)

    state_path = run_dir / "state.json"
    if state_path.exists() and json.loads(state_path.read_text()).get("status") == "complete":
        print(f"{run_dir}: run already complete; loading it (delete the directory to retrain)", file=sys.stderr)
        _, model, _ = load_run(run_dir)
        return RunResult(run_dir, model, spec, json.loads((run_dir / "history.json").read_text()),
                         json.loads((run_dir / "metrics.json").read_text()), config, data)

    keras.utils.set_random_seed(int(train_kw["seed"]))
    if data is None:
        data = load_dataset(spec.dataset, data_dir=data_dir, batch_size=int(train_kw["batch_size"]),
                            limit=limit, seed=int(train_kw["seed"]), **dict(train_kw.get("data", {})))
    write_json(run_dir / "data_info.json", _jsonable(data.info))
    if data.preprocessor is not None and hasattr(data.preprocessor, "save"):
        data.preprocessor.save(run_dir / "preprocessor")

    steps = int(data.train.cardinality())
    if steps < 0:  # unknown cardinality: derive it from the example count
        n, b = int(data.info.get("num_train", 0)), int(train_kw["batch_size"])
        steps = n // b if data.info.get("drop_remainder", True) else -(-n // b)
    if steps <= 0:
        raise ValueError(f"training set has {steps} batches (limit={limit}, batch_size={train_kw['batch_size']}); "
                         "use a larger --limit or a smaller --batch-size")
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        with strategy.scope():
            model = create_model(name, **model_kw)
            loss, metrics = TASKS.get(spec.task)(spec, train_kw)
            model.compile(optimizer=make_optimizer(train_kw, steps * int(train_kw["epochs"])),
                          loss=loss, metrics=metrics, jit_compile=jit_compile)
    finally:
        keras.config.set_dtype_policy(previous_policy)

    logger = _RunLogger(run_dir, title=spec.name)
    cbs = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), save_freq="epoch", double_checkpoint=True),
        logger,
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False, profile_batch=0),
        *callbacks,
    ]
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    train_ds, val_ds = distribution.shard_by_data(data.train), distribution.shard_by_data(data.val)
    model.fit(train_ds, validation_data=val_ds, epochs=int(train_kw["epochs"]), callbacks=cbs, verbose=verbose,
              shuffle=False)  # the pipeline shuffles
    history = logger.history
    save_model(model, run_dir / "model.keras")

    ran = len(history.get("loss", [])) or int(train_kw["epochs"])  # fewer when a callback stopped training early
    metrics = {"model": spec.name, "params": int(model.count_params()), "epochs": ran,
               "epochs_planned": int(train_kw["epochs"]),
               "train_seconds": float(history.get("wall_seconds", [0.0])[-1] if history.get("wall_seconds") else 0.0),
               "precision": policy, "distribute": config["distribute"]}
    if evaluate_test and distribution.is_chief():  # other workers' results are thrown away
        metrics["test"] = evaluate(spec, model, data, run_dir, **dict(eval_options or {}))
    write_json(run_dir / "metrics.json", _jsonable(metrics))
    write_json(state_path, {"status": "complete", "epochs": ran})
    distribution.finish_worker_run_dir(run_dir, chief_dir)
    return RunResult(chief_dir, model, spec, history, metrics, config, data)
