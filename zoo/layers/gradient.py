"""Gradient reversal (Ganin & Lempitsky, 2015): identity forward, the gradient times `-scale` backward.

Written with `keras.ops` only (the `stop_gradient` identity, no custom
gradient), so it runs on any Keras 3 backend.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["GradientReversal"]


@keras.saving.register_keras_serializable(package="zoo")
class GradientReversal(keras.layers.Layer):
    """Identity on the forward pass; multiplies the gradient by `-scale` on the way back.

    Put between a feature extractor and a classifier of a nuisance label
    (a speaker, a domain), it makes the classifier learn to predict the
    label while the extractor learns to hide it: domain-adversarial
    training (Y. Ganin and V. Lempitsky, "Unsupervised Domain Adaptation by
    Backpropagation", ICML 2015).  Computed as
    `-scale * x + stop_gradient((1 + scale) * x)`, whose value is `x` and
    whose gradient is `-scale`.

    Args:
        scale: float >= 0, the reversed gradient's weight (0: the
            classifier behind it trains, the features do not feel it).
        **kwargs: other `keras.layers.Layer` arguments.

    Call arguments:
        inputs: a tensor of any shape.

    Returns:
        `inputs`, same shape and dtype.
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        if not float(scale) >= 0:
            raise ValueError(f"GradientReversal: scale must be >= 0, got {scale}")
        self.scale = float(scale)
        self.supports_masking = True

    def call(self, inputs):
        s = ops.cast(self.scale, inputs.dtype)
        return -s * inputs + ops.stop_gradient((1 + s) * inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
