"""Image classifiers: encoded image bytes in, class probabilities and labels out."""

from __future__ import annotations

import pathlib

import numpy as np

from zoo.serving import SERVINGS, Serving

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM")


@SERVINGS.register("image")
class ImageServing(Serving):
    """Encoded image bytes (JPEG, PNG, GIF, BMP) -> class probabilities and label names.

    Signature `serving_default(image_bytes: tf.string (batch,))` returns
    `probabilities float32 (batch, K)`, `class_id int64 (batch,)`,
    `label tf.string (batch,)` and `valid bool (batch,)`.  An item that
    cannot be decoded (not an image, truncated, corrupt) fails alone: its
    `valid` is False, `class_id` -1, `label` "" and `probabilities` all 0,
    and the other items of the batch are classified as usual.  Images of another size are resized to the
    model's input size (area interpolation); greyscale becomes RGB.  A second
    signature `serve_pixels(image: uint8 (batch, H, W, 3))` skips decoding
    (used for TensorFlow Lite).

    Options: `tta_flip`, `tta_translate` bake test-time augmentation into
    both signatures (`zoo.tasks.classification.tta_logits`: the logits of
    the mirrored and moved views averaged, 2, 3 or 6 forward passes per image),
    so the export scores what the run's TTA evaluation reported; `zoo
    export` takes them from the run's test metrics (`--no-tta`: none).
    """

    option_names = ("tta_flip", "tta_translate")

    notes = ("An item of image_bytes that cannot be decoded (not a JPEG/PNG/GIF/BMP, truncated or corrupt) fails "
             "alone: its `valid` is false, `class_id` -1, `label` empty and `probabilities` all zero; the rest of "
             "the batch is classified as usual.")

    raw_inputs = {"image_bytes": {"dtype": "string", "shape": [None],
                                  "description": "encoded JPEG, PNG, GIF or BMP bytes, one image per item"}}

    def __init__(self, model, spec, info, preprocessor=None, options=None):
        super().__init__(model, spec, info, preprocessor, options)
        self.shape = tuple(spec.inputs["image"]["shape"])
        self.class_names = list(info.get("class_names") or [str(i) for i in range(model.output_shape[-1])])
        self.tta_flip = bool(self.options.get("tta_flip", False))
        self.tta_translate = self.options.get("tta_translate", 0)
        if isinstance(self.tta_translate, bool) or not isinstance(self.tta_translate, int) or self.tta_translate < 0:
            raise ValueError(f"{spec.name}: tta_translate must be a number of pixels >= 0, got {self.tta_translate!r}")

    def _decode(self, data):
        import tensorflow as tf

        h, w, c = self.shape
        img = tf.io.decode_image(data, channels=c, expand_animations=False)
        img = tf.cond(
            tf.reduce_all(tf.equal(tf.shape(img)[:2], [h, w])),
            lambda: img,
            lambda: tf.cast(tf.clip_by_value(tf.round(tf.image.resize(img, [h, w], method="area")), 0, 255), tf.uint8),
        )
        return tf.ensure_shape(img, self.shape)

    def _classify(self, images):
        import tensorflow as tf

        from zoo.tasks.classification import tta_logits

        logits = tta_logits(lambda x: self.model(x, training=False), images, tta_flip=self.tta_flip,
                            tta_translate=self.tta_translate)
        probs = tf.nn.softmax(logits, axis=-1)
        class_id = tf.argmax(probs, axis=-1)
        return {"probabilities": probs, "class_id": class_id, "label": tf.gather(tf.constant(self.class_names), class_id)}

    def _decode_each(self, image_bytes):
        """Decode every image on its own: -> (uint8 images (B, H, W, C), valid bool (B,)).

        An item that does not decode (not an image, truncated, corrupt) is
        dropped by `tf.data`'s `ignore_errors` instead of failing the whole
        batch; its row is all zeros and `valid` is False.
        """
        import tensorflow as tf

        n = tf.shape(image_bytes, out_type=tf.int64)[0]
        items = tf.data.Dataset.from_tensor_slices((tf.range(n), image_bytes))
        decoded = items.map(lambda i, data: (i, self._decode(data))).ignore_errors()
        nothing = tf.data.Dataset.from_tensors((tf.zeros([0], tf.int64), tf.zeros([0, *self.shape], tf.uint8)))
        index, images = decoded.batch(1 << 20).concatenate(nothing).take(1).get_single_element()
        rows = index[:, None]
        return (tf.scatter_nd(rows, images, tf.concat([[n], tf.constant(self.shape, tf.int64)], 0)),
                tf.scatter_nd(rows, tf.ones_like(index, tf.bool), [n]))

    def serve(self, image_bytes):
        import tensorflow as tf

        images, valid = self._decode_each(image_bytes)
        out = self._classify(images)
        return {"probabilities": tf.where(valid[:, None], out["probabilities"], 0.0),
                "class_id": tf.where(valid, out["class_id"], tf.constant(-1, tf.int64)),
                "label": tf.where(valid, out["label"], ""),
                "valid": valid}

    def extra_endpoints(self):
        import tensorflow as tf

        return {"serve_pixels": (lambda image: {"probabilities": self._classify(image)["probabilities"]},
                                 [tf.TensorSpec([None, *self.shape], tf.uint8, name="image")])}

    tflite_endpoint = "serve_pixels"

    def tensor_samples(self, n):
        return np.random.default_rng(0).integers(0, 256, (n, *self.shape), dtype=np.uint8)

    def tensor_inputs(self, raw):
        """`{"image_bytes": (N,)}` -> uint8 `(N, H, W, C)`, decoded and resized as `serve` does."""
        return np.stack([self._decode(data).numpy() for data in raw["image_bytes"]])

    def samples(self):
        import tensorflow as tf

        rng = np.random.default_rng(0)
        h, w, _ = self.shape
        yy, xx = np.mgrid[0:h, 0:w]
        smooth = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (h + w)], -1).astype(np.uint8)
        noisy = rng.integers(0, 256, self.shape, dtype=np.uint8)
        big = np.asarray(tf.image.resize(smooth[None], [2 * h, 3 * w]))[0].astype(np.uint8)
        jpeg = tf.io.encode_jpeg(smooth).numpy()
        # the last item is not an image: verification covers the per-item failure path (a truncated JPEG
        # would do too, but libjpeg prints a line to stderr for it in the middle of `make train`)
        encoded = [jpeg, tf.io.encode_png(noisy).numpy(), tf.io.encode_png(big).numpy(), b"GIF89a, not an image"]
        return {"image_bytes": np.array(encoded, dtype=object)}

    def read_inputs(self, items):
        import tensorflow as tf

        data = []
        for item in items:
            path = pathlib.Path(item)
            if not path.is_file():
                raise ValueError(f"{item}: no such image file (this {self.spec.modality} model takes image files)")
            raw = path.read_bytes()
            if not raw.startswith(IMAGE_MAGIC):
                raise ValueError(f"{item}: not a JPEG, PNG, GIF or BMP image; this model classifies images")
            try:
                tf.io.decode_image(raw, channels=3, expand_animations=False)
            except tf.errors.InvalidArgumentError:
                raise ValueError(f"{item}: the image cannot be decoded (truncated or corrupt file)") from None
            data.append(raw)
        return {"image_bytes": np.array(data, dtype=object)}

    def rows(self, items, outputs, top_k):
        names = [n.decode() if isinstance(n, bytes) else n for n in self.class_names]
        out = []
        for i, item in enumerate(items):
            p = np.asarray(outputs["probabilities"][i])
            top = np.argsort(-p)[:top_k]
            out.append({"input": str(item), "label": names[int(top[0])], "probability": float(p[top[0]]),
                        "top_k": {names[int(t)]: float(p[t]) for t in top}})
        return out
