"""Test-time frequency warping (VTLN-style speaker normalisation) on a held-out-speaker `fsdd_ctc` run (#15).

    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/speech_test_time_warp.py RUN_DIR SPEAKER [--mode vtlp|scale] [--out F]

RUN_DIR is a finished leave-one-speaker-out run of `bench/speech.py`
(e.g. `/tmp/sp2/n_base/fsdd_ctc_speaker_nicolas`) and SPEAKER the speaker
it held out.  Every recording of SPEAKER is decoded (greedy CTC) with its
power spectrum warped by a fixed factor `alpha` (`vtlp_warp`, the VTLP
warp, or `scale_frequencies`, the pitch shift) before the mel filters, for
alpha in 0.8-1.2.  Reported: accuracy per alpha; choosing, per utterance,
the alpha whose best path is most probable (the classic unsupervised
VTLN choice, here by CTC confidence); one alpha per speaker by mean
confidence; and the oracle (any alpha right), an upper bound no decoder
can reach.  Inference only: it reads the run's `model.keras`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from common import cpu_info  # noqa: E402
from zoo.io import write_json  # noqa: E402

ALPHAS = (0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2)


def warped_logits(model, batch, alpha, mode):
    """The model's logits `(B, T', C)` and valid frames `(B,)` with the spectrum warped by `alpha` (inference path).

    The model runs as it is (`training=False`); only the power spectrum its
    `log_mel` layer computes is warped, by wrapping that layer's own STFT for
    the call, so every other setting of the front end applies unchanged.
    """
    from keras import ops

    from applications.speech.models import output_lengths
    from zoo.layers.audio import scale_frequencies, vtlp_warp

    log_mel = model.get_layer("log_mel")
    stft = log_mel.mel._spectrogram

    def warped(x):
        power = stft(x)  # (B, T, F)
        factors = ops.full((ops.shape(power)[0],), alpha, "float32")
        if mode == "vtlp":
            return vtlp_warp(power, factors, log_mel.sample_rate, log_mel.vtlp_boundary)
        return scale_frequencies(power, factors, log_mel.sample_rate)

    if alpha != 1.0:
        log_mel.mel._spectrogram = warped
    try:
        logits = model(batch, training=False)
    finally:
        log_mel.mel.__dict__.pop("_spectrogram", None)
    return logits, output_lengths(model, batch["length"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("speaker")
    p.add_argument("--mode", default="vtlp", choices=("vtlp", "scale"))
    p.add_argument("--data-dir")
    p.add_argument("--out")
    args = p.parse_args(argv)

    from zoo._tf import import_tensorflow

    import_tensorflow()
    import keras
    from keras import ops

    import applications  # noqa: F401  (registers the layers)
    from applications.speech.data import load_fsdd_recordings, pad_waveforms
    from applications.speech.task import greedy_decode

    model = keras.saving.load_model(pathlib.Path(args.run_dir) / "model.keras", compile=False)
    rec = load_fsdd_recordings(args.data_dir)
    idx = np.where(rec.speakers == args.speaker)[0]
    labels = rec.digits[idx]
    hyps, conf, logprobs = {}, {}, {}
    for a in ALPHAS:
        hyps[a], c = [], []
        for s in range(0, len(idx), 50):
            logits, frames = warped_logits(model, pad_waveforms([rec.wave(i) for i in idx[s:s + 50]]), a, args.mode)
            ids, lp, fr = np.asarray(greedy_decode(logits, frames)), np.asarray(ops.log_softmax(logits, -1)), np.asarray(frames)
            logprobs.setdefault(s, []).append((a, lp, fr))
            for k in range(len(ids)):
                hyps[a].append([int(t) for t in ids[k] if t >= 0])
                c.append(float(lp[k, :fr[k]].max(-1).sum()))  # log-probability of the best path
        conf[a] = np.array(c)
    ensemble = []  # frame posteriors averaged over the warps 0.9-1.1, then greedy
    for s in sorted(logprobs):
        near = [(lp, fr) for a, lp, fr in logprobs[s] if 0.9 <= a <= 1.1]
        mean = np.log(np.mean([np.exp(lp) for lp, _ in near], 0))
        ids = np.asarray(greedy_decode(mean, near[0][1]))
        ensemble += [[int(t) for t in row if t >= 0] for row in ids]
    right = {a: np.array([h == [int(y)] for h, y in zip(hyps[a], labels)]) for a in ALPHAS}
    c = np.stack([conf[a] for a in ALPHAS])
    pick = c.argmax(0)
    speaker_alpha = ALPHAS[int(c.mean(1).argmax())]
    out = {"command": " ".join(sys.argv), "cpu": cpu_info(), "run_dir": args.run_dir, "speaker": args.speaker,
           "mode": args.mode, "recordings": len(idx),
           "accuracy_per_alpha": {str(a): float(right[a].mean()) for a in ALPHAS},
           "per_utterance_max_confidence": float(np.mean([right[ALPHAS[p]][n] for n, p in enumerate(pick)])),
           "per_utterance_picks": {str(a): int((pick == i).sum()) for i, a in enumerate(ALPHAS)},
           "per_speaker_alpha": speaker_alpha, "per_speaker_accuracy": float(right[speaker_alpha].mean()),
           "posterior_average_0.9_to_1.1": float(np.mean([h == [int(y)] for h, y in zip(ensemble, labels)])),
           "oracle_any_alpha": float(np.mean(np.any(np.stack([right[a] for a in ALPHAS]), 0)))}
    print(json.dumps(out, indent=2))
    if args.out:
        write_json(args.out, out)


if __name__ == "__main__":
    main()
