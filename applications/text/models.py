"""IMDB sentiment classifiers: a plain LSTM, a BiLSTM with attention pooling, a Transformer.

All three take token ids, int32 `(batch, T)` with 0 as padding (masked all
the way through), from `applications.text.data.TextVectorizer`, and return float32
logits `(batch, 2)` for ("neg", "pos").  The vectorizer is saved with each
run and joined to the model at export, so exports take raw strings.

References:
    - Keras example "Bidirectional LSTM on IMDB"; Hochreiter & Schmidhuber (1997).
    - Yang et al., "Hierarchical Attention Networks" (2016), attention pooling.
    - Vaswani et al., "Attention Is All You Need" (2017).
"""

from __future__ import annotations

import keras
from keras import layers

from zoo.layers import AttentionPooling, TokenAndPositionEmbedding, TransformerEncoderBlock
from applications.text.data import TextVectorizer, imdb
from applications.text.serving import AttentionTextServing, TextServing
from zoo.registry import register_model
from zoo.tasks.classification import CLASSIFICATION

NUM_CLASSES = 2

#: models whose exports also output the per-token attention weights (and the tokens), for the demo page
_COMMON = dict(
    modality="text",
    task=CLASSIFICATION,
    dataset=imdb,
    serving=TextServing,
    preprocessor=TextVectorizer,
    inputs={"tokens": {"shape": [None], "dtype": "int32", "padding": 0}},
)


def _tokens():
    return keras.Input((None,), dtype="int32", name="tokens")


def _embed(tokens, vocabulary_size, embedding_dim):
    return layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True, name="embedding")(tokens)


def _head(tokens, x, dropout, name):
    """Dropout + float32 logits `(batch, 2)`; returns the model."""
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(tokens, layers.Dense(NUM_CLASSES, dtype="float32", name="logits")(x), name=name)


@register_model(
    **_COMMON,
    train={"epochs": 3, "batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3, "schedule": "constant",
           "clipnorm": 1.0, "data": {"max_tokens": 20000, "sequence_length": 256, "head_tokens": None}},
    reference="the classic Keras LSTM sentiment classifier (Embedding + LSTM(128) + Dense)",
)
def imdb_lstm(*, vocabulary_size: int = 20000, embedding_dim: int = 128, units: int = 128, dropout: float = 0.0):
    """Embedding + LSTM(128) + Dense: the classic LSTM sentiment classifier.

    Args:
        vocabulary_size: token ids are in [0, vocabulary_size).
        embedding_dim: embedding width.
        units: LSTM units.
        dropout: dropout before the classifier.

    Returns:
        keras.Model: int32 `(batch, T)` -> logits `(batch, 2)`.
    """
    tokens = _tokens()
    x = layers.LSTM(units, name="lstm")(_embed(tokens, vocabulary_size, embedding_dim))
    return _head(tokens, x, dropout, "imdb_lstm")


@register_model(
    **{**_COMMON, "serving": AttentionTextServing},  # also outputs the attention over the words
    train={"epochs": 3, "batch_size": 64, "optimizer": "adamw", "learning_rate": 2e-3, "schedule": "cosine",
           "warmup": 0.05, "weight_decay": 1e-4, "clipnorm": 1.0,
           "data": {"max_tokens": 20000, "sequence_length": 256, "head_tokens": None}},
    reference="BiLSTM with attention pooling (Yang et al. 2016)",
)
def imdb_bilstm_attention(*, vocabulary_size: int = 20000, embedding_dim: int = 128, units: int = 64,
                          dropout: float = 0.4, embedding_dropout: float = 0.2):
    """Bidirectional LSTM + the shared `AttentionPooling` + dropout.

    Args:
        vocabulary_size: token ids are in [0, vocabulary_size).
        embedding_dim: embedding width.
        units: LSTM units per direction.
        dropout: dropout before the classifier.
        embedding_dropout: dropout of whole embedding channels.

    Returns:
        keras.Model: int32 `(batch, T)` -> logits `(batch, 2)`; its layer
        "attention_pool" gives the per-token weights (see `attention_weights`).
    """
    tokens = _tokens()
    x = _embed(tokens, vocabulary_size, embedding_dim)
    if embedding_dropout:
        x = layers.SpatialDropout1D(embedding_dropout, name="embedding_dropout")(x)
    x = layers.Bidirectional(layers.LSTM(units, return_sequences=True), name="bilstm")(x)
    x = AttentionPooling(name="attention_pool")(x)
    return _head(tokens, x, dropout, "imdb_bilstm_attention")


