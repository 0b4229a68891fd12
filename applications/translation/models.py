"""Multi30k English -> German: an encoder-decoder Transformer (Vaswani et al., 2017).

The model takes `{"encoder_tokens": int32 (B, S), "decoder_tokens": int32 (B, T)}`
(0 = padding; decoder tokens start with `[START]` = 2) and returns float32
logits `(B, T, target_vocabulary_size)` for teacher forcing.  Besides `call`
it exposes the pieces step-by-step decoding needs (`encode`,
`init_cache`, `decode_step`), which reuse each decoder block's
self-attention key/value cache and a once-computed cross-attention cache;
`applications.translation.task` builds greedy and beam search on them.

Built from the shared layers: `TokenAndPositionEmbedding` with the
`SinusoidalPositionEncoding`, `TransformerEncoderBlock`,
`TransformerDecoderBlock` (whose attention is the shared
`MultiHeadAttention`).  Pre-norm blocks with a final layer norm; optional
tied decoder input/output embeddings.

References:
    - Vaswani et al., "Attention Is All You Need" (2017).
    - Elliott et al., "Multi30K" (2016); WMT16 multimodal task 1.
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.layers import TokenAndPositionEmbedding, TransformerDecoderBlock, TransformerEncoderBlock
from zoo.layers.attention import set_keras_mask
from applications.translation.data import TranslationTokenizers, multi30k
from applications.translation.serving import TranslationServing
from applications.translation.task import TRANSLATION
from zoo.registry import register_model

__all__ = ["TransformerTranslator", "multi30k_transformer"]


@keras.saving.register_keras_serializable(package="zoo")
class TransformerTranslator(keras.Model):
    """Encoder-decoder Transformer with cached step-by-step decoding.

    Args:
        source_vocabulary_size: English ids are in [0, source_vocabulary_size).
        target_vocabulary_size: German ids are in [0, target_vocabulary_size).
        max_length: longest source and decoder sequence (the decoding cache length).
        embedding_dim: model width.
        num_layers: encoder and decoder blocks (each).
        num_heads: attention heads.
        intermediate_dim: feed-forward hidden size.
        dropout: dropout in the blocks and after the embeddings.
        tie_embeddings: the output projection reuses the decoder's token
            embedding matrix (transposed), plus a bias.

    Call arguments:
        inputs: dict with "encoder_tokens" int32 `(B, S)` and "decoder_tokens" int32 `(B, T)`.
        training: bool, dropout on.

    Returns:
        float32 logits `(B, T, target_vocabulary_size)`.
    """

    def __init__(self, source_vocabulary_size=8000, target_vocabulary_size=8000, max_length=64, embedding_dim=256,
                 num_layers=3, num_heads=4, intermediate_dim=1024, dropout=0.1, tie_embeddings=True, **kwargs):
        super().__init__(**kwargs)
        self.source_vocabulary_size = int(source_vocabulary_size)
        self.target_vocabulary_size = int(target_vocabulary_size)
        self.max_length = int(max_length)
        self.embedding_dim = int(embedding_dim)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.tie_embeddings = bool(tie_embeddings)
        init = keras.initializers.RandomNormal(stddev=self.embedding_dim ** -0.5)
        embed = lambda v, name: TokenAndPositionEmbedding(  # noqa: E731
            v, self.max_length, self.embedding_dim, position_encoding="sinusoidal", scale_embeddings=True,
            embeddings_initializer=init, name=name)
        self.source_embedding = embed(self.source_vocabulary_size, "source_embedding")
        self.target_embedding = embed(self.target_vocabulary_size, "target_embedding")
        self.source_dropout = keras.layers.Dropout(self.dropout, name="source_dropout")
        self.target_dropout = keras.layers.Dropout(self.dropout, name="target_dropout")
        block = dict(num_heads=self.num_heads, intermediate_dim=self.intermediate_dim, dropout=self.dropout,
                     normalize_first=True)
        self.encoder_blocks = [TransformerEncoderBlock(**block, name=f"encoder_block{i + 1}") for i in range(self.num_layers)]
        self.decoder_blocks = [TransformerDecoderBlock(**block, name=f"decoder_block{i + 1}") for i in range(self.num_layers)]
        self.encoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="encoder_norm")
        self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")
        if self.tie_embeddings:
            self.output_projection = None
        else:
            self.output_projection = keras.layers.Dense(self.target_vocabulary_size, name="output_projection")

    @property
    def head_dim(self) -> int:
        return self.embedding_dim // self.num_heads

    def build(self, input_shape=None):
        if self.built:
            return
        d = self.embedding_dim
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        for b in self.encoder_blocks:
            b.build((None, None, d))
        for b in self.decoder_blocks:
            b.build((None, None, d), (None, None, d))
        self.encoder_norm.build((None, None, d))
        self.decoder_norm.build((None, None, d))
        if self.tie_embeddings:
            self.output_bias = self.add_weight(name="output_bias", shape=(self.target_vocabulary_size,),
                                               initializer="zeros")
        else:
            self.output_projection.build((None, None, d))
        self.built = True

    # -- the pieces
    def encode(self, encoder_tokens, training=None):
        """int32 `(B, S)` -> (encoder outputs `(B, S, dim)`, padding mask bool `(B, S)`)."""
        mask = ops.not_equal(encoder_tokens, 0)
        x = self.source_dropout(self.source_embedding(encoder_tokens), training=training)
        for b in self.encoder_blocks:
            x = b(x, padding_mask=mask, training=training)
        x = self.encoder_norm(x)
        set_keras_mask(x, None)  # the mask is returned explicitly
        return x, mask

    def logits(self, x):
        """Decoder states `(B, T, dim)` -> float32 logits `(B, T, V)`."""
        x = self.decoder_norm(x)
        if self.tie_embeddings:
            table = ops.cast(self.target_embedding.token_embedding.embeddings, x.dtype)
            out = ops.einsum("btd,vd->btv", x, table) + ops.cast(self.output_bias, x.dtype)
        else:
            out = self.output_projection(x)
        return ops.cast(out, "float32")

    def decode(self, decoder_tokens, encoder_outputs, encoder_mask, training=None):
        """Teacher forcing: int32 `(B, T)` + encoder outputs -> logits `(B, T, V)` (causal)."""
        mask = ops.not_equal(decoder_tokens, 0)
        x = self.target_dropout(self.target_embedding(decoder_tokens), training=training)
        for b in self.decoder_blocks:
            x = b(x, encoder_outputs, decoder_padding_mask=mask, encoder_padding_mask=encoder_mask, training=training)
        return self.logits(x)

    def call(self, inputs, training=None):
        encoder_outputs, encoder_mask = self.encode(inputs["encoder_tokens"], training=training)
        return self.decode(inputs["decoder_tokens"], encoder_outputs, encoder_mask, training=training)

    # -- cached decoding
    def init_cache(self, encoder_outputs, max_length=None):
        """Empty self-attention caches and the cross-attention caches of every decoder block.

        Args:
            encoder_outputs: `(B, S, dim)`.
            max_length: decoder positions to cache (default `self.max_length`).

        Returns:
            (self caches: tuple of `(B, 2, max_length, heads, head_dim)` zeros,
             cross caches: tuple of `(B, 2, S, heads, head_dim)`), one per block.
        """
        batch = ops.shape(encoder_outputs)[0]
        length = max_length or self.max_length
        zeros = ops.zeros((batch, 2, length, self.num_heads, self.head_dim), dtype=encoder_outputs.dtype)
        return (tuple(zeros for _ in self.decoder_blocks),
                tuple(b.compute_cross_attention_cache(encoder_outputs) for b in self.decoder_blocks))

    def decode_step(self, tokens, index, encoder_outputs, encoder_mask, self_caches, cross_caches):
        """One decoding step with the caches: work proportional to the cache, not a recomputed prefix.

        Args:
            tokens: int32 `(B, 1)`, the token at position `index`.
            index: scalar int, its position (where it is written in the self caches).
            encoder_outputs, encoder_mask: from `encode`.
            self_caches, cross_caches: from `init_cache` / the previous step.

        Returns:
            (logits float32 `(B, V)` for position `index + 1`, updated self caches).
        """
        x = self.target_embedding(tokens, start_index=index)
        new = []
        for b, cache, cross in zip(self.decoder_blocks, self_caches, cross_caches):
            x, cache, _ = b(x, encoder_outputs, decoder_padding_mask=ops.ones_like(tokens, dtype="bool"),
                            encoder_padding_mask=encoder_mask, self_attention_cache=cache,
                            self_attention_cache_update_index=index, cross_attention_cache=cross)
            new.append(cache)
        return self.logits(x)[:, 0, :], tuple(new)

    def get_config(self):
        config = super().get_config()
        config.update(source_vocabulary_size=self.source_vocabulary_size,
                      target_vocabulary_size=self.target_vocabulary_size, max_length=self.max_length,
                      embedding_dim=self.embedding_dim, num_layers=self.num_layers, num_heads=self.num_heads,
                      intermediate_dim=self.intermediate_dim, dropout=self.dropout, tie_embeddings=self.tie_embeddings)
        return config


@register_model(
    modality="translation",
    task=TRANSLATION,
    dataset=multi30k,
    serving=TranslationServing,
    preprocessor=TranslationTokenizers,
    inputs={"encoder_tokens": {"shape": [None], "dtype": "int32", "padding": 0},
            "decoder_tokens": {"shape": [None], "dtype": "int32", "padding": 0, "start": 2, "end": 3}},
    train={"epochs": 20, "batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3, "schedule": "warmup_rsqrt",
           "warmup": 2000, "label_smoothing": 0.1, "clipnorm": 1.0,
           "data": {"vocabulary_size": 8000, "max_length": 64}},
    reference="Vaswani et al. 2017 (Transformer), sized for Multi30k",
)
def multi30k_transformer(*, source_vocabulary_size: int = 8000, target_vocabulary_size: int = 8000,
                         max_length: int = 64, embedding_dim: int = 256, num_layers: int = 3, num_heads: int = 4,
                         intermediate_dim: int = 1024, dropout: float = 0.1, tie_embeddings: bool = True):
    """Encoder-decoder Transformer for Multi30k English -> German (greedy/beam decoding with a KV cache).

    Vocabulary sizes must equal the data's `vocabulary_size` (both are exact).

    Returns:
        `TransformerTranslator`: `{"encoder_tokens", "decoder_tokens"}` int32 -> float32 logits `(B, T, V)`.
    """
    model = TransformerTranslator(source_vocabulary_size, target_vocabulary_size, max_length, embedding_dim,
                                  num_layers, num_heads, intermediate_dim, dropout, tie_embeddings,
                                  name="multi30k_transformer")
    dummy = {"encoder_tokens": ops.ones((1, 2), "int32"), "decoder_tokens": ops.ones((1, 2), "int32")}
    model(dummy)
    return model
