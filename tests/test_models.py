"""Every registered model, driven by its spec's input contract (as timm's tests/test_models.py).

A new family gets these for free: build with the spec's defaults, run on
inputs made from `spec.inputs`, round-trip through `.keras` with identical
outputs, and take one training step with its task's loss where the targets
can be read off the output (classification, translation).
"""

import keras
import numpy as np
import pytest

import zoo

BATCH = 2


def contract_inputs(spec, rng):
    """Inputs following `spec.inputs`: {name: array} with a batch of 2 and a short length for `None` axes."""
    out = {}
    for name, contract in spec.inputs.items():
        dtype = contract["dtype"]
        shape = [BATCH] + [(1600 if dtype.startswith("float") else 12) if d is None else d for d in contract["shape"]]
        if name == "length":  # the valid samples of each waveform
            out[name] = np.full(shape, 1600, dtype)
        elif dtype == "uint8":
            out[name] = rng.integers(0, 256, shape).astype(dtype)
        elif dtype.startswith("int"):
            ids = rng.integers(4, 10, shape).astype(dtype)  # real ids: above the reserved ones, below any vocabulary
            if "padding" in contract:
                ids[:, -3:] = contract["padding"]  # padded tails, as real batches have
            out[name] = ids
        else:
            low, high = contract.get("range", [-1, 1])
            out[name] = rng.uniform(low, high, shape).astype(dtype)
    return out


def _call(model, inputs):
    x = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_model_builds_runs_and_round_trips(name, tmp_path):
    spec = zoo.get_spec(name)
    model = zoo.create_model(name)
    inputs = contract_inputs(spec, np.random.default_rng(0))
    out = _call(model, inputs)
    assert out.shape[0] == BATCH and np.isfinite(out).all(), (name, out.shape)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(_call(again, inputs), out, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in zoo.list_models() if zoo.get_spec(n).task.name in ("classification", "translation")])
def test_every_model_takes_a_training_step(name):
    spec = zoo.get_spec(name)
    model = zoo.create_model(name)
    inputs = contract_inputs(spec, np.random.default_rng(1))
    out = _call(model, inputs)
    targets = (np.arange(BATCH) % out.shape[-1]).astype("int32") if spec.task.name == "classification" else \
        np.full(out.shape[:2], 5, "int32")
    loss, metrics = spec.task.compile(spec, dict(spec.train))
    model.compile(optimizer=keras.optimizers.SGD(1e-2), loss=loss, metrics=metrics)
    before = [np.array(w) for w in model.trainable_weights]
    x = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    history = model.fit(x, targets, batch_size=BATCH, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = sum(not np.array_equal(a, np.array(b)) for a, b in zip(before, model.trainable_weights))
    assert changed > 0.5 * len(before), f"{name}: only {changed}/{len(before)} weights moved"
