"""Training core: run directory contents, learning, resume after a crash or kill."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from training_fixtures import CrashInEpoch2
from zoo.training import RunDirError, fit, load_run, make_optimizer, precision_policy

SMALL_CNN = {"filters": [8, 16, 16], "dense_units": 16}


def _fit(run_dir, data_dir, **kw):
    args = dict(run_dir=run_dir, data_dir=data_dir, epochs=3, batch_size=20, verbose=0,
                overrides={**SMALL_CNN, "learning_rate": 3e-3})
    args.update(kw)
    return fit("cifar10_cnn", **args)


def test_fit_writes_a_complete_run_and_learns(tmp_path, tiny_cifar):
    result = _fit(tmp_path / "run", tiny_cifar, epochs=6)
    run = result.run_dir
    for name in ("config.json", "history.json", "metrics.json", "curves.png", "confusion.png",
                 "model.keras", "checkpoints/last.keras", "state.json", "data_info.json"):
        assert (run / name).exists(), name
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["num_examples"] == 40
    assert metrics["test"]["accuracy"] > 0.4  # chance is 0.1
    assert np.array(metrics["test"]["confusion_matrix"]).sum() == 40
    assert json.loads((run / "state.json").read_text())["status"] == "complete"
    spec, model, config = load_run(run)
    assert spec.name == "cifar10_cnn" and config["model_args"]["dense_units"] == 16
    x = np.zeros((2, 32, 32, 3), np.uint8)
    np.testing.assert_allclose(model.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-6)


class _StopAfterTwo(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            self.model.stop_training = True  # e.g. a time budget


def test_an_early_stop_records_the_epochs_that_ran(tmp_path, tiny_cifar):
    result = _fit(tmp_path / "run", tiny_cifar, epochs=5, callbacks=[_StopAfterTwo()])
    assert result.metrics["epochs"] == 2 and result.metrics["epochs_planned"] == 5
    assert json.loads((result.run_dir / "state.json").read_text()) == {"status": "complete", "epochs": 2}


class _Record(keras.callbacks.Callback):
    """Appends every epoch that starts to `seen`."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def test_crashed_run_resumes_from_last_finished_epoch(tmp_path, tiny_cifar):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(run, tiny_cifar, callbacks=[CrashInEpoch2()])
    first = json.loads((run / "history.json").read_text())
    assert first["epoch"] == [1] and not (run / "state.json").exists()
    seen = []
    result = _fit(run, tiny_cifar, callbacks=[_Record(seen)])
    assert seen == [1, 2]  # epoch 1 was not trained again
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3]
    assert history["loss"][0] == first["loss"][0]
    assert result.metrics["epochs"] == 3
    # a finished run is loaded, not retrained
    again = _fit(run, tiny_cifar, callbacks=[_Record(seen)])
    assert seen == [1, 2] and again.metrics == result.metrics


def test_same_run_dir_with_different_settings_is_refused(tmp_path, tiny_cifar):
    run = tmp_path / "run"
    _fit(run, tiny_cifar, epochs=1)
    with pytest.raises(RunDirError, match="holds a different run.*learning_rate"):
        _fit(run, tiny_cifar, epochs=1, overrides={**SMALL_CNN, "learning_rate": 1e-2})


def test_killed_process_resumes_with_the_same_command(tmp_path, tiny_cifar):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "zoo.cli", "train", "cifar10_cnn", "--data-dir", str(tiny_cifar), "--run-dir", str(run),
           "--epochs", "4", "--batch-size", "20", "--set", "filters=[8,16,16]", "--set", "dense_units=16"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    history = run / "history.json"
    while time.time() < deadline and proc.poll() is None:
        if history.exists() and len(json.loads(history.read_text())["epoch"]) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(json.loads(history.read_text())["epoch"])
    assert 2 <= done < 4 and not (run / "state.json").exists(), "the run should have been killed mid-way"
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(history.read_text())["epoch"] == [1, 2, 3, 4]
    assert json.loads((run / "state.json").read_text())["status"] == "complete"


def test_optimizer_and_precision_choices():
    opt = make_optimizer({"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.8, "nesterov": True,
                          "schedule": "onecycle", "warmup": 0.25, "weight_decay": 5e-4}, total_steps=40)
    assert isinstance(opt, keras.optimizers.SGD) and opt.nesterov and opt.momentum == 0.8
    assert opt.weight_decay == pytest.approx(5e-4)
    assert isinstance(make_optimizer({"optimizer": "adamw", "weight_decay": 0.05}, 10), keras.optimizers.AdamW)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer({"optimizer": "rmsprop"}, 10)
    assert precision_policy("float32") == "float32"
    assert precision_policy("mixed") in ("float32", "mixed_bfloat16", "mixed_float16")
    with pytest.raises(ValueError, match="unknown precision"):
        precision_policy("half")


