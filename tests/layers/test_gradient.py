"""GradientReversal: identity forward, gradient times -scale, config and .keras round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.layers import GradientReversal


@pytest.mark.parametrize("scale", [0.0, 0.3, 2.0])
def test_identity_forward_and_reversed_scaled_gradient(scale):
    x = tf.Variable(np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32"))
    w = tf.constant(np.random.default_rng(1).normal(size=(2, 5, 3)).astype("float32"))
    layer = GradientReversal(scale)
    with tf.GradientTape() as tape:
        y = layer(x)
        loss = tf.reduce_sum(w * y)
    np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-6)  # (1 + s) x - s x == x up to rounding
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), -scale * w.numpy(), atol=1e-6)


def test_config_and_keras_file_round_trip(tmp_path):
    layer = GradientReversal(0.25, name="rev")
    assert GradientReversal.from_config(layer.get_config()).get_config() == layer.get_config()
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(GradientReversal(0.25, name="rev")(inp)))
    x = np.random.default_rng(2).normal(size=(3, 4)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("rev").scale == 0.25
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_refuses_a_negative_scale():
    with pytest.raises(ValueError, match="scale must be >= 0"):
        GradientReversal(-1.0)
