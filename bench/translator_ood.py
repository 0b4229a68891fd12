"""Translator exports on English they never saw: other kinds of sentences, and test sentences typed differently.

    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/translator_ood.py saved_models/multi30k_transformer/1 --out OUT.json

For each exported translator (a SavedModel version directory, called through
`tf.saved_model.load(...).signatures["serving_default"]` on raw strings: no
zoo code in the call, the export's greedy decoding), sacreBLEU (detokenised,
cased, 13a) and chrF against one reference per sentence on:

- `test_2016_flickr`: the 1,000 standard test sentences (Flickr30k image
  captions, the training domain);
- the same sentences typed the way people type: `lowercase`, `no_final_period`
  (a sentence without its final `.`, `!` or `?`; the reference keeps its
  own), and `uppercase` (ALL CAPS);
- `bench/ood/translation_en_de.tsv`, 90 sentences with German references,
  written for this bench in three domains at increasing distance from the
  training data: `captions_coco_style` (40 captions of everyday scenes and
  objects in the style of MS-COCO, the Multi30k shared task's out-of-domain
  test set, which is not in the offline copy), `everyday` (30 short
  statements and questions, first and second person) and `news` (20
  sentences of news).  Per domain and over all 90.

Beside each set: the share of its English word tokens that occur in the
training sentences (lower-cased; what the vocabulary covers).  Single
references and small sets: chrF is the steadier of the two figures there,
and one sentence of `news` is 5% of it.

Prints a Markdown table and a few translations of each domain; writes the
JSON (all translations included) to `--out`.
"""

from __future__ import annotations

import argparse
import csv
import os
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from common import cpu_info, load_export  # noqa: E402  (one definition of the machine report)

OOD = REPO / "bench" / "ood" / "translation_en_de.tsv"
WORD = re.compile(r"[^\W\d_]+")


def read_ood(path=OOD) -> tuple[list[str], list[str], list[str]]:
    """The out-of-domain pairs: (english (N,), german references (N,), domains (N,))."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["en"] for r in rows], [r["de"] for r in rows], [r["domain"] for r in rows]


def variants(sentences: list[str]) -> dict[str, list[str]]:
    """The test sentences as people might type them: {name: sentences}, each aligned with the input."""
    return {"lowercase": [s.lower() for s in sentences],
            "no_final_period": [s.rstrip().rstrip(".!?").rstrip() for s in sentences],
            "uppercase": [s.upper() for s in sentences]}


def coverage(sentences: list[str], known: set[str]) -> float:
    """Share of the word tokens (letters only, lower-cased) of `sentences` that are in `known`."""
    words = [w for s in sentences for w in WORD.findall(s.lower())]
    return sum(w in known for w in words) / max(len(words), 1)


def translate(fn, sentences: list[str], batch: int = 64) -> list[str]:
    """German translations of `sentences` through a SavedModel signature: list[str] (N,)."""
    import tensorflow as tf

    out = []
    for i in range(0, len(sentences), batch):
        out += [t.decode("utf-8") for t in fn(text=tf.constant(sentences[i:i + batch]))["translation"].numpy()]
    return out


def scores(hypotheses: list[str], references: list[str]) -> dict:
    """{"bleu", "chrf"}: sacreBLEU (cased, 13a) and chrF of `hypotheses` against one reference each."""
    import sacrebleu

    return {"bleu": round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2),
            "chrf": round(sacrebleu.corpus_chrf(hypotheses, [references]).score, 2), "sentences": len(hypotheses)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exports", nargs="+", help="SavedModel version directories of translators")
    p.add_argument("--data-dir", default=os.environ.get("ZOO_DATA_DIR"), help="folder holding multi30k/")
    p.add_argument("--examples", type=int, default=4, help="translations of each domain to print")
    p.add_argument("--limit", type=int, help="first N sentences of the test set and of the OOD file only (smoke runs)")
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)

    from zoo._tf import import_tensorflow

    tf = import_tensorflow()  # before Keras: TensorFlow's start-up lines silenced, as the CLI does

    from applications.translation.data import load_pairs
    from zoo.io import write_json

    train_en, _, _ = load_pairs("train", args.data_dir)
    known = {w for s in train_en for w in WORD.findall(s.lower())}
    test_en, test_de, _ = load_pairs("test_2016_flickr", args.data_dir)
    test_en, test_de = test_en[:args.limit], test_de[:args.limit]
    ood_en, ood_de, domains = (x[:args.limit] for x in read_ood())
    names = sorted(set(domains), key=domains.index)
    sets = {"test_2016_flickr": (test_en, test_de)}
    sets.update({f"test_2016_flickr, {k}": (v, test_de) for k, v in variants(test_en).items()})
    groups = {d: [i for i, x in enumerate(domains) if x == d] for d in names}  # rows of the OOD file per domain

    def entry(en, de, hyps):
        return {**scores(hyps, de), "word_coverage": round(coverage(en, known), 4), "translations": hyps}

    rows = {}
    for export in args.exports:
        card, fn = load_export(export, warm_up=lambda f: translate(f, ["A dog runs."]))
        done = {name: entry(en, de, translate(fn, en)) for name, (en, de) in sets.items()}
        ood = translate(fn, ood_en)  # once: each domain's figures come from its rows
        for d, idx in groups.items():
            done[d] = entry([ood_en[i] for i in idx], [ood_de[i] for i in idx], [ood[i] for i in idx])
        done["ood_all"] = entry(ood_en, ood_de, ood)
        rows[card["model"]] = {"export": export, "model": card["model"],
                               "card_test": card.get("metrics", {}).get("test", {}), "sets": done}
    report = {"command": " ".join(sys.argv), "cpu": cpu_info(), "ood_file": str(OOD.relative_to(REPO)),
              "decoding": "the export's serving_default (greedy)", "models": rows}
    write_json(pathlib.Path(args.out), report)
    for name, r in rows.items():
        print(f"`{name}` ({r['export']}), the export's greedy decoding:\n")
        print("| set | sentences | sacreBLEU | chrF | English words seen in training |")
        print("|---|---|---|---|---|")
        for s, v in r["sets"].items():
            print(f"| {s} | {v['sentences']} | {v['bleu']:.1f} | {v['chrf']:.1f} | {v['word_coverage']:.1%} |")
        for d in names:
            print(f"\n{d}:")
            for i, h in list(zip(groups[d], r["sets"][d]["translations"]))[:args.examples]:
                e, g = ood_en[i], ood_de[i]
                print(f"  {e}\n    -> {h}\n    (reference: {g})")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
