"""CIFAR-10 benchmarks on this machine's CPU; every figure is measured in one run.

    python bench/cifar10.py                    # all sections
    python bench/cifar10.py --sections headroom,precision

Sections:
  headroom   training steps/s of the default of examples/train_cifar10.py
             (cifar10_airbench preset; --headroom-model cifar10_resnet for the
             old one) fed by the real pipeline (augmentation on) divided by
             steps/s on one in-memory batch of the same shape (no input work
             at all).  Target >= 0.95.
  precision  float32 vs mixed_bfloat16 training throughput on in-memory
             batches, with the CPU's bf16 support stated.
  throughput images/s of a cifar10_airbench train step (in-memory batch) for
             candidate widths, batch sizes and precisions, alternated; the
             model's FLOPs and the achieved GFLOP/s (forward FLOPs x 3 x
             images/s) over a 2048x2048 float32 matmul peak measured in the
             same run.
  ablation   cifar10_airbench with the CPU preset of examples/train_cifar10.py
             on a subset, one trick taken away per run (same seed, same
             subset): alternating flip, the BatchNorm-bias lr multiplier,
             lookahead, bf16, init; Muon for the conv kernels; TTA none /
             flip / flip + translate on every run.  `--ablation-set old`: whitening fit, BatchNorm
             scale, label smoothing, Nesterov (the first ablation).
  curves     accuracy at 5, 10, 20 and 40 minutes and time to 90% / 93% of
             finished runs (`--runs runs/a,runs/b`, e.g. the example's).
  train      cifar10_cnn the tutorial way (10 epochs, batch 32, Adam) beside
             cifar10_resnet with the CPU preset of examples/train_cifar10.py:
             test accuracy after every epoch, time to reach 90% / 93%,
             final accuracy with and without flip TTA.

Writes JSON to --out and prints a Markdown summary.  Accuracies are on the
JPEG copy of CIFAR-10 (see ../shared/data/README.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from zoo.io import write_json  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from common import cpu_info  # noqa: E402  (one definition of the machine report, bench/common.py)


def _compiled(width, policy="float32", jit=False):
    import keras

    import zoo

    keras.config.set_dtype_policy(policy)
    try:
        model = zoo.create_model("cifar10_resnet", width=width)
    finally:
        keras.config.set_dtype_policy("float32")
    return compile_as_spec(model, "cifar10_resnet", jit)


def compile_as_spec(model, name: str, jit: bool = False, **train):
    """`model` compiled with the loss, metrics and optimizer spec `name` trains with (`train` overrides its settings)."""
    import zoo
    from zoo.training import make_optimizer

    spec = zoo.get_spec(name)
    train = {**spec.train, **train}
    loss, metrics = spec.task.compile(spec, train)
    model.compile(optimizer=make_optimizer(train, 1000), loss=loss, metrics=metrics, jit_compile=jit)
    return model


def _steps_per_s(model, ds, steps):
    model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)  # trace + warm up
    t = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps / (time.perf_counter() - t)


def headroom(args) -> dict:
    import tensorflow as tf

    from zoo.data import load_dataset

    if args.headroom_model == "cifar10_airbench":  # the default of examples/train_cifar10.py
        from train_cifar10 import RUN_OPTIONS, preset as cpu_preset

        from zoo.training import precision_policy

        preset = cpu_preset("cifar10_airbench", RUN_OPTIONS["cifar10_airbench"]["precision"])  # what make train runs here
        batch = preset["batch_size"]
        data = load_dataset("cifar10", data_dir=args.data_dir, batch_size=batch, seed=0, pad=2, cutout=0,
                            **preset.get("data", {}))
        policy = precision_policy(RUN_OPTIONS["cifar10_airbench"]["precision"])
        model = _airbench(tuple(preset["widths"]), policy, batch)
        name = f"cifar10_airbench widths={preset['widths']} {policy} data={data.info['augmentation']}"
    else:
        batch = args.batch_size
        data = load_dataset("cifar10", data_dir=args.data_dir, batch_size=batch, seed=0, cutout=8)
        model = _compiled(args.width)
        name = f"cifar10_resnet width={args.width}"
    real = data.train.repeat()
    x, y = next(iter(data.train))
    memory = tf.data.Dataset.from_tensors((x, y)).repeat()
    runs = []
    for _ in range(args.repeats):  # alternate to cancel drift in machine load
        runs.append({"pipeline": _steps_per_s(model, real, args.steps), "in_memory": _steps_per_s(model, memory, args.steps)})
    ratios = sorted(r["pipeline"] / r["in_memory"] for r in runs)
    return {"model": name, "batch_size": batch, "steps": args.steps,
            "runs": runs, "ratio_median": ratios[len(ratios) // 2], "target": 0.95}


def precision(args) -> dict:
    import tensorflow as tf

    x = tf.random.uniform((args.batch_size, 32, 32, 3), 0, 256, dtype=tf.int32)
    ds = tf.data.Dataset.from_tensors((tf.cast(x, tf.uint8), tf.zeros((args.batch_size,), tf.int32))).repeat()
    out = {}
    for policy in ("float32", "mixed_bfloat16"):
        out[policy] = _steps_per_s(_compiled(args.width, policy), ds, args.steps) * args.batch_size
    out["ratio_bf16_over_fp32"] = out["mixed_bfloat16"] / out["float32"]
    return {"images_per_s": out, "width": args.width, "batch_size": args.batch_size}


def model_flops(model) -> int:
    """Forward multiply-adds x 2 of a model's convolutions and dense layers, per image."""
    total = 0
    for layer in model.layers:
        if not hasattr(layer, "kernel") or layer.kernel is None:
            continue
        k = layer.kernel.shape
        out = layer.output.shape
        spatial = int(out[1]) * int(out[2]) if len(out) == 4 else 1
        total += 2 * spatial * int(np_prod(k))
    return total


