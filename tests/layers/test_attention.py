"""Tests for zoo.layers.attention: MultiHeadAttention and AttentionPooling."""

import keras
import numpy as np
import pytest

from zoo.layers import AttentionPooling, MultiHeadAttention, compute_causal_mask

ATOL = 1e-5
B, T, S, DIM, HEADS, HEAD_DIM = 2, 5, 7, 16, 2, 8


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _pair(**kwargs):
    """Our MHA and keras' MHA with identical weights."""
    q, v = _rand(B, T, DIM), _rand(B, S, DIM, seed=1)
    theirs = keras.layers.MultiHeadAttention(HEADS, HEAD_DIM, **kwargs)
    ours = MultiHeadAttention(HEADS, HEAD_DIM, **kwargs)
    theirs(q, v)
    ours(q, v)
    ours.set_weights(theirs.get_weights())
    return ours, theirs


# --------------------------------------------------------------------------
# MultiHeadAttention vs keras.layers.MultiHeadAttention


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"use_bias": False}, {"value_dim": 4, "output_shape": 12}],
)
def test_mha_weights_and_outputs_match_keras(kwargs):
    ours, theirs = _pair(**kwargs)
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    q, v = _rand(B, T, DIM, seed=2), _rand(B, S, DIM, seed=3)
    np.testing.assert_allclose(ours(q, v), theirs(q, v), atol=ATOL)
    out, scores = ours(q, v, return_attention_scores=True)
    out2, scores2 = theirs(q, v, return_attention_scores=True)
    assert scores.shape == (B, HEADS, T, S)
    np.testing.assert_allclose(out, out2, atol=ATOL)
    np.testing.assert_allclose(scores, scores2, atol=ATOL)


def test_mha_projection_shapes():
    ours, _ = _pair()
    assert ours.query_dense.kernel.shape == (DIM, HEADS, HEAD_DIM)
    assert ours.query_dense.bias.shape == (HEADS, HEAD_DIM)
    assert ours.output_dense.kernel.shape == (HEADS, HEAD_DIM, DIM)


def test_mha_causal_and_attention_mask_match_keras():
    ours, theirs = _pair()
    x = _rand(B, T, DIM, seed=4)
    np.testing.assert_allclose(
        ours(x, x, use_causal_mask=True),
        theirs(x, x, use_causal_mask=True),
        atol=ATOL,
    )
    mask = np.random.default_rng(5).random((B, T, T)) > 0.3
    mask[:, :, 0] = True  # no fully masked rows (keras' fused path differs)
    for causal in (False, True):
        a, sa = ours(
            x, x, attention_mask=mask, use_causal_mask=causal,
            return_attention_scores=True,
        )
        b, sb = theirs(
            x, x, attention_mask=mask, use_causal_mask=causal,
            return_attention_scores=True,
        )
        np.testing.assert_allclose(a, b, atol=ATOL)
        np.testing.assert_allclose(sa, sb, atol=ATOL)
        np.testing.assert_allclose(
            ours(x, x, attention_mask=mask, use_causal_mask=causal),
            theirs(x, x, attention_mask=mask, use_causal_mask=causal),
            atol=ATOL,
        )


def _masked_model(layer, return_scores):
    """ids -> Embedding(mask_zero) -> attention(x, y), with Keras masks."""
    q_ids = keras.Input((T,), dtype="int32")
    v_ids = keras.Input((S,), dtype="int32")
    emb = keras.layers.Embedding(20, DIM, mask_zero=True)
    out = layer(
        emb(q_ids), emb(v_ids), return_attention_scores=return_scores
    )
    return keras.Model([q_ids, v_ids], out)


def _ids(lengths, length, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 20, size=(len(lengths), length))
    for i, n in enumerate(lengths):
        ids[i, n:] = 0
    return ids.astype("int32")


def test_mha_keras_masks_match_keras():
    ours, theirs = _pair()
    q_ids, v_ids = _ids([5, 3], T, 6), _ids([7, 4], S, 7)
    m_ours = _masked_model(ours, True)
    m_theirs = _masked_model(theirs, True)
    m_ours.layers[2].set_weights(m_theirs.layers[2].get_weights())
    out, scores = m_ours([q_ids, v_ids])
    out2, scores2 = m_theirs([q_ids, v_ids])
    np.testing.assert_allclose(out, out2, atol=ATOL)
    np.testing.assert_allclose(scores, scores2, atol=ATOL)
    scores = np.asarray(scores)
    assert np.all(scores[1, :, :, 4:] == 0.0)  # padded keys get weight 0
    assert np.all(scores[1, :, 3:, :] == 0.0)  # padded queries: all zero
    # The output carries the query's Keras mask.
    m = _masked_model(ours, False)
    assert m.output._keras_mask is not None


