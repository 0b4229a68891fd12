"""Training core: `fit(name, ...)` turns a registered spec and its data into a run.

A run directory (`zoo.run.Run` names its files) holds everything a run
produced and everything needed to resume it.  Running the same command again
after a crash or kill resumes from the last finished epoch (the epoch in
progress is redone); on a complete run it just loads the result.  A different
model or settings in the same directory is an error, so runs are never
silently mixed; two processes never train in one directory at once (a lock).

Settings are checked before anything is written: a bad `--set`, batch size or
data setting fails with one line and leaves the directory as it was, so the
corrected command starts cleanly.  `config.json` is written only once the
data is loaded and the model is built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import pathlib
import sys
import time
from typing import Any, Mapping, Sequence

from zoo._tf import import_tensorflow

import_tensorflow()  # quietly, before Keras pulls it in with its start-up log lines

import keras  # noqa: E402
import numpy as np  # noqa: E402

from zoo import distribute as distribution
from zoo.data import DataBundle, bundle_without_autotune_threads
from zoo.evaluation import evaluate
from zoo.io import atomic_write, jsonable
from zoo.losses import WarmupSchedule
from zoo.optimizers import MuonSGD  # registered, so checkpoints of runs that use it load
from zoo.registry import ModelSpec, check_train, check_value, create_model, get_spec
from zoo.run import Run, RunDirError

__all__ = ["EpochClock", "fit", "RunResult", "RunDirError", "make_optimizer", "precision_policy", "load_run", "load_run_data",
           "budget_epochs", "make_schedule"]



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


class EpochClock(keras.callbacks.Callback):
    """Prints each epoch's time and when training should finish, from the mean time per unit of epoch cost so far.

    Args:
        cost: an epoch's time relative to a full one, `cost(epoch)` (e.g.
            progressive resizing's cheaper first epochs); None: the data's
            (`fit` gives it `DataBundle.schedule.cost`), else all 1.
    """

    def __init__(self, cost=None):
        super().__init__()
        self.cost = cost
        self.data_cost = None  # set by `fit` for each run
        self.val_images = None  # set by `fit` when each epoch is checked on part of the validation data

    def on_train_begin(self, logs=None):
        self.times, self.costs = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        cost = self.cost or self.data_cost or (lambda e: 1.0)
        self.times.append(time.perf_counter() - self.t0)
        self.costs.append(cost(epoch))
        per_cost = sum(self.times) / sum(self.costs)
        left = per_cost * sum(cost(e) for e in range(epoch + 1, self.params["epochs"]))
        finish = (datetime.datetime.now() + datetime.timedelta(seconds=left)).strftime("%H:%M")
        acc = (logs or {}).get("val_accuracy")
        print(f"epoch {epoch + 1}/{self.params['epochs']}: {self.times[-1]:.0f} s"
              + (f", test accuracy {acc:.2%}" if acc is not None else "")
              + (f" (on {self.val_images:,} images)" if acc is not None and self.val_images else "")
              + (f"; {left / 60:.1f} min to go, done about {finish}" if left else "; training done"), flush=True)


def make_schedule(train: Mapping[str, Any], total_steps: int, adjustable: bool = False):
    """The learning rate a spec's training settings ask for: a float, or a `WarmupSchedule` over `total_steps`.

    With `adjustable`, a schedule's end can be moved after tracing (`WarmupSchedule.set_total_steps`).
    """
    lr = float(train.get("learning_rate", 1e-3))
    kind = train.get("schedule", "constant")
    if kind == "warmup_rsqrt":
        kind = "rsqrt"
    warmup = float(train.get("warmup", 0.0))
    return lr if kind == "constant" and not warmup else WarmupSchedule(lr, total_steps, warmup, kind, adjustable=adjustable)


def make_optimizer(train: Mapping[str, Any], total_steps: int, schedule=None) -> keras.optimizers.Optimizer:
    """The optimizer and learning-rate schedule a spec's training settings ask for.

    Args:
        train: training settings (`optimizer`, `learning_rate`, `schedule`,
            `warmup`, `weight_decay`, `momentum`, `nesterov`, `clipnorm`, `ema`;
            with `optimizer="muon"` also `muon_learning_rate`, `muon_momentum`).
            `ema` (a decay in (0, 1), e.g. 0.999) keeps an exponential moving
            average of the trainable weights in the optimizer (Keras'
            `use_ema`); `model.fit` writes it into the model when training
            ends, so the saved model and the export are the averaged weights.
        total_steps: optimizer steps in the whole run (for the schedule).
        schedule: the learning rate or schedule to use (default: `make_schedule(train, total_steps)`).
    """
    schedule = make_schedule(train, total_steps) if schedule is None else schedule
    wd = float(train.get("weight_decay", 0.0) or 0.0) or None
    common = {"clipnorm": train.get("clipnorm")}
    if train.get("ema"):
        common.update(use_ema=True, ema_momentum=float(train["ema"]))
    name = train.get("optimizer", "adamw").lower()
    sgd = {"momentum": float(train.get("momentum", 0.9)), "nesterov": bool(train.get("nesterov", False)),
           "weight_decay": wd, **common}
    if name == "sgd":
        return keras.optimizers.SGD(schedule, **sgd)
    if name == "muon":
        return MuonSGD(schedule, muon_learning_rate=float(train.get("muon_learning_rate", 0.24)),
                       muon_momentum=float(train.get("muon_momentum", 0.6)), **sgd)
    if name == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=wd or 0.0, **common)
    if name == "adam":
        return keras.optimizers.Adam(schedule, weight_decay=wd, **common)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, muon, adam or adamw")


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


def budget_epochs(budget_seconds: float, epoch_seconds: float, max_epochs: int, overhead_seconds: float = 0.0,
                  costs: Sequence[float] | None = None) -> int:
    """How many whole epochs fit in a time budget: at least 1, at most `max_epochs`.

    Args:
        budget_seconds: the wall-clock time training may take.
        epoch_seconds: the estimated time of one epoch, its evaluation included.
        max_epochs: the recipe's epochs (the budget only ever shortens a run).
        overhead_seconds: one-off costs inside the budget (tracing the
            training step).
        costs: the next epochs' times relative to `epoch_seconds`, in order
            (e.g. 0.56 for an epoch of progressive resizing at 24 of 32
            pixels); None: all 1.
    """
    if budget_seconds <= 0 or epoch_seconds <= 0:
        raise ValueError(f"budget and epoch time must be positive, got {budget_seconds!r} s and {epoch_seconds!r} s")
    if costs is None:
        fit = int((budget_seconds - overhead_seconds) // epoch_seconds)
    else:
        spent, fit = float(overhead_seconds), 0
        for c in list(costs)[: int(max_epochs)]:
            spent += c * epoch_seconds
            if spent > budget_seconds:
                break
            fit += 1
    return max(1, min(int(max_epochs), fit))


# The share of a time budget the epochs are planned into: single epochs of one run varied by up to 12% around
# their mean on a 2-core EPYC (bench/RESULTS.md, round 8), and a plan to the full budget ended 1 min past 20.
BUDGET_PLANNED = 0.95


class _Budget(keras.callbacks.Callback):
    """Times the first epochs of a run under a time budget, then chooses how many epochs the run takes.

    With `plan_after=1` (the default): after the first epoch (its tracing,
    steps, evaluation and checkpoint) it estimates a steady epoch as that
    time less the first step plus a median step.  With `plan_after=n > 1`
    it waits for the n-th epoch and takes that epoch's own time as the
    steady one, the excess of the earlier ones as one-off cost: for a model
    whose first epoch carries more than its first step's tracing (variable
    input shapes, a first evaluation's tracing; the speech family).  Then it
    takes as many more epochs as fit in what is left of `BUDGET_PLANNED`
    of the budget (`budget_epochs`), tells the progress bar and the other
    callbacks, calls `on_choice(epochs, timing)` (fit moves the
    learning-rate schedule's end there and records the choice in
    config.json), and stops training at that epoch.

    The plan is checked again after twice, four times, ... as many epochs
    as were timed, while the run is in the first half of its epochs: the
    median of the epochs since the first plan then stands for a steady
    epoch, and the run is lengthened or shortened to what fits (another
    `on_choice`, with `timing["replanned_after"]`).  An early epoch that was
    slower than the rest (the speech family's second epoch ran 34 s where
    later ones took 27-29 s on a 2-core AVX2 EPYC, so the first plan chose
    23 of 40 epochs and ended training at 11.9 of 15 minutes) no longer
    decides the whole run.

    With `cost(epoch)` (an epoch's time relative to a full one: a
    pipeline's progressive resizing, `DataBundle.schedule`) the epochs are
    timed per unit of cost and planned by their costs; the plan is also
    checked after the first epoch of each new cost (e.g. the first
    full-size one, which with `make train`'s progressive resizing comes
    past the first half: only then is that cost measured, so this check
    may move the schedule's end there too), estimated from the epochs of
    the next epoch's cost where there are some.
    """

    def __init__(self, budget_seconds: float, most: int, on_choice, progbar=None, plan_after: int = 1,
                 cost=None):
        super().__init__()
        self.budget_seconds, self.most = float(budget_seconds), int(most)
        self.on_choice, self.progbar = on_choice, progbar
        self.plan_after = max(1, int(plan_after))
        self.cost = cost if cost is not None else (lambda epoch: 1.0)
        self.chosen = None

    def on_train_begin(self, logs=None):
        self.t0 = self.lap = self.epoch_t0 = time.perf_counter()
        self.step_times, self.timed = [], 0
        self.steady = []  # (cost, seconds) of the epochs since the first plan (the re-plans' steady epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.chosen is None and self.timed == 0:
            now = time.perf_counter()
            self.step_times.append(now - self.lap)
            self.lap = now

    def on_epoch_end(self, epoch, logs=None):
        if self.chosen is None:
            now = time.perf_counter()
            self.timed += 1
            if self.timed == 1:
                self.first_epoch_seconds = now - self.t0
            if self.timed < self.plan_after:
                return
            elapsed = now - self.t0
            if self.plan_after == 1:
                first = self.step_times[0] if self.step_times else 0.0
                median = float(np.median(self.step_times[1:])) if len(self.step_times) > 1 else first
                epoch_seconds = max(elapsed - first + median, 1e-6)
                timing = {"first_epoch_seconds": round(elapsed, 3), "epoch_seconds": round(epoch_seconds, 3),
                          "first_step_seconds": round(first, 3), "step_seconds": round(median, 4)}
            else:
                epoch_seconds = max(now - self.epoch_t0, 1e-6)
                timing = {"first_epoch_seconds": round(self.first_epoch_seconds, 3),
                          "timed_epochs": self.timed, "timed_seconds": round(elapsed, 3),
                          "epoch_seconds": round(epoch_seconds, 3)}
            # the epochs before this session's (a resumed run) are already done: budget what is left of the run
            before = epoch + 1 - self.timed
            unit = epoch_seconds / self.cost(epoch)  # a full epoch's time
            if self.cost(epoch) != 1.0:
                timing["full_epoch_seconds"] = round(unit, 3)
            overhead = max(elapsed - unit * sum(self.cost(e) for e in range(before, epoch + 1)), 0.0)
            fit = budget_epochs(self.budget_seconds * BUDGET_PLANNED, unit, self.most - before,
                                overhead_seconds=overhead, **self._costs(before))
            if self.plan_after > 1:
                self.steady.append((self.cost(epoch), epoch_seconds))  # the timed steady epoch
            self.replan_at = 2 * self.timed  # from here `timed` counts this session's epochs
            self._choose(before + max(fit, self.timed), timing)
        else:
            now = time.perf_counter()
            # `timed` epochs of this session ended before this one
            new_cost = self.cost(epoch) not in {self.cost(e) for e in range(epoch - self.timed, epoch)}
            self.steady.append((self.cost(epoch), now - self.epoch_t0))
            self.timed += 1
            doubled = self.timed == self.replan_at
            if doubled:
                self.replan_at *= 2
            # in the first half only (later the schedule's end stays put), except that the first epoch of a new
            # cost is the first measure of it: then the end may move while there are epochs left
            if (doubled and 2 * (epoch + 1) <= self.chosen) or (new_cost and epoch + 1 < self.chosen):
                self._replan(epoch, now)
        if self.chosen is not None and epoch + 1 >= self.chosen:
            self.model.stop_training = True

    def _choose(self, epochs: int, timing: dict) -> None:
        self.chosen = epochs
        self.params["epochs"] = self.chosen  # shared with the other callbacks (EpochClock)
        if self.progbar is not None:
            self.progbar.epochs = self.chosen
        self.on_choice(self.chosen, timing)

    def _costs(self, start: int) -> dict:
        """`budget_epochs`' `costs` of the epochs from `start` to the recipe's end: none when all cost 1."""
        costs = [self.cost(e) for e in range(start, self.most)]
        return {"costs": costs} if any(c != 1.0 for c in costs) else {}

    def _replan(self, epoch: int, now: float) -> None:
        """Plans the rest of the run again from the median epoch since the first plan (per unit of cost)."""
        upcoming = self.cost(epoch + 1)
        alike = [t / c for c, t in self.steady if c == upcoming] or [t / c for c, t in self.steady]
        epoch_seconds = max(float(np.median(alike)), 1e-6)
        left = self.budget_seconds * BUDGET_PLANNED - (now - self.t0)
        # budget_epochs keeps it within the recipe; with nothing left, one more epoch (a re-plan comes only with
        # epochs left in the plan)
        more = budget_epochs(left, epoch_seconds, self.most - (epoch + 1), **self._costs(epoch + 1)) if left > 0 else 1
        epochs = epoch + 1 + more
        if epochs != self.chosen:
            self._choose(epochs, {"replanned_after": epoch + 1, "epoch_seconds": round(epoch_seconds, 3),
                                  "elapsed_seconds": round(now - self.t0, 3)})


class _ScheduleStart(keras.callbacks.Callback):
    """Tells a training pipeline's schedule (`DataBundle.schedule`) the epoch training starts or resumes at."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_train_begin(self, logs=None):
        self.schedule.set_next_epoch(int(getattr(self.model, "_initial_epoch", 0) or 0))


_jsonable = jsonable  # the one converter lives in zoo.io


def save_model(model: keras.Model, path) -> pathlib.Path:
    """`model.save(path)` written atomically: a crash never leaves a half-written `.keras`."""
    path = pathlib.Path(path)
    with atomic_write(path) as tmp:
        model.save(tmp)
    return path


class _RunLogger(keras.callbacks.Callback):
    """Appends each epoch to history.json, checkpoints last.keras, redraws curves.png, then backs up.

    It owns the run's `BackupAndRestore` and calls it *after* its own files
    are written, so an epoch counts as finished (and is skipped on resume)
    only once history.json, last.keras and curves.png hold it: a kill at any
    moment loses at most the epoch in progress.  The backup is kept when
    training ends (`fit` removes it once the run is recorded complete), so a
    kill during the final evaluation does not retrain.
    """

    def __init__(self, run: Run, title: str, saved: keras.Model | None = None):
        super().__init__()
        self.run = run
        self.title = title
        self.saved = saved  # the model last.keras holds (the trained one when None; see Task.trainee)
        self.history: dict[str, list] = {}
        self.backup = keras.callbacks.BackupAndRestore(str(run.backup), save_freq="epoch", double_checkpoint=True,
                                                       delete_checkpoint=False)

    def set_model(self, model):
        super().set_model(model)
        self.backup.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.backup.set_params(params)

    def on_train_begin(self, logs=None):
        self.backup.on_train_begin(logs)  # restores weights and sets the initial epoch
        start = int(getattr(self.model, "_initial_epoch", 0) or 0)
        old = self.run.read("history", {})
        # keep only the epochs the restored state has finished
        self.history = {k: list(v)[:start] for k, v in old.items()}
        self._seconds = self.history.get("wall_seconds", [0.0])[-1] if self.history.get("wall_seconds") else 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.backup.on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        took = time.perf_counter() - self._t0
        self._seconds += took
        row = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        row.pop("learning_rate", None)
        row.update(epoch=epoch + 1, seconds=took, wall_seconds=self._seconds,
                   learning_rate=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        for k, v in row.items():
            self.history.setdefault(k, []).append(v)
        self.run.write("history", self.history)
        save_model(self.saved if self.saved is not None else self.model, self.run.last_checkpoint)
        from zoo.plots import plot_curves

        plot_curves(self.history, self.run.curves, title=self.title)
        self.backup.on_epoch_end(epoch, logs)  # last: the epoch is done only when all of the above is


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


def _check_same_run(run: Run, config: dict) -> None:
    old = run.read("config")
    if old is None:
        return
    # "distribute": the global batch makes runs on any number of replicas the same run
    # "budget": what the time budget measured on the machine that began the run
    ignore = {"versions", "data_dir", "fitted_args", "distribute", "budget"}
    diffs = [k for k in set(old) | set(config) if k not in ignore and old.get(k) != config.get(k)]
    if diffs:
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in sorted(diffs))
        raise RunDirError(
            f"{run.given} holds a different run ({detail}); use a new --run-dir, or delete it to start over"
        )


def check_data_settings(spec: ModelSpec, data: Mapping[str, Any]) -> None:
    """Refuse `data.*` settings the spec's dataset loader does not take, or of the wrong type.

    Raises:
        ValueError: one line naming the setting and the valid ones.
    """
    import inspect

    params = inspect.signature(spec.dataset).parameters
    reserved = {"data_dir", "batch_size", "limit", "seed"}  # set by their own flags
    valid = sorted(k for k, p in params.items() if k not in reserved and p.kind is p.KEYWORD_ONLY or
                   k not in reserved and p.kind is p.POSITIONAL_OR_KEYWORD)
    for key, value in data.items():
        if key not in valid:
            import difflib

            close = difflib.get_close_matches(key, valid, n=3)
            hint = f"--{key.replace('_', '-')} or --set {key}=..." if key in reserved else ""
            raise ValueError(f"{spec.name}: unknown data setting {key!r}"
                             + (f" (did you mean {', '.join(close)}?)" if close else "")
                             + (f" (use {hint})" if hint else "")
                             + f"; the {spec.dataset_name} loader takes: {', '.join(valid)}")
        check_value(spec.name, f"data.{key}", value, params[key].default, optional=True)


def load_run_data(spec: ModelSpec, train: Mapping[str, Any], *, data_dir=None, limit: int | None = None) -> DataBundle:
    """The spec's dataset loaded with a run's training settings: the one place that makes this call.

    Args:
        spec: the model's spec (its `dataset` is the loader).
        train: resolved training settings (`batch_size`, `seed`, `data`), e.g. a run's `config["train"]`.
        data_dir, limit: as for `fit`.
    """
    data = bundle_without_autotune_threads(spec.dataset(data_dir=data_dir, batch_size=int(train["batch_size"]),
                                                        limit=limit, seed=int(train.get("seed", 0)),
                                                        **dict(train.get("data", {}))))
    if spec.preprocessor is not None and not isinstance(data.preprocessor, spec.preprocessor):
        raise RuntimeError(f"{spec.name}: the {spec.dataset_name} loader returned a "
                           f"{type(data.preprocessor).__name__} preprocessor, the spec declares {spec.preprocessor.__name__}")
    return data


def load_run(run_dir, *, compile: bool = False) -> tuple[ModelSpec, keras.Model, dict]:
    """Load a finished (or checkpointed) run: (spec, model, config).

    Raises:
        RunDirError: the directory holds no trained model, or its model file is corrupt.
    """
    run = Run(run_dir)
    config = run.read("config")
    if config is None:
        raise RunDirError(f"{run.given} is not a run directory (no config.json): train one with "
                          f"`zoo train NAME --run-dir {run.given}`")
    candidate = run.trained_model_file()
    if candidate is None:
        raise RunDirError(f"{run.given} has no trained model yet (no model.keras or checkpoints/last.keras): "
                          "finish training first (rerun the same `zoo train` command to resume)")
    spec = get_spec(config["model"])  # loads every family, which registers their layers
    try:
        model = keras.saving.load_model(candidate, compile=compile)
    except Exception as exc:  # a truncated or foreign file: Keras says "File not found" or worse
        missing = _unregistered_classes(candidate)
        if missing:
            raise RunDirError(f"{candidate} was saved by a newer zoo: it uses {', '.join(missing)}, which this zoo does "
                              "not have; update zoo (git pull, then `make setup`) or load it with the zoo that trained "
                              "it") from None
        raise RunDirError(f"{candidate} cannot be loaded: the file is truncated or corrupt (Keras raised "
                          f"{type(exc).__name__}); delete it to fall back to checkpoints/last.keras (the last finished "
                          "epoch), or train again in a new --run-dir") from None
    return spec, model, config


def _unregistered_classes(path) -> list[str]:
    """The `zoo>...` classes a `.keras` file's config names that Keras cannot find here (sorted; [] when unreadable)."""
    import re
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read("config.json").decode("utf-8")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    names = set(re.findall(r'"registered_name":\s*"(zoo>[A-Za-z_0-9]+)"', text))
    return sorted(n.split(">", 1)[1] for n in names if keras.saving.get_registered_object(n) is None)


def _init_from(model: keras.Model, spec: ModelSpec, source_dir) -> None:
    """Start `model` from the finished run `source_dir` through the model's `load_pretrained(source_model)`."""
    if not hasattr(model, "load_pretrained"):
        raise ValueError(f"{spec.name} cannot start from another run (init_from): it has no load_pretrained")
    _, source, _ = load_run(source_dir)
    model.load_pretrained(source)


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
    budget_minutes: float | None = None,
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
        budget_minutes: a wall-clock budget for training on this machine:
            `epochs` becomes a most, and after the first epoch (the first
            `budget_plan_after` epochs, a training setting), timed, the run
            takes as many as fit (at least those; a `WarmupSchedule` is moved
            to end at the epoch chosen).  The budget, the choice and the timing
            are recorded in config.json; a resumed run keeps the choice.
            None: the spec's `budget_minutes` training setting (e.g. fsdd_ctc's
            15), unless `epochs` is given, which turns it off (so does
            `overrides={"budget_minutes": 0}`).

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
    # the spec's time budget (a training setting) holds unless the caller names epochs and not a budget
    spec_budget, plan_after = train_kw.pop("budget_minutes", None), train_kw.pop("budget_plan_after", 1)
    if budget_minutes is None and ("epochs" not in overrides or "budget_minutes" in overrides):
        budget_minutes = spec_budget or None  # 0: off
    train_kw.setdefault("seed", 0)
    train_kw.setdefault("epochs", 10)
    train_kw.setdefault("batch_size", 64)
    if train_kw.get("init_from"):  # fine-tuning reads its inputs with the pre-trained run's preprocessor
        train_kw["data"] = {"preprocessor_from": str(train_kw["init_from"]), **dict(train_kw.get("data", {}))}
    check_train(spec.name, train_kw)
    check_data_settings(spec, train_kw.get("data", {}))
    if train_kw.get("speaker_adversary") and spec.task.trainee is None:
        raise ValueError(f"{spec.name}: speaker_adversary is a setting of speech recognition; a {spec.task.name} "
                         "model has no speaker labels to train against: leave it out")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"{spec.name}: limit must be an integer of at least 1 (examples per split), got {limit!r}")
    distribution.check_global_batch(train_kw["batch_size"], strategy.num_replicas_in_sync)
    if budget_minutes is not None:
        if isinstance(budget_minutes, bool) or not isinstance(budget_minutes, (int, float)) or not budget_minutes > 0:
            raise ValueError(f"{spec.name}: the time budget must be a positive number of minutes, got {budget_minutes!r}")
        if distribution.kind_of(strategy) == "multi-worker":  # each worker would time itself and pick its own epochs
            raise ValueError(f"{spec.name}: a time budget works on one machine; give multi-worker training --epochs")
    chief = Run(run_dir)
    run = Run(distribution.worker_run_dir(chief.path))  # the chief's; other workers: a temporary directory
    policy = precision_policy(precision)
    old = run.read("config") if budget_minutes is not None else None
    chosen = old.get("budget") if isinstance(old, dict) and old.get("budget_minutes") == budget_minutes else None
    if isinstance(chosen, dict) and chosen.get("epochs_most") == train_kw["epochs"]:
        train_kw["epochs"] = chosen["epochs"]  # resuming: the epochs the budget chose after the first one
    else:
        chosen = None
    config = _config(spec, model_kw, train_kw, limit, data_dir, policy, jit_compile)
    config["distribute"] = distribution.describe(strategy, train_kw["batch_size"])
    if budget_minutes is not None:
        config["budget_minutes"] = budget_minutes
        if plan_after != 1:
            config["budget_plan_after"] = plan_after
        if chosen:
            config["budget"] = chosen
    _check_same_run(run, config)
    explicit = {k for k in overrides if k in spec.defaults}
    # another worker only reads the chief's directory (a finished run, to load it): no lock
    held = run.lock() if distribution.is_chief() or run.path != chief.path else contextlib.nullcontext(run)
    with held:
        return _fit_locked(spec, run, data, config, model_kw, train_kw, explicit, data_dir=data_dir, limit=limit, policy=policy,
                           jit_compile=jit_compile, verbose=verbose, callbacks=callbacks,
                           evaluate_test=evaluate_test, eval_options=eval_options, strategy=strategy, chief=chief,
                           budget_minutes=None if chosen else budget_minutes, budget_plan_after=plan_after)


