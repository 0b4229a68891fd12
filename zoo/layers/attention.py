"""Attention layers: multi-head attention with a key/value cache, and
attention pooling.

Everything here is written with `keras.ops` / `keras.layers` only, so the
layers run on any Keras 3 backend.
"""

from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["MultiHeadAttention", "AttentionPooling", "compute_causal_mask"]

try:  # Keras 3 keeps these out of the public API (keras-hub uses them too).
    from keras.src.backend import get_keras_mask, set_keras_mask
except ImportError:  # pragma: no cover - older/newer Keras layouts

    def get_keras_mask(x):
        return getattr(x, "_keras_mask", None)

    def set_keras_mask(x, mask):
        try:
            x._keras_mask = mask
        except AttributeError:
            pass


def _clone_initializer(initializer):
    """A fresh copy of `initializer`, so two sub-layers never share a seed."""
    initializer = keras.initializers.get(initializer)
    return initializer.__class__.from_config(initializer.get_config())


def _masked_softmax(scores, mask, axis=-1):
    """Softmax over `axis` where positions with `mask == False` get weight 0.

    Computed in float32 for stability. Rows whose every position is masked
    give all-zero weights (never NaN), like `keras.layers.Softmax`.
    """
    dtype = scores.dtype
    scores = ops.cast(scores, "float32")
    if mask is not None:
        mask = ops.cast(mask, "bool")
        scores = ops.where(mask, scores, ops.cast(-1e9, "float32"))
    # Written out (rather than ops.softmax) so that a length-1 axis, common
    # in step-by-step decoding, does not trigger Keras' softmax warning.
    scores = scores - ops.stop_gradient(ops.max(scores, axis=axis, keepdims=True))
    weights = ops.exp(scores)
    if mask is not None:
        weights = ops.where(mask, weights, ops.zeros_like(weights))
    total = ops.sum(weights, axis=axis, keepdims=True)
    total = ops.where(total > 0, total, ops.ones_like(total))
    return ops.cast(weights / total, dtype)


def compute_causal_mask(batch_size, query_length, key_length, start_index=0):
    """Boolean causal mask for (cached) decoding.

    Query position `i` sits at absolute position `start_index + i` and may
    attend to key positions `j <= start_index + i`.

    Args:
        batch_size: int or scalar int tensor, the batch size.
        query_length: int or scalar int tensor, `T`.
        key_length: int or scalar int tensor, `S` (the cache length when
            decoding with a cache).
        start_index: int or scalar int tensor, the absolute position of the
            first query (the cache update index). Defaults to `0`.

    Returns:
        A boolean tensor of shape `(batch_size, query_length, key_length)`.

    Example:

    >>> compute_causal_mask(1, 2, 4, start_index=1)  # doctest: +SKIP
    [[[True, True, False, False],
      [True, True, True, False]]]
    """
    i = ops.arange(query_length, dtype="int32") + ops.cast(start_index, "int32")
    j = ops.arange(key_length, dtype="int32")
    mask = ops.expand_dims(ops.greater_equal(ops.expand_dims(i, 1), j), 0)
    return ops.broadcast_to(mask, (batch_size, query_length, key_length))


