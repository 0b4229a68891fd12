"""Why a run under a time budget and the same run with --epochs part ways: the schedule's arithmetic in the graph.

    PYTHONPATH=. .venv/bin/python bench/schedule_graph.py --out bench/results/schedule_graph.json

`WarmupSchedule` has two forms: a fixed one (`--epochs N`: its total steps
are a Python number) and an adjustable one (the spec's time budget: the
total sits in a variable, so the budget can end the schedule after the
train step was traced).  Evaluated eagerly, step by step, they give the
same learning rates.  Inside a `tf.function`, where Keras runs the train
step, TensorFlow's graph optimiser rewrites the fixed form's arithmetic on
constants (folding, division by a constant), so some of its rates move in
the last bits; the adjustable form's, computed from a variable, are left as
written.  This script counts the steps where the forms differ, eagerly and
in a graph, over the speech spec's schedule (3e-3 peak, cosine, 10% warm-up,
132 steps x 40 epochs) and a second one, and writes them as JSON.  Two runs
that differ only in this path start to differ in the weights' last bits at
the first such step and, forty epochs on, are two different draws of the
same recipe (bench/RESULTS.md, #15 twenty-fifth pass).
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import cpu_info  # noqa: E402


def compare(peak: float, total: int, warmup: float, kind: str) -> dict:
    """Steps where the fixed and adjustable `WarmupSchedule` differ, eagerly and inside a `tf.function`."""
    import numpy as np
    import tensorflow as tf

    from zoo.losses import WarmupSchedule

    fixed = WarmupSchedule(peak, total, warmup, kind)
    adjustable = WarmupSchedule(peak, total, warmup, kind, adjustable=True)
    eager = [np.array([float(s(i)) for i in range(total)], np.float32) for s in (fixed, adjustable)]
    graph = []
    for s in (fixed, adjustable):  # one scalar step per call, as the optimizer asks in a traced train step
        traced = tf.function(lambda step, s=s: s(step))
        graph.append(np.array([float(traced(tf.constant(i, tf.int64))) for i in range(total)], np.float32))

    def differ(a, b):
        moved = a != b
        rel = np.abs(a - b)[moved] / np.maximum(np.abs(a[moved]), 1e-30)
        return {"steps": int(moved.sum()), "first_step": int(np.argmax(moved)) if moved.any() else None,
                "max_relative": float(rel.max()) if moved.any() else 0.0}

    return {"schedule": {"peak": peak, "total_steps": total, "warmup": warmup, "kind": kind},
            "eager_fixed_vs_adjustable": differ(*eager), "graph_fixed_vs_adjustable": differ(*graph),
            "fixed_eager_vs_graph": differ(eager[0], graph[0]),
            "adjustable_eager_vs_graph": differ(eager[1], graph[1])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="JSON report (default: print only)")
    args = p.parse_args(argv)
    report = {"command": "python bench/schedule_graph.py" + (f" --out {args.out}" if args.out else ""),
              "cpu": cpu_info(),
              "results": [compare(3e-3, 132 * 40, 0.1, "cosine"), compare(0.2, 98 * 12, 0.2, "onecycle")]}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        from zoo.io import write_text

        write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