def _fit_locked(spec, run: Run, data, config, model_kw, train_kw, explicit, *, data_dir, limit, policy, jit_compile, verbose,
                callbacks, evaluate_test, eval_options, strategy, chief: Run, budget_minutes=None,
                budget_plan_after: int = 1) -> RunResult:
    """`fit` once the settings are checked and the run directory is held."""
    if run.complete:
        print(f"{run.given}: run already complete; loading it (delete the directory to retrain)", file=sys.stderr)
        _, model, _ = load_run(run.path)
        return RunResult(run.path, model, spec, run.read("history", {}), run.read("metrics", {}), config, data)

    keras.utils.set_random_seed(int(train_kw["seed"]))
    if data is None:
        data = load_run_data(spec, train_kw, data_dir=data_dir, limit=limit)

    # Sizes the data decides reach the builder; an explicit larger size is kept (harmless), a smaller one
    # would produce ids or positions the model cannot hold.
    fitted = {k: v for k, v in (data.model_args or {}).items() if k in spec.defaults}
    for key, value in fitted.items():
        if key in explicit and model_kw[key] < value:
            raise ValueError(f"{spec.name}: {key}={model_kw[key]} is smaller than the data needs ({value}); "
                             f"leave {key} out: the data settings decide it")
    model_kw = {**model_kw, **{k: v for k, v in fitted.items() if k not in explicit}}
    config = {**config, "fitted_args": jsonable(fitted)}

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
            model = create_model(spec.name, **model_kw)
            if train_kw.get("init_from") and not run.backup.exists():
                _init_from(model, spec, train_kw["init_from"])
            for layer in model.layers:  # layers fitted on training images before step 1 (e.g. patch whitening)
                if hasattr(layer, "adapt_to_training_data"):
                    if data.schedule is not None:  # the images of no epoch in particular: full size
                        data.schedule.set_next_epoch(-1)
                    layer.adapt_to_training_data(data.train)
            loss, metrics = spec.task.compile(spec, train_kw)
            trainee = model  # what model.fit trains: the model, or a training-only model around it (the task's)
            if spec.task.trainee is not None:
                trainee, loss, metrics, data = spec.task.trainee(spec, model, data, train_kw, loss, metrics)
            total_steps = steps * int(train_kw["epochs"])
            schedule = make_schedule(train_kw, total_steps, adjustable=budget_minutes is not None)
            trainee.compile(optimizer=make_optimizer(train_kw, total_steps, schedule=schedule),
                            loss=loss, metrics=metrics, jit_compile=jit_compile)
    finally:
        keras.config.set_dtype_policy(previous_policy)

    # Training can start: only now does the directory become this run's.
    run.write("config", config)
    run.write("data_info", data.info)
    if data.preprocessor is not None and hasattr(data.preprocessor, "save"):
        data.preprocessor.save(run.preprocessor)

    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    logger = _RunLogger(run, title=spec.name, saved=model)
    cbs = [
        logger,  # owns BackupAndRestore (see its docstring)
        keras.callbacks.TensorBoard(str(run.logs), write_graph=False, profile_batch=0),
    ]
    if data.schedule is not None:  # after the logger, which sets the epoch a resumed run starts at
        cbs.append(_ScheduleStart(data.schedule))
    data_cost = getattr(data.schedule, "cost", None)  # epochs' relative costs, for the budget and the clocks
    if budget_minutes is not None:  # after the logger (the first epoch's time includes its checkpoint), before the rest
        most = int(train_kw["epochs"])

        def record(epochs: int, timing: dict) -> None:
            nonlocal config, train_kw
            moved = isinstance(schedule, WarmupSchedule)
            if moved:
                schedule.set_total_steps(steps * epochs)
            train_kw = {**train_kw, "epochs": epochs}
            if "replanned_after" in timing:  # a later check of the plan: the first plan's timing stays recorded
                budget = {**config["budget"], "epochs": epochs,
                          "replans": [*config["budget"].get("replans", []), {**timing, "epochs": epochs}]}
                timed = (f"after {timing['replanned_after']} epochs, a steady one takes about "
                         f"{timing['epoch_seconds']:.0f} s")
            else:
                budget = {"epochs_most": most, "epochs": epochs, **timing}
                timed = (f"the first epoch took {timing['first_epoch_seconds']:.0f} s" if budget_plan_after == 1 else
                         f"the first {budget_plan_after} epochs took {timing['timed_seconds']:.0f} s")
                timed += f" (a steady one about {timing['epoch_seconds']:.0f} s" + (
                    f", a full-size one about {timing['full_epoch_seconds']:.0f} s)" if "full_epoch_seconds" in timing
                    else ")")
            config = {**config, "train": {**config["train"], "epochs": epochs}, "budget": budget}
            run.write("config", config)
            print(f"{spec.name}: time budget {budget_minutes:g} min; {timed}, so the "
                  f"run takes {epochs} of {most} epochs" + (", its learning-rate schedule now ending there"
                                                          if moved and epochs < most else ""),
                  flush=True)

        progbar = keras.callbacks.ProgbarLogger() if verbose else None
        cbs += [_Budget(budget_minutes * 60, most, record, progbar, plan_after=budget_plan_after, cost=data_cost)] + \
            ([progbar] if progbar else [])
    for cb in callbacks:  # a clock without costs of its own projects with the data's
        if isinstance(cb, EpochClock):
            cb.data_cost = data_cost
            cb.val_images = data.info.get("num_val") if data.info.get("val_limit") else None
    cbs += list(callbacks)
    train_ds, val_ds = distribution.shard_by_data(data.train), distribution.shard_by_data(data.val)
    trainee.fit(train_ds, validation_data=val_ds, epochs=int(train_kw["epochs"]), callbacks=cbs, verbose=verbose,
                shuffle=False)  # the pipeline shuffles
    history = logger.history
    save_model(model, run.model)

    ran = len(history.get("loss", [])) or int(train_kw["epochs"])  # fewer when a callback stopped training early
    metrics = {"model": spec.name, "params": int(model.count_params()), "epochs": ran,
               "epochs_planned": int(train_kw["epochs"]),
               "train_seconds": float(history.get("wall_seconds", [0.0])[-1] if history.get("wall_seconds") else 0.0),
               "precision": policy, "distribute": config["distribute"]}
    if "budget" in config:
        metrics["budget"] = {"minutes": config["budget_minutes"], **config["budget"]}
    if evaluate_test and distribution.is_chief():  # other workers' results are thrown away
        metrics["test"] = evaluate(spec, model, data, run.path, **dict(eval_options or {}))
    run.write("metrics", metrics)
    run.write("state", {"status": "complete", "epochs": ran})
    import shutil

    shutil.rmtree(run.backup, ignore_errors=True)  # the run is recorded: the resume state is no longer needed
    distribution.finish_worker_run_dir(run.path, chief.path)
    return RunResult(chief.path, model, spec, history, metrics, config, data)