def _walk(ema):
    """Ten SGD steps of a 1-weight model pulled from 0 towards 1 (loss (1 - w)^2): the final weight."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=make_optimizer({"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.0, "ema": ema}, 10),
                  loss="mse")
    model.fit(np.ones((10, 1), "float32"), np.ones((10, 1), "float32"), batch_size=1, epochs=1, verbose=0, shuffle=False)
    return float(model.layers[0].kernel.numpy().squeeze())


def test_ema_setting_leaves_the_model_with_the_averaged_weights():
    # w_t = 1 - 0.8^t; the average lags behind it, so the model that fit() leaves must hold less than w_10.
    raw = _walk(None)
    assert raw == pytest.approx(1 - 0.8 ** 10, rel=1e-4)
    averaged = _walk(0.5)
    w = expect = 0.2  # Keras' EMA: the first step's weight, then average = m * average + (1 - m) * w
    for _ in range(9):
        w = 1 - 0.8 * (1 - w)
        expect = 0.5 * expect + 0.5 * w
    assert averaged == pytest.approx(expect, rel=1e-3) and averaged < raw - 0.03
    from zoo.registry import check_train

    with pytest.raises(ValueError, match="ema"):
        check_train("fsdd_ctc", {"ema": 1.5})


def _killed_then_rerun(run, data_dir, monkeypatch, attr, replacement, epochs=2):
    """Train with `zoo.training.<attr>` replaced by one that "kills" the run, then rerun: (result, epochs begun)."""
    import zoo.training as zt

    real = getattr(zt, attr)
    monkeypatch.setattr(zt, attr, replacement)
    with pytest.raises(KeyboardInterrupt):
        _fit(run, data_dir, epochs=epochs)
    monkeypatch.setattr(zt, attr, real)
    seen = []
    return _fit(run, data_dir, epochs=epochs, callbacks=[_Record(seen)]), seen


def test_a_kill_while_checkpointing_loses_no_epoch(tmp_path, tiny_cifar, monkeypatch):
    """The epoch counts as finished only once history, last.keras and curves.png hold it."""
    import zoo.training as zt

    run = tmp_path / "run"
    real_save = zt.save_model
    calls = []

    def dies_in_epoch_two(model, path):
        calls.append(path)
        if len(calls) == 2:  # epoch 2's checkpoint: the process "dies" half-way through the write
            path.parent.joinpath(".last.keras.999999.halfway.tmp.keras").write_bytes(b"half a zip")
            raise KeyboardInterrupt("killed while writing the checkpoint")
        return real_save(model, path)

    result, seen = _killed_then_rerun(run, tiny_cifar, monkeypatch, "save_model", dies_in_epoch_two)
    assert seen == [1]  # the final epoch was redone: its checkpoint never finished
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == [1, 2]
    assert not list((run / "checkpoints").glob(".*tmp*"))  # the dead process's temporary is gone
    last = keras.saving.load_model(run / "checkpoints" / "last.keras")
    x = np.zeros((2, 32, 32, 3), np.uint8)
    np.testing.assert_allclose(last.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-6)
    assert (run / "curves.png").exists() and not (run / "backup").exists() and result.metrics["epochs"] == 2


def test_a_kill_during_the_final_evaluation_does_not_retrain(tmp_path, tiny_cifar, monkeypatch):
    def killed(*a, **k):
        raise KeyboardInterrupt("killed during evaluation")

    result, seen = _killed_then_rerun(tmp_path / "run", tiny_cifar, monkeypatch, "evaluate", killed)
    assert seen == [] and result.metrics["test"]["num_examples"] == 40


def test_budget_epochs_take_what_fits_at_least_one_at_most_the_recipe():
    from zoo.training import budget_epochs

    assert budget_epochs(600, 100, 10) == 6
    assert budget_epochs(600, 100, 10, overhead_seconds=50) == 5
    assert budget_epochs(10_000, 100, 10) == 10  # a budget never lengthens the recipe
    assert budget_epochs(60, 100, 10) == 1  # one epoch even when it does not fit
    with pytest.raises(ValueError, match="positive"):
        budget_epochs(600, 0, 10)


def test_an_ample_budget_times_the_first_epoch_and_leaves_the_run_unchanged(tmp_path, tiny_cifar):
    plain = _fit(tmp_path / "plain", tiny_cifar, epochs=2)
    budgeted = _fit(tmp_path / "budget", tiny_cifar, epochs=2, budget_minutes=600)  # both epochs fit
    assert budgeted.metrics["epochs"] == budgeted.metrics["epochs_planned"] == 2
    assert budgeted.history["loss"] == plain.history["loss"]
    timing = budgeted.metrics["budget"]
    assert timing["minutes"] == 600 and timing["epochs_most"] == 2 and timing["epochs"] == 2
    assert 0 < timing["step_seconds"] and 0 < timing["epoch_seconds"] <= timing["first_epoch_seconds"] + 1e-3
    config = json.loads((budgeted.run_dir / "config.json").read_text())
    assert config["budget_minutes"] == 600 and config["train"]["epochs"] == 2 and config["budget"]["epochs"] == 2


def test_a_tight_budget_stops_after_the_first_epoch(tmp_path, tiny_cifar, capsys):
    result = _fit(tmp_path / "run", tiny_cifar, epochs=8, budget_minutes=1e-4, callbacks=[zoo.EpochClock()])
    assert result.metrics["epochs"] == 1 and result.metrics["epochs_planned"] == 1  # at least one, none more
    assert json.loads((result.run_dir / "history.json").read_text())["epoch"] == [1]
    out = capsys.readouterr().out
    assert "so the run takes 1 of 8 epochs" in out and "epoch 1/1:" in out


def test_the_budget_moves_the_end_of_the_schedule_in_a_traced_step():
    import tensorflow as tf
    from zoo.losses import WarmupSchedule

    schedule = WarmupSchedule(1.0, 100, 0.0, "onecycle", adjustable=True)
    lr = tf.function(lambda step: schedule(step))
    assert float(lr(49)) == pytest.approx(0.5, abs=0.02)
    schedule.set_total_steps(50)
    assert float(lr(49)) == pytest.approx(0.0, abs=1e-6) and schedule.get_config()["total_steps"] == 50
    fixed = WarmupSchedule(1.0, 100, 0.1, "cosine")
    np.testing.assert_allclose([float(WarmupSchedule(1.0, 100, 0.1, "cosine", adjustable=True)(s)) for s in (3, 40, 99)],
                               [float(fixed(s)) for s in (3, 40, 99)], atol=1e-6)
    with pytest.raises(ValueError, match="adjustable"):
        fixed.set_total_steps(10)


def test_a_budget_choice_survives_a_crash_and_a_resume(tmp_path, tiny_cifar, monkeypatch):
    import zoo.training as training

    monkeypatch.setattr(training, "budget_epochs", lambda budget, epoch_seconds, most, overhead_seconds=0: 3)
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):  # in epoch 2, after the choice
        _fit(run, tiny_cifar, epochs=8, budget_minutes=5, callbacks=[CrashInEpoch2()])
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["epochs"] == 3 and config["budget"]["epochs_most"] == 8

    def again(*a, **k):
        raise AssertionError("a resumed run keeps the epochs it chose")

    monkeypatch.setattr(training, "budget_epochs", again)
    seen = []
    result = _fit(run, tiny_cifar, epochs=8, budget_minutes=5, callbacks=[_Record(seen)])
    assert seen == [1, 2] and result.metrics["epochs"] == 3 and result.metrics["epochs_planned"] == 3
    assert result.metrics["budget"]["first_epoch_seconds"] == config["budget"]["first_epoch_seconds"]
    with pytest.raises(RunDirError, match="budget_minutes"):
        _fit(run, tiny_cifar, epochs=8, budget_minutes=2)
    with pytest.raises(ValueError, match="positive number of minutes"):
        _fit(tmp_path / "other", tiny_cifar, budget_minutes=-1)
    assert not (tmp_path / "other").exists()


def _clocked_budget(monkeypatch, ticks, plan_after, budget_seconds=300, most=40):
    """A `_Budget` driven by a fake clock through one epoch of three steps, then epochs of no steps."""
    import types

    import zoo.training as training

    clock = iter(ticks)
    monkeypatch.setattr(training.time, "perf_counter", lambda: next(clock))
    chosen = []
    cb = training._Budget(budget_seconds, most, lambda epochs, timing: chosen.append((epochs, timing)),
                          plan_after=plan_after)
    cb.set_model(types.SimpleNamespace(stop_training=False))
    cb.set_params({"epochs": most})
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    for batch in range(3):
        cb.on_train_batch_end(batch)
    cb.on_epoch_end(0)
    for epoch in range(1, plan_after):
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch)
    return cb, chosen


def test_planning_after_two_epochs_takes_the_second_as_the_steady_one(monkeypatch):
    # train begin 0; epoch 1 begins at 0, steps end at 10 (tracing), 11, 12, and the epoch at 40 (more one-off
    # costs than its first step: evaluation tracing, new shapes); epoch 2 runs from 40 to 60, a steady 20 s
    cb, chosen = _clocked_budget(monkeypatch, [0, 0, 10, 11, 12, 40, 40, 60], plan_after=2)
    epochs, timing = chosen[0]
    # 95% of 300 s = 285 s; the first two epochs' excess (60 - 2 x 20 = 20 s) is spent: (285 - 20) // 20 = 13
    assert epochs == 13 and cb.params["epochs"] == 13 and not cb.model.stop_training
    assert timing["epoch_seconds"] == 20 and timing["timed_epochs"] == 2 and timing["first_epoch_seconds"] == 40
    # timed after one epoch, the same run reads 40 - 10 + 1 = 31 s an epoch and takes (285 - 9) // 31 = 8
    _, one = _clocked_budget(monkeypatch, [0, 0, 10, 11, 12, 40], plan_after=1)
    assert one[0][0] == 8 and one[0][1]["epoch_seconds"] == 31
    # a budget too small for even the timed epochs still keeps them, and stops there
    cb, tight = _clocked_budget(monkeypatch, [0, 0, 10, 11, 12, 40, 40, 60], plan_after=2, budget_seconds=10)
    assert tight[0][0] == 2 and cb.model.stop_training


def test_the_plan_is_checked_again_in_the_first_half_of_the_run(monkeypatch):
    """Planned from a slow first epoch, the run is lengthened when epochs turn out faster, shortened when slower."""
    def run(later):  # epoch 1 as above (8 of 40 planned at 31 s), then epochs of the given lengths
        ticks, t = [0, 0, 10, 11, 12, 40], 40
        for seconds in later:
            ticks += [t, t + seconds]
            t += seconds
        cb, chosen = _clocked_budget(monkeypatch, ticks, plan_after=1)
        for epoch, _ in enumerate(later, start=1):
            cb.on_epoch_begin(epoch)
            cb.on_epoch_end(epoch)
        return cb, chosen

    # epoch 2 took 20 s: after it, (285 - 60) // 20 = 11 more, so 13; after epoch 4 still 13 (not announced
    # again); after epoch 8 the run is past its first half, so slower epochs there no longer move its end
    cb, chosen = run([20, 20, 20, 40, 40, 40, 40])
    assert [c[0] for c in chosen] == [8, 13] and cb.params["epochs"] == 13
    assert chosen[1][1] == {"replanned_after": 2, "epoch_seconds": 20.0, "elapsed_seconds": 60.0}
    # epochs 3 and 4 took 60 s: the median since the plan (60 s) leaves (285 - 180) // 60 = 1 more, so 5
    cb, chosen = run([20, 60, 60])
    assert [c[0] for c in chosen] == [8, 13, 5] and cb.params["epochs"] == 5
    # never past the recipe's epochs
    cb, chosen = run([1])
    assert chosen[-1][0] == 40


def test_a_replan_is_announced_and_recorded(tmp_path, tiny_cifar, monkeypatch, capsys):
    import zoo.training as training

    answers = iter([4, 5])  # the first plan after epoch 1, then 5 more after epoch 2
    monkeypatch.setattr(training, "budget_epochs", lambda *a, **k: next(answers))
    result = _fit(tmp_path / "run", tiny_cifar, epochs=8, budget_minutes=5)
    assert result.metrics["epochs"] == 7 and result.metrics["epochs_planned"] == 7
    budget = json.loads((result.run_dir / "config.json").read_text())["budget"]
    assert budget["epochs"] == 7 and budget["epochs_most"] == 8 and "first_epoch_seconds" in budget
    assert [r["replanned_after"] for r in budget["replans"]] == [2] and budget["replans"][0]["epochs"] == 7
    out = capsys.readouterr().out
    assert "so the run takes 4 of 8 epochs" in out and "after 2 epochs, a steady one takes about" in out
    assert "so the run takes 7 of 8 epochs" in out


def test_a_budget_planned_after_two_epochs_stops_a_real_run_there(tmp_path, tiny_cifar, capsys):
    over = {**SMALL_CNN, "learning_rate": 3e-3, "budget_minutes": 1e-4, "budget_plan_after": 2}
    result = _fit(tmp_path / "run", tiny_cifar, epochs=8, overrides=over)  # a budget named beside epochs holds
    assert result.metrics["epochs"] == 2 and result.metrics["budget"]["timed_epochs"] == 2
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["budget_minutes"] == 1e-4 and config["budget_plan_after"] == 2 and config["train"]["epochs"] == 2
    assert "budget_minutes" not in config["train"]  # the budget is the run's, not a training setting it records twice
    assert "the first 2 epochs took" in capsys.readouterr().out


def test_a_spec_budget_holds_unless_epochs_are_given(tmp_path, tiny_cifar, monkeypatch):
    spec = zoo.get_spec("cifar10_cnn")
    monkeypatch.setitem(spec.train, "epochs", 3)
    monkeypatch.setitem(spec.train, "budget_minutes", 1e-4)  # e.g. fsdd_ctc's 15 minutes
    budgeted = _fit(tmp_path / "spec", tiny_cifar, epochs=None)
    assert budgeted.metrics["epochs"] == 1 and budgeted.metrics["budget"]["minutes"] == 1e-4
    exact = _fit(tmp_path / "exact", tiny_cifar, epochs=2)
    assert exact.metrics["epochs"] == 2 and "budget" not in exact.metrics
    off = _fit(tmp_path / "off", tiny_cifar, epochs=None, overrides={**SMALL_CNN, "budget_minutes": 0})
    assert off.metrics["epochs"] == 3 and "budget" not in off.metrics
    with pytest.raises(ValueError, match="budget_minutes must be a number of minutes of at least 0"):
        _fit(tmp_path / "bad", tiny_cifar, overrides={"budget_minutes": -2})
    with pytest.raises(ValueError, match="budget_plan_after must be an integer of at least 1"):
        _fit(tmp_path / "bad", tiny_cifar, overrides={"budget_plan_after": 0})
    assert not (tmp_path / "bad").exists()


def test_fsdd_ctc_trains_up_to_40_epochs_in_15_minutes():
    train = zoo.get_spec("fsdd_ctc").train
    assert (train["epochs"], train["budget_minutes"], train["budget_plan_after"]) == (40, 15, 2)


def test_budget_epochs_count_cheaper_epochs_by_their_cost():
    from zoo.training import budget_epochs

    # four half-cost epochs (200 s), then full ones of 100 s: 4 + 4 fit in 600 s
    assert budget_epochs(600, 100, 10, costs=[0.5] * 4 + [1.0] * 6) == 8
    assert budget_epochs(600, 100, 10, overhead_seconds=50, costs=[0.5] * 4 + [1.0] * 6) == 7
    assert budget_epochs(600, 100, 10, costs=[1.0] * 10) == budget_epochs(600, 100, 10) == 6
    assert budget_epochs(10_000, 100, 3, costs=[0.5] * 10) == 3


def _cost_budget(monkeypatch, small_epochs, later):
    """A 600 s `_Budget` whose first `small_epochs` epochs cost half: epoch 0 of three steps (a half-cost epoch
    of 31 s, so a full one of 62 s, and 9 s of one-off cost), then epochs of the `later` lengths."""
    import types

    import zoo.training as training

    ticks, t = [0, 0, 10, 11, 12, 40], 40
    for seconds in later:
        ticks += [t, t + seconds]
        t += seconds
    clock = iter(ticks)
    monkeypatch.setattr(training.time, "perf_counter", lambda: next(clock))
    chosen = []
    cb = training._Budget(600, 40, lambda epochs, timing: chosen.append((epochs, timing)),
                          cost=lambda epoch: 0.5 if epoch < small_epochs else 1.0)
    cb.set_model(types.SimpleNamespace(stop_training=False))
    cb.set_params({"epochs": 40})
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    for batch in range(3):
        cb.on_train_batch_end(batch)
    cb.on_epoch_end(0)
    for epoch, _ in enumerate(later, start=1):
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch)
    return cb, chosen


def test_a_budget_with_cheaper_early_epochs_plans_by_cost_and_rechecks_at_the_first_full_one(monkeypatch):
    """Early epochs that cost half (progressive resizing) are planned so, and the first full-size epoch, slower
    than its half-cost estimate said, shortens the run, in its first half or not."""
    # 95% of 600 s = 570 s: 9 + 4 x 31 = 133 s, then (570 - 133) // 62 = 7 full epochs: 11
    cb, chosen = _cost_budget(monkeypatch, 4, [31, 31, 31, 80, 80])
    assert chosen[0][0] == 11 and chosen[0][1]["full_epoch_seconds"] == 62 and chosen[0][1]["epoch_seconds"] == 31
    # after epoch 5 (the first full one, 80 s; 213 s in): (570 - 213) // 80 = 4 more, so 9; the re-plans after
    # epochs 2 and 4 (half-cost ones as estimated) kept 11 and were not announced, epoch 6 moves nothing
    assert [c[0] for c in chosen] == [11, 9] and cb.params["epochs"] == 9
    assert chosen[1][1] == {"replanned_after": 5, "epoch_seconds": 80.0, "elapsed_seconds": 213.0}
    # six half-cost epochs of 12 planned: the first full one (epoch 7) is past the first half, and still the
    # first measure of a full epoch: (570 - 275) // 80 = 3 more, so 10; epoch 8 (doubling) no longer moves it
    cb, chosen = _cost_budget(monkeypatch, 6, [31] * 5 + [80, 40])
    assert [c[0] for c in chosen] == [12, 10] and chosen[1][1]["replanned_after"] == 7


def test_progressive_resizing_trains_and_a_resumed_run_keeps_its_sizes(tmp_path, tiny_cifar):
    """A real run of the airbench net on the tiny archive: epochs 1-2 at 24 pixels, then 32; killed in epoch 2
    and resumed, it trains the rest of epoch 2 small, not the whole size schedule again from epoch 1."""
    from applications.image.data import cifar10

    def bundle(sizes):
        data = cifar10(tiny_cifar, batch_size=20, progressive_size=24, progressive_epochs=2)

        def record(x, y):
            tf.py_function(lambda side: sizes.append(int(side)), [tf.shape(x)[1]], [])
            return x, y

        data.apply("train", lambda ds: ds.map(record))
        return data

    over = {"widths": [8, 16, 16], "learning_rate": 0.2}
    run, sizes = tmp_path / "run", []
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit("cifar10_airbench", bundle(sizes), run_dir=run, epochs=4, batch_size=20, overrides=over, verbose=0,
            callbacks=[CrashInEpoch2()])
    # the whitening's fit on the first batches (full size), epoch 1, then epoch 2 small until the crash
    assert sizes[:6] == [32] * 6 and sizes[6:12] == [24] * 6 and set(sizes[12:]) == {24}
    resumed = []
    result = fit("cifar10_airbench", bundle(resumed), run_dir=run, epochs=4, batch_size=20, overrides=over,
                 verbose=0)
    assert resumed[:6] == [32] * 6 and resumed[6:12] == [24] * 6 and resumed[12:24] == [32] * 12
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3, 4] and history["accuracy"][-1] > history["accuracy"][0]
    assert result.metrics["test"]["accuracy"] > 0.2  # ten classes: chance is 0.1


def test_epoch_clock_projects_the_rest_of_the_run_by_cost(monkeypatch, capsys):
    import zoo.training as training

    clock_ticks = iter([0, 30, 30, 60, 60, 120])
    monkeypatch.setattr(training.time, "perf_counter", lambda: next(clock_ticks))
    clock = zoo.EpochClock(cost=lambda epoch: 0.5 if epoch < 2 else 1.0)  # two half-cost epochs, then full ones
    clock.set_params({"epochs": 4})
    clock.on_train_begin()
    for epoch in range(2):
        clock.on_epoch_begin(epoch)
        clock.on_epoch_end(epoch)
    out = capsys.readouterr().out.splitlines()
    # 30 s for half an epoch's cost: a full one takes 60 s; left after epoch 1: 0.5 + 1 + 1 costs = 150 s
    assert out[0].startswith("epoch 1/4: 30 s; 2.5 min to go") and out[1].startswith("epoch 2/4: 30 s; 2.0 min to go")
    clock.val_images = 2000  # `fit` says so when each epoch is checked on part of the validation data
    clock.on_epoch_begin(2)
    clock.on_epoch_end(2, {"val_accuracy": 0.5})
    assert capsys.readouterr().out.startswith("epoch 3/4: 60 s, test accuracy 50.00% (on 2,000 images); 1.0 min to go")