@register_model(
    **_COMMON,
    train={"epochs": 3, "batch_size": 64, "optimizer": "adamw", "learning_rate": 1e-3, "schedule": "cosine",
           "warmup": 0.1, "weight_decay": 0.01, "data": {"max_tokens": 20000, "sequence_length": 256, "head_tokens": None}},
    reference="Transformer encoder (Vaswani et al. 2017) with learned positions and attention pooling",
)
def imdb_transformer(*, vocabulary_size: int = 20000, sequence_length: int = 256, embedding_dim: int = 64,
                     num_heads: int = 2, intermediate_dim: int = 128, num_layers: int = 2, dropout: float = 0.1):
    """The shared `TokenAndPositionEmbedding` + `TransformerEncoderBlock`s + attention pooling.

    Args:
        vocabulary_size: token ids are in [0, vocabulary_size).
        sequence_length: longest input (learned positions).
        embedding_dim: model width.
        num_heads, intermediate_dim, num_layers: encoder size.
        dropout: dropout in the blocks and before the classifier.

    Returns:
        keras.Model: int32 `(batch, T <= sequence_length)` -> logits `(batch, 2)`.
    """
    tokens = _tokens()
    x = TokenAndPositionEmbedding(vocabulary_size, sequence_length, embedding_dim, name="embedding")(tokens)
    for i in range(num_layers):
        x = TransformerEncoderBlock(num_heads, intermediate_dim, dropout=dropout, name=f"block{i + 1}")(x)
    x = AttentionPooling(name="attention_pool")(x)
    return _head(tokens, x, dropout, "imdb_transformer")


def attention_weights(model: keras.Model, tokens):
    """Per-token attention-pooling weights of `model` on int32 tokens `(batch, T)` -> float `(batch, T)`.

    Padded positions (token 0) get weight 0; each row sums to 1.
    """
    from keras import ops

    pool = model.get_layer("attention_pool")
    features_in = pool.input[0] if isinstance(pool.input, (list, tuple)) else pool.input
    features = keras.Model(model.inputs, features_in)([tokens], training=False)
    _, weights = pool(features, mask=ops.not_equal(tokens, 0), return_attention_scores=True)
    return ops.convert_to_numpy(weights)


def logits_and_attention(model: keras.Model):
    """An attention-pooling classifier's inference pass, returning its pooling weights as well.

    Returns:
        A function: int32 tokens `(batch, T)` (0: padding) -> (float32 logits
        `(batch, 2)`, float32 weights `(batch, T)`), one pass through `model`'s
        layers: its dropouts are inference no-ops, so the logits are
        `model(tokens, training=False)`'s; padded positions get weight 0 and
        each row of weights sums to 1 (a fully padded row: all 0).
    """
    from keras import ops

    pool = model.get_layer("attention_pool")
    features_in = pool.input[0] if isinstance(pool.input, (list, tuple)) else pool.input
    features = keras.Model(model.inputs, features_in)  # the same layers (and weights) up to the pooling
    dense = model.get_layer("logits")

    def run(tokens):
        pooled, weights = pool(features(tokens, training=False), mask=ops.not_equal(tokens, 0),
                               return_attention_scores=True, training=False)
        return ops.cast(dense(pooled), "float32"), ops.cast(weights, "float32")

    return run
