"""Optimizers the Keras library does not ship in the form a recipe needs.

`MuonSGD`: Muon on convolution kernels, Nesterov SGD on every other weight,
as airbench94_muon trains CIFAR-10 (Keras' own `keras.optimizers.Muon`
orthogonalises 2-D kernels only and gives the rest AdamW).
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["MuonSGD", "newton_schulz"]


def newton_schulz(g, steps: int = 3, eps: float = 1e-7):
    """Approximately orthogonalise a matrix: `U S' V^T` with `S'` near 1, for `g = U S V^T`.

    The quintic Newton-Schulz iteration of Muon (coefficients 3.4445,
    -4.7750, 2.0315), run on the wide orientation of `g`.  It does not
    converge to `U V^T` exactly; the singular values land in about
    (0.5, 1.5), which Muon's authors found costs nothing.

    Args:
        g: a `(rows, cols)` float tensor.
        steps: iterations (3 in airbench94_muon, 5 in Keras' Muon).
        eps: added to the Frobenius norm the input is divided by first.

    Returns:
        A `(rows, cols)` tensor of the same dtype.

    Reference: K. Jordan et al., "Muon: An optimizer for hidden layers in
    neural networks" (2024); `zeropower_via_newtonschulz5`.
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    tall = g.shape[0] > g.shape[1]
    x = ops.transpose(g) if tall else g
    x = x / (ops.sqrt(ops.sum(ops.square(x))) + eps)  # spectral norm <= Frobenius norm <= 1
    for _ in range(int(steps)):
        m = ops.matmul(x, ops.transpose(x))
        x = a * x + ops.matmul(b * m + c * ops.matmul(m, m), x)
    return ops.transpose(x) if tall else x


@keras.saving.register_keras_serializable(package="zoo")
class MuonSGD(keras.optimizers.SGD):
    """Muon for convolution kernels, SGD with (Nesterov) momentum for every other variable.

    For a rank-4 kernel `(kh, kw, in, out)` each step: momentum `buf = mu *
    buf + g` (`mu = muon_momentum`, the update `g + mu * buf` with Nesterov),
    reshaped to `(out, kh * kw * in)` and orthogonalised by `newton_schulz`;
    the kernel is rescaled to Frobenius norm `sqrt(out)` (the network's
    BatchNorm makes the scale irrelevant, so this fixes the effective step
    size instead of weight decay) and moved by `muon_learning_rate` times
    the update.  Biases, BatchNorm offsets and dense kernels take the plain
    `keras.optimizers.SGD` step.  Both learning rates follow the schedule
    of `learning_rate`: the Muon rate is `learning_rate(step) *
    muon_learning_rate / peak`, with `peak` the schedule's largest value.

    Args:
        learning_rate: SGD learning rate (float or schedule with `.peak`).
        muon_learning_rate: peak learning rate of the kernels (0.24 in airbench94_muon).
        muon_momentum: momentum of the kernels' buffer (0.6).
        ns_steps: Newton-Schulz iterations (3).
        momentum, nesterov, weight_decay, **kwargs: as `keras.optimizers.SGD`
            (weight decay touches only the non-Muon variables).

    Reference: K. Jordan (2024), airbench94_muon.py, 94.01% on CIFAR-10 in
    8 epochs (airbench94 needs 9.9).
    """

    def __init__(self, learning_rate=0.01, muon_learning_rate=0.24, muon_momentum=0.6, ns_steps=3,
                 momentum=0.85, nesterov=True, weight_decay=None, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay, **kwargs)
        if not momentum > 0:
            raise ValueError(f"MuonSGD: momentum must be > 0 (the kernels' buffer lives in its slot), got {momentum}")
        self.muon_learning_rate = float(muon_learning_rate)
        self.muon_momentum = float(muon_momentum)
        self.ns_steps = int(ns_steps)
        peak = getattr(learning_rate, "peak", learning_rate)
        if callable(peak) or not float(peak) > 0:
            raise ValueError("MuonSGD: learning_rate must be a number > 0 or a schedule with a `peak` "
                             f"(zoo.losses.WarmupSchedule), got {learning_rate!r}")
        self._muon_ratio = self.muon_learning_rate / float(peak)

    @staticmethod
    def uses_muon(variable) -> bool:
        """True for the variables that take the Muon step: rank-4 (convolution) kernels."""
        return len(variable.shape) == 4

    def _use_weight_decay(self, variable):
        return not self.uses_muon(variable) and super()._use_weight_decay(variable)

    def update_step(self, gradient, variable, learning_rate):
        if not self.uses_muon(variable):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype) * self._muon_ratio
        mu = ops.cast(self.muon_momentum, dtype)
        g = ops.cast(gradient, dtype)
        buf = self.momentums[self._get_variable_index(variable)]
        self.assign(buf, buf * mu + g)
        g = g + mu * buf if self.nesterov else buf
        shape = tuple(int(d) for d in variable.shape)
        update = ops.transpose(newton_schulz(ops.transpose(ops.reshape(g, (-1, shape[-1]))), self.ns_steps))
        norm = ops.sqrt(ops.sum(ops.square(variable)))
        self.assign(variable, variable * (shape[-1] ** 0.5 / (norm + 1e-12)) - lr * ops.reshape(update, shape))

    def get_config(self):
        return {**super().get_config(), "muon_learning_rate": self.muon_learning_rate,
                "muon_momentum": self.muon_momentum, "ns_steps": self.ns_steps}
