"""Transformer encoder and decoder blocks built on `zoo` MultiHeadAttention.

Same maths and weights as `keras_hub.layers.TransformerEncoder` /
`keras_hub.layers.TransformerDecoder`; written with `keras.ops` /
`keras.layers` only (backend-agnostic).
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.layers.attention import (
    _clone_initializer,
    MultiHeadAttention,
    compute_causal_mask,
    get_keras_mask,
)

__all__ = ["TransformerEncoderBlock", "TransformerDecoderBlock"]


def _head_dim(hidden_dim, num_heads):
    head_dim = int(hidden_dim // num_heads)
    if head_dim == 0:
        raise ValueError(
            f"The hidden size {hidden_dim} must be at least `num_heads` "
            f"({num_heads}): the attention head size would be zero."
        )
    return head_dim


def _merge_padding_and_attention_mask(inputs, padding_mask, attention_mask):
    """`(batch, T, S)`-broadcastable boolean mask, or None.

    An explicit `padding_mask` `(batch, S)` wins over the Keras mask of
    `inputs`; it is combined (AND) with `attention_mask` `(batch, T, S)`.
    """
    mask = padding_mask
    if mask is None:
        mask = get_keras_mask(inputs)
    if mask is not None:
        if len(mask.shape) != 2:
            raise ValueError(
                "The padding mask must have shape (batch, seq_len). "
                f"Received shape: {mask.shape}"
            )
        mask = ops.expand_dims(ops.cast(mask, "bool"), axis=1)
    if attention_mask is not None:
        if len(attention_mask.shape) != 3:
            raise ValueError(
                "`attention_mask` must have shape (batch, T, S). "
                f"Received shape: {attention_mask.shape}"
            )
        attention_mask = ops.cast(attention_mask, "bool")
        mask = (
            attention_mask
            if mask is None
            else ops.logical_and(mask, attention_mask)
        )
    return mask


class _BlockBase(keras.layers.Layer):
    """Shared constructor, config and feed-forward part of the two blocks."""

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        activation="relu",
        layer_norm_epsilon=1e-5,
        normalize_first=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = dropout
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.normalize_first = bool(normalize_first)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True
        # The attention layers and the feed-forward output projection depend
        # on the input sizes: they are created in `build()`.
        self._self_attention_layer = None
        self._self_attention_layer_norm = self._make_layer_norm(
            "self_attention_layer_norm"
        )
        self._self_attention_dropout = self._make_dropout(
            "self_attention_dropout"
        )
        self._feedforward_layer_norm = self._make_layer_norm(
            "feedforward_layer_norm"
        )
        self._feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            name="feedforward_intermediate_dense",
            **self._dense_kwargs(),
        )
        self._feedforward_output_dense = None
        self._feedforward_dropout = self._make_dropout("feedforward_dropout")

    def _dense_kwargs(self):
        return dict(
            kernel_initializer=_clone_initializer(self.kernel_initializer),
            bias_initializer="zeros",
            dtype=self.dtype_policy,
        )

    def _make_attention(self, hidden_dim, name):
        return MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=_head_dim(hidden_dim, self.num_heads),
            dropout=self.dropout,
            kernel_initializer=_clone_initializer(self.kernel_initializer),
            bias_initializer="zeros",
            dtype=self.dtype_policy,
            name=name,
        )

    def _make_layer_norm(self, name):
        return keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )

    def _make_dropout(self, name):
        return keras.layers.Dropout(
            rate=self.dropout, dtype=self.dtype_policy, name=name
        )

    def _build_feedforward(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        self._feedforward_layer_norm.build(inputs_shape)
        self._feedforward_intermediate_dense.build(inputs_shape)
        self._feedforward_output_dense = keras.layers.Dense(
            hidden_dim, name="feedforward_output_dense", **self._dense_kwargs()
        )
        intermediate_shape = tuple(inputs_shape[:-1]) + (self.intermediate_dim,)
        self._feedforward_output_dense.build(intermediate_shape)

    def _feedforward(self, x, training):
        residual = x
        if self.normalize_first:
            x = self._feedforward_layer_norm(x)
        x = self._feedforward_intermediate_dense(x)
        x = self._feedforward_output_dense(x)
        x = self._feedforward_dropout(x, training=training)
        x = ops.add(x, residual)
        if not self.normalize_first:
            x = self._feedforward_layer_norm(x)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "normalize_first": self.normalize_first,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="zoo")
class TransformerEncoderBlock(_BlockBase):
    """Transformer encoder block: self-attention + feed-forward network.

    Same maths and weights as `keras_hub.layers.TransformerEncoder` with the
    same options (post-norm by default, pre-norm with
    `normalize_first=True`): attention head size is `dim // num_heads`,
    sub-layers are named like keras-hub's (`self_attention_layer`,
    `self_attention_layer_norm`, `feedforward_layer_norm`,
    `feedforward_intermediate_dense`, `feedforward_output_dense`).

    Args:
        num_heads: int, number of attention heads.
        intermediate_dim: int, hidden size of the feed-forward network.
        dropout: float, dropout rate (attention weights and residual
            branches).
        activation: activation of the feed-forward hidden layer.
        layer_norm_epsilon: float, epsilon of the layer normalizations.
        normalize_first: bool, pre-norm (GPT-2 style) if True, post-norm
            (BERT style) if False.
        kernel_initializer: initializer for all kernels (biases are zeros).
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`...).

    Call arguments:
        inputs: `(batch, seq_len, dim)` sequence.
        padding_mask: optional `(batch, seq_len)` boolean mask, `True` for
            real tokens; defaults to the Keras mask of `inputs`.
        attention_mask: optional `(batch, seq_len, seq_len)` boolean mask.
        training: bool, whether dropout is active.
        return_attention_scores: bool, also return the attention weights.

    Returns:
        `(batch, seq_len, dim)` outputs (carrying the inputs' Keras mask);
        with `return_attention_scores=True`, `(outputs, scores)` with
        `scores` of shape `(batch, num_heads, seq_len, seq_len)`.

    Example:

    ```python
    block = TransformerEncoderBlock(num_heads=2, intermediate_dim=32)
    x = np.random.rand(2, 6, 16).astype("float32")
    y = block(x, padding_mask=np.array([[1] * 6, [1, 1, 1, 0, 0, 0]], bool))
    ```
    """

    def build(self, inputs_shape):
        if len(inputs_shape) != 3:
            raise ValueError(
                "`TransformerEncoderBlock` expects inputs of shape "
                f"(batch, seq_len, dim). Received shape: {inputs_shape}"
            )
        self._self_attention_layer = self._make_attention(
            inputs_shape[-1], "self_attention_layer"
        )
        self._self_attention_layer.build(inputs_shape, inputs_shape)
        self._self_attention_layer_norm.build(inputs_shape)
        self._build_feedforward(inputs_shape)

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        mask = _merge_padding_and_attention_mask(
            inputs, padding_mask, attention_mask
        )
        x, extra = self._self_attention(
            inputs, mask, training, return_attention_scores
        )
        x = self._feedforward(x, training)
        if return_attention_scores:
            return x, extra[0]
        return x

    def _self_attention(self, inputs, mask, training, return_attention_scores):
        residual = inputs
        x = inputs
        if self.normalize_first:
            x = self._self_attention_layer_norm(x)
        outputs = self._self_attention_layer(
            x,
            x,
            attention_mask=mask,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        if return_attention_scores:
            x, scores = outputs
            extra = (scores,)
        else:
            x, extra = outputs, ()
        x = self._self_attention_dropout(x, training=training)
        x = ops.add(x, residual)
        if not self.normalize_first:
            x = self._self_attention_layer_norm(x)
        return x, extra


@keras.saving.register_keras_serializable(package="zoo")
class TransformerDecoderBlock(_BlockBase):
    """Transformer decoder block: causal self-attention, optional
    cross-attention over an encoder sequence, feed-forward network.

    Same maths and weights as `keras_hub.layers.TransformerDecoder` with the
    same options (post-norm by default, pre-norm with
    `normalize_first=True`); sub-layers are named like keras-hub's
    (`self_attention`, `self_attention_layer_norm`, `cross_attention`,
    `cross_attention_layer_norm`, `feedforward_intermediate_dense`,
    `feedforward_output_dense`, `feedforward_layer_norm`). The
    cross-attention sub-block exists only if the layer is first built (called)
    with an `encoder_sequence`; afterwards the layer must always be called
    the same way.

    Args:
        num_heads: int, number of attention heads.
        intermediate_dim: int, hidden size of the feed-forward network.
        dropout: float, dropout rate (attention weights and residual
            branches).
        activation: activation of the feed-forward hidden layer.
        layer_norm_epsilon: float, epsilon of the layer normalizations.
        normalize_first: bool, pre-norm if True, post-norm if False.
        kernel_initializer: initializer for all kernels (biases are zeros).
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`...).

    Call arguments:
        decoder_sequence: `(batch, T, dim)` decoder inputs (with a cache:
            the current step(s) only).
        encoder_sequence: optional `(batch, S, dim_enc)` encoder outputs.
        decoder_padding_mask: optional boolean `(batch, T)` mask (defaults to
            the Keras mask of `decoder_sequence`). With a self-attention
            cache it may also have the cache length `(batch, max_len)`, in
            which case it masks cache positions.
        decoder_attention_mask: optional `(batch, T, T)` (with a cache
            `(batch, T, max_len)`) boolean mask.
        encoder_padding_mask: optional `(batch, S)` boolean mask (defaults to
            the Keras mask of `encoder_sequence`).
        encoder_attention_mask: optional `(batch, T, S)` boolean mask.
        self_attention_cache: optional `(batch, 2, max_len, num_heads,
            head_dim)` key/value cache of the self-attention.
        self_attention_cache_update_index: int or int tensor, where the
            current step(s) are written in `self_attention_cache` (their
            absolute position).
        cross_attention_cache: optional `(batch, 2, S, num_heads, head_dim)`
            projected encoder keys/values, used as-is. If a
            `self_attention_cache` is given but this is `None` on a layer
            with cross-attention, it is computed from `encoder_sequence`
            and returned (so the first decoding step seeds it).
        use_causal_mask: bool, apply the causal mask to self-attention
            (absolute positions when decoding with a cache). Default True.
        training: bool, whether dropout is active.
        return_attention_scores: bool, also return the attention weights as
            a dict `{"self_attention": (batch, heads, T, T_or_max_len),
            "cross_attention": (batch, heads, T, S)}` (the second key only
            with cross-attention), as the last element of the result.

    Returns:
        Like keras-hub's `TransformerDecoder`: `outputs` `(batch, T, dim)`
        without a cache; `(outputs, self_attention_cache)` with a cache and
        no cross-attention; `(outputs, self_attention_cache,
        cross_attention_cache)` with a cache and cross-attention. With
        `return_attention_scores=True` the scores dict is appended:
        `(outputs, scores)`, `(outputs, self_attention_cache, scores)` or
        `(outputs, self_attention_cache, cross_attention_cache, scores)`.

    Example:

    ```python
    block = TransformerDecoderBlock(num_heads=2, intermediate_dim=32)
    dec = np.random.rand(2, 5, 16).astype("float32")
    enc = np.random.rand(2, 7, 16).astype("float32")
    y = block(dec, enc)  # (2, 5, 16), causal self-attention

    # Cached decoding, one token at a time:
    self_cache = np.zeros((2, 2, 5, 2, 8), "float32")
    cross_cache = None
    for t in range(5):
        y_t, self_cache, cross_cache = block(
            dec[:, t : t + 1], enc,
            self_attention_cache=self_cache,
            self_attention_cache_update_index=t,
            cross_attention_cache=cross_cache,
        )
    ```
    """

    def __init__(self, num_heads, intermediate_dim, **kwargs):
        super().__init__(num_heads=num_heads, intermediate_dim=intermediate_dim, **kwargs)
        # Cross-attention exists only when the layer is built with an
        # encoder sequence: it is created in `build()`.
        self._cross_attention_layer = None
        self._cross_attention_layer_norm = None
        self._cross_attention_dropout = None

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        if len(decoder_sequence_shape) != 3:
            raise ValueError(
                "`decoder_sequence` must have shape (batch, seq_len, dim). "
                f"Received shape: {decoder_sequence_shape}"
            )
        hidden_dim = decoder_sequence_shape[-1]
        self._self_attention_layer = self._make_attention(
            hidden_dim, "self_attention"
        )
        self._self_attention_layer.build(
            decoder_sequence_shape, decoder_sequence_shape
        )
        self._self_attention_layer_norm.build(decoder_sequence_shape)
        if encoder_sequence_shape is not None:
            self._cross_attention_layer = self._make_attention(
                hidden_dim, "cross_attention"
            )
            self._cross_attention_layer.build(
                decoder_sequence_shape, encoder_sequence_shape
            )
            self._cross_attention_layer_norm = self._make_layer_norm(
                "cross_attention_layer_norm"
            )
            self._cross_attention_layer_norm.build(decoder_sequence_shape)
            self._cross_attention_dropout = self._make_dropout(
                "cross_attention_dropout"
            )
        self._build_feedforward(decoder_sequence_shape)

    @property
    def has_cross_attention(self):
        return self._cross_attention_layer is not None

    def compute_cross_attention_cache(self, encoder_sequence):
        """Projected encoder keys/values `(batch, 2, S, num_heads, head_dim)`
        to pass as `cross_attention_cache`."""
        if not self.has_cross_attention:
            raise ValueError(
                f"Layer '{self.name}' has no cross-attention (it was built "
                "without an encoder sequence)."
            )
        return self._cross_attention_layer.compute_key_value_cache(
            encoder_sequence
        )

    def _self_attention_mask(
        self,
        decoder_sequence,
        decoder_padding_mask,
        decoder_attention_mask,
        use_causal_mask,
        self_attention_cache,
        self_attention_cache_update_index,
    ):
        batch_size = ops.shape(decoder_sequence)[0]
        query_length = ops.shape(decoder_sequence)[1]
        key_length = query_length
        if self_attention_cache is not None:
            key_length = ops.shape(self_attention_cache)[2]

        padding_mask = decoder_padding_mask
        if padding_mask is None:
            padding_mask = get_keras_mask(decoder_sequence)
        mask = None
        if padding_mask is not None:
            padding_mask = ops.cast(padding_mask, "bool")
            covers_keys = self_attention_cache is None or (
                padding_mask.shape[-1] is not None
                and padding_mask.shape[-1] == self_attention_cache.shape[2]
            )
            if covers_keys:
                mask = ops.expand_dims(padding_mask, axis=1)  # (B, 1, S)
            else:
                mask = ops.expand_dims(padding_mask, axis=-1)  # (B, T, 1)
        if decoder_attention_mask is not None:
            m = ops.cast(decoder_attention_mask, "bool")
            mask = m if mask is None else ops.logical_and(mask, m)
        if use_causal_mask:
            start = (
                0
                if self_attention_cache_update_index is None
                else self_attention_cache_update_index
            )
            m = compute_causal_mask(batch_size, query_length, key_length, start)
            mask = m if mask is None else ops.logical_and(mask, m)
        return mask

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_padding_mask=None,
        encoder_attention_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        use_causal_mask=True,
        training=None,
        return_attention_scores=False,
    ):
        has_encoder_sequence = encoder_sequence is not None
        if self.has_cross_attention and not has_encoder_sequence:
            raise ValueError(
                f"Layer '{self.name}' was built with cross-attention: call it "
                "with `encoder_sequence` every time."
            )
        if not self.has_cross_attention and has_encoder_sequence:
            raise ValueError(
                f"Layer '{self.name}' was built without cross-attention "
                "(first called without `encoder_sequence`); it cannot be "
                "called with an `encoder_sequence` now."
            )
        has_cache = self_attention_cache is not None
        if cross_attention_cache is not None and not has_cache:
            raise ValueError(
                "`cross_attention_cache` requires `self_attention_cache`."
            )
        scores = {}

        # Self-attention block.
        self_mask = self._self_attention_mask(
            decoder_sequence,
            decoder_padding_mask,
            decoder_attention_mask,
            use_causal_mask,
            self_attention_cache,
            self_attention_cache_update_index,
        )
        residual = decoder_sequence
        x = decoder_sequence
        if self.normalize_first:
            x = self._self_attention_layer_norm(x)
        attention_kwargs = {}
        if has_cache:
            attention_kwargs = dict(
                cache=self_attention_cache,
                cache_update_index=self_attention_cache_update_index,
            )
        outputs = self._self_attention_layer(
            x,
            x,
            attention_mask=self_mask,
            return_attention_scores=return_attention_scores,
            training=training,
            **attention_kwargs,
        )
        x, outputs = self._unpack(outputs, return_attention_scores, has_cache)
        if return_attention_scores:
            scores["self_attention"] = outputs[0]
        if has_cache:
            self_attention_cache = outputs[-1]
        x = self._self_attention_dropout(x, training=training)
        x = ops.add(x, residual)
        if not self.normalize_first:
            x = self._self_attention_layer_norm(x)

        # Cross-attention block.
        if self.has_cross_attention:
            cross_mask = _merge_padding_and_attention_mask(
                encoder_sequence, encoder_padding_mask, encoder_attention_mask
            )
            if has_cache and cross_attention_cache is None:
                cross_attention_cache = self.compute_cross_attention_cache(
                    encoder_sequence
                )
            residual = x
            if self.normalize_first:
                x = self._cross_attention_layer_norm(x)
            attention_kwargs = {}
            if has_cache:
                attention_kwargs = dict(cache=cross_attention_cache)
            outputs = self._cross_attention_layer(
                x,
                encoder_sequence,
                attention_mask=cross_mask,
                return_attention_scores=return_attention_scores,
                training=training,
                **attention_kwargs,
            )
            x, outputs = self._unpack(
                outputs, return_attention_scores, has_cache
            )
            if return_attention_scores:
                scores["cross_attention"] = outputs[0]
            x = self._cross_attention_dropout(x, training=training)
            x = ops.add(x, residual)
            if not self.normalize_first:
                x = self._cross_attention_layer_norm(x)

        x = self._feedforward(x, training)

        result = (x,)
        if has_cache:
            result += (self_attention_cache,)
            if self.has_cross_attention:
                result += (cross_attention_cache,)
        if return_attention_scores:
            result += (scores,)
        return result[0] if len(result) == 1 else result

    @staticmethod
    def _unpack(outputs, return_attention_scores, has_cache):
        if not return_attention_scores and not has_cache:
            return outputs, ()
        return outputs[0], tuple(outputs[1:])