@keras.saving.register_keras_serializable(package="zoo")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention with an optional K/V cache.

    Drop-in for `keras.layers.MultiHeadAttention` on rank-3 inputs: the same
    weights in the same order and shapes (`query`, `key`, `value` and
    `attention_output` `EinsumDense` projections), so
    `ours.set_weights(theirs.get_weights())` gives the same outputs. On top
    of that it supports the key/value cache of keras-hub's
    `CachedMultiHeadAttention` for step-by-step decoding.

    Masks: the Keras masks of `query` (`(batch, T)`), `value` and `key`
    (`(batch, S)`), an explicit `attention_mask` `(batch, T, S)` and the
    causal mask are combined with a logical AND. Masked positions get an
    attention weight of exactly 0; a query row with every key masked gets
    all-zero weights (its output is the output projection's bias), never NaN.

    Args:
        num_heads: int, number of attention heads.
        key_dim: int, size of each head for query and key.
        value_dim: int, size of each head for value. Defaults to `key_dim`.
        dropout: float, dropout rate on the attention weights.
        use_bias: bool, whether the projections use a bias.
        output_shape: int or tuple, the size of the output's last axis.
            Defaults to the query's last dimension.
        kernel_initializer: initializer for the projection kernels.
        bias_initializer: initializer for the projection biases.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`...).

    Call arguments:
        query: `(batch, T, dim)` query sequence.
        value: `(batch, S, dim_v)` value sequence.
        key: optional `(batch, S, dim_k)` key sequence; defaults to `value`.
        query_mask: optional `(batch, T)` boolean mask; defaults to the Keras
            mask of `query`.
        value_mask: optional `(batch, S)` boolean mask; defaults to the Keras
            mask of `value`.
        key_mask: optional `(batch, S)` boolean mask; defaults to the Keras
            mask of `key`.
        attention_mask: optional `(batch, T, S)` boolean mask (`S` is the
            cache length when a cache is used); `True` means "may attend".
        use_causal_mask: bool. Mask out keys after each query's position.
            With a cache and `cache_update_index`, positions are absolute:
            query `i` is at `cache_update_index + i`.
        return_attention_scores: bool, also return the attention weights.
        cache: optional `(batch, 2, max_len, num_heads, key_dim)` tensor of
            cached projected keys (`[:, 0]`) and values (`[:, 1]`).
            Requires `value_dim == key_dim`.
        cache_update_index: optional int or int tensor. With a `cache`: the
            projected key/value of the current step(s) are written into the
            cache at this position and attention runs over the whole cache.
            If `None` while a `cache` is given, the cache is used as-is
            (cross-attention) and `key`/`value` are not projected.
            With a cache update, the Keras masks of `value`/`key` are ignored
            (they do not cover the cache); pass `attention_mask` instead.
        training: bool, whether dropout is active.

    Returns:
        `output` of shape `(batch, T, dim)` (or `output_shape`); with
        `return_attention_scores=True` also `scores` of shape
        `(batch, num_heads, T, S)`; with a `cache` also the updated cache.
        Order: `output`, `(output, scores)`, `(output, cache)` or
        `(output, scores, cache)`.

    Example:

    ```python
    mha = MultiHeadAttention(num_heads=2, key_dim=8)
    x = np.random.rand(2, 5, 16).astype("float32")
    y = mha(x, x, use_causal_mask=True)  # (2, 5, 16)

    # Step-by-step decoding with a cache.
    cache = np.zeros((2, 2, 5, 2, 8), "float32")
    for t in range(5):
        step = x[:, t : t + 1]
        y_t, cache = mha(step, step, cache=cache, cache_update_index=t,
                         use_causal_mask=True)
    ```
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(
                f"`num_heads` must be a positive int. Received: {num_heads}"
            )
        if not isinstance(key_dim, int) or key_dim <= 0:
            raise ValueError(
                f"`key_dim` must be a positive int. Received: {key_dim}"
            )
        if value_dim is not None and (
            not isinstance(value_dim, int) or value_dim <= 0
        ):
            raise ValueError(
                "`value_dim` must be a positive int or None. "
                f"Received: {value_dim}"
            )
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim if value_dim else key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        if output_shape is not None:
            if isinstance(output_shape, int):
                output_shape = (output_shape,)
            output_shape = tuple(output_shape)
            if len(output_shape) != 1:
                raise ValueError(
                    "`output_shape` must be an int or a 1-tuple for "
                    f"(batch, T, dim) inputs. Received: {output_shape}"
                )
        self._projection_output_shape = output_shape
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True
        self._inverse_sqrt_key_dim = 1.0 / math.sqrt(float(key_dim))

        bias_axes = "de" if use_bias else None
        self._query_dense = keras.layers.EinsumDense(
            "abc,cde->abde",
            output_shape=(None, num_heads, key_dim),
            bias_axes=bias_axes,
            name="query",
            **self._sublayer_kwargs(),
        )
        self._key_dense = keras.layers.EinsumDense(
            "abc,cde->abde",
            output_shape=(None, num_heads, key_dim),
            bias_axes=bias_axes,
            name="key",
            **self._sublayer_kwargs(),
        )
        self._value_dense = keras.layers.EinsumDense(
            "abc,cde->abde",
            output_shape=(None, num_heads, self.value_dim),
            bias_axes=bias_axes,
            name="value",
            **self._sublayer_kwargs(),
        )
        # The output projection's size is the query's last dimension unless
        # `output_shape` is given, so it is created in `build()`.
        self._output_dense = None
        self._dropout_layer = keras.layers.Dropout(
            rate=dropout, dtype=self.dtype_policy, name="attention_dropout"
        )

    def _sublayer_kwargs(self):
        return dict(
            kernel_initializer=_clone_initializer(self.kernel_initializer),
            bias_initializer=_clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
        )

    @property
    def query_dense(self):
        return self._query_dense

    @property
    def key_dense(self):
        return self._key_dense

    @property
    def value_dense(self):
        return self._value_dense

    @property
    def output_dense(self):
        return self._output_dense

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        for name, shape in (
            ("query", query_shape),
            ("value", value_shape),
            ("key", key_shape),
        ):
            if len(shape) != 3:
                raise ValueError(
                    f"`{name}` must have shape (batch, seq_len, dim). "
                    f"Received shape: {shape}"
                )
        self._query_dense.build(query_shape)
        self._key_dense.build(key_shape)
        self._value_dense.build(value_shape)
        out_dim = (
            self._projection_output_shape[0]
            if self._projection_output_shape
            else query_shape[-1]
        )
        bias_axes = "e" if self.use_bias else None
        self._output_dense = keras.layers.EinsumDense(
            "abcd,cde->abe",
            output_shape=(None, out_dim),
            bias_axes=bias_axes,
            name="attention_output",
            **self._sublayer_kwargs(),
        )
        self._output_dense.build(
            (query_shape[0], query_shape[1], self.num_heads, self.value_dim)
        )

    def compute_key_value_cache(self, value, key=None):
        """Projects `key`/`value` once into a cache for cross-attention.

        Args:
            value: `(batch, S, dim_v)` value sequence.
            key: optional `(batch, S, dim_k)`; defaults to `value`.

        Returns:
            `(batch, 2, S, num_heads, key_dim)` cache to pass as `cache` with
            `cache_update_index=None`.
        """
        if key is None:
            key = value
        return ops.stack(
            (self._key_dense(key), self._value_dense(value)), axis=1
        )

    def _compute_attention_mask(
        self,
        query_mask,
        value_mask,
        key_mask,
        attention_mask,
        use_causal_mask,
        query_length,
        key_length,
        batch_size,
        start_index,
    ):
        mask = None
        if query_mask is not None:
            mask = ops.expand_dims(ops.cast(query_mask, "bool"), -1)
        for m in (value_mask, key_mask):
            if m is not None:
                m = ops.expand_dims(ops.cast(m, "bool"), -2)
                mask = m if mask is None else ops.logical_and(mask, m)
        if use_causal_mask:
            m = compute_causal_mask(1, query_length, key_length, start_index)
            mask = m if mask is None else ops.logical_and(mask, m)
        if attention_mask is not None:
            m = ops.cast(attention_mask, "bool")
            mask = m if mask is None else ops.logical_and(mask, m)
        if mask is not None:
            mask = ops.broadcast_to(mask, (batch_size, query_length, key_length))
        return mask

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        cache=None,
        cache_update_index=None,
        training=None,
    ):
        if key is None:
            key = value
        if query_mask is None:
            query_mask = get_keras_mask(query)
        # Like keras.layers.MultiHeadAttention: the masks are handled here,
        # so drop them from the inputs before the (mask-unaware) projections.
        for tensor in (query, value, key):
            if get_keras_mask(tensor) is not None:
                set_keras_mask(tensor, None)

        projected_query = self._query_dense(query)
        if cache is not None:
            if self.value_dim != self.key_dim:
                raise ValueError(
                    "A key/value `cache` needs `value_dim == key_dim`. "
                    f"Received key_dim={self.key_dim}, "
                    f"value_dim={self.value_dim}."
                )
            key_cache = cache[:, 0, ...]
            value_cache = cache[:, 1, ...]
            if cache_update_index is None:
                projected_key, projected_value = key_cache, value_cache
            else:
                start = [0, cache_update_index, 0, 0]
                projected_key = ops.slice_update(
                    key_cache, start, self._key_dense(key)
                )
                projected_value = ops.slice_update(
                    value_cache, start, self._value_dense(value)
                )
                cache = ops.stack((projected_key, projected_value), axis=1)
                # The Keras masks of the new step(s) do not cover the cache.
                value_mask = key_mask = None
        else:
            if cache_update_index is not None:
                raise ValueError(
                    "`cache_update_index` should only be set together with "
                    f"`cache`. Received cache=None, "
                    f"cache_update_index={cache_update_index}."
                )
            projected_key = self._key_dense(key)
            projected_value = self._value_dense(value)

        batch_size = ops.shape(projected_query)[0]
        query_length = ops.shape(projected_query)[1]
        key_length = ops.shape(projected_key)[1]
        mask = self._compute_attention_mask(
            query_mask,
            value_mask,
            key_mask,
            attention_mask,
            use_causal_mask,
            query_length,
            key_length,
            batch_size,
            0 if cache_update_index is None else cache_update_index,
        )

        scaled_query = ops.multiply(
            projected_query,
            ops.cast(self._inverse_sqrt_key_dim, projected_query.dtype),
        )
        # (batch, heads, T, S)
        scores = ops.einsum("btnh,bsnh->bnts", scaled_query, projected_key)
        if mask is not None:
            mask = ops.expand_dims(mask, 1)
        scores = _masked_softmax(scores, mask, axis=-1)
        dropped = self._dropout_layer(scores, training=training)
        attended = ops.einsum("bnts,bsnh->btnh", dropped, projected_value)
        output = self._output_dense(attended)

        if query_mask is not None:
            set_keras_mask(output, ops.cast(query_mask, "bool"))

        outputs = (output,)
        if return_attention_scores:
            outputs += (scores,)
        if cache is not None:
            outputs += (cache,)
        return outputs[0] if len(outputs) == 1 else outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "output_shape": self._projection_output_shape,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="zoo")
class AttentionPooling(keras.layers.Layer):
    """Learned attention-weighted pooling over a (masked) sequence.

    For each timestep `h_t` a score `s_t = w^T tanh(W h_t + b)` is computed;
    the weights `a = softmax(s)` are taken over the unmasked timesteps only
    (padded steps get weight exactly 0) and the output is
    `sum_t a_t h_t`. A fully padded row pools to zeros (no NaN).

    Args:
        units: int, size of the hidden scoring layer (`W`). Defaults to the
            input's last dimension.
        dropout: float, dropout rate on the attention weights (training only).
        kernel_initializer: initializer for `W` and `w`.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`...).

    Call arguments:
        inputs: `(batch, T, dim)` sequence.
        mask: optional `(batch, T)` boolean mask, `True` for real steps;
            defaults to the Keras mask of `inputs`.
        training: bool, whether dropout is active.
        return_attention_scores: bool, also return the weights.

    Returns:
        `pooled` of shape `(batch, dim)`; with `return_attention_scores=True`
        `(pooled, weights)` with `weights` of shape `(batch, T)`. The output
        carries no Keras mask.

    Example:

    ```python
    x = np.random.rand(2, 6, 16).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0, 0], [1] * 6], bool)
    pooled, weights = AttentionPooling(units=8)(
        x, mask=mask, return_attention_scores=True
    )  # (2, 16), (2, 6)
    ```
    """

    def __init__(
        self,
        units=None,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if units is not None and (not isinstance(units, int) or units <= 0):
            raise ValueError(
                f"`units` must be a positive int or None. Received: {units}"
            )
        self.units = units
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True
        self._dropout_layer = keras.layers.Dropout(
            rate=dropout, dtype=self.dtype_policy, name="attention_dropout"
        )

    def build(self, inputs_shape):
        if len(inputs_shape) != 3:
            raise ValueError(
                "`AttentionPooling` expects inputs of shape "
                f"(batch, seq_len, dim). Received shape: {inputs_shape}"
            )
        dim = inputs_shape[-1]
        units = self.units or dim
        self.kernel = self.add_weight(
            name="kernel",
            shape=(dim, units),
            initializer=_clone_initializer(self.kernel_initializer),
        )
        self.bias = self.add_weight(
            name="bias", shape=(units,), initializer="zeros"
        )
        self.score_kernel = self.add_weight(
            name="score_kernel",
            shape=(units,),
            initializer=_clone_initializer(self.kernel_initializer),
        )

    def call(
        self, inputs, mask=None, training=None, return_attention_scores=False
    ):
        if mask is None:
            mask = get_keras_mask(inputs)
        hidden = ops.tanh(
            ops.add(ops.matmul(inputs, ops.cast(self.kernel, inputs.dtype)),
                    ops.cast(self.bias, inputs.dtype))
        )
        # (batch, T)
        scores = ops.einsum(
            "btu,u->bt", hidden, ops.cast(self.score_kernel, inputs.dtype)
        )
        weights = _masked_softmax(scores, mask, axis=-1)
        dropped = self._dropout_layer(weights, training=training)
        pooled = ops.einsum("bt,btd->bd", dropped, inputs)
        if return_attention_scores:
            return pooled, weights
        return pooled

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
