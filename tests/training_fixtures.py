"""Callbacks shared by the training tests (imported by them; tests/ is on sys.path)."""

import keras


class CrashInEpoch2(keras.callbacks.Callback):
    """Raises in the third step of the second epoch, as a killed process would stop a run (resume tests)."""

    def on_train_batch_end(self, batch, logs=None):
        if self.params and getattr(self, "_epoch", 0) == 1 and batch == 2:
            raise RuntimeError("simulated crash in epoch 2")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
