"""IMDB benchmark: test accuracy and training time of the three text models, side by side.

    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/text.py

Each model trains with its spec's settings (`zoo info NAME`; `--epochs`
overrides all) on the 22,500 training reviews (2,500 held out for
validation), then is evaluated once on the 25,000 test reviews.  Runs go to
`--run-root/<model>-<hash of its settings>`: rerunning the same command
resumes an interrupted run and reloads finished ones (delete to retrain).
Writes JSON to `--out`, the Markdown table beside it (`.md`), and prints the
table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import cpu_info  # noqa: E402  (one definition of the machine report)
from zoo.io import write_json, write_text  # noqa: E402

MODELS = "imdb_lstm,imdb_bilstm_attention,imdb_transformer"


def table(report: dict) -> str:
    """The report as a Markdown table, one row per model."""
    rows = ["| model | params | epochs | max tokens (head+tail) | val accuracy per epoch | test accuracy (reviews) "
            "| training time |", "|---|---|---|---|---|---|---|"]
    for name, m in report["models"].items():
        data = m["settings"]["train"].get("data", {})
        val = ", ".join(f"{v:.1%}" for v in m.get("val_accuracy_per_epoch") or [])
        head = data.get("head_tokens")
        window = "first" if head is None else f"{head}+rest"
        rows.append(f"| `{name}` | {m['params']:,} | {m['epochs']} | {data.get('sequence_length')} "
                    f"({window}) | {val} | **{m['test_accuracy']:.2%}** ({m['num_test']:,}) "
                    f"| {m['train_seconds']:.0f} s ({m['train_seconds'] / 60:.1f} min) |")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=MODELS, help=f"comma-separated (default {MODELS})")
    p.add_argument("--epochs", type=int, help="override every model's epochs (default: each spec's)")
    p.add_argument("--data-dir", help="folder holding aclImdb.tar.gz (default $ZOO_DATA_DIR)")
    p.add_argument("--run-root", default=str(ROOT / "runs" / "bench"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "text.json"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every model")
    args = p.parse_args(argv)

    import zoo
    from zoo.cli import parse_set

    report = {"command": " ".join(["python", *sys.argv]), "cpu": cpu_info(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "models": {}}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    overrides = {**parse_set(args.set), **({"epochs": args.epochs} if args.epochs else {})}
    for name in args.models.split(","):
        t = time.perf_counter()
        settings = json.dumps(zoo.get_spec(name).resolve(overrides), sort_keys=True, default=str)
        run_dir = pathlib.Path(args.run_root) / f"{name}-{hashlib.sha256(settings.encode()).hexdigest()[:8]}"
        r = zoo.fit(name, run_dir=run_dir, data_dir=args.data_dir, overrides=overrides, verbose=2)
        report["models"][name] = {
            "test_accuracy": r.metrics["test"]["accuracy"], "num_test": r.metrics["test"]["num_examples"],
            "epochs": r.metrics["epochs"], "val_accuracy_per_epoch": r.history.get("val_accuracy"),
            "train_seconds": r.metrics["train_seconds"], "total_seconds_incl_data_and_eval": time.perf_counter() - t,
            "params": r.metrics["params"], "settings": {"model": r.config["model_args"], "train": r.config["train"]},
        }
        write_json(out, report)
        write_text(out.with_suffix(".md"), table(report) + "\n")
        print(table(report), flush=True)


if __name__ == "__main__":
    main()
