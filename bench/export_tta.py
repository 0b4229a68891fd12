"""What an image export scores and costs with and without its test-time augmentation (TTA).

    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/export_tta.py --run-dir runs/cifar10_airbench --out OUT.json

Exports the finished run twice into a temporary directory (`zoo.export_model`
with its default, the TTA the run was evaluated with, and with `tta=False`),
then feeds every CIFAR-10 test JPEG of the offline archive to each
SavedModel's `serving_default` (raw bytes, batches of `--batch`, loaded with
`tf.saved_model.load`: no zoo code in the call) and reports each export's accuracy
against the archive's labels, beside the run's own `metrics.json` figure,
and images/s of the signature, the two exports timed in alternation
(`--repeats` passes each) so that load from other processes falls on both.

`--tflite` also writes the TTA export's `model.tflite` (a float32 copy of a
bf16 model, `zoo.export.float32_twin`) and scores it on the same images
(decoded to uint8 pixels, its `serve_pixels` signature, batches of
`--tflite-batch` through TensorFlow's interpreter), with its top-1
agreement with the SavedModel and its images/s over one pass.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from common import cpu_info  # noqa: E402  (one definition of the machine report)


def score_tflite(path, images, labels, batch, served_pred) -> dict:
    """Accuracy, agreement with the SavedModel's classes (`served_pred`) and images/s of a `model.tflite`
    on uint8 `images` (N, 32, 32, 3)."""
    from zoo.export import tflite_signature

    runner, _ = tflite_signature(path, "serve_pixels")
    t0 = time.perf_counter()
    probs = np.concatenate([runner(image=images[i:i + batch])["probabilities"] for i in range(0, len(images), batch)])
    seconds = time.perf_counter() - t0
    pred = probs.argmax(-1)
    return {"accuracy": float((pred == labels).mean()), "top1_agreement_with_saved_model": float((pred == served_pred).mean()),
            "seconds": [seconds], "batch": batch}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, help="a finished image-classifier run")
    p.add_argument("--data-dir", default=os.environ.get("ZOO_DATA_DIR"), help="folder of cifar10-jpeg.tar.gz")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tflite", action="store_true", help="also score the TTA export's model.tflite")
    p.add_argument("--tflite-batch", type=int, default=64)
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)
    if not args.data_dir:
        p.error("give --data-dir or set ZOO_DATA_DIR")

    import zoo  # first: it imports TensorFlow without its start-up lines
    from applications.image.data import load_cifar10_arrays, load_cifar10_jpegs
    from zoo.io import write_json

    import tensorflow as tf

    blobs, labels = load_cifar10_jpegs("test", args.data_dir)
    run_metrics = json.loads((pathlib.Path(args.run_dir) / "metrics.json").read_text())["test"]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        fns = {}
        for name, tta in (("tta", True), ("one_view", False)):
            path = zoo.export_model(args.run_dir, base_dir=pathlib.Path(tmp) / name, tta=tta, tflite=args.tflite and tta)
            card = json.loads((path / "model_card.json").read_text())
            fns[name] = tf.saved_model.load(str(path)).signatures["serving_default"]
            rows[name] = {"serving_options": card.get("serving_options", {}), "seconds": []}
            if "tflite" in card:
                lite_path, lite_card = path / card["tflite"]["file"], card["tflite"]
        batches = [tf.constant(blobs[i:i + args.batch]) for i in range(0, len(blobs), args.batch)]
        for name, fn in fns.items():  # accuracy, and a warm-up pass
            pred = np.concatenate([fn(image_bytes=b)["class_id"].numpy() for b in batches])
            rows[name]["accuracy"] = float((pred == labels).mean())
            if name == "tta":
                tta_pred = pred
        for _ in range(args.repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                for b in batches:
                    fn(image_bytes=b)["class_id"].numpy()
                rows[name]["seconds"].append(time.perf_counter() - t0)
        if args.tflite:
            images, _ = load_cifar10_arrays("test", args.data_dir)  # the same files decoded, in the same order
            rows["tflite"] = score_tflite(lite_path, images, labels, args.tflite_batch, tta_pred)
            rows["tflite"]["card"] = lite_card
    for row in rows.values():
        row["images_per_second"] = [round(len(blobs) / s, 1) for s in row["seconds"]]
    report = {
        "command": " ".join(sys.argv),
        "cpu": cpu_info(),
        "images": len(blobs),
        "run_test_metrics": {k: v for k, v in run_metrics.items() if isinstance(v, (int, float, bool))},
        "exports": rows,
        "cost_ratio": round(float(np.median(rows["one_view"]["images_per_second"])
                                  / np.median(rows["tta"]["images_per_second"])), 2),
    }
    write_json(pathlib.Path(args.out), report)
    print(json.dumps({k: report[k] for k in ("run_test_metrics", "exports", "cost_ratio")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
