"""Tests for zoo.layers.transformer: encoder and decoder blocks."""

import keras
import keras_hub
import numpy as np
import pytest

from zoo.layers import (
    TokenAndPositionEmbedding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)

ATOL = 1e-5
B, T, S, DIM, HEADS, FF = 2, 5, 7, 16, 2, 24
HEAD_DIM = DIM // HEADS


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _padding(batch, length, lengths):
    mask = np.zeros((batch, length), bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    return mask


def _copy_weights(ours, theirs):
    """Copy keras-hub weights into ours, matched by path below the layer."""
    by_path = {w.path.split("/", 1)[1]: w for w in theirs.weights}
    assert len(by_path) == len(ours.weights)
    for w in ours.weights:
        source = by_path[w.path.split("/", 1)[1]]
        assert tuple(source.shape) == tuple(w.shape)
        w.assign(np.asarray(source))


def _randomize(layer, seed=0):
    """Non-trivial values for every weight (biases, layer-norm params too)."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(scale=0.3, size=w.shape).astype("float32"))


# --------------------------------------------------------------------------
# TransformerEncoderBlock


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_matches_keras_hub(normalize_first):
    x = _rand(B, T, DIM)
    kw = dict(normalize_first=normalize_first, activation="gelu",
              layer_norm_epsilon=1e-6)
    ours = TransformerEncoderBlock(HEADS, FF, **kw)
    theirs = keras_hub.layers.TransformerEncoder(FF, HEADS, **kw)
    ours(x)
    theirs(x)
    _randomize(theirs)
    _copy_weights(ours, theirs)
    np.testing.assert_allclose(ours(x), theirs(x), atol=ATOL)

    padding = _padding(B, T, [5, 3])
    attention = np.random.default_rng(1).random((B, T, T)) > 0.3
    attention[:, :, 0] = True
    args = dict(padding_mask=padding, attention_mask=attention)
    out, scores = ours(x, return_attention_scores=True, **args)
    out2, scores2 = theirs(x, return_attention_scores=True, **args)
    assert scores.shape == (B, HEADS, T, T)
    np.testing.assert_allclose(out, out2, atol=ATOL)
    np.testing.assert_allclose(scores, scores2, atol=ATOL)
    np.testing.assert_allclose(ours(x, **args), theirs(x, **args), atol=ATOL)


def test_encoder_padding_is_inert():
    block = TransformerEncoderBlock(HEADS, FF)
    x = _rand(B, T, DIM)
    padding = _padding(B, T, [5, 3])
    out = np.asarray(block(x, padding_mask=padding))
    x2 = x.copy()
    x2[1, 3:] = 10 * _rand(2, DIM, seed=3)
    out2 = np.asarray(block(x2, padding_mask=padding))
    np.testing.assert_allclose(out2[padding], out[padding], atol=ATOL)


def test_encoder_honours_keras_mask():
    ids = keras.Input((T,), dtype="int32")
    emb = TokenAndPositionEmbedding(20, T, DIM)
    block = TransformerEncoderBlock(HEADS, FF, normalize_first=True)
    out = block(emb(ids))
    assert out._keras_mask is not None  # the mask flows through
    model = keras.Model(ids, out)
    data = np.array([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]], "int32")
    y = np.asarray(model(data))
    # Same as passing the padding mask explicitly.
    y2 = np.asarray(block(emb(data), padding_mask=data != 0))
    np.testing.assert_allclose(y[data != 0], y2[data != 0], atol=ATOL)
    # Changing a padded position's embedding (via the explicit-mask path)
    # leaves the real positions untouched.
    e = np.array(emb(data))
    e[1, 2:] = 5.0
    y3 = np.asarray(block(e, padding_mask=data != 0))
    np.testing.assert_allclose(y3[data != 0], y[data != 0], atol=ATOL)


def test_encoder_config_and_saving(tmp_path):
    block = TransformerEncoderBlock(
        HEADS, FF, dropout=0.1, activation="gelu", layer_norm_epsilon=1e-6,
        normalize_first=True, kernel_initializer="he_normal",
    )
    config = block.get_config()
    for key in ("num_heads", "intermediate_dim", "dropout", "activation",
                "layer_norm_epsilon", "normalize_first", "kernel_initializer"):
        assert key in config
    assert TransformerEncoderBlock.from_config(config).get_config() == config
    ids = keras.Input((T,), dtype="int32")
    model = keras.Model(ids, block(TokenAndPositionEmbedding(20, T, DIM)(ids)))
    data = np.array([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]], "int32")
    expected = model.predict(data, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(data, verbose=0), expected,
                               atol=ATOL)


def test_encoder_rejects_too_small_dim():
    with pytest.raises(ValueError, match="num_heads"):
        TransformerEncoderBlock(4, FF)(_rand(1, 3, 2))


# --------------------------------------------------------------------------
# TransformerDecoderBlock


def _decoder_pair(cross, normalize_first=False):
    x, e = _rand(B, T, DIM), _rand(B, S, DIM, seed=1)
    kw = dict(normalize_first=normalize_first)
    ours = TransformerDecoderBlock(HEADS, FF, **kw)
    theirs = keras_hub.layers.TransformerDecoder(FF, HEADS, **kw)
    if cross:
        ours(x, e)
        theirs(x, e)
    else:
        ours(x)
        theirs(x)
    _randomize(theirs)
    _copy_weights(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("normalize_first", [False, True])
@pytest.mark.parametrize("cross", [False, True])
def test_decoder_matches_keras_hub(cross, normalize_first):
    ours, theirs = _decoder_pair(cross, normalize_first)
    x, e = _rand(B, T, DIM, seed=2), _rand(B, S, DIM, seed=3)
    enc = (e,) if cross else ()
    np.testing.assert_allclose(ours(x, *enc), theirs(x, *enc), atol=ATOL)
    np.testing.assert_allclose(
        ours(x, *enc, use_causal_mask=False),
        theirs(x, *enc, use_causal_mask=False),
        atol=ATOL,
    )
    kwargs = dict(decoder_padding_mask=_padding(B, T, [5, 4]))
    if cross:
        kwargs.update(encoder_padding_mask=_padding(B, S, [7, 3]))
    np.testing.assert_allclose(
        ours(x, *enc, **kwargs), theirs(x, *enc, **kwargs), atol=ATOL
    )


def test_decoder_cached_decoding_matches_keras_hub():
    ours, theirs = _decoder_pair(cross=True)
    x, e = _rand(B, T, DIM, seed=2), _rand(B, S, DIM, seed=3)
    zeros = np.zeros((B, 2, T, HEADS, HEAD_DIM), "float32")
    cross_cache = ours.compute_cross_attention_cache(e)
    a_self, b_self = zeros, zeros
    b_cross = np.zeros((B, 2, S, HEADS, HEAD_DIM), "float32")
    for t in range(T):
        step = x[:, t : t + 1]
        a, a_self, _ = ours(
            step, e, self_attention_cache=a_self,
            self_attention_cache_update_index=t,
            cross_attention_cache=cross_cache,
        )
        b, b_self, b_cross = theirs(
            step, e, self_attention_cache=b_self,
            self_attention_cache_update_index=t,
            cross_attention_cache=b_cross,
            cross_attention_cache_update_index=0 if t == 0 else None,
        )
        np.testing.assert_allclose(a, b, atol=ATOL)
        np.testing.assert_allclose(a_self, b_self, atol=ATOL)
    np.testing.assert_allclose(cross_cache, b_cross, atol=ATOL)


@pytest.mark.parametrize("cross", [False, True])
def test_decoder_cache_equals_full_recompute(cross):
    block = TransformerDecoderBlock(HEADS, FF, normalize_first=cross)
    x, e = _rand(B, T, DIM), _rand(B, S, DIM, seed=1)
    enc = (e,) if cross else ()
    enc_mask = _padding(B, S, [7, 4])
    kw = dict(encoder_padding_mask=enc_mask) if cross else {}
    self_cache = np.zeros((B, 2, T, HEADS, HEAD_DIM), "float32")
    cross_cache = None
    for t in range(T):
        # Full recomputation with a causal mask over the first t+1 tokens.
        full = block(x[:, : t + 1], *enc, **kw)
        outputs = block(
            x[:, t : t + 1], *enc, self_attention_cache=self_cache,
            self_attention_cache_update_index=t,
            cross_attention_cache=cross_cache, **kw,
        )
        if cross:
            out, self_cache, cross_cache = outputs
            assert cross_cache.shape == (B, 2, S, HEADS, HEAD_DIM)
        else:
            out, self_cache = outputs
        np.testing.assert_allclose(out, full[:, t : t + 1], atol=ATOL)


def test_decoder_causal_future_tokens_do_not_matter():
    block = TransformerDecoderBlock(HEADS, FF)
    x, e = _rand(B, T, DIM), _rand(B, S, DIM, seed=1)
    out = np.asarray(block(x, e))
    for t in range(T - 1):
        x2 = x.copy()
        x2[:, t + 1 :] = _rand(B, T - t - 1, DIM, seed=20 + t)
        out2 = np.asarray(block(x2, e))
        np.testing.assert_allclose(out2[:, : t + 1], out[:, : t + 1], atol=ATOL)


def test_decoder_encoder_padding_is_inert():
    block = TransformerDecoderBlock(HEADS, FF)
    x, e = _rand(B, T, DIM), _rand(B, S, DIM, seed=1)
    enc_mask = _padding(B, S, [7, 4])
    out = block(x, e, encoder_padding_mask=enc_mask)
    e2 = e.copy()
    e2[1, 4:] = 10 * _rand(3, DIM, seed=4)
    np.testing.assert_allclose(
        block(x, e2, encoder_padding_mask=enc_mask), out, atol=ATOL
    )


def test_decoder_return_attention_scores():
    block = TransformerDecoderBlock(HEADS, FF)
    x, e = _rand(B, T, DIM), _rand(B, S, DIM, seed=1)
    out, scores = block(x, e, return_attention_scores=True)
    np.testing.assert_allclose(out, block(x, e), atol=ATOL)
    assert scores["self_attention"].shape == (B, HEADS, T, T)
    assert scores["cross_attention"].shape == (B, HEADS, T, S)
    # Causal: weights above the diagonal are exactly 0.
    upper = np.triu(np.ones((T, T), bool), k=1)
    assert np.all(np.asarray(scores["self_attention"])[:, :, upper] == 0)


def test_decoder_call_errors():
    block = TransformerDecoderBlock(HEADS, FF)
    x, e = _rand(B, T, DIM), _rand(B, S, DIM, seed=1)
    block(x)
    with pytest.raises(ValueError, match="without cross-attention"):
        block(x, e)
    block2 = TransformerDecoderBlock(HEADS, FF)
    block2(x, e)
    with pytest.raises(ValueError, match="encoder_sequence"):
        block2(x)


@pytest.mark.parametrize("cross", [False, True])
def test_decoder_config_and_saving(tmp_path, cross):
    block = TransformerDecoderBlock(
        HEADS, FF, dropout=0.1, activation="gelu", layer_norm_epsilon=1e-6,
        normalize_first=True, kernel_initializer="he_normal",
    )
    config = block.get_config()
    for key in ("num_heads", "intermediate_dim", "dropout", "activation",
                "layer_norm_epsilon", "normalize_first", "kernel_initializer"):
        assert key in config
    assert TransformerDecoderBlock.from_config(config).get_config() == config
    ids = keras.Input((T,), dtype="int32")
    x = TokenAndPositionEmbedding(20, T, DIM)(ids)
    inputs = [ids]
    if cross:
        enc = keras.Input((S, DIM))
        inputs.append(enc)
        out = block(x, enc)
    else:
        out = block(x)
    model = keras.Model(inputs, out)
    data = [np.array([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]], "int32")]
    if cross:
        data.append(_rand(B, S, DIM))
    expected = model.predict(data, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(data, verbose=0), expected,
                               atol=ATOL)
    assert len(loaded.weights) == len(model.weights)
