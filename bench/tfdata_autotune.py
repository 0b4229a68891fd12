"""tf.data's autotuning thread and the end of a Keras pass: the stall `zoo.data.without_autotune_thread` removes.

    PYTHONPATH=. .venv/bin/python bench/tfdata_autotune.py --rounds 12 --out bench/results/tfdata_autotune.json

One small model (a dense stack on random in-memory batches, nothing from
zoo) is trained with `model.fit` for one pass of `--steps` batches at a
time, alternating two copies of the same cached dataset: tf.data's
default options (autotuning on) and `autotune.enabled = False`.  A
callback times the steps themselves; the rest of each `fit` call's wall
time is what happened around them.  With autotuning on, each iterator
runs a model thread that waits 10 ms, 20 ms, 40 ms, ... between re-plans;
when a pass ended while that thread was waiting, the call returned only
when its wait ran out, at 10 ms x (2**k - 1) after the pass began
(`stall_deadline_ms` names the nearest such value for each stalled call).

Prints a summary and writes every call's figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
STALL_S = 0.05  # seconds of a fit call outside its steps counted as a stall (callbacks and set-up take ~0.01)
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from zoo.io import write_json  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=12, help="alternations of the two datasets")
    p.add_argument("--steps", type=int, default=20, help="batches per fit call")
    p.add_argument("--width", type=int, default=1024, help="units of each dense layer (sets the step's cost)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "tfdata_autotune.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf
    from common import cpu_info

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.steps * 512, 256)).astype("float32")
    y = rng.integers(0, 10, len(x))
    base = tf.data.Dataset.from_tensor_slices((x, y)).batch(512).cache()
    off = tf.data.Options()
    off.autotune.enabled = False
    datasets = {"autotune_on": base, "autotune_off": base.with_options(off)}
    model = keras.Sequential([keras.Input((256,))] + [keras.layers.Dense(args.width, activation="relu")
                                                      for _ in range(3)] + [keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    class Steps(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.seconds = 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self.t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds += time.perf_counter() - self.t

    steps = Steps()
    for ds in datasets.values():
        model.fit(ds, epochs=1, verbose=0)  # trace
    calls = []
    for r in range(args.rounds):
        for name, ds in datasets.items():
            t = time.perf_counter()
            model.fit(ds, epochs=1, verbose=0, callbacks=[steps])
            wall = time.perf_counter() - t
            extra = wall - steps.seconds
            k = max(1, round(np.log2(wall * 100 + 1)))
            calls.append({"round": r, "options": name, "wall_s": wall, "steps_s": steps.seconds, "extra_s": extra,
                          "stall_deadline_ms": 10 * (2 ** k - 1) if extra > STALL_S else None})
        print("  ".join(f"{c['options']} {c['wall_s']:.2f} s (steps {c['steps_s']:.2f})" for c in calls[-2:]),
              flush=True)
    summary = {}
    for name in datasets:
        mine = [c for c in calls if c["options"] == name]
        summary[name] = {"calls": len(mine), "stalled_calls": sum(c["extra_s"] > STALL_S for c in mine),
                         "median_wall_s": float(np.median([c["wall_s"] for c in mine])),
                         "median_steps_s": float(np.median([c["steps_s"] for c in mine])),
                         "total_wall_s": float(sum(c["wall_s"] for c in mine))}
    summary["wall_on_over_off"] = summary["autotune_on"]["total_wall_s"] / summary["autotune_off"]["total_wall_s"]
    report = {"command": " ".join(["python", *sys.argv]), "cpu": cpu_info(), "tensorflow": tf.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "steps": args.steps, "width": args.width,
              "summary": summary, "calls": calls}
    write_json(args.out, report)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
