"""The IMDB family: masking, saving, attention weights, and that each model learns."""

import keras
import numpy as np
import pytest

import zoo
from applications.text.models import attention_weights
from zoo.training import fit

TINY = {
    "imdb_lstm": {"vocabulary_size": 300, "embedding_dim": 16, "units": 16},
    "imdb_bilstm_attention": {"vocabulary_size": 300, "embedding_dim": 16, "units": 12, "dropout": 0.1,
                              "embedding_dropout": 0.0},
    "imdb_transformer": {"vocabulary_size": 300, "sequence_length": 64, "embedding_dim": 16, "num_heads": 2,
                         "intermediate_dim": 32, "num_layers": 1},
}
LEARNING_RATE = {"imdb_lstm": 5e-3, "imdb_bilstm_attention": 1e-2, "imdb_transformer": 1e-2}


@pytest.mark.parametrize("name", sorted(TINY))
def test_padded_batch_gives_the_same_prediction_as_the_unpadded_example(name):
    model = zoo.create_model(name, **TINY[name])
    short = np.array([[5, 17, 42, 8]], np.int32)
    batch = np.zeros((2, 30), np.int32)
    batch[0, :4] = short[0]
    batch[1] = np.arange(1, 31)
    alone = model.predict(short, verbose=0)[0]
    padded = model.predict(batch, verbose=0)[0]
    np.testing.assert_allclose(padded, alone, atol=1e-5)


@pytest.mark.parametrize("name", sorted(TINY))
def test_round_trips_keras_saving(name, tmp_path):
    model = zoo.create_model(name, **TINY[name])
    x = np.array([[3, 4, 5, 0], [6, 7, 8, 9]], np.int32)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-6)


def test_attention_weights_ignore_padding():
    model = zoo.create_model("imdb_bilstm_attention", **TINY["imdb_bilstm_attention"])
    w = attention_weights(model, np.array([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5]], np.int32))
    assert w.shape == (2, 5) and np.allclose(w.sum(1), 1, atol=1e-5) and (w[0, 3:] == 0).all()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("imdb_transformer", "imdb_bilstm_attention") else n
                                  for n in sorted(TINY)])  # imdb_lstm stays in the default run; the others: `make slow`
def test_each_model_learns_on_a_small_slice(name, tmp_path, tiny_imdb):
    result = fit(name, run_dir=tmp_path / "run", data_dir=tiny_imdb, epochs=3, batch_size=8, verbose=0,
                 overrides={**TINY[name], "learning_rate": LEARNING_RATE[name], "warmup": 0.0,
                            "data": {"max_tokens": 300, "sequence_length": 64}})
    loss = result.history["loss"]
    assert loss[-1] < 0.8 * loss[0], loss
    assert result.metrics["test"]["accuracy"] >= 0.75, result.metrics["test"]["accuracy"]  # 40 held-out reviews


def test_the_fitted_vocabulary_sizes_the_embedding(tmp_path, tiny_imdb):
    """One setting: data.max_tokens decides the vocabulary and so the embedding (no ids it cannot hold)."""
    import json

    import keras
    import pytest

    small = {"embedding_dim": 8, "units": 8, "data": {"max_tokens": 60, "sequence_length": 24}}
    result = fit("imdb_lstm", run_dir=tmp_path / "r", data_dir=tiny_imdb, epochs=1, batch_size=20, verbose=0,
                 overrides=small)
    embedding = result.model.get_layer("embedding")
    assert embedding.input_dim == result.data.info["vocabulary_size"] <= 60
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["fitted_args"] == {"vocabulary_size": embedding.input_dim}
    with pytest.raises(ValueError, match="vocabulary_size=5 is smaller than the data needs"):
        fit("imdb_lstm", run_dir=tmp_path / "r2", data_dir=tiny_imdb, epochs=1, batch_size=20, verbose=0,
            overrides={**small, "vocabulary_size": 5})
    assert not (tmp_path / "r2" / "config.json").exists()
    assert isinstance(embedding, keras.layers.Embedding)