def test_mha_padding_is_inert():
    mha = MultiHeadAttention(HEADS, HEAD_DIM)
    q, v = _rand(B, T, DIM), _rand(B, S, DIM, seed=1)
    value_mask = np.ones((B, S), bool)
    value_mask[0, 4:] = False
    out = mha(q, v, value_mask=value_mask)
    v2 = v.copy()
    v2[0, 4:] = 100.0 * _rand(S - 4, DIM, seed=9)
    np.testing.assert_allclose(out, mha(q, v2, value_mask=value_mask), atol=ATOL)


def test_mha_fully_masked_rows_are_finite():
    mha = MultiHeadAttention(HEADS, HEAD_DIM)
    q, v = _rand(B, T, DIM), _rand(B, S, DIM, seed=1)
    out, scores = mha(
        q, v, value_mask=np.zeros((B, S), bool), return_attention_scores=True
    )
    assert np.all(np.isfinite(out)) and np.all(np.asarray(scores) == 0)


def test_mha_causal_future_tokens_do_not_matter():
    mha = MultiHeadAttention(HEADS, HEAD_DIM)
    x = _rand(B, T, DIM)
    out = np.asarray(mha(x, x, use_causal_mask=True))
    for t in range(T - 1):
        x2 = x.copy()
        x2[:, t + 1 :] = _rand(B, T - t - 1, DIM, seed=10 + t)
        out2 = np.asarray(mha(x2, x2, use_causal_mask=True))
        np.testing.assert_allclose(out[:, : t + 1], out2[:, : t + 1], atol=ATOL)


def test_compute_causal_mask():
    mask = np.asarray(compute_causal_mask(2, 2, 4, start_index=1))
    expected = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)
    assert mask.shape == (2, 2, 4)
    np.testing.assert_array_equal(mask[0], expected)
    np.testing.assert_array_equal(mask[1], expected)


def test_mha_self_attention_cache_equals_full_recompute():
    mha = MultiHeadAttention(HEADS, HEAD_DIM)
    x = _rand(B, T, DIM)
    full, full_scores = mha(
        x, x, use_causal_mask=True, return_attention_scores=True
    )
    cache = np.zeros((B, 2, T, HEADS, HEAD_DIM), "float32")
    # Prefill two tokens at once, then decode one at a time.
    out, cache = mha(
        x[:, :2], x[:, :2], cache=cache, cache_update_index=0,
        use_causal_mask=True,
    )
    assert cache.shape == (B, 2, T, HEADS, HEAD_DIM)
    np.testing.assert_allclose(out, full[:, :2], atol=ATOL)
    for t in range(2, T):
        step = x[:, t : t + 1]
        out, scores, cache = mha(
            step, step, cache=cache, cache_update_index=t,
            use_causal_mask=True, return_attention_scores=True,
        )
        np.testing.assert_allclose(out, full[:, t : t + 1], atol=ATOL)
        np.testing.assert_allclose(
            scores, full_scores[:, :, t : t + 1], atol=ATOL
        )
    # The same with an explicit mask instead of use_causal_mask.
    cache = np.zeros((B, 2, T, HEADS, HEAD_DIM), "float32")
    for t in range(T):
        step = x[:, t : t + 1]
        mask = compute_causal_mask(B, 1, T, start_index=t)
        out, cache = mha(
            step, step, cache=cache, cache_update_index=t, attention_mask=mask
        )
        np.testing.assert_allclose(out, full[:, t : t + 1], atol=ATOL)


def test_mha_cross_attention_cache_reused_as_is():
    mha = MultiHeadAttention(HEADS, HEAD_DIM)
    q, enc = _rand(B, T, DIM), _rand(B, S, DIM, seed=1)
    full = mha(q, enc)
    cache = mha.compute_key_value_cache(enc)
    assert cache.shape == (B, 2, S, HEADS, HEAD_DIM)
    # Seeding through cache_update_index=0 gives the same cache.
    _, seeded = mha(
        q, enc, cache=np.zeros((B, 2, S, HEADS, HEAD_DIM), "float32"),
        cache_update_index=0,
    )
    np.testing.assert_allclose(seeded, cache, atol=ATOL)
    garbage = 1e3 * _rand(B, S, DIM, seed=5)  # must not be projected
    for t in range(T):
        out, cache2 = mha(q[:, t : t + 1], garbage, cache=cache)
        np.testing.assert_allclose(out, full[:, t : t + 1], atol=ATOL)
        np.testing.assert_allclose(cache2, cache)


