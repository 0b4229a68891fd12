"""Text classifiers: UTF-8 strings in, class probabilities and labels out."""

from __future__ import annotations

import numpy as np

from zoo.serving import SERVINGS, Serving


@SERVINGS.register("text")
class TextServing(Serving):
    """Raw strings -> sentiment.

    Signature `serving_default(text: tf.string (batch,))` returns
    `probability float32 (batch,)` (of the last class, "pos" for IMDB),
    `probabilities float32 (batch, K)`, `label tf.string (batch,)`; the
    `AttentionTextServing` recipe (linked by imdb_bilstm_attention's spec)
    also returns `tokens tf.string (batch, sequence_length)` (the vocabulary
    entries the model read: "[UNK]" for an unknown word, "" after the end) and
    `attention float32 (batch, sequence_length)` (its attention-pooling weight
    on each token: 0 after the end, each row sums to 1, all 0 for an empty
    review).  Both are padded to `sequence_length`, so a review's answer is
    the same whatever it is batched with.
    A second signature `serve_tokens(tokens: int32 (batch, sequence_length))`
    takes token ids (used for TensorFlow Lite).  Standardisation and
    vectorisation (the run's fitted `TextVectorizer`) run inside the graph;
    a review longer than the vectorizer's `sequence_length` tokens keeps its
    head and tail (see `applications.text.data`); an empty or whitespace-only string
    is all padding and gets the model's output for an empty review (its
    bias), a defined probability rather than an error.
    """

    raw_inputs = {"text": {"dtype": "string", "shape": [None], "description": "UTF-8 reviews, one per item"}}

    #: also output the attention-pooling weights over the tokens (`AttentionTextServing`)
    explains = False

    def __init__(self, model, spec, info, preprocessor=None, options=None):
        super().__init__(model, spec, info, preprocessor, options)
        self.class_names = list(info.get("class_names") or ["neg", "pos"])
        self.attention = None
        if model is not None and self.explains:
            from applications.text.models import logits_and_attention  # models.py imports this module

            self.attention = logits_and_attention(model)  # tokens -> (logits, weights), one pass
            self.vocabulary = list(preprocessor.vocabulary)  # read eagerly: id 0 is "", 1 is "[UNK]"

    def trackables(self):
        return self.preprocessor.resources()  # the preprocessor's declared interface

    def serve(self, text):
        import tensorflow as tf

        tokens = self.preprocessor(text)  # (batch, longest review <= sequence_length); padding is masked
        if self.attention is not None:
            logits, weights = self.attention(tokens)
        else:
            logits = self.model(tokens, training=False)
        probs = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        class_id = tf.argmax(probs, axis=-1)
        out = {"probability": probs[:, -1], "probabilities": probs,
               "label": tf.gather(tf.constant(self.class_names), class_id)}
        if self.attention is not None:
            length = self.preprocessor.sequence_length
            pad = [[0, 0], [0, length - tf.shape(tokens)[1]]]
            words = tf.gather(tf.constant(self.vocabulary), tokens)
            out["tokens"] = tf.ensure_shape(tf.pad(words, pad, constant_values=""), [None, length])
            out["attention"] = tf.ensure_shape(tf.pad(tf.cast(weights, tf.float32), pad), [None, length])
        return out

    tflite_endpoint = "serve_tokens"

    def extra_endpoints(self):
        import tensorflow as tf

        def probabilities(tokens):
            return {"probabilities": tf.nn.softmax(tf.cast(self.model(tokens, training=False), tf.float32), axis=-1)}

        return {"serve_tokens": (probabilities, [tf.TensorSpec([None, self.preprocessor.sequence_length], tf.int32, name="tokens")])}

    def tensor_samples(self, n):
        rng = np.random.default_rng(0)
        length = self.preprocessor.sequence_length
        ids = rng.integers(2, len(self.preprocessor.vocabulary), (n, length)).astype(np.int32)
        ids[np.arange(length)[None, :] >= rng.integers(1, length + 1, (n, 1))] = 0  # varied lengths, post-padded
        return ids

    def tensor_inputs(self, raw):
        """`{"text": (N,)}` -> int32 token ids `(N, sequence_length)`, 0-padded, as `serve` tokenises."""
        import tensorflow as tf

        return self.preprocessor(tf.constant(list(raw["text"])), pad=True).numpy()

    def samples(self):
        return {"text": np.array([b"A wonderful, moving film.<br /><br />Loved it!", b"Dull and far too long; I left early.",
                                  b"", "Caf\u00e9 scenes \u2014 tr\u00e8s bien \U0001f600".encode("utf-8")], dtype=object)}

    reads_files = False

    def read_inputs(self, items):
        self.check_text(items, "A wonderful film.")
        return {"text": np.array([str(i).encode("utf-8") for i in items], dtype=object)}

    def rows(self, items, outputs, top_k):
        return [{"input": str(item)[:60], "label": outputs["label"][i].decode(),
                 "probability_" + self.class_names[-1]: float(outputs["probability"][i])}
                for i, item in enumerate(items)]


@SERVINGS.register("text_attention")
class AttentionTextServing(TextServing):
    """`TextServing` plus `tokens` and `attention` outputs: what an attention-pooling classifier read, and where it looked.

    For models with an "attention_pool" layer (imdb_bilstm_attention); the
    outputs are described in `TextServing`.
    """

    explains = True
