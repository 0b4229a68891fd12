"""Why `FastBackpropConv2D` exists, and what it and `whiten_bias=False` buy `make train`'s training step.

    PYTHONPATH=. .venv/bin/python bench/conv_backprop.py --repeats 3 --out bench/results/conv_backprop.json
    PYTHONPATH=. .venv/bin/python bench/conv_backprop.py --profile --out bench/results/conv_backprop_profile.json
    PYTHONPATH=. .venv/bin/python bench/conv_backprop.py --kernels-only --out bench/results/conv_backprop_kgrad_avx2.json

1. Kernels: for each 3x3 stride-1 "same" convolution of the CPU preset of
   `cifar10_airbench` (widths 32-128-128, batch 1024, float32), the time of
   TensorFlow's forward `Conv2D`, its `Conv2DBackpropInput` (the input
   gradient), the same input gradient computed as a forward `Conv2D` of the
   upstream gradient with the kernel turned by 180 degrees and its in/out
   channels swapped (what `FastBackpropConv2D` does), and
   `Conv2DBackpropFilter`; with the largest relative difference between
   the two input gradients.  Beside the last, the kernel gradient as nine
   matmuls of shifted inputs and as one forward convolution with batch and
   channels swapped, with their differences from it.
2. Training step: images/s of the preset's training step (Muon, in-memory
   batch) with plain `keras.layers.Conv2D`, with `FastBackpropConv2D` (the
   spec), and with `FastBackpropConv2D` and `whiten_bias=False` (what
   `make train` runs), alternated in `--repeats` rounds so a drift of the
   machine's speed hits all three alike.

3. `--profile` (instead of 1-2): TensorFlow's profiler over two training
   steps of the plain and the `make train` variants; each op type's share
   of the busy thread time (idle time left out), which is how the slow
   input gradient was found.

Prints each figure and writes them all as JSON, with the CPU named.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# (batch, side, in channels, out channels) of the preset's stride-1 3x3 convolutions
SHAPES = [(1024, 31, 24, 32), (1024, 15, 32, 32), (1024, 15, 32, 128), (1024, 7, 128, 128), (1024, 3, 128, 128)]


def _ms(f, *args, n=5) -> float:
    """Median milliseconds of `f(*args)` over `n` calls after two warm-up calls."""
    f(*args), f(*args)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f(*args).numpy()
        times.append(time.perf_counter() - t)
    return sorted(times)[n // 2] * 1000


def _kernel_grad_matmuls(x, dy):
    """The 3x3 "same" kernel gradient as 9 matmuls: each shift of the padded input (NHW, C_in)^T by dy (NHW, C_out)."""
    import tensorflow as tf

    _, h, w, cin = x.shape
    padded, flat = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), tf.reshape(dy, [-1, dy.shape[-1]])
    taps = [tf.matmul(tf.reshape(padded[:, i:i + h, j:j + w, :], [-1, cin]), flat, transpose_a=True)
            for i in range(3) for j in range(3)]
    return tf.reshape(tf.stack(taps), [3, 3, cin, dy.shape[-1]])


def _kernel_grad_swap(x, dy):
    """The 3x3 "same" kernel gradient as one forward VALID conv with batch and channels swapped.

    The padded input as `(C_in, H + 2, W + 2, N)` convolved with dy as an `(H, W, N, C_out)` filter gives
    `(C_in, 3, 3, C_out)`.
    """
    import tensorflow as tf

    padded = tf.transpose(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), [3, 1, 2, 0])
    out = tf.nn.conv2d(padded, tf.transpose(dy, [1, 2, 0, 3]), strides=1, padding="VALID")
    return tf.transpose(out, [1, 2, 0, 3])


def kernels() -> list[dict]:
    """Forward, input-gradient (two ways) and kernel-gradient (three ways) times of each shape in `SHAPES`."""
    import tensorflow as tf

    rows = []
    for b, side, cin, cout in SHAPES:
        x, w = tf.random.normal((b, side, side, cin)), tf.random.normal((3, 3, cin, cout))
        dy = tf.random.normal((b, side, side, cout))
        turned = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2])
        forward = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"))
        backprop_input = tf.function(lambda dy, w: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=[b, side, side, cin], filter=w, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"))
        backprop_filter = tf.function(lambda x, dy: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[3, 3, cin, cout], out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"))
        a, c = backprop_input(dy, w), forward(dy, turned)
        k = backprop_filter(x, dy)
        row = {"shape": [b, side, side, cin, cout], "forward_ms": _ms(forward, x, w),
               "backprop_input_ms": _ms(backprop_input, dy, w), "input_grad_as_forward_ms": _ms(forward, dy, turned),
               "backprop_filter_ms": _ms(backprop_filter, x, dy),
               "max_relative_difference": float(tf.reduce_max(tf.abs(a - c)) / tf.reduce_max(tf.abs(a)))}
        # the kernel gradient two other ways (round 18: neither beat Conv2DBackpropFilter on a 2-core AVX2 EPYC)
        for name, f in (("kernel_grad_as_matmuls", _kernel_grad_matmuls),
                        ("kernel_grad_as_forward", _kernel_grad_swap)):
            f = tf.function(f)
            row[f"{name}_ms"] = _ms(f, x, dy)
            worst = tf.reduce_max(tf.abs(f(x, dy) - k)) / tf.reduce_max(tf.abs(k))
            row[f"{name}_max_relative_difference"] = float(worst)
        row["backprop_input_over_as_forward"] = row["backprop_input_ms"] / row["input_grad_as_forward_ms"]
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _model(variant: str):
    import keras

    import zoo
    from cifar10 import compile_as_spec
    from zoo.layers import FastBackpropConv2D

    model = zoo.create_model("cifar10_airbench", widths=(32, 128, 128), whiten_bias=variant != "fast")
    if variant == "plain":
        def clone(layer):
            cls = keras.layers.Conv2D if isinstance(layer, FastBackpropConv2D) else layer.__class__
            return cls.from_config(layer.get_config())

        model = keras.models.clone_model(model, clone_function=clone)
        assert not any(isinstance(layer, FastBackpropConv2D) for layer in model.layers)
    return compile_as_spec(model, "cifar10_airbench", optimizer="muon", warmup=0.0)


def training_step(repeats: int, batch: int = 1024, steps: int = 6) -> dict:
    """Images/s of the preset's training step per variant, alternated over `repeats` rounds."""
    import tensorflow as tf

    x = tf.cast(tf.random.uniform((batch, 32, 32, 3), 0, 256, dtype=tf.int32), tf.uint8)
    y = tf.zeros((batch,), tf.int32)
    names = {"plain": "keras Conv2D, whitening bias trained", "fast_bias": "FastBackpropConv2D, whitening bias trained",
             "fast": "FastBackpropConv2D, whitening bias at zero (make train)"}
    models = {v: _model(v) for v in names}
    for model in models.values():
        model.train_on_batch(x, y), model.train_on_batch(x, y)  # trace + warm up
    rounds = []
    for _ in range(repeats):
        rate = {}
        for v, model in models.items():
            t = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            rate[v] = batch * steps / (time.perf_counter() - t)
        rounds.append(rate)
        print("  ".join(f"{v} {r:.0f} img/s" for v, r in rate.items()), flush=True)
    median = {v: sorted(r[v] / r["plain"] for r in rounds)[repeats // 2] for v in names}
    return {"variants": names, "batch": batch, "steps": steps, "images_per_s": rounds, "median_speed_vs_plain": median}


def profile(batch: int = 1024) -> dict:
    """Each op type's share of the busy thread time of two profiled training steps, per variant."""
    import glob
    import tempfile

    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    x = tf.cast(tf.random.uniform((batch, 32, 32, 3), 0, 256, dtype=tf.int32), tf.uint8)
    y = tf.zeros((batch,), tf.int32)
    out = {}
    for variant in ("plain", "fast"):
        model = _model(variant)
        model.train_on_batch(x, y), model.train_on_batch(x, y)
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            model.train_on_batch(x, y), model.train_on_batch(x, y)
            tf.profiler.experimental.stop()
            data, _ = plugin.xspace_to_tools_data(glob.glob(f"{logdir}/plugins/profile/*/*.xplane.pb"),
                                                  "framework_op_stats", {})
        table = json.loads(data)[0]
        cols = [c["id"] for c in table["cols"]]
        shares: dict[str, float] = {}
        for row in table["rows"]:
            r = {k: (c or {}).get("v") for k, c in zip(cols, row["c"])}
            if r["type"] != "IDLE":
                shares[r["type"]] = shares.get(r["type"], 0.0) + r["total_self_time"]
        busy = sum(shares.values())
        out[variant] = {k: v / busy for k, v in sorted(shares.items(), key=lambda kv: -kv[1])[:12]}
        print(variant, json.dumps({k: round(v, 3) for k, v in out[variant].items()}), flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="only the op-type shares of two profiled training steps")
    p.add_argument("--kernels-only", action="store_true", help="only the kernels (1), not the training step (2)")
    p.add_argument("--out", type=pathlib.Path, default=None)
    args = p.parse_args(argv)
    from common import cpu_info

    if args.profile:
        report = {"cpu": cpu_info(), "busy_time_share_by_op_type": profile()}
    else:
        report = {"cpu": cpu_info(), "kernels": kernels()}
        if not args.kernels_only:
            report["training_step"] = training_step(args.repeats)
            print(json.dumps(report["training_step"]["median_speed_vs_plain"], indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
