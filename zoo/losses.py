"""Losses and schedules shared by the model families (written with `keras.ops`)."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class SparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy on integer labels, with label smoothing and an ignored class.

    `keras.losses.SparseCategoricalCrossentropy` has no label smoothing; this
    one does, without materialising one-hot targets.

    Args:
        from_logits: `y_pred` are logits (True) or probabilities.
        label_smoothing: in [0, 1); the target puts `1 - s + s/K` on the true
            class and `s/K` on each of the `K` classes.
        ignore_class: label value (e.g. padding id 0) whose positions get no
            loss; the mean is over the other positions.

    Call arguments:
        y_true: int `(batch, ...)`.
        y_pred: float `(batch, ..., K)`.

    Returns:
        Scalar loss (mean over the non-ignored positions; with several
        replicas, each replica's mean over its own positions, averaged).
    """

    def __init__(self, from_logits=True, label_smoothing=0.0, ignore_class=None, name="sparse_ce", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum_over_batch_size", **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.from_logits = from_logits
        self.label_smoothing = float(label_smoothing)
        self.ignore_class = ignore_class

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        logp = ops.log_softmax(y_pred, axis=-1) if self.from_logits else ops.log(ops.clip(y_pred, 1e-7, 1.0))
        y_true = ops.cast(y_true, "int32")
        if len(y_true.shape) == len(y_pred.shape):  # (batch, ..., 1) labels
            y_true = ops.squeeze(y_true, -1)
        safe = ops.where(ops.equal(y_true, -1), 0, y_true)
        nll = -ops.take_along_axis(logp, ops.expand_dims(safe, -1), axis=-1)[..., 0]
        s = self.label_smoothing
        loss = (1.0 - s) * nll - s * ops.mean(logp, axis=-1) if s else nll
        if self.ignore_class is not None:
            # Per-position values whose mean is the mean over kept positions: Keras'
            # reduction then also divides by the replicas under tf.distribute
            # (a scalar returned here is not, and 2 replicas doubled the gradient).
            keep = ops.cast(ops.not_equal(y_true, self.ignore_class), loss.dtype)
            return loss * keep * (ops.sum(ops.ones_like(keep)) / ops.maximum(ops.sum(keep), 1.0))
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing, ignore_class=self.ignore_class)
        return config


@keras.saving.register_keras_serializable(package="zoo")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Learning-rate schedules with a linear warm-up, clamped after `total_steps`.

    Args:
        peak: the largest learning rate.
        total_steps: length of training in optimizer steps.
        warmup: warm-up length, a fraction of `total_steps` (< 1) or steps (>= 1).
        kind: "onecycle" (linear up, linear down to 0: the fast-CIFAR recipe),
            "cosine" (linear up, cosine down to 0), "constant" (linear up,
            then flat), "rsqrt" (linear up, then peak * sqrt(warmup / step):
            the Transformer recipe).
        adjustable: hold `total_steps` in a variable, so `set_total_steps`
            moves the end of the schedule after the train step was traced
            (a time budget that decides the epochs after the first one).

    Call arguments:
        step: scalar optimizer step.

    Returns:
        Scalar float32 learning rate.
    """

    KINDS = ("onecycle", "cosine", "constant", "rsqrt")

    def __init__(self, peak, total_steps, warmup=0.0, kind="cosine", adjustable=False):
        if kind not in self.KINDS:
            raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(self.KINDS)}")
        self.peak = float(peak)
        self.total_steps = max(int(total_steps), 1)
        self.warmup = float(warmup)
        self.kind = kind
        self._total = (keras.Variable(float(self.total_steps), dtype="float32", trainable=False, name="schedule_total_steps")
                       if adjustable else None)

    def set_total_steps(self, total_steps: int) -> None:
        """End the schedule at `total_steps` (an `adjustable` schedule only; takes effect in traced steps too)."""
        if self._total is None:
            raise ValueError("WarmupSchedule: set_total_steps needs adjustable=True")
        self.total_steps = max(int(total_steps), 1)
        self._total.assign(float(self.total_steps))

    def _warmup_steps(self, total):
        w = self.warmup * total if self.warmup < 1 else self.warmup
        return ops.maximum(w, 1.0) if self._total is not None else max(float(w), 1.0)

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        total = self._total if self._total is not None else self.total_steps
        w = self._warmup_steps(total)
        up = self.peak * ops.minimum(step / w, 1.0)
        if self.kind == "constant":
            return up
        if self.kind == "rsqrt":
            return ops.minimum(up, self.peak * ops.sqrt(w / step))
        span = ops.maximum(total - w, 1.0) if self._total is not None else max(total - w, 1.0)
        frac = ops.clip((step - w) / span, 0.0, 1.0)
        down = self.peak * (1.0 - frac) if self.kind == "onecycle" else self.peak * 0.5 * (1.0 + ops.cos(math.pi * frac))
        return ops.where(step < w, up, down)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup": self.warmup, "kind": self.kind}
