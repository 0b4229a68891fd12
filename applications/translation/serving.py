"""Translators: English UTF-8 strings in, German strings out."""

from __future__ import annotations

import numpy as np

from zoo.serving import SERVINGS, Serving


@SERVINGS.register("translation")
class TranslationServing(Serving):
    """English strings -> German strings, greedy decoding with the key/value cache inside the graph.

    Signature `serving_default(text: tf.string (batch,))` returns
    `translation tf.string (batch,)` (detokenised, cased) and
    `truncated bool (batch,)` (the source had more than `max_length` pieces
    and was cut to its first `max_length`).  Tokenisation uses core
    TensorFlow ops only (a lookup table; the same ids as the keras-hub
    WordPiece tokenizer used in training), so the SavedModel loads with
    TensorFlow alone.  English is read in the form the training
    sources have (`sentence_case`: text in capitals is lower-cased, the
    first letter made a capital).  An empty or whitespace-only string translates to ""
    (`zoo predict` refuses it); characters never seen in training turn
    their word into `[UNK]`, which the decoder never emits.
    """

    raw_inputs = {"text": {"dtype": "string", "shape": [None], "description": "English UTF-8 sentences, one per item"}}

    def trackables(self):
        return self.preprocessor.resources()  # the preprocessor's declared interface

    def serve(self, text):
        """tf.string `(B,)` -> `{"translation": tf.string (B,), "truncated": bool (B,)}` (greedy, cached)."""
        import tensorflow as tf

        from applications.translation.task import greedy_decode

        ids, truncated = self.preprocessor.encode_source_core(text)
        ids = tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])  # at least one column
        tokens = greedy_decode(self.model, ids)
        empty = tf.equal(tf.strings.length(tf.strings.strip(text)), 0)
        return {"translation": tf.where(empty, "", self.preprocessor.detokenize(tokens)), "truncated": truncated}

    def samples(self):
        long = " ".join(["A man in a red shirt is riding a bike down the street."] * 12)
        return {"text": np.array([b"A man is riding a bike.", b"Two dogs play in the snow.", long.encode(),
                                  "Caf\u00e9 \u2014 na\u00efve \U0001f600 \u00fcber".encode("utf-8"), b""], dtype=object)}

    reads_files = False

    def read_inputs(self, items):
        self.check_text(items, "A man is riding a bike.")
        return {"text": np.array([str(i).encode("utf-8") for i in items], dtype=object)}

    def rows(self, items, outputs, top_k):
        rows = []
        for i, item in enumerate(items):
            out = outputs["translation"][i]
            row = {"input": str(item), "translation": out.decode("utf-8") if isinstance(out, bytes) else str(out)}
            if bool(np.asarray(outputs["truncated"][i])):
                row["note"] = "input was cut to the model's maximum length"
            rows.append(row)
        return rows
