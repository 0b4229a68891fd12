"""Do two trained `fsdd_ctc` models together hear an unseen voice better than each alone?

    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/speech_ensemble.py --speaker jackson \
        RUN_A/model.keras RUN_B/model.keras [--out ens.json]

The models are run directories' `model.keras` of leave-one-speaker-out runs
that held out `--speaker` (e.g. two `bench/speech.py --speakers jackson`
runs of different settings or seeds).  On every recording of that speaker
it reports, greedy / single word (`applications.speech.task`), each model
alone and two ensembles:

- frame level: the models' per-frame log-probabilities averaged, then
  decoded (greedy and single word);
- sequence level: each model's CTC log-likelihood of every single-word
  transcript (`single_token_scores`), summed over the models; the best
  word wins.  CTC models of different runs put their one-frame spikes at
  different frames, so the sequence level is the fair way to combine them.

This is an analysis of models already trained (#15, eighteenth pass); it
trains nothing.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's zoo, not an installed one (worktrees)


def main(argv=None) -> dict:
    from zoo.cli import positive_int

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="model.keras files of runs that held out --speaker")
    p.add_argument("--speaker", required=True, help="the held-out speaker the models never heard")
    p.add_argument("--data-dir", help="folder holding fsdd-recordings.tar.gz (default $ZOO_DATA_DIR)")
    p.add_argument("--batch", type=positive_int, default=50, help="recordings per forward pass")
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    missing = [m for m in args.models if not pathlib.Path(m).is_file()]
    if missing:
        p.error(f"no model file {', '.join(missing)}; give the model.keras of runs that held out --speaker")
    from zoo._tf import import_tensorflow

    import_tensorflow()  # before Keras: TensorFlow's start-up lines silenced, as the CLI does

    import keras
    import numpy as np
    from keras import ops
    from applications.speech import data as D
    from applications.speech import task as T
    from applications.speech.models import output_lengths
    from zoo.data import DataError
    from zoo.io import write_json

    try:
        rec = D.load_fsdd_recordings(args.data_dir)
        _, test = D.split_indices(rec, f"speaker:{args.speaker}")
    except DataError as e:
        p.exit(2, f"speech_ensemble: {e}\n")
    labels = rec.digits[test]
    models = [keras.saving.load_model(m, compile=False) for m in args.models]
    batches = []  # (per-model log-probabilities (B, T, C), per-model single-word scores (B, C - 1), lengths, labels)
    for b in range(0, len(test), args.batch):
        x = D.pad_waveforms([rec.wave(i) for i in test[b:b + args.batch]])
        lengths = np.asarray(output_lengths(models[0], x["length"]))
        logp = [np.asarray(ops.log_softmax(m(x, training=False), axis=-1)) for m in models]
        scores = [np.asarray(T.single_token_scores(lp, lengths)) for lp in logp]
        batches.append((logp, scores, lengths, labels[b:b + args.batch]))

    def pct(n):
        return round(100.0 * n / len(labels), 2)

    def greedy_right(lp, lengths, y):
        return sum(list(r[r >= 0]) == [t] for r, t in zip(np.asarray(T.greedy_decode(lp, lengths)), y))

    def single_right(scores, y):
        return int((scores.argmax(-1) == y).sum())

    alone = [{"greedy": pct(sum(greedy_right(logp[k], n, y) for logp, _, n, y in batches)),
              "single_word": pct(sum(single_right(sc[k], y) for _, sc, _, y in batches))} for k in range(len(models))]
    greedy = single = sequence = 0
    for logp, scores, lengths, y in batches:
        mean = np.mean(logp, axis=0)
        greedy += greedy_right(mean, lengths, y)
        single += single_right(np.asarray(T.single_token_scores(mean, lengths)), y)
        sequence += single_right(sum(scores), y)
    result = {"speaker": args.speaker, "recordings": int(len(labels)), "models": args.models, "alone": alone,
              "frame_level": {"greedy": pct(greedy), "single_word": pct(single)},
              "sequence_level_single_word": pct(sequence)}
    for path, one in zip(args.models, alone):
        print(f"alone {one['greedy']:.1f}% greedy / {one['single_word']:.1f}% single word  {path}")
    print(f"frame-level ensemble {result['frame_level']['greedy']:.1f}% / {result['frame_level']['single_word']:.1f}%; "
          f"sequence-level ensemble {result['sequence_level_single_word']:.1f}% single word ({args.speaker})")
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