def np_prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def matmul_peak(repeats: int = 20) -> float:
    """GFLOP/s of a 2048x2048 float32 `tf.linalg.matmul` (best of `repeats`)."""
    import tensorflow as tf

    a = tf.random.normal((2048, 2048))
    b = tf.random.normal((2048, 2048))
    f = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)))
    f()
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        f().numpy()
        best = max(best, 2 * 2048**3 / (time.perf_counter() - t) / 1e9)
    return best


def _airbench(widths, policy="float32", batch_size=512, jit=False):
    import keras

    import zoo

    keras.config.set_dtype_policy(policy)
    try:
        model = zoo.create_model("cifar10_airbench", widths=widths)
    finally:
        keras.config.set_dtype_policy("float32")
    return compile_as_spec(model, "cifar10_airbench", jit)


def throughput(args) -> dict:
    import tensorflow as tf

    candidates = [tuple(int(w) for w in c.split("-")) for c in args.widths.split(",")]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    policies = args.policies.split(",")
    jits = [j.strip().lower() in ("1", "true", "xla") for j in args.xla.split(",")]
    rows = {}
    for rep in range(args.repeats):  # alternate to cancel drift in machine load
        peak = matmul_peak()
        rows.setdefault("matmul_peak_gflops", []).append(peak)
        for widths in candidates:
            for bs in batches:
                for policy, jit in itertools.product(policies, jits):
                    x = tf.random.uniform((bs, 32, 32, 3), 0, 256, dtype=tf.int32)
                    ds = tf.data.Dataset.from_tensors((tf.cast(x, tf.uint8), tf.zeros((bs,), tf.int32))).repeat()
                    model = _airbench(widths, policy, bs, jit)
                    steps = max(3, args.images // bs)
                    ips = _steps_per_s(model, ds, steps) * bs
                    flops = model_flops(model)
                    key = f"widths={'-'.join(map(str, widths))} batch={bs} {policy}" + (" xla" if jit else "")
                    r = rows.setdefault(key, {"forward_mflops_per_image": flops / 1e6, "images_per_s": [],
                                              "train_gflops": [], "fraction_of_matmul_peak": []})
                    r["images_per_s"].append(ips)
                    r["train_gflops"].append(3 * flops * ips / 1e9)
                    r["fraction_of_matmul_peak"].append(3 * flops * ips / 1e9 / peak)
                    print(key, f"{ips:.0f} img/s, {3 * flops * ips / 1e9:.1f} GFLOP/s, peak {peak:.0f}", flush=True)
    return {"rows": rows, "load_average": os.getloadavg()}


# One change per run from the CPU preset + run options of examples/train_cifar10.py (same seed, same subset).
ABLATIONS = {
    "recipe": {},
    "random flips (no alternating flip)": {"data": {"alternate_flip": False}},
    "BatchNorm-bias lr x1 (not x64)": {"bn_bias_lr_scale": 1.0},
    "no lookahead": {"lookahead": False},
    "float32 (not mixed bf16)": {"precision": "float32"},
    "airbench's identity + fan-in init (not Keras' Glorot)": {"init": "airbench"},
    "no warm-up (SGD, linear decay from the peak)": {"warmup": 0.0},
    "Muon on the conv kernels, no warm-up (airbench94_muon)": {"optimizer": "muon", "warmup": 0.0},
    "Muon, no warm-up, no lookahead (airbench94_muon has none)": {"optimizer": "muon", "warmup": 0.0, "lookahead": False},
}
OLD_ABLATIONS = {  # the first ablation (before the tricks above), kept for --ablation-set old
    "recipe": {},
    "no whitening fit (identity 2x2 patch basis)": {"whiten_fit": False},
    "BatchNorm with learned scale": {"bn_scale": True},
    "no label smoothing": {"label_smoothing": 0.0},
    "momentum without Nesterov": {"nesterov": False},
}


def ablation(args) -> dict:
    from train_cifar10 import CPU_PRESETS, RUN_OPTIONS

    import zoo
    from applications.image.callbacks import Lookahead
    from zoo.tasks.classification import predict_logits

    preset = CPU_PRESETS["cifar10_airbench"]
    base = {**preset, "epochs": args.ablation_epochs, "batch_size": args.ablation_batch,
            "learning_rate": preset["learning_rate"] * args.ablation_batch / preset["batch_size"]}
    options = dict(RUN_OPTIONS["cifar10_airbench"])
    if args.ablation_set == "old":
        base = {**base, "data": {}}
        options = {"precision": "float32", "lookahead": False}
    out = {"settings": base, "run_options": options, "limit": args.ablation_limit, "seed": 0, "rows": {}}
    runs = pathlib.Path(args.run_root) / f"ablation_{args.ablation_set}"
    table = OLD_ABLATIONS if args.ablation_set == "old" else ABLATIONS
    only = set(args.ablation_rows.split(",")) if args.ablation_rows else None
    for i, (label, change) in enumerate(table.items()):
        if only is not None and str(i) not in only:
            continue
        change = dict(change)
        opts = {**options, **{k: change.pop(k) for k in list(change) if k in ("lookahead", "precision")}}
        overrides = {**base, **change}
        if "data" in change:
            overrides["data"] = {**base.get("data", {}), **change["data"]}
        t = time.perf_counter()
        r = zoo.fit("cifar10_airbench", run_dir=runs / label.split(" (")[0].replace(" ", "_"), data_dir=args.data_dir,
                    limit=args.ablation_limit, overrides=overrides, seed=0, verbose=0,
                    precision=opts.get("precision", "float32"), callbacks=[Lookahead()] if opts.get("lookahead") else [])
        row = {"change": {**change, **{k: v for k, v in opts.items() if options.get(k) != v}},
               "test_accuracy": r.metrics["test"]["accuracy"],
               "test_accuracy_per_epoch": r.history["val_accuracy"], "seconds": time.perf_counter() - t,
               "load_average": os.getloadavg()}
        if args.ablation_set != "old":
            for name, tta in (("flip", {"tta_flip": True}), ("flip_translate", {"tta_flip": True, "tta_translate": 1})):
                y, logits = predict_logits(r.model, r.data.test, **tta)
                row[f"test_accuracy_tta_{name}"] = float((logits.argmax(-1) == y).mean())
        out["rows"][label] = row
        print(label, json.dumps(row), flush=True)
    return out


MINUTES = (5, 10, 20, 40)


def accuracy_at_minutes(history: dict, minutes=MINUTES) -> dict:
    """Test accuracy of the last epoch finished within each budget (None: no epoch finished by then)."""
    acc, secs = history.get("val_accuracy", []), history.get("wall_seconds", [])
    out = {}
    for m in minutes:
        done = [a for a, s in zip(acc, secs) if s <= 60 * m]
        out[f"{m} min"] = done[-1] if done else None
    return out


def curves(args) -> dict:
    """Time-to-accuracy of finished runs (`--runs dir,dir`): accuracy at 5/10/20/40 min, time to 90/93%."""
    out = {}
    for d in args.runs.split(","):
        d = pathlib.Path(d)
        h = json.loads((d / "history.json").read_text())
        m = json.loads((d / "metrics.json").read_text())
        out[str(d)] = {"model": m["model"], "precision": m.get("precision"), "epochs": m["epochs"],
                       "test_accuracy_per_epoch": h["val_accuracy"], "wall_seconds_per_epoch": h["wall_seconds"],
                       "accuracy_at": accuracy_at_minutes(h), "time_to": _threshold_times(h),
                       "final_test_accuracy": h["val_accuracy"][-1], "final_with_tta": m["test"]["accuracy"],
                       "tta": {k: m["test"].get(k) for k in ("tta_flip", "tta_translate")}}
        print(d, json.dumps(out[str(d)]["accuracy_at"]), flush=True)
    return out


def _threshold_times(history: dict, thresholds=(0.90, 0.93)) -> dict:
    acc, secs = history.get("val_accuracy", []), history.get("wall_seconds", [])
    out = {}
    for t in thresholds:
        hit = next((i for i, a in enumerate(acc) if a >= t), None)
        out[f"{t:.0%}"] = None if hit is None else {"epoch": hit + 1, "seconds": secs[hit]}
    return out


def train(args) -> dict:
    from train_cifar10 import CPU_PRESETS

    import zoo

    results = {}
    runs = pathlib.Path(args.run_root)
    for name, overrides in (("cifar10_cnn", {}), ("cifar10_resnet", dict(CPU_PRESETS["cifar10_resnet"]))):
        if name not in args.models:
            continue
        if name == "cifar10_resnet" and args.resnet_epochs:
            overrides["epochs"] = args.resnet_epochs
        r = zoo.fit(name, run_dir=runs / name, data_dir=args.data_dir, overrides=overrides, verbose=2,
                    eval_options={"tta_flip": name == "cifar10_resnet"})
        h = r.history
        results[name] = {
            "settings": {"model": r.config["model_args"], "train": r.config["train"]},
            "epochs": len(h["epoch"]),
            "train_seconds_incl_eval": h["wall_seconds"][-1],
            "test_accuracy_per_epoch": h["val_accuracy"],
            "wall_seconds_per_epoch": h["wall_seconds"],
            "final_test_accuracy": h["val_accuracy"][-1],
            "final_test_accuracy_tta": r.metrics["test"]["accuracy"] if r.metrics["test"].get("tta_flip") else None,
            "time_to": _threshold_times(h),
            "run_dir": str(r.run_dir),
        }
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", default="headroom,precision,train")
    p.add_argument("--data-dir")
    p.add_argument("--width", type=int, default=16, help="cifar10_resnet width for headroom/precision")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--widths", default="64-256-256,32-128-128,32-64-128,24-48-96", help="throughput candidates")
    p.add_argument("--batch-sizes", default="256,512", help="throughput candidates")
    p.add_argument("--policies", default="float32,mixed_bfloat16", help="throughput candidates")
    p.add_argument("--xla", default="0", help="throughput candidates: 0 (no XLA), 1 (XLA train step), or 0,1")
    p.add_argument("--images", type=int, default=2048, help="images per throughput measurement")
    p.add_argument("--ablation-limit", type=int, default=10000, help="train images per ablation run")
    p.add_argument("--ablation-epochs", type=int, default=5)
    p.add_argument("--ablation-batch", type=int, default=256)
    p.add_argument("--ablation-set", default="tricks", choices=("tricks", "old"), help="which ablation table")
    p.add_argument("--ablation-rows", help="only these rows (0-based, comma-separated)")
    p.add_argument("--headroom-model", default="cifar10_airbench", choices=("cifar10_airbench", "cifar10_resnet"),
                   help="headroom: the example's airbench preset, or cifar10_resnet at --width/--batch-size")
    p.add_argument("--runs", help="finished run directories for the curves section")
    p.add_argument("--models", default="cifar10_cnn,cifar10_resnet")
    p.add_argument("--resnet-epochs", type=int, help="override the preset's epochs")
    p.add_argument("--run-root", default=str(ROOT / "runs" / "bench"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "cifar10.json"))
    args = p.parse_args(argv)
    args.models = args.models.split(",")
    report = {"command": " ".join([os.path.basename(sys.executable), *sys.argv]), "cpu": cpu_info(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for section in args.sections.split(","):
        t = time.perf_counter()
        report[section] = {"headroom": headroom, "precision": precision, "throughput": throughput, "ablation": ablation,
                            "train": train, "curves": curves}[section](args)
        report[section + "_seconds"] = time.perf_counter() - t
        write_json(args.out, report)  # atomic: a killed bench keeps the sections already written
        print(json.dumps({section: report[section]}, indent=2), flush=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
