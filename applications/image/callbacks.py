"""Training callbacks of the image family: airbench's lookahead of the weights."""

from __future__ import annotations

import keras

__all__ = ["Lookahead"]


class Lookahead(keras.callbacks.Callback):
    """Pull the weights towards their moving average every `every` steps (airbench's lookahead).

    Every `every` optimizer steps, for every model variable (trainable weights
    and BatchNorm statistics): `ema = d * ema + (1 - d) * w`, then `w = ema`,
    with `d = decay * (step / total_steps) ** power` rising from 0 (no
    averaging early on) to `decay` at the end.  When training ends the
    weights are set to the average.  The average starts from the weights at
    the start of `fit` (a resumed run starts a new one).

    Args:
        every: steps between updates (5 in airbench94).
        decay: the largest decay, reached at the last step (0.95 ** 5).
        power: shape of the ramp of the decay (3).

    Example:
        >>> zoo.fit("cifar10_airbench", run_dir="runs/a", callbacks=[Lookahead()])

    References:
        K. Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU" (2024),
        `LookaheadState` of airbench94; M. Zhang et al., "Lookahead Optimizer:
        k steps forward, 1 step back" (2019).
    """

    def __init__(self, every: int = 5, decay: float = 0.95**5, power: float = 3.0):
        super().__init__()
        if int(every) < 1 or not 0.0 <= float(decay) < 1.0 or float(power) < 0:
            raise ValueError(f"Lookahead: need every >= 1, 0 <= decay < 1, power >= 0; got {every}, {decay}, {power}")
        self.every, self.decay, self.power = int(every), float(decay), float(power)

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self.step = 0
        self.total = max(int(self.params.get("steps") or 1) * int(self.params.get("epochs") or 1), 1)
        self.variables = [v for v in self.model.variables if "float" in str(v.dtype)]
        self.average = [tf.Variable(v.value, trainable=False) for v in self.variables]

        @tf.function
        def update(d):
            for v, a in zip(self.variables, self.average):
                a.assign(d * a + (1.0 - d) * v.value)
                v.assign(a)

        self._update = update

    def on_train_batch_end(self, batch, logs=None):
        import tensorflow as tf

        self.step += 1
        if self.step % self.every == 0:
            self._update(tf.constant(self.decay * min(self.step / self.total, 1.0) ** self.power, tf.float32))

    def on_train_end(self, logs=None):
        import tensorflow as tf

        self._update(tf.constant(1.0))  # the weights become the average
