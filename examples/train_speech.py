"""Train the Free Spoken Digit recognizer (log-mel -> conv -> Transformer -> CTC), evaluate, export.

    python examples/train_speech.py                                  # conventional split, spec settings
    python examples/train_speech.py --epochs 30                      # exactly 30 epochs, no time budget
    python examples/train_speech.py --epochs 2 --limit 300           # a smoke run
    python examples/train_speech.py --split speaker:george           # leave george out

The spec trains up to 40 epochs in a 15-minute budget: the first two
epochs are timed, then the run takes as many as fit (all 40 on an AVX-512
EPYC, about 33 on an AVX2 one) and its learning-rate schedule ends there;
`--epochs N` turns the budget off.

Trains on isolated recordings plus fresh connected-digit utterances every
epoch; reports isolated-digit accuracy (per speaker), connected-digit WER
(jiwer) with greedy and beam decoding; writes runs/<name>/ (history,
metrics, curves.png, transcripts.json) and saved_models/fsdd_ctc/<version>/,
a SavedModel mapping 8 kHz float waveforms + lengths to transcripts:

    m = tf.saved_model.load("saved_models/fsdd_ctc/1")
    m.signatures["serving_default"](waveform=tf.constant(w), length=tf.constant(n))["transcript"]
"""

import argparse
import sys

import zoo
from zoo.cli import parse_set, report_errors


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--limit", type=int, help="first N recordings of each side of the split (smoke runs)")
    p.add_argument("--split", default="conventional", help="conventional | speaker:<name>")
    p.add_argument("--beam-width", type=int, default=8, help="beam width of the second decoding (1: greedy only)")
    p.add_argument("--data-dir", help="folder holding fsdd-recordings.tar.gz (default: $ZOO_DATA_DIR)")
    p.add_argument("--run-dir")
    p.add_argument("--out", default="saved_models")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. dim=128, data.connected.num_train=500")
    p.add_argument("--no-export", action="store_true")
    args = p.parse_args(argv)

    overrides = parse_set(args.set)
    data = overrides.setdefault("data", {})
    data.setdefault("split", args.split)  # --set data.split=... wins over the --split default
    split = data["split"]
    tag = "fsdd_ctc" if split == "conventional" else f"fsdd_ctc_{split.replace(':', '_')}"
    result = zoo.fit("fsdd_ctc", run_dir=args.run_dir or f"runs/{tag}", data_dir=args.data_dir, epochs=args.epochs,
                     batch_size=args.batch_size, limit=args.limit, overrides=overrides,
                     eval_options={"beam_width": args.beam_width})
    test = result.metrics["test"]
    print(f"\nfsdd_ctc ({split}): isolated-digit accuracy {test['isolated_accuracy']:.2%} "
          f"(single-word decoding {test['isolated_accuracy_single_word']:.2%}) on {test['num_isolated']} recordings",
          end="")
    if "wer" in test:
        print(f"; connected-digit WER {test['wer']:.2%} (beam {test['wer_beam']:.2%}) on {test['num_connected']}", end="")
    print(f"; {result.metrics['train_seconds'] / 60:.1f} min of training")
    for speaker, acc in test["per_speaker_accuracy"].items():
        print(f"  {speaker:10s} {acc:.2%}")
    for ex in test["examples"][:5]:
        print(f"  REF {ex['reference']!r:40s} OUT {ex['greedy']!r}")
    if not args.no_export:
        path = zoo.export_model(result.run_dir, base_dir=args.out)
        print(f"SavedModel: {path}  (try: zoo predict {path} some.wav)")


if __name__ == "__main__":
    sys.exit(report_errors("train_speech.py", main))
