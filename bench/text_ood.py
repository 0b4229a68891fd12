"""Sentiment exports on text they never saw: other domains, and short IMDB reviews.

    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/text_ood.py saved_models/imdb_bilstm_attention/1 ... --out OUT.json

For each exported text classifier (a SavedModel version directory, called
through `tf.saved_model.load(...).signatures["serving_default"]` on raw
strings: no zoo code in the call), three accuracies:

- `imdb_test`: the 25,000 IMDB test reviews (the standard split; the model
  card's figure, measured again through the export);
- `imdb_test_first`, `imdb_test_last`: `--short` random IMDB test reviews
  cut to their first or their last `--short-words` words (the same domain
  at the length of the reviews below; a cut review may have lost what
  says its sentiment, so these bound how much the length alone costs);
- `ood`: `bench/ood/sentiment_reviews.tsv`, 120 short reviews of
  electronics, restaurants, hotels, books, software and services (10
  positive and 10 negative each, written for this bench, 10-25 words, no
  film vocabulary), overall and per domain.

Prints a Markdown table; writes the JSON to `--out`.
"""

from __future__ import annotations

import argparse
import csv
import os
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from common import cpu_info, load_export  # noqa: E402  (one definition of the machine report)

OOD = REPO / "bench" / "ood" / "sentiment_reviews.tsv"


def read_ood(path=OOD) -> tuple[list[str], np.ndarray, list[str]]:
    """The out-of-domain reviews: (texts (N,), labels int (N,) 1 = positive, domains (N,))."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return ([r["text"] for r in rows], np.array([r["label"] == "pos" for r in rows], int), [r["domain"] for r in rows])


def classify(fn, texts, batch=256) -> np.ndarray:
    """Positive-class probability of every text through a SavedModel signature: float (N,)."""
    import tensorflow as tf

    return np.concatenate([fn(text=tf.constant(texts[i:i + batch]))["probability"].numpy()
                           for i in range(0, len(texts), batch)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exports", nargs="+", help="SavedModel version directories of text classifiers")
    p.add_argument("--data-dir", default=os.environ.get("ZOO_DATA_DIR"), help="folder of aclImdb.tar.gz")
    p.add_argument("--short", type=int, default=2000, help="IMDB test reviews in the short set")
    p.add_argument("--short-words", type=int, default=20)
    p.add_argument("--limit", type=int, help="first N IMDB test reviews only (smoke runs)")
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)

    from zoo._tf import import_tensorflow

    tf = import_tensorflow()  # before Keras: TensorFlow's start-up lines silenced, as the CLI does

    from applications.text.data import load_imdb_texts
    from zoo.io import write_json

    texts, labels, _ = load_imdb_texts("test", args.data_dir)
    texts, labels = texts[:args.limit], labels[:args.limit]
    pick = np.random.default_rng(0).permutation(len(texts))[:args.short]
    words = [texts[i].replace("<br />", " ").split() for i in pick]
    first = [" ".join(w[:args.short_words]) for w in words]
    last = [" ".join(w[-args.short_words:]) for w in words]
    ood, ood_labels, domains = read_ood()
    rows = {}
    for export in args.exports:
        card, fn = load_export(export, warm_up=lambda f: classify(f, ["warm-up"]))
        full = classify(fn, texts)
        p_ood = classify(fn, ood)
        row = {
            "export": export,
            "model": card["model"],
            "card_test_accuracy": card.get("metrics", {}).get("test", {}).get("accuracy"),
            "imdb_test": float(((full > 0.5) == labels).mean()),
            "imdb_test_first": float(((classify(fn, first) > 0.5) == labels[pick]).mean()),
            "imdb_test_last": float(((classify(fn, last) > 0.5) == labels[pick]).mean()),
            "ood": float(((p_ood > 0.5) == ood_labels).mean()),
            "ood_by_domain": {d: float(((p_ood > 0.5) == ood_labels)[np.array(domains) == d].mean())
                              for d in sorted(set(domains))},
            "ood_positive_rate": float((p_ood > 0.5).mean()),
            "ood_errors": [{"text": t, "label": int(y), "probability": round(float(q), 3)}
                           for t, y, q in zip(ood, ood_labels, p_ood) if (q > 0.5) != y],
        }
        rows[card["model"]] = row
    report = {"command": " ".join(sys.argv), "cpu": cpu_info(), "imdb_test_reviews": len(texts),
              "short": {"reviews": len(pick), "words": args.short_words}, "ood_reviews": len(ood), "models": rows}
    write_json(pathlib.Path(args.out), report)
    domains_sorted = sorted(set(domains))
    n = args.short_words
    print(f"| model | IMDB test (card) | IMDB test, first / last {n} words | out of domain ({len(ood)}) | "
          + " | ".join(domains_sorted) + " |")
    print("|---" * (4 + len(domains_sorted)) + "|")
    for name, r in rows.items():
        card_acc = "not in the card" if r["card_test_accuracy"] is None else f"{r['card_test_accuracy']:.1%}"
        print(f"| `{name}` | {r['imdb_test']:.1%} ({card_acc}) | {r['imdb_test_first']:.1%} / "
              f"{r['imdb_test_last']:.1%} | "
              f"{r['ood']:.1%} | " + " | ".join(f"{r['ood_by_domain'][d]:.0%}" for d in domains_sorted) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
