"""Training callbacks of the image family: airbench's lookahead of the weights."""

from __future__ import annotations

import keras

__all__ = ["Lookahead"]


class Lookahead(keras.callbacks.Callback):
    """Pull the weights towards their moving average every `every` steps (airbench's lookahead).

    Every `every` optimizer steps, for every model variable (trainable weights
    and BatchNorm statistics): `ema = d * ema + (1 - d) * w`, then `w = ema`,
    with `d = decay * (step / total_steps) ** power` rising from 0 (no
    averaging early on) to `decay` at the end.  `total_steps` follows the
    run's planned epochs as they are now (`params["epochs"]`, which a time
    budget may lower after the first epoch: zoo.training), so the ramp ends
    where the run ends.  The average starts at the first update (`d = 0`
    there: the weights of that step).  When training ends, steps since the
    last update are folded in once more, then the weights are set to the
    average, so a run shorter than `every` steps ends on its trained
    weights, not its initial ones.  A resumed run starts a new average.

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
        self.updated = False
        self.variables = [v for v in self.model.variables if "float" in str(v.dtype)]
        self.average = [tf.Variable(v.value, trainable=False) for v in self.variables]

        @tf.function
        def update(d):
            for v, a in zip(self.variables, self.average):
                a.assign(d * a + (1.0 - d) * v.value)
                v.assign(a)

        self._update = update

    def decay_at(self, step: int) -> float:
        """The decay of an update at optimizer step `step`: `decay * min(step / total_steps, 1) ** power`.

        `total_steps` is `params["steps"] * params["epochs"]` read now, so a
        budget's lower epoch count moves the end of the ramp.
        """
        total = max(int(self.params.get("steps") or 1) * int(self.params.get("epochs") or 1), 1)
        return self.decay * min(step / total, 1.0) ** self.power

    def _fold(self):
        import tensorflow as tf

        self._update(tf.constant(self.decay_at(self.step) if self.updated else 0.0, tf.float32))
        self.updated = True

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0:
            self._fold()

    def on_train_end(self, logs=None):
        import tensorflow as tf

        if self.step % self.every:
            self._fold()  # the steps since the last update
        self._update(tf.constant(1.0))  # the weights become the average
