"""Label-smoothed sparse cross-entropy and the warm-up schedules."""

import keras
import numpy as np
import pytest

from zoo.losses import SparseCategoricalCrossentropy, WarmupSchedule


def test_matches_keras_categorical_crossentropy_with_smoothing():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype("float32")
    labels = rng.integers(0, 5, 6)
    ours = SparseCategoricalCrossentropy(from_logits=True, label_smoothing=0.2)(labels, logits)
    ref = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)(np.eye(5)[labels], logits)
    np.testing.assert_allclose(float(ours), float(ref), rtol=1e-5)
    plain = SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    ref = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(float(plain), float(ref), rtol=1e-5)


def test_ignore_class_excludes_padding_positions():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 4, 7)).astype("float32")
    labels = np.array([[3, 5, 0, 0], [1, 0, 0, 0]])
    loss = SparseCategoricalCrossentropy(ignore_class=0)(labels, logits)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    keep = labels != 0
    want = -logp[keep, labels[keep]].mean()
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    changed = logits.copy()
    changed[~keep] = 100.0  # padded positions' logits do not matter
    np.testing.assert_allclose(float(SparseCategoricalCrossentropy(ignore_class=0)(labels, changed)), want, rtol=1e-5)


def test_loss_round_trips_config():
    loss = SparseCategoricalCrossentropy(label_smoothing=0.1, ignore_class=0)
    again = SparseCategoricalCrossentropy.from_config(loss.get_config())
    assert again.label_smoothing == 0.1 and again.ignore_class == 0
    with pytest.raises(ValueError, match="label_smoothing"):
        SparseCategoricalCrossentropy(label_smoothing=1.0)


@pytest.mark.parametrize("kind", ["onecycle", "cosine", "constant", "rsqrt"])
def test_schedules_warm_up_peak_and_decay(kind):
    s = WarmupSchedule(0.4, total_steps=100, warmup=0.2, kind=kind)
    lr = np.array([float(s(i)) for i in range(120)])
    assert lr[0] < lr[10] < lr[19]  # linear warm-up
    np.testing.assert_allclose(lr.max(), 0.4, rtol=1e-5)
    assert np.argmax(lr) == 19
    if kind in ("onecycle", "cosine"):
        assert lr[99] < 0.01 and lr[110] == pytest.approx(0.0, abs=1e-7)  # clamped after the end
        assert np.all(np.diff(lr[19:]) <= 1e-7)
    if kind == "rsqrt":
        np.testing.assert_allclose(lr[79], 0.4 * np.sqrt(20 / 80), rtol=1e-5)
    again = WarmupSchedule.from_config(s.get_config())
    assert float(again(50)) == pytest.approx(float(s(50)))
    with pytest.raises(ValueError, match="unknown schedule"):
        WarmupSchedule(1, 10, kind="linear")
