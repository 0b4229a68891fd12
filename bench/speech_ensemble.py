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
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's zoo, not an installed one (worktrees)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="model.keras files of runs that held out --speaker")
    p.add_argument("--speaker", required=True, help="the held-out speaker the models never heard")
    p.add_argument("--data-dir", help="folder holding fsdd-recordings.tar.gz (default $ZOO_DATA_DIR)")
    p.add_argument("--batch", type=int, default=50, help="recordings per forward pass")
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import keras
    import numpy as np
    from keras import ops

    import zoo  # noqa: F401  (registers the custom layers)
    from applications.speech import data as D
    from applications.speech import task as T
    from applications.speech.models import output_lengths

    rec = D.load_fsdd_recordings(args.data_dir)
    _, test = D.split_indices(rec, f"speaker:{args.speaker}")
    labels = rec.digits[test]
    models = [keras.saving.load_model(m, compile=False) for m in args.models]
    batches = []  # (per-model log-probabilities (B, T, C), output lengths (B,), labels (B,))
    for b in range(0, len(test), args.batch):
        x = D.pad_waveforms([rec.wave(i) for i in test[b:b + args.batch]])
        logp = [np.asarray(ops.log_softmax(m(x, training=False), axis=-1)) for m in models]
        batches.append((logp, np.asarray(output_lengths(models[0], x["length"])), labels[b:b + args.batch]))

    def pct(n):
        return round(100.0 * n / len(labels), 2)

    def frame_level(pick):
        greedy = single = 0
        for logp, lengths, y in batches:
            lp = np.mean([logp[k] for k in pick], axis=0)
            ids = np.asarray(T.greedy_decode(lp, lengths))
            greedy += sum(list(r[r >= 0]) == [t] for r, t in zip(ids, y))
            single += int((np.asarray(T.single_token_decode(lp, lengths))[:, 0] == y).sum())
        return {"greedy": pct(greedy), "single_word": pct(single)}

    result = {"speaker": args.speaker, "recordings": int(len(labels)), "models": args.models,
              "alone": [frame_level([k]) for k in range(len(models))],
              "frame_level": frame_level(range(len(models)))}
    right = 0
    for logp, lengths, y in batches:
        scores = sum(np.asarray(T.single_token_scores(lp, lengths)) for lp in logp)
        right += int((scores.argmax(-1) == y).sum())
    result["sequence_level_single_word"] = pct(right)
    for path, alone in zip(args.models, result["alone"]):
        print(f"alone {alone['greedy']:.1f}% greedy / {alone['single_word']:.1f}% single word  {path}")
    print(f"frame-level ensemble {result['frame_level']['greedy']:.1f}% / {result['frame_level']['single_word']:.1f}%; "
          f"sequence-level ensemble {result['sequence_level_single_word']:.1f}% single word ({args.speaker})")
    if args.out:
        out = pathlib.Path(args.out)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        tmp.replace(out)
    return result


if __name__ == "__main__":
    main()
