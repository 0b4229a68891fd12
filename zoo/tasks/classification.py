"""Classification: cross-entropy on logits, accuracy, per-class accuracy, confusion matrix.

Used by the image and text classifiers: `CLASSIFICATION` is the task their
specs link.
"""

from __future__ import annotations

import pathlib
from typing import Any, Mapping

import numpy as np

from zoo.registry import ModelSpec
from zoo.tasks import register_task

__all__ = ["CLASSIFICATION", "classification_task", "predict_logits", "tta_logits", "tta_views", "classification_metrics", "evaluate_classification"]


def classification_task(spec: ModelSpec, train: Mapping[str, Any]):
    """Loss and metrics of a classifier returning logits `(batch, K)` on int labels `(batch,)`."""
    import keras

    from zoo.losses import SparseCategoricalCrossentropy

    loss = SparseCategoricalCrossentropy(from_logits=True, label_smoothing=train.get("label_smoothing", 0.0))
    return loss, [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def _translated(x, shift: int):
    """Images `(B, H, W, C)` moved by `shift` pixels down and right (negative: up and left), reflect-padded."""
    import tensorflow as tf

    p = abs(shift)
    padded = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
    h, w = x.shape[1], x.shape[2]
    start = p - shift
    return padded[:, start:start + h, start:start + w, :]


def tta_logits(predict, x, *, tta_flip: bool = False, tta_translate: int = 0):
    """Logits of a batch of images, averaged over test-time views: the one TTA of evaluation and of image exports.

    Args:
        predict: images `(B, H, W, C)` -> logits `(B, K)` (a model or a traced call).
        x: images `(B, H, W, C)`, a tensor (eager or inside a `tf.function`).
        tta_flip: average the logits of each image and its horizontal mirror.
        tta_translate: also average over the images moved by this many pixels
            diagonally both ways (reflect-padded), airbench's TTA: half the
            weight on the original view, half on the two moved ones (each
            with its mirror when `tta_flip`); 0: none.

    Returns:
        float32 logits `(B, K)`; with neither option, `predict(x)` as float32.
    """
    import tensorflow as tf

    if int(tta_translate) < 0:
        raise ValueError(f"tta_translate must be a number of pixels >= 0, got {tta_translate}")

    def views(v):
        out = tf.cast(predict(v), tf.float32)
        if tta_flip:
            out = 0.5 * (out + tf.cast(predict(tf.reverse(v, axis=[2])), tf.float32))
        return out

    out = views(x)
    if tta_translate:
        shift = int(tta_translate)
        out = 0.5 * out + 0.25 * (views(_translated(x, -shift)) + views(_translated(x, shift)))
    return out


def tta_views(options: Mapping[str, Any] | None) -> str:
    """The test-time views of `{"tta_flip", "tta_translate"}` settings (a run's test metrics, an image export's
    serving options) in words, e.g. "flip + 1-pixel translate"; "" for none."""
    options = options or {}
    return " + ".join(["flip"] * bool(options.get("tta_flip"))
                      + [f"{options.get('tta_translate')}-pixel translate"] * bool(options.get("tta_translate")))


def predict_logits(model, dataset, *, tta_flip: bool = False, tta_translate: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run `model` over a batched `(inputs, labels)` dataset.

    Args:
        model: a classifier returning logits `(batch, K)`.
        dataset: tf.data of `(inputs, labels)` batches.
        tta_flip, tta_translate: test-time augmentation of image
            classifiers (`tta_logits`); off by default.

    Returns:
        (labels int `(N,)`, logits float32 `(N, K)`).
    """
    import keras

    predict = _compiled_predict(model) if keras.backend.backend() == "tensorflow" else model
    labels, logits = [], []
    for x, y in dataset:
        logits.append(np.asarray(tta_logits(predict, x, tta_flip=tta_flip, tta_translate=tta_translate)))
        labels.append(np.asarray(y))
    if not logits:
        raise ValueError("evaluation dataset is empty: nothing to evaluate (check --limit and the data split)")
    return np.concatenate(labels).astype(np.int64).reshape(-1), np.concatenate(logits)


def _compiled_predict(model):
    import tensorflow as tf

    fn = getattr(model, "_zoo_predict_fn", None)
    if fn is None:
        @tf.function(reduce_retracing=True)
        @tf.autograph.experimental.do_not_convert
        def fn(x):
            return model(x, training=False)

        model._zoo_predict_fn = fn
    return fn


def classification_metrics(labels: np.ndarray, logits: np.ndarray, class_names) -> dict[str, Any]:
    """Accuracy, per-class accuracy and confusion matrix of `(N,)` labels vs `(N, K)` logits."""
    k = len(class_names)
    pred = logits.argmax(-1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    per_class = cm.diagonal() / np.maximum(cm.sum(1), 1)
    return {
        "accuracy": float((pred == labels).mean()),
        "num_examples": int(labels.size),
        "per_class_accuracy": {name: float(a) for name, a in zip(class_names, per_class)},
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
    }


def evaluate_classification(spec: ModelSpec, model, data, run_dir=None, *, tta_flip: bool = False,
                            tta_translate: int = 0, split: str = "test"):
    """Test-set accuracy and confusion matrix; writes `confusion.png` into `run_dir` (TTA: see `predict_logits`)."""
    labels, logits = predict_logits(model, getattr(data, split), tta_flip=tta_flip, tta_translate=tta_translate)
    names = data.info.get("class_names") or [str(i) for i in range(logits.shape[-1])]
    metrics = classification_metrics(labels, logits, names)
    metrics["split"] = split
    metrics["tta_flip"] = tta_flip
    if tta_translate:
        metrics["tta_translate"] = int(tta_translate)
    if run_dir is not None:
        from zoo.plots import plot_confusion

        plot_confusion(metrics["confusion_matrix"], names, pathlib.Path(run_dir) / "confusion.png",
                       title=f"{spec.name}: {split} accuracy {metrics['accuracy']:.2%}")
    return metrics


CLASSIFICATION = register_task(
    "classification", compile=classification_task, evaluate=evaluate_classification,
    metrics=("accuracy", "per_class_accuracy", "confusion_matrix"),
    description="cross-entropy on logits; test accuracy, per-class accuracy and confusion matrix",
)
