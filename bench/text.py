"""IMDB benchmark: test accuracy and training time of the three text models, side by side.

    ZOO_DATA_DIR=../shared/data python bench/text.py --epochs 2

Each model trains on the 22,500 training reviews (2,500 held out for
validation), then is evaluated once on the 25,000 test reviews.  Writes JSON
to --out and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from cifar10 import cpu_info  # noqa: E402  (one definition of the machine report)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="imdb_lstm,imdb_bilstm_attention,imdb_transformer")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--data-dir")
    p.add_argument("--run-root", default=str(ROOT / "runs" / "bench"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "text.json"))
    args = p.parse_args(argv)

    import zoo

    report = {"command": " ".join(["python", *sys.argv]), "cpu": cpu_info(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "models": {}}
    for name in args.models.split(","):
        t = time.perf_counter()
        r = zoo.fit(name, run_dir=pathlib.Path(args.run_root) / name, data_dir=args.data_dir, epochs=args.epochs, verbose=2)
        report["models"][name] = {
            "test_accuracy": r.metrics["test"]["accuracy"], "num_test": r.metrics["test"]["num_examples"],
            "val_accuracy_per_epoch": r.history.get("val_accuracy"), "train_seconds": r.metrics["train_seconds"],
            "total_seconds_incl_data_and_eval": time.perf_counter() - t, "params": r.metrics["params"],
            "settings": {"model": r.config["model_args"], "train": r.config["train"]},
        }
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    print("| model | params | epochs | test accuracy | training time |\n|---|---|---|---|---|")
    for name, m in report["models"].items():
        print(f"| `{name}` | {m['params']:,} | {args.epochs} | {m['test_accuracy']:.2%} | {m['train_seconds'] / 60:.1f} min |")


if __name__ == "__main__":
    main()
