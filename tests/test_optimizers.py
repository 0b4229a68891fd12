"""zoo.optimizers: MuonSGD (Muon on conv kernels, SGD on the rest) and its Newton-Schulz step."""

import keras
import numpy as np
import pytest

from zoo.losses import WarmupSchedule
from zoo.optimizers import MuonSGD, newton_schulz
from zoo.registry import check_train
from zoo.training import make_optimizer


@pytest.mark.parametrize("shape", [(8, 40), (40, 8), (16, 16)])
def test_newton_schulz_brings_every_singular_value_near_one(shape):
    rng = np.random.default_rng(0)
    # a badly conditioned matrix: singular values spread over three decades
    u, _ = np.linalg.qr(rng.normal(size=(shape[0], shape[0])))
    v, _ = np.linalg.qr(rng.normal(size=(shape[1], shape[1])))
    s = np.logspace(0, -3, min(shape))
    g = (u[:, : len(s)] * s) @ v[: len(s)]
    out = np.asarray(newton_schulz(keras.ops.convert_to_tensor(g.astype("float32")), steps=5))
    assert out.shape == shape
    sv = np.linalg.svd(out, compute_uv=False)
    assert sv.min() > 0.3 and sv.max() < 1.6, sv  # the input spanned 1e-3..1
    # the directions are kept: U^T out V is close to diagonal
    rotated = u[:, : len(s)].T @ out @ v[: len(s)].T
    assert np.abs(rotated - np.diag(np.diag(rotated))).max() < 0.05


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="conv")(x)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(x, keras.layers.Dense(2, name="head")(h))


def _data(n=64):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    return x, (x[..., 0].mean((1, 2)) > 0).astype("int32")


def _fit(opt, epochs=2):
    """`epochs` passes of 4 steps (64 examples, batch 16) with `opt`."""
    model = _model()
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    return model, model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)


def test_conv_kernels_take_muon_steps_at_fixed_norm_the_rest_plain_sgd():
    settings = dict(momentum=0.85, nesterov=True, weight_decay=1e-3)
    start = _model()
    assert abs(np.linalg.norm(start.get_layer("conv").kernel.numpy()) - 6**0.5) > 0.2
    # each step rescales the kernel to norm sqrt(out channels) = sqrt(6), then moves it by muon_learning_rate
    muon, _ = _fit(MuonSGD(0.05, muon_learning_rate=1e-4, **settings))
    assert np.linalg.norm(muon.get_layer("conv").kernel.numpy()) == pytest.approx(6**0.5, rel=1e-3)
    # the BatchNorm offset and head see different features, so compare the *rule*: one step from equal weights
    a, b = _model(), _model()
    x, y = _data(16)
    for model, opt in ((a, MuonSGD(0.05, muon_learning_rate=0.1, **settings)), (b, keras.optimizers.SGD(0.05, **settings))):
        model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.train_on_batch(x, y)
    for name in ("bn", "head"):
        for wa, wb in zip(a.get_layer(name).trainable_weights, b.get_layer(name).trainable_weights):
            np.testing.assert_allclose(wa.numpy(), wb.numpy(), rtol=1e-5, atol=1e-6)
    moved = a.get_layer("conv").kernel.numpy() - start.get_layer("conv").kernel.numpy()
    assert np.abs(moved).max() > 1e-3


def test_muon_sgd_learns_and_follows_the_schedule():
    schedule = WarmupSchedule(0.2, total_steps=20, warmup=0.0, kind="onecycle")
    opt = MuonSGD(schedule, muon_learning_rate=0.1, momentum=0.85, nesterov=True)
    model, history = _fit(opt, epochs=5)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    assert opt._muon_ratio == pytest.approx(0.5)


def test_muon_sgd_config_round_trip_and_bad_settings():
    opt = MuonSGD(0.3, muon_learning_rate=0.2, muon_momentum=0.5, ns_steps=4, momentum=0.9)
    again = MuonSGD.from_config(opt.get_config())
    assert (again.muon_learning_rate, again.muon_momentum, again.ns_steps, again.momentum) == (0.2, 0.5, 4, 0.9)
    with pytest.raises(ValueError, match="momentum must be > 0"):
        MuonSGD(0.1, momentum=0.0)
    with pytest.raises(ValueError, match="peak"):
        MuonSGD(lambda: 0.1)


def test_make_optimizer_builds_muon_from_training_settings_and_validation_names_bad_values():
    opt = make_optimizer({"optimizer": "muon", "learning_rate": 0.5, "schedule": "onecycle", "momentum": 0.85,
                          "nesterov": True, "muon_learning_rate": 0.12, "muon_momentum": 0.7}, 100)
    assert isinstance(opt, MuonSGD) and opt.muon_momentum == 0.7 and opt._muon_ratio == pytest.approx(0.24)
    check_train("m", {"optimizer": "muon", "muon_learning_rate": 0.1, "muon_momentum": 0.6})
    with pytest.raises(ValueError, match="muon_learning_rate"):
        check_train("m", {"muon_learning_rate": -1.0})
    with pytest.raises(ValueError, match="muon_momentum"):
        check_train("m", {"muon_momentum": 1.5})


def test_a_model_compiled_with_muon_sgd_round_trips_through_keras_saving(tmp_path):
    model, _ = _fit(MuonSGD(WarmupSchedule(0.2, 20, 0.0, "onecycle"), muon_learning_rate=0.1, momentum=0.85), epochs=1)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", compile=True)
    assert isinstance(again.optimizer, MuonSGD) and again.optimizer._muon_ratio == pytest.approx(0.5)
    x, y = _data(16)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    again.train_on_batch(x, y)  # the restored optimizer steps (its slots were saved with it)