def test_mha_cache_errors():
    mha = MultiHeadAttention(HEADS, HEAD_DIM)
    x = _rand(B, T, DIM)
    with pytest.raises(ValueError, match="cache_update_index"):
        mha(x, x, cache_update_index=0)
    mha2 = MultiHeadAttention(HEADS, HEAD_DIM, value_dim=4)
    with pytest.raises(ValueError, match="value_dim"):
        mha2(x, x, cache=np.zeros((B, 2, T, HEADS, HEAD_DIM), "float32"))


def test_mha_dropout_only_in_training():
    mha = MultiHeadAttention(HEADS, HEAD_DIM, dropout=0.5)
    x = _rand(B, T, DIM)
    np.testing.assert_allclose(mha(x, x), mha(x, x, training=False), atol=0)
    assert not np.allclose(mha(x, x, training=True), mha(x, x))


def test_mha_config_round_trip():
    mha = MultiHeadAttention(
        HEADS, HEAD_DIM, value_dim=4, dropout=0.1, use_bias=False,
        output_shape=12, kernel_initializer="he_normal",
        bias_initializer="ones", name="mha",
    )
    config = mha.get_config()
    for key in ("num_heads", "key_dim", "value_dim", "dropout", "use_bias",
                "output_shape", "kernel_initializer", "bias_initializer"):
        assert key in config
    clone = MultiHeadAttention.from_config(config)
    assert clone.get_config() == config


def test_mha_keras_saving_round_trip(tmp_path):
    q = keras.Input((T, DIM))
    v = keras.Input((S, DIM))
    out = MultiHeadAttention(HEADS, HEAD_DIM, dropout=0.1)(
        q, v, use_causal_mask=True
    )
    model = keras.Model([q, v], out)
    data = [_rand(B, T, DIM), _rand(B, S, DIM, seed=1)]
    expected = model.predict(data, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[-1], MultiHeadAttention)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), expected,
                               atol=ATOL)


# --------------------------------------------------------------------------
# AttentionPooling


def _pool_inputs():
    x = _rand(3, 6, DIM)
    mask = np.ones((3, 6), bool)
    mask[0, 4:] = False
    mask[1, 1:] = False
    return x, mask


def test_attention_pooling_matches_numpy_and_weights_sum_to_one():
    pool = AttentionPooling(units=8)
    x, mask = _pool_inputs()
    pooled, weights = pool(x, mask=mask, return_attention_scores=True)
    assert pooled.shape == (3, DIM) and weights.shape == (3, 6)
    weights = np.asarray(weights)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=ATOL)
    assert np.all(weights[~mask] == 0.0)
    np.testing.assert_allclose(weights[1, 0], 1.0, atol=ATOL)
    # Reference computation.
    w, b, u = (np.asarray(v) for v in pool.weights)
    s = np.tanh(x @ w + b) @ u
    s = np.where(mask, s, -np.inf)
    a = np.exp(s - s.max(-1, keepdims=True))
    a = a / a.sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, a, atol=ATOL)
    np.testing.assert_allclose(pooled, np.einsum("bt,btd->bd", a, x), atol=ATOL)


def test_attention_pooling_padding_is_inert_and_no_nan():
    pool = AttentionPooling()
    x, mask = _pool_inputs()
    mask[2] = False  # fully padded row
    out = np.asarray(pool(x, mask=mask))
    x2 = x.copy()
    x2[~mask] = 1e3 * _rand(int((~mask).sum()), DIM, seed=3)
    np.testing.assert_allclose(pool(x2, mask=mask), out, atol=ATOL)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[2], 0.0)
    # Without a mask: plain softmax over all steps.
    _, w = pool(x, return_attention_scores=True)
    np.testing.assert_allclose(np.asarray(w).sum(-1), 1.0, atol=ATOL)


def test_attention_pooling_honours_keras_mask_and_drops_it():
    ids = keras.Input((6,), dtype="int32")
    pool = AttentionPooling(units=4)
    embedding = keras.layers.Embedding(10, DIM, mask_zero=True)
    pooled = pool(embedding(ids))
    assert getattr(pooled, "_keras_mask", None) is None
    model = keras.Model(ids, pooled)
    data = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]], "int32")
    out = np.asarray(model(data))
    emb = embedding(data[:1]).numpy()
    np.testing.assert_allclose(out[:1], pool(emb[:, :3]), atol=ATOL)
    assert pool.compute_mask(emb, np.ones((1, 6), bool)) is None


def test_attention_pooling_config_and_saving(tmp_path):
    pool = AttentionPooling(units=8, dropout=0.1, kernel_initializer="he_normal")
    config = pool.get_config()
    assert {"units", "dropout", "kernel_initializer"} <= set(config)
    assert AttentionPooling.from_config(config).get_config() == config
    inp = keras.Input((6, DIM))
    model = keras.Model(inp, pool(inp))
    x, _ = _pool_inputs()
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=ATOL)
