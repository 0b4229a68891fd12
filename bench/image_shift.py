"""An image export on test images it never saw in this form: common corruptions and other sizes.

    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/image_shift.py saved_models/cifar10_airbench/1 --out OUT.json

Each CIFAR-10 test image of the offline JPEG copy is changed in one way
(deterministic, seed 0), encoded again (PNG, lossless, unless the change is
a JPEG re-encoding) and fed as raw bytes to the export's `serving_default`
(`tf.saved_model.load`: no zoo code in the call).  The changes follow
CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019) at about its middle
severity, plus two of size:

- `clean`: the archive's JPEG bytes as they are (the model card's set);
- `gaussian_noise`: + N(0, 0.08) on [0, 1] pixels (CIFAR-10-C severity 3);
- `gaussian_blur`: a Gaussian of sigma 1 pixel;
- `contrast`: pixels pulled halfway to the image's mean (factor 0.5);
- `brightness`: +0.3 on [0, 1] pixels, clipped;
- `jpeg_q20`: JPEG at quality 20;
- `pixelate`: 16x16 (area) and back to 32x32 (nearest);
- `grayscale`: the luma in all three channels;
- `upscaled_96`: bicubic 96x96 (the export resizes it back: area);
- `padded_40`: a 4-pixel black border, 40x40 (resized back to 32x32).

Writes accuracy per change to `--out` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from common import cpu_info, load_export  # noqa: E402  (one definition of the machine report)


def _blur(x, tf):
    k = np.exp(-0.5 * (np.arange(-3, 4) / 1.0) ** 2)
    k = (k / k.sum()).astype(np.float32)
    kernel = tf.constant(np.einsum("i,j->ij", k, k)[:, :, None, None] * np.eye(3, dtype=np.float32)[None, None])
    return tf.nn.conv2d(tf.pad(x, [[0, 0], [3, 3], [3, 3], [0, 0]], "REFLECT"), kernel, 1, "VALID")


def changes(tf):
    """name -> (function of float32 [0, 1] images (N, 32, 32, 3) -> float images (N, h, w, 3), JPEG quality or None)."""
    rng = np.random.default_rng(0)
    mean = lambda x: tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)  # noqa: E731
    return {
        "gaussian_noise": (lambda x: x + rng.normal(0, 0.08, x.shape).astype(np.float32), None),
        "gaussian_blur": (lambda x: _blur(x, tf), None),
        "contrast": (lambda x: (x - mean(x)) * 0.5 + mean(x), None),
        "brightness": (lambda x: x + 0.3, None),
        "jpeg_q20": (lambda x: x, 20),
        "pixelate": (lambda x: tf.image.resize(tf.image.resize(x, [16, 16], "area"), [32, 32], "nearest"), None),
        "grayscale": (lambda x: tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x)), None),
        "upscaled_96": (lambda x: tf.image.resize(x, [96, 96], "bicubic"), None),
        "padded_40": (lambda x: tf.pad(x, [[0, 0], [4, 4], [4, 4], [0, 0]]), None),
    }


def encode(images, quality, tf) -> list[bytes]:
    """float [0, 1] images -> PNG bytes (or JPEG at `quality`)."""
    pixels = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)
    if quality:
        return [tf.io.encode_jpeg(p, quality=quality).numpy() for p in pixels]
    return [tf.io.encode_png(p).numpy() for p in pixels]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export", help="a SavedModel version directory of a CIFAR-10 classifier")
    p.add_argument("--data-dir", default=os.environ.get("ZOO_DATA_DIR"), help="folder of cifar10-jpeg.tar.gz")
    p.add_argument("--limit", type=int, help="first N test images only (smoke runs)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)
    if not args.data_dir:
        p.error("give --data-dir or set ZOO_DATA_DIR")

    from zoo._tf import import_tensorflow

    tf = import_tensorflow()
    from applications.image.data import load_cifar10_arrays, load_cifar10_jpegs
    from zoo.io import write_json

    blobs, labels = load_cifar10_jpegs("test", args.data_dir)
    blobs, labels = blobs[:args.limit], labels[:args.limit]
    card, fn = load_export(args.export, warm_up=lambda f: f(image_bytes=tf.constant(blobs[:1])))

    def accuracy(data):
        pred = np.concatenate([fn(image_bytes=tf.constant(data[i:i + args.batch]))["class_id"].numpy()
                               for i in range(0, len(data), args.batch)])
        return float((pred == labels).mean())

    images = load_cifar10_arrays("test", args.data_dir)[0][:args.limit].astype(np.float32) / 255.0  # `blobs` decoded
    rows = {"clean": {"accuracy": accuracy(list(blobs))}}
    for name, (change, quality) in changes(tf).items():
        t0 = time.perf_counter()
        data = [b for i in range(0, len(images), 1000)
                for b in encode(change(tf.constant(images[i:i + 1000])), quality, tf)]
        rows[name] = {"accuracy": accuracy(data), "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{name}: {rows[name]['accuracy']:.2%}", flush=True)
    report = {"command": " ".join(sys.argv), "cpu": cpu_info(), "export": args.export, "model": card["model"],
              "serving_options": card.get("serving_options", {}), "card_test": card.get("metrics", {}).get("test", {}),
              "images": len(labels), "changes": rows}
    write_json(pathlib.Path(args.out), report)
    print("| change | accuracy | vs clean |\n|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['accuracy']:.2%} | {row['accuracy'] - rows['clean']['accuracy']:+.2%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
