"""Tests for zoo.layers.conv: FastBackpropConv2D against keras.layers.Conv2D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.layers import FastBackpropConv2D


def _pair(**kwargs):
    """FastBackpropConv2D and keras' Conv2D with identical weights, built on (2, 9, 7, 5) inputs."""
    x = np.random.default_rng(0).normal(size=(2, 9, 7, 5)).astype("float32")
    ours, theirs = FastBackpropConv2D(**kwargs), keras.layers.Conv2D(**kwargs)
    ours(x), theirs(x)
    ours.set_weights(theirs.get_weights())
    return ours, theirs, x


def _grads(layer, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        # a loss whose upstream gradient differs at every output position, so a wrong turn of the kernel shows
        loss = tf.reduce_sum(y * tf.reshape(tf.range(tf.size(y), dtype=y.dtype) % 7 - 3.0, tf.shape(y)))
    return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]


@pytest.mark.parametrize("kwargs", [
    {"filters": 4, "kernel_size": 3, "padding": "same", "use_bias": False},
    {"filters": 6, "kernel_size": (5, 3), "padding": "same"},  # odd, non-square, with bias
    {"filters": 4, "kernel_size": 3, "padding": "valid"},  # not the fast case: Conv2D's own
    {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},  # not the fast case
])
def test_outputs_and_gradients_match_conv2d(kwargs):
    ours, theirs, x = _pair(**kwargs)
    fast = ours._fast()
    assert fast == (kwargs["padding"] == "same" and kwargs.get("strides", 1) == 1)
    for a, b in zip(_grads(ours, x), _grads(theirs, x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_trains_like_conv2d_and_round_trips(tmp_path):
    """A tiny fast-backprop net learns a 2-class problem, and its .keras file reloads to the same outputs."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 8, 8, 2)).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 0).astype("int32")
    inputs = keras.Input((8, 8, 2))
    h = FastBackpropConv2D(8, 3, padding="same", activation="relu")(inputs)
    h = FastBackpropConv2D(8, 3, padding="same", activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h)))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=40, batch_size=16, verbose=0)
    assert history.history["accuracy"][-1] >= 0.9 > history.history["accuracy"][0]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[1], FastBackpropConv2D)
    assert FastBackpropConv2D.from_config(model.layers[1].get_config()).get_config() == model.layers[1].get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_mixed_bfloat16_gradients_match_conv2d():
    """Under mixed bf16 (make train's policy on AVX512-BF16/AMX CPUs) the layer computes in bf16, keeps a
    float32 kernel, and its gradients match Conv2D's under the same policy to bf16 rounding."""
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        ours, theirs, x = _pair(filters=8, kernel_size=3, padding="same", use_bias=False)
    finally:
        keras.config.set_dtype_policy("float32")
    assert ours.compute_dtype == "bfloat16" and ours.kernel.dtype == "float32"
    for a, b in zip(_grads(ours, x), _grads(theirs, x)):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a, "float32"), np.asarray(b, "float32"), rtol=2e-2, atol=2e-2)
