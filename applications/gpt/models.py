"""IMDB GPT: a decoder-only Transformer language model, and the classifier fine-tuned from it.

`GPTLanguageModel` takes int32 token ids `(B, T)` (0 = padding, sequences
start with `[START]` = 2) and returns float32 next-token logits `(B, T, V)`.
Causal self-attention only: the shared `TransformerDecoderBlock` built
without cross-attention, pre-norm, a final layer norm; the shared
`TokenAndPositionEmbedding` (learned positions); the output projection is the
token embedding matrix transposed plus a bias (tied).  `call_with_cache`
runs a step on the blocks' key/value cache (a fixed `max_length` buffer,
the translator's mechanism); `applications.gpt.task.generate` drives
keras-hub's samplers with it.

`GPTClassifier` is the same backbone (as a sub-model, so a trained
`imdb_gpt` run's weights load into it with `init_from`) plus a head on
attention pooling over all tokens (`pooling="attention"`, the shared
`AttentionPooling`; the spec's default, measured better) or on the last
token's state (`pooling="last"`, GPT-1's choice);
`lm_weight > 0` adds the language-model loss on the same reviews as an
auxiliary loss while fine-tuning (GPT-1, section 3.2).

References:
    - Radford et al., "Improving Language Understanding by Generative Pre-Training" (2018).
    - Dai & Le, "Semi-supervised Sequence Learning" (2015).
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.layers import AttentionPooling, TokenAndPositionEmbedding, TransformerDecoderBlock
from zoo.layers.attention import set_keras_mask
from applications.gpt.data import GPTTokenizer, imdb_lm, imdb_wordpiece
from applications.gpt.serving import GenerationServing
from applications.gpt.task import LANGUAGE_MODEL
from applications.text.serving import TextServing
from zoo.registry import register_model
from zoo.tasks.classification import CLASSIFICATION

__all__ = ["GPTLanguageModel", "GPTClassifier", "imdb_gpt", "imdb_gpt_classifier"]

PAD_ID = 0


@keras.saving.register_keras_serializable(package="zoo")
class GPTLanguageModel(keras.Model):
    """Decoder-only Transformer language model with a key/value cache.

    Args:
        vocabulary_size: token ids are in [0, vocabulary_size).
        max_length: longest sequence (learned positions; the cache length).
        embedding_dim: model width.
        num_layers: causal self-attention blocks.
        num_heads: attention heads.
        intermediate_dim: feed-forward hidden size.
        dropout: dropout in the blocks and after the embedding.

    Call arguments:
        tokens: int32 `(B, T)`, T <= max_length, 0-padded on the right.
        training: bool, dropout on.

    Returns:
        float32 logits `(B, T, vocabulary_size)`: position t predicts token t + 1
        from tokens 0..t only (tested: changing a later token changes no earlier logit).

    Example:
        >>> lm = GPTLanguageModel(vocabulary_size=100, max_length=16, embedding_dim=32, num_layers=1,
        ...                       num_heads=2, intermediate_dim=64)
        >>> lm(np.array([[2, 17, 40, 0]])).shape
        (1, 4, 100)
    """

    def __init__(self, vocabulary_size=8000, max_length=256, embedding_dim=256, num_layers=4, num_heads=4,
                 intermediate_dim=1024, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.max_length = int(max_length)
        self.embedding_dim = int(embedding_dim)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.embedding = TokenAndPositionEmbedding(
            self.vocabulary_size, self.max_length, self.embedding_dim, position_encoding="learned",
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02), name="embedding")
        self.embedding_dropout = keras.layers.Dropout(self.dropout, name="embedding_dropout")
        self.blocks = [TransformerDecoderBlock(self.num_heads, self.intermediate_dim, dropout=self.dropout,
                                               activation="gelu", normalize_first=True, name=f"block{i + 1}")
                       for i in range(self.num_layers)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")

    @property
    def head_dim(self) -> int:
        return self.embedding_dim // self.num_heads

    def build(self, input_shape=None):
        if self.built:
            return
        d = self.embedding_dim
        self.embedding.build((None, None))
        for b in self.blocks:
            b.build((None, None, d))
        self.final_norm.build((None, None, d))
        self.output_bias = self.add_weight(name="output_bias", shape=(self.vocabulary_size,), initializer="zeros")
        self.built = True

    def hidden_states(self, tokens, training=None):
        """int32 `(B, T)` -> final-norm states `(B, T, embedding_dim)` (causal; padding is masked)."""
        mask = ops.not_equal(tokens, PAD_ID)
        x = self.embedding_dropout(self.embedding(tokens), training=training)
        for b in self.blocks:
            x = b(x, decoder_padding_mask=mask, training=training)
        x = self.final_norm(x)
        set_keras_mask(x, None)
        return x

    def logits(self, states):
        """States `(B, T, dim)` -> float32 logits `(B, T, V)` through the tied embedding."""
        table = ops.cast(self.embedding.token_embedding.embeddings, states.dtype)
        return ops.cast(ops.einsum("btd,vd->btv", states, table) + ops.cast(self.output_bias, states.dtype), "float32")

    def call(self, tokens, training=None):
        return self.logits(self.hidden_states(tokens, training=training))

    # -- cached decoding
    def init_cache(self, batch_size, length=None, dtype="float32"):
        """Zero key/value caches: a tuple of `(B, 2, length, heads, head_dim)`, one per block.

        `length` defaults to `max_length` (it must not exceed it).
        """
        length = self.max_length if length is None else length
        zeros = ops.zeros((batch_size, 2, length, self.num_heads, self.head_dim), dtype=dtype)
        return tuple(zeros for _ in self.blocks)

    def call_with_cache(self, tokens, cache, index):
        """Run `tokens` at positions `index..index+T-1`, reading and writing the key/value cache.

        Args:
            tokens: int32 `(B, T)` (T = 1 while generating; the whole buffer to prefill).
            cache: from `init_cache` or the previous call.
            index: scalar int, the position of `tokens[:, 0]`.

        Returns:
            (logits float32 `(B, T, V)`, states `(B, T, dim)`, updated cache).
        """
        x = self.embedding(tokens, start_index=index)
        new = []
        for b, c in zip(self.blocks, cache):
            x, c = b(x, decoder_padding_mask=ops.ones_like(tokens, dtype="bool"), self_attention_cache=c,
                     self_attention_cache_update_index=index)
            new.append(c)
        x = self.final_norm(x)
        set_keras_mask(x, None)
        return self.logits(x), x, tuple(new)

    def load_pretrained(self, source) -> None:
        """Start from another `GPTLanguageModel` (or a `GPTClassifier`'s backbone): copy its weights.

        Raises:
            ValueError: the architectures differ (names each mismatch).
        """
        source = getattr(source, "backbone", source)
        if not isinstance(source, GPTLanguageModel):
            raise ValueError(f"init_from needs an imdb_gpt run (a GPTLanguageModel), got a {type(source).__name__}")
        mine, theirs = self.get_config(), source.get_config()
        keys = ("vocabulary_size", "max_length", "embedding_dim", "num_layers", "num_heads", "intermediate_dim")
        diff = [f"{k} {theirs[k]} vs {mine[k]}" for k in keys if theirs[k] != mine[k]]
        if diff:
            raise ValueError("init_from: the pre-trained language model differs from this model ("
                             + ", ".join(diff) + "); pass the same sizes with --set")
        self.set_weights(source.get_weights())

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary_size=self.vocabulary_size, max_length=self.max_length,
                      embedding_dim=self.embedding_dim, num_layers=self.num_layers, num_heads=self.num_heads,
                      intermediate_dim=self.intermediate_dim, dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="zoo")
class GPTClassifier(keras.Model):
    """A `GPTLanguageModel` backbone with a classification head (generative pre-training, then fine-tuning).

    Args:
        vocabulary_size, max_length, embedding_dim, num_layers, num_heads,
            intermediate_dim, dropout: the backbone's (see `GPTLanguageModel`).
        num_classes: classes.
        pooling: "last" (the state of the last non-padding token, `[END]`) or
            "attention" (`AttentionPooling` over the non-padding tokens).
        head_dropout: dropout before the output layer.
        lm_weight: weight of the auxiliary language-model loss (masked token
            cross-entropy of the backbone on the same reviews) added while
            training; 0 turns it off.

    Call arguments:
        tokens: int32 `(B, T)` 0-padded `[START] review [END]` ids.
        training: bool.

    Returns:
        float32 logits `(B, num_classes)`.
    """

    def __init__(self, vocabulary_size=8000, max_length=256, embedding_dim=256, num_layers=4, num_heads=4,
                 intermediate_dim=1024, dropout=0.1, num_classes=2, pooling="attention", head_dropout=0.1,
                 lm_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        if pooling not in ("last", "attention"):
            raise ValueError(f"pooling must be 'last' or 'attention', got {pooling!r}")
        self.backbone = GPTLanguageModel(vocabulary_size, max_length, embedding_dim, num_layers, num_heads,
                                         intermediate_dim, dropout, name="backbone")
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.head_dropout = float(head_dropout)
        self.lm_weight = float(lm_weight)
        self.pool = AttentionPooling(name="attention_pooling") if pooling == "attention" else None
        self.head_dropout_layer = keras.layers.Dropout(self.head_dropout, name="head_dropout")
        self.head = keras.layers.Dense(self.num_classes, name="head")
        if self.lm_weight:
            from zoo.losses import SparseCategoricalCrossentropy

            self._lm_loss = SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)

    def build(self, input_shape=None):
        if self.built:
            return
        d = self.backbone.embedding_dim
        self.backbone.build((None, None))
        if not self.lm_weight:  # the language-model head is unused: no "gradients do not exist" warning
            self.backbone.output_bias.trainable = False
        if self.pool is not None:
            self.pool.build((None, None, d))
        self.head.build((None, d))
        self.built = True

    def call(self, tokens, training=None):
        mask = ops.not_equal(tokens, PAD_ID)
        states = self.backbone.hidden_states(tokens, training=training)
        if self.pool is not None:
            pooled = self.pool(states, mask=mask)
        else:
            last = ops.maximum(ops.sum(ops.cast(mask, "int32"), axis=1) - 1, 0)  # (B,)
            pooled = ops.take_along_axis(states, ops.reshape(last, (-1, 1, 1)), axis=1)[:, 0, :]
        if training and self.lm_weight:
            lm_logits = self.backbone.logits(states[:, :-1])
            self.add_loss(self.lm_weight * self._lm_loss(tokens[:, 1:], lm_logits))
        return ops.cast(self.head(self.head_dropout_layer(pooled, training=training)), "float32")

    def load_pretrained(self, source) -> None:
        """Start from a trained `GPTLanguageModel` (or another classifier's backbone): copy the backbone weights.

        The head keeps its fresh initialisation.  Raises ValueError when the sizes differ.
        """
        self.backbone.load_pretrained(source)

    def get_config(self):
        config = super().get_config()
        b = self.backbone
        config.update(vocabulary_size=b.vocabulary_size, max_length=b.max_length, embedding_dim=b.embedding_dim,
                      num_layers=b.num_layers, num_heads=b.num_heads, intermediate_dim=b.intermediate_dim,
                      dropout=b.dropout, num_classes=self.num_classes, pooling=self.pooling,
                      head_dropout=self.head_dropout, lm_weight=self.lm_weight)
        return config


_BACKBONE = dict(vocabulary_size=8000, max_length=256, embedding_dim=256, num_layers=4, num_heads=4,
                 intermediate_dim=1024)


@register_model(
    modality="text",
    task=LANGUAGE_MODEL,
    dataset=imdb_lm,
    serving=GenerationServing,
    preprocessor=GPTTokenizer,
    inputs={"tokens": {"shape": [None], "dtype": "int32", "padding": 0, "start": 2, "end": 3}},
    train={"epochs": 10, "batch_size": 32, "optimizer": "adamw", "learning_rate": 5e-4, "schedule": "cosine",
           "warmup": 0.05, "weight_decay": 0.01, "clipnorm": 1.0,
           "data": {"vocabulary_size": 8000, "max_length": 256}},
    reference="Radford et al. 2018 (GPT), sized for IMDB",
)
def imdb_gpt(*, vocabulary_size: int = 8000, max_length: int = 256, embedding_dim: int = 256, num_layers: int = 4,
             num_heads: int = 4, intermediate_dim: int = 1024, dropout: float = 0.1):
    """GPT-style language model of IMDB reviews (token cross-entropy / perplexity; generation with samplers).

    `vocabulary_size` and `max_length` must equal the data's (both exact).

    Returns:
        `GPTLanguageModel`: int32 `(B, T)` -> float32 logits `(B, T, vocabulary_size)`.
    """
    model = GPTLanguageModel(vocabulary_size, max_length, embedding_dim, num_layers, num_heads, intermediate_dim,
                             dropout, name="imdb_gpt")
    model(ops.ones((1, 2), "int32"))
    return model


@register_model(
    modality="text",
    task=CLASSIFICATION,
    dataset=imdb_wordpiece,
    serving=TextServing,
    preprocessor=GPTTokenizer,  # the imdb_gpt run's with --set init_from=RUN; else learned on IMDB train
    inputs={"tokens": {"shape": [None], "dtype": "int32", "padding": 0, "start": 2, "end": 3}},
    train={"epochs": 3, "batch_size": 32, "optimizer": "adamw", "learning_rate": 1e-4, "schedule": "cosine",
           "warmup": 0.1, "weight_decay": 0.01, "clipnorm": 1.0, "init_from": None,
           "data": {"vocabulary_size": 8000, "max_length": 256}},
    reference="Radford et al. 2018 (GPT-1 fine-tuning); Dai & Le 2015",
)
def imdb_gpt_classifier(*, vocabulary_size: int = 8000, max_length: int = 256, embedding_dim: int = 256,
                        num_layers: int = 4, num_heads: int = 4, intermediate_dim: int = 1024, dropout: float = 0.1,
                        pooling: str = "attention", head_dropout: float = 0.1, lm_weight: float = 0.0):
    """IMDB sentiment from the imdb_gpt backbone; `--set init_from=runs/imdb_gpt` starts from a trained LM.

    Without `init_from` the same architecture trains from scratch (the benchmark's baseline).
    Pooling defaults to "attention": fine-tuned from the same LM for the same two epochs it reached
    76.0% where "last" reached 64.0% (bench/RESULTS.md).

    Returns:
        `GPTClassifier`: int32 `(B, T)` -> float32 logits `(B, 2)`.
    """
    model = GPTClassifier(vocabulary_size, max_length, embedding_dim, num_layers, num_heads, intermediate_dim,
                          dropout, num_classes=2, pooling=pooling, head_dropout=head_dropout, lm_weight=lm_weight,
                          name="imdb_gpt_classifier")
    model(ops.ones((1, 2), "int32"))
    return model
