"""The CIFAR-10 family: contracts of the three models, and that each learns."""

import json

import keras
import numpy as np
import pytest

import zoo
from zoo.training import fit

# Small versions of each model, so that learning tests take seconds.
TINY = {
    "cifar10_cnn": {"filters": [16, 32, 32], "dense_units": 32},
    "cifar10_resnet": {"width": 8},
    "cifar10_vit": {"dim": 32, "depth": 2, "num_heads": 2, "mlp_dim": 64, "dropout": 0.0},
}
TRAIN = {
    "cifar10_cnn": {"learning_rate": 3e-3},
    "cifar10_resnet": {"learning_rate": 0.2, "data": {"cutout": 0}},
    "cifar10_vit": {"learning_rate": 2e-3, "warmup": 0.05, "weight_decay": 0.01},
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_contract_raw_uint8_pixels_in_float32_logits_out(name):
    model = zoo.create_model(name, **TINY[name])
    assert model.inputs[0].dtype == "uint8" and tuple(model.inputs[0].shape) == (None, 32, 32, 3)
    assert model.output_shape == (None, 10)
    out = model(np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    assert keras.backend.standardize_dtype(out.dtype) == "float32" and np.isfinite(np.asarray(out)).all()


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_model_round_trips_keras_saving(name, tmp_path):
    model = zoo.create_model(name, **TINY[name])
    x = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_mixed_precision_keeps_float32_logits():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = zoo.create_model("cifar10_resnet", width=4)
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.get_layer("prep_conv").compute_dtype == "bfloat16"
    out = model(np.zeros((1, 32, 32, 3), np.uint8))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_vit_rejects_patch_size_that_does_not_divide_the_image():
    with pytest.raises(ValueError, match="patch_size=5 must divide"):
        zoo.create_model("cifar10_vit", patch_size=5)


@pytest.mark.parametrize("name", sorted(TINY))
def test_each_model_learns_on_a_small_slice_of_real_cifar10(name, tmp_path, shared_data_dir):
    """2,000 real training images, 4 epochs: loss falls and held-out accuracy clearly beats 10%."""
    result = fit(name, run_dir=tmp_path / "run", data_dir=shared_data_dir, epochs=4, batch_size=64, limit=2000,
                 overrides={**TINY[name], **TRAIN[name]}, verbose=0)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["loss"][-1] < 0.9 * history["loss"][0], history["loss"]
    accuracy = result.metrics["test"]["accuracy"]  # on 2,000 held-out test images
    assert accuracy > 0.22, f"{name}: test accuracy {accuracy:.3f} on a 2,000-image slice"
