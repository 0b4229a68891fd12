"""Shared custom Keras 3 layers of the zoo (backend-agnostic, serializable).

Every layer is registered with `keras.saving.register_keras_serializable`
under the package name ``"zoo"`` so `.keras` files load without
`custom_objects` once `zoo.layers` is imported.
"""

from zoo.layers.audio import (LogMelSpectrogram, SpecAugment, TimeStretch, TrimSilence, UtteranceNormalization,
                              WaveformAugment)
from zoo.layers.conv import FastBackpropConv2D
from zoo.layers.gradient import GradientReversal
from zoo.layers.attention import (
    AttentionPooling,
    MultiHeadAttention,
    compute_causal_mask,
)
from zoo.layers.encoding import (
    LearnedPositionEmbedding,
    SinusoidalPositionEncoding,
    TokenAndPositionEmbedding,
)
from zoo.layers.transformer import (
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)

__all__ = [
    "AttentionPooling",
    "FastBackpropConv2D",
    "GradientReversal",
    "LearnedPositionEmbedding",
    "LogMelSpectrogram",
    "MultiHeadAttention",
    "SinusoidalPositionEncoding",
    "SpecAugment",
    "TimeStretch",
    "TokenAndPositionEmbedding",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
    "TrimSilence",
    "UtteranceNormalization",
    "WaveformAugment",
    "compute_causal_mask",
]
