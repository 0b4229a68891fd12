"""Tests for zoo.layers.encoding: position encodings and token embeddings."""

import keras
import keras_hub
import numpy as np
import pytest

from zoo.layers import (
    LearnedPositionEmbedding,
    SinusoidalPositionEncoding,
    TokenAndPositionEmbedding,
)

ATOL = 1e-5
B, T, DIM, VOCAB, MAXLEN = 2, 6, 12, 30, 10


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _ids(seed=0):
    ids = np.random.default_rng(seed).integers(1, VOCAB, size=(B, T))
    ids[1, 4:] = 0
    return ids.astype("int32")


def _save_load(model, tmp_path, data):
    expected = model.predict(data, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(data, verbose=0), expected,
                               atol=ATOL)
    return loaded


# --------------------------------------------------------------------------
# SinusoidalPositionEncoding


@pytest.mark.parametrize("max_wavelength", [10000, 100])
def test_sinusoidal_matches_keras_hub(max_wavelength):
    x = _rand(B, T, DIM)
    ours = SinusoidalPositionEncoding(max_wavelength=max_wavelength)
    theirs = keras_hub.layers.SinePositionEncoding(max_wavelength=max_wavelength)
    out = ours(x)
    assert out.shape == (B, T, DIM)
    np.testing.assert_allclose(out, theirs(x), atol=ATOL)
    np.testing.assert_allclose(
        ours(x[:, :2], start_index=3), theirs(x[:, :2], start_index=3),
        atol=ATOL,
    )
    # Step-by-step equals a slice of the full encoding.
    np.testing.assert_allclose(ours(x[:, :1], start_index=4), out[:, 4:5],
                               atol=ATOL)


def test_sinusoidal_values():
    out = np.asarray(SinusoidalPositionEncoding()(np.zeros((1, 3, 4))))
    p = np.arange(3)[:, None]
    expected = np.stack(
        [np.sin(p[:, 0]), np.cos(p[:, 0]),
         np.sin(p[:, 0] / 100.0), np.cos(p[:, 0] / 100.0)], -1
    )
    np.testing.assert_allclose(out[0], expected, atol=ATOL)


def test_sinusoidal_config_and_saving(tmp_path):
    layer = SinusoidalPositionEncoding(max_wavelength=500)
    config = layer.get_config()
    assert config["max_wavelength"] == 500
    assert SinusoidalPositionEncoding.from_config(config).get_config() == config
    inp = keras.Input((T, DIM))
    model = keras.Model(inp, keras.layers.Add()([inp, layer(inp)]))
    _save_load(model, tmp_path, _rand(B, T, DIM))


# --------------------------------------------------------------------------
# LearnedPositionEmbedding


def test_learned_matches_keras_hub():
    x = _rand(B, T, DIM)
    ours = LearnedPositionEmbedding(MAXLEN)
    theirs = keras_hub.layers.PositionEmbedding(MAXLEN)
    theirs(x)
    ours(x)
    assert ours.position_embeddings.shape == (MAXLEN, DIM)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x), theirs(x), atol=ATOL)
    np.testing.assert_allclose(
        ours(x[:, :2], start_index=5), theirs(x[:, :2], start_index=5),
        atol=ATOL,
    )
    table = np.asarray(ours.position_embeddings)
    np.testing.assert_allclose(ours(x[:, :1], start_index=7)[0, 0], table[7])


def test_learned_too_long_input_raises():
    layer = LearnedPositionEmbedding(4)
    with pytest.raises(ValueError, match="sequence_length=4"):
        layer(_rand(B, 5, DIM))
    layer(_rand(B, 4, DIM))  # fits
    with pytest.raises(ValueError, match="sequence_length=4"):
        layer(_rand(B, 2, DIM), start_index=3)
    with pytest.raises(ValueError, match="sequence_length"):
        layer(keras.Input((5, DIM)))
    with pytest.raises(ValueError, match="None"):
        LearnedPositionEmbedding(None)


def test_learned_config_and_saving(tmp_path):
    layer = LearnedPositionEmbedding(MAXLEN, initializer="he_normal")
    config = layer.get_config()
    assert config["sequence_length"] == MAXLEN
    assert "initializer" in config
    assert LearnedPositionEmbedding.from_config(config).get_config() == config
    inp = keras.Input((T, DIM))
    model = keras.Model(inp, keras.layers.Add()([inp, layer(inp)]))
    _save_load(model, tmp_path, _rand(B, T, DIM))


