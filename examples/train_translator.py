"""Train the Multi30k English -> German Transformer, evaluate BLEU, export, translate.

    ZOO_DATA_DIR=../shared/data python examples/train_translator.py                 # the spec's recipe
    ZOO_DATA_DIR=../shared/data python examples/train_translator.py --epochs 1 --limit 2000   # a smoke run
    zoo predict multi30k_transformer "A man is riding a bike."                        # afterwards

Writes runs/multi30k_transformer/ (history, curves.png, metrics.json with
sacreBLEU both ways, translations.txt, examples.json) and
saved_models/multi30k_transformer/<version>/, a SavedModel mapping English
strings to German strings (greedy decoding with the key/value cache in the graph).
"""

import argparse
import sys

import zoo
from zoo.cli import parse_set, report_errors
from applications.translation.task import translate


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--run-dir", default="runs/multi30k_transformer")
    p.add_argument("--epochs", type=int)
    p.add_argument("--limit", type=int, help="use the first N pairs of each split (smoke runs)")
    p.add_argument("--beam-width", type=int, default=4)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="saved_models")
    args = p.parse_args(argv)

    result = zoo.fit("multi30k_transformer", run_dir=args.run_dir, data_dir=args.data_dir, epochs=args.epochs,
                     limit=args.limit, overrides=parse_set(args.set), eval_options={"beam_width": args.beam_width})
    test = result.metrics["test"]
    print(f"sacreBLEU (detokenised, cased) {test['sacrebleu']:.2f}; "
          f"BLEU (tokenised, lower-cased) {test['bleu_tokenized_lowercase']:.2f}")
    path = zoo.export_model(args.run_dir, base_dir=args.out)
    print(f"exported {path}")
    if result.data is not None:
        for en, de in zip(["A man is riding a bike.", "Two dogs are playing in the snow."],
                          translate(result.model, result.data.preprocessor,
                                    ["A man is riding a bike.", "Two dogs are playing in the snow."], beam_width=args.beam_width)):
            print(f"{en}  ->  {de}")


if __name__ == "__main__":
    sys.exit(report_errors("train_translator.py", main))
