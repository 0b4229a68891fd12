"""What progressive resizing's smaller, variable-size images do to `make train`'s training step.

    PYTHONPATH=. .venv/bin/python bench/progressive_steps.py --repeats 3 --out bench/results/progressive_steps_avx2.json

The training step of `make train`'s float32 preset (`cifar10_airbench` at
widths 32-128-128, Muon, batch 1024, `FastBackpropConv2D`, whitening bias at
zero), its `train_step` traced by `tf.function` and fed one in-memory batch,
in images/s, for:

- `static_32`: a step traced for 32x32 images: what `make train` ran before
  progressive resizing;
- `dynamic_32`, `dynamic_24`, `dynamic_20`: a step traced with the image
  sides unknown, as Keras traces it for progressive resizing's pipeline
  (whose element spec leaves them unknown), fed 32, 24 and 20 pixels.

(Timing `model.fit` on a `tf.data` pipeline instead gave whole multiples of
10.24 s per 6 steps here, 300 or 600 images/s: tf.data's stall of round 9,
not the step.)

alternated in `--repeats` rounds after a warm-up, so a drift of the
machine's speed hits all alike.  Prints each round and writes the rounds,
their medians, the ratios and the CPU as JSON.
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--out", type=pathlib.Path, default=None)
    args = p.parse_args(argv)
    from common import cpu_info

    import zoo
    from cifar10 import compile_as_spec

    def model():
        m = zoo.create_model("cifar10_airbench", widths=(32, 128, 128), whiten_bias=False)
        return compile_as_spec(m, "cifar10_airbench", optimizer="muon", warmup=0.0)

    import tensorflow as tf

    label = tf.TensorSpec([args.batch], tf.int32)
    steps = {name: tf.function(model().train_step, input_signature=[(tf.TensorSpec([args.batch, side, side, 3], tf.uint8),
                                                                     label)])
             for name, side in (("static", 32), ("dynamic", None))}
    variants = [("static", 32), ("dynamic", 32), ("dynamic", 24), ("dynamic", 20)]
    y = tf.zeros((args.batch,), tf.int32)
    data = {side: tf.cast(tf.random.uniform((args.batch, side, side, 3), 0, 256, dtype=tf.int32, seed=1), tf.uint8)
            for _, side in variants}
    for name, side in variants:  # trace + warm up
        steps[name]((data[side], y))
    rounds = []
    for _ in range(args.repeats):
        rate = {}
        for name, side in variants:
            t = time.perf_counter()
            for _ in range(args.steps):
                logs = steps[name]((data[side], y))
            float(logs["loss"])  # wait for the last step
            rate[f"{name}_{side}"] = args.batch * args.steps / (time.perf_counter() - t)
        rounds.append(rate)
        print("  ".join(f"{k} {v:.0f} img/s" for k, v in rate.items()), flush=True)
    median = {k: sorted(r[k] for r in rounds)[args.repeats // 2] for k in rounds[0]}
    ratios = {"dynamic_32_vs_static_32": median["dynamic_32"] / median["static_32"],
              "dynamic_24_vs_dynamic_32": median["dynamic_24"] / median["dynamic_32"],
              "dynamic_20_vs_dynamic_32": median["dynamic_20"] / median["dynamic_32"]}
    print("median images/s:", json.dumps({k: round(v) for k, v in median.items()}))
    print("ratios:", json.dumps({k: round(v, 3) for k, v in ratios.items()}))
    out = {"cpu": cpu_info(), "batch": args.batch, "steps": args.steps, "images_per_s": rounds,
           "median_images_per_s": median, "ratios": ratios,
           "command": "PYTHONPATH=. .venv/bin/python bench/progressive_steps.py " + " ".join(argv or sys.argv[1:])}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
