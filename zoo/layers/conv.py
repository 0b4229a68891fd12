"""A `Conv2D` whose input gradient runs as a forward convolution.

On TensorFlow's CPU kernels (oneDNN, 2-core AVX2 EPYC), the gradient of a
stride-1 "same" 3x3 convolution with respect to its input
(`Conv2DBackpropInput`) took 1.2-6.7x the time of a forward convolution
that computes the very same numbers: the upstream gradient convolved with
the kernel turned by 180 degrees and its in/out channels swapped
(bench/RESULTS.md, #16 round 10).  `FastBackpropConv2D` is a
`keras.layers.Conv2D` that, on the TensorFlow backend and for the
stride-1, undilated, ungrouped, channels-last "same" convolutions it
applies to, computes that gradient with the forward kernel instead.  The
forward pass and the kernel gradient are TensorFlow's own; the outputs and
gradients equal `keras.layers.Conv2D`'s to float rounding (tested).  On
other backends, or other settings, it is `keras.layers.Conv2D`.
"""

from __future__ import annotations

import keras

__all__ = ["FastBackpropConv2D"]


def _fast_conv(x, kernel):
    """`conv2d(x, kernel, stride 1, "SAME")` with the input gradient as a forward conv (TensorFlow only).

    Args:
        x: `(batch, H, W, C_in)`.
        kernel: `(kh, kw, C_in, C_out)`, odd kh and kw.

    Returns:
        `(batch, H, W, C_out)`.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def conv(x, kernel):
        def grad(dy):
            # (kh, kw, C_out, C_in): the kernel turned by 180 degrees with in/out swapped
            turned = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
            dx = tf.nn.conv2d(dy, turned, strides=1, padding="SAME")
            dk = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel), out_backprop=dy,
                                                 strides=[1, 1, 1, 1], padding="SAME")
            return dx, dk

        return tf.nn.conv2d(x, kernel, strides=1, padding="SAME"), grad

    return conv(x, kernel)


@keras.saving.register_keras_serializable(package="zoo")
class FastBackpropConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` with a faster input gradient on TensorFlow's CPU kernels.

    Same arguments, weights, outputs and config as `keras.layers.Conv2D`
    (a `.keras` file of it loads as this class; its weights load into a
    plain `Conv2D` too).  For `strides=1`, `dilation_rate=1`, `groups=1`,
    `padding="same"`, `data_format="channels_last"` and odd kernel sizes,
    on the TensorFlow backend, the gradient with respect to the input is
    computed as a forward convolution of the upstream gradient with the
    kernel turned by 180 degrees (in/out channels swapped), which TensorFlow's
    CPU kernels ran 1.2-6.7x faster than `Conv2DBackpropInput` (3.7x at
    7x7 with 128 channels; `bench/conv_backprop.py`).  Everything else
    falls back to `Conv2D`'s own computation.

    Call arguments:
        inputs: `(batch, H, W, C_in)`.

    Returns:
        `(batch, H, W, filters)` for the fast case, else as `Conv2D`.

    Example:
        >>> layer = FastBackpropConv2D(64, 3, padding="same", use_bias=False)
        >>> layer(keras.ops.ones((8, 15, 15, 32))).shape   # (8, 15, 15, 64)
    """

    def _fast(self) -> bool:
        return (keras.backend.backend() == "tensorflow" and tuple(self.strides) == (1, 1)
                and tuple(self.dilation_rate) == (1, 1) and self.groups == 1 and self.padding == "same"
                and self.data_format == "channels_last" and all(k % 2 == 1 for k in self.kernel_size))

    def convolution_op(self, inputs, kernel):
        if self._fast():  # the kernel read (and cast) outside the custom gradient, which then sees tensors only
            return _fast_conv(inputs, keras.ops.cast(kernel, inputs.dtype))
        return super().convolution_op(inputs, kernel)