# --------------------------------------------------------------------------
# TokenAndPositionEmbedding


@pytest.mark.filterwarnings("ignore:.*does not support masking")
@pytest.mark.parametrize("mask_zero", [True, False])
def test_token_and_position_matches_keras_hub(mask_zero):
    ids = _ids()
    ours = TokenAndPositionEmbedding(VOCAB, MAXLEN, DIM, mask_zero=mask_zero)
    theirs = keras_hub.layers.TokenAndPositionEmbedding(
        VOCAB, MAXLEN, DIM, mask_zero=mask_zero
    )
    theirs(ids)
    ours(ids)
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    out = ours(ids)
    np.testing.assert_allclose(out, theirs(ids), atol=ATOL)
    np.testing.assert_allclose(
        ours(ids[:, :2], start_index=3), theirs(ids[:, :2], start_index=3),
        atol=ATOL,
    )
    mask = ours.compute_mask(ids)
    if mask_zero:
        np.testing.assert_array_equal(mask, ids != 0)
        np.testing.assert_array_equal(out._keras_mask, ids != 0)
    else:
        assert mask is None


def test_token_and_position_defaults_match_keras_hub():
    ours = TokenAndPositionEmbedding(VOCAB, MAXLEN, DIM)
    assert ours.mask_zero is True
    assert ours.position_encoding == "learned"
    assert ours.scale_embeddings is False
    assert isinstance(ours.token_embedding, keras.layers.Embedding)
    assert keras.initializers.serialize(ours.embeddings_initializer)[
        "class_name"
    ] == "RandomUniform"


def test_token_and_position_sinusoidal_and_scaling():
    ids = _ids()
    layer = TokenAndPositionEmbedding(
        VOCAB, MAXLEN, DIM, position_encoding="sinusoidal",
        scale_embeddings=True,
    )
    out = layer(ids)
    assert len(layer.weights) == 1  # only the token table
    table = np.asarray(layer.token_embedding.embeddings)
    pos = SinusoidalPositionEncoding()(np.zeros((B, T, DIM), "float32"))
    expected = table[ids] * np.sqrt(DIM) + np.asarray(pos)
    np.testing.assert_allclose(out, expected, atol=ATOL)
    # Step-by-step decoding equals slicing the full result.
    np.testing.assert_allclose(layer(ids[:, 3:4], start_index=3), out[:, 3:4],
                               atol=ATOL)
    # Sinusoidal positions are not limited by sequence_length.
    long_ids = np.ones((1, MAXLEN + 3), "int32")
    assert layer(long_ids).shape == (1, MAXLEN + 3, DIM)


def test_token_and_position_errors():
    with pytest.raises(ValueError, match="position_encoding"):
        TokenAndPositionEmbedding(VOCAB, MAXLEN, DIM, position_encoding="rope")
    layer = TokenAndPositionEmbedding(VOCAB, 4, DIM)
    with pytest.raises(ValueError, match="sequence_length=4"):
        layer(np.ones((1, 5), "int32"))


@pytest.mark.parametrize("position_encoding", ["learned", "sinusoidal"])
def test_token_and_position_config_and_saving(tmp_path, position_encoding):
    layer = TokenAndPositionEmbedding(
        VOCAB, MAXLEN, DIM, position_encoding=position_encoding,
        mask_zero=True, scale_embeddings=True,
        embeddings_initializer="glorot_uniform",
    )
    config = layer.get_config()
    for key in ("vocabulary_size", "sequence_length", "embedding_dim",
                "position_encoding", "mask_zero", "scale_embeddings",
                "embeddings_initializer"):
        assert key in config
    assert TokenAndPositionEmbedding.from_config(config).get_config() == config
    ids = keras.Input((T,), dtype="int32")
    # Pool with the mask, so the saved model depends on it.
    x = layer(ids)
    out = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(ids, out)
    loaded = _save_load(model, tmp_path, _ids())
    assert isinstance(loaded.layers[1], TokenAndPositionEmbedding)
