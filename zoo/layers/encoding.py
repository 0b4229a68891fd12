"""Position encodings and token + position embeddings.

Written with `keras.ops` / `keras.layers` only (backend-agnostic).
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.layers.attention import _clone_initializer, set_keras_mask

__all__ = [
    "SinusoidalPositionEncoding",
    "LearnedPositionEmbedding",
    "TokenAndPositionEmbedding",
]

_POSITION_ENCODINGS = ("learned", "sinusoidal")


@keras.saving.register_keras_serializable(package="zoo")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Fixed sinusoidal position encoding (Vaswani et al., 2017).

    Same maths and output as `keras_hub.layers.SinePositionEncoding`: for
    position `p` and channel `k`, the angle is
    `p * max_wavelength ** (-2 * (k // 2) / dim)`; even channels take its
    sine, odd channels its cosine. The layer returns the encoding only; add
    it to the inputs yourself. It has no weights.

    Args:
        max_wavelength: int, the longest wavelength of the sinusoids.
            Defaults to `10000`.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`...).

    Call arguments:
        inputs: `(batch, seq_len, dim)` tensor; only its shape is used.
        start_index: int or int tensor, the position of the first step
            (for step-by-step decoding). Defaults to `0`.

    Returns:
        The position encoding, shape `(batch, seq_len, dim)` (the inputs'
        shape). The Keras mask of `inputs` is passed through.

    Example:

    ```python
    x = np.zeros((2, 10, 16), "float32")
    pos = SinusoidalPositionEncoding()(x)  # (2, 10, 16)
    y = x + pos
    # Decoding step 3 only:
    pos3 = SinusoidalPositionEncoding()(x[:, :1], start_index=3)
    ```
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.supports_masking = True
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        seq_length = shape[-2]
        hidden_size = shape[-1]
        positions = ops.cast(
            ops.arange(seq_length) + start_index, self.compute_dtype
        )
        positions = ops.expand_dims(positions, axis=0)
        min_freq = ops.cast(1 / self.max_wavelength, dtype=self.compute_dtype)
        timescales = ops.power(
            min_freq,
            ops.cast(2 * (ops.arange(hidden_size) // 2), self.compute_dtype)
            / ops.cast(hidden_size, self.compute_dtype),
        )
        angles = ops.einsum("bi,j->bij", positions, timescales)
        # Even channels are sine, odd channels cosine.
        cos_mask = ops.cast(ops.arange(hidden_size) % 2, self.compute_dtype)
        sin_mask = 1 - cos_mask
        encodings = ops.einsum("bij,j->bij", ops.sin(angles), sin_mask) + (
            ops.einsum("bij,j->bij", ops.cos(angles), cos_mask)
        )
        return ops.broadcast_to(encodings, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config


@keras.saving.register_keras_serializable(package="zoo")
class LearnedPositionEmbedding(keras.layers.Layer):
    """Learned absolute position embedding.

    Same weight (`embeddings`, shape `(sequence_length, dim)`) and output as
    `keras_hub.layers.PositionEmbedding`: returns the rows
    `start_index : start_index + seq_len` of the table, broadcast to the
    inputs' shape. Add it to the inputs yourself.

    Args:
        sequence_length: int, the maximum sequence length (table rows).
        initializer: initializer for the table. Defaults to
            `"glorot_uniform"`.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`...).

    Call arguments:
        inputs: `(batch, seq_len, dim)` tensor; only its shape is used.
        start_index: int or int tensor, the position of the first step
            (for step-by-step decoding). Defaults to `0`.

    Returns:
        The position embeddings, shape `(batch, seq_len, dim)`. The Keras
        mask of `inputs` is passed through.

    Raises:
        ValueError: if `start_index + seq_len > sequence_length` (checked
            when the lengths are known when the layer is called).

    Example:

    ```python
    x = np.zeros((2, 10, 16), "float32")
    pos = LearnedPositionEmbedding(sequence_length=32)(x)  # (2, 10, 16)
    ```
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if sequence_length is None:
            raise ValueError(
                "`sequence_length` must be an int, received `None`."
            )
        self.sequence_length = int(sequence_length)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, inputs_shape):
        feature_size = inputs_shape[-1]
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, feature_size),
            initializer=self.initializer,
            trainable=True,
        )

    def _check_length(self, seq_length, start_index):
        if not isinstance(seq_length, int):
            return
        start = start_index if isinstance(start_index, int) else 0
        if start + seq_length > self.sequence_length:
            raise ValueError(
                f"Layer '{self.name}' has sequence_length="
                f"{self.sequence_length}, but received an input of length "
                f"{seq_length} starting at position {start} (needs "
                f"{start + seq_length} positions). Use a shorter input or "
                "a larger `sequence_length`."
            )

    def call(self, inputs, start_index=0):
        self._check_length(inputs.shape[-2], start_index)
        shape = ops.shape(inputs)
        feature_length = shape[-1]
        seq_length = shape[-2]
        embeddings = ops.convert_to_tensor(self.position_embeddings)
        embeddings = ops.slice(
            embeddings, (start_index, 0), (seq_length, feature_length)
        )
        return ops.broadcast_to(ops.cast(embeddings, self.compute_dtype), shape)

    def compute_output_shape(self, input_shape):
        self._check_length(input_shape[-2], 0)
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="zoo")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus a position embedding/encoding.

    `outputs = token_embedding(ids) * (sqrt(embedding_dim) if
    scale_embeddings else 1) + position(...)`. With
    `position_encoding="learned"` and `scale_embeddings=False` this matches
    `keras_hub.layers.TokenAndPositionEmbedding` (same weights: token table
    `(vocabulary_size, embedding_dim)`, then position table
    `(sequence_length, embedding_dim)`).

    Args:
        vocabulary_size: int, size of the token vocabulary.
        sequence_length: int, maximum sequence length (rows of the learned
            position table; unused by the sinusoidal encoding).
        embedding_dim: int, output size.
        position_encoding: `"learned"` (`LearnedPositionEmbedding`) or
            `"sinusoidal"` (`SinusoidalPositionEncoding`).
        mask_zero: bool, if True token id 0 is padding and the output
            carries the Keras mask `ids != 0`. Defaults to `True`.
        scale_embeddings: bool, multiply the token embeddings by
            `sqrt(embedding_dim)` (as in Vaswani et al.). Defaults to False.
        embeddings_initializer: initializer for the token table and the
            learned position table. Defaults to `"uniform"` (keras-hub's
            default).
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`...).

    Attributes:
        token_embedding: the `keras.layers.Embedding`; tie an output layer
            to `token_embedding.embeddings`.
        position_embedding: the position layer.

    Call arguments:
        inputs: `(batch, seq_len)` integer token ids.
        start_index: int or int tensor, the position of the first token
            (for step-by-step decoding). Defaults to `0`.

    Returns:
        `(batch, seq_len, embedding_dim)` embeddings, with Keras mask
        `(batch, seq_len)` when `mask_zero=True`.

    Example:

    ```python
    emb = TokenAndPositionEmbedding(
        vocabulary_size=1000, sequence_length=64, embedding_dim=32
    )
    ids = np.array([[5, 9, 2, 0, 0]])
    y = emb(ids)  # (1, 5, 32), mask [[True, True, True, False, False]]
    ```
    """

    def __init__(
        self,
        vocabulary_size,
        sequence_length,
        embedding_dim,
        position_encoding="learned",
        mask_zero=True,
        scale_embeddings=False,
        embeddings_initializer="uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("vocabulary_size", vocabulary_size),
            ("sequence_length", sequence_length),
            ("embedding_dim", embedding_dim),
        ):
            if value is None:
                raise ValueError(f"`{name}` must be an int, received `None`.")
        if position_encoding not in _POSITION_ENCODINGS:
            raise ValueError(
                "`position_encoding` must be one of "
                f"{_POSITION_ENCODINGS}. Received: {position_encoding!r}"
            )
        self.vocabulary_size = int(vocabulary_size)
        self.sequence_length = int(sequence_length)
        self.embedding_dim = int(embedding_dim)
        self.position_encoding = position_encoding
        self.mask_zero = bool(mask_zero)
        self.scale_embeddings = bool(scale_embeddings)
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
        )
        self.supports_masking = self.mask_zero
        self.token_embedding = keras.layers.Embedding(
            self.vocabulary_size,
            self.embedding_dim,
            embeddings_initializer=_clone_initializer(
                self.embeddings_initializer
            ),
            mask_zero=self.mask_zero,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        if position_encoding == "learned":
            self.position_embedding = LearnedPositionEmbedding(
                sequence_length=self.sequence_length,
                initializer=_clone_initializer(self.embeddings_initializer),
                dtype=self.dtype_policy,
                name="position_embedding",
            )
        else:
            self.position_embedding = SinusoidalPositionEncoding(
                dtype=self.dtype_policy, name="position_embedding"
            )

    def build(self, inputs_shape):
        inputs_shape = tuple(inputs_shape)
        self.token_embedding.build(inputs_shape)
        self.position_embedding.build(inputs_shape + (self.embedding_dim,))

    def call(self, inputs, start_index=0):
        embedded_tokens = self.token_embedding(inputs)
        if self.scale_embeddings:
            embedded_tokens = ops.multiply(
                embedded_tokens,
                ops.cast(
                    ops.sqrt(ops.cast(self.embedding_dim, "float32")),
                    embedded_tokens.dtype,
                ),
            )
        embedded_positions = self.position_embedding(
            embedded_tokens, start_index=start_index
        )
        outputs = ops.add(embedded_tokens, embedded_positions)
        mask = self.compute_mask(inputs)
        if mask is not None:
            set_keras_mask(outputs, mask)
        return outputs

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape) + (self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "embedding_dim": self.embedding_dim,
                "position_encoding": self.position_encoding,
                "mask_zero": self.mask_zero,
                "scale_embeddings": self.scale_embeddings,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config
