"""Speech recognition: the CTC loss, greedy/beam CTC decoding, jiwer WER and digit accuracy.

**CTC convention** (one for the whole zoo, pinned by tests against
`tf.nn.ctc_greedy_decoder`):

- logits are batch-major, `(batch, frames, classes)` float32, unnormalised;
- the blank is the **last** class (`classes - 1`; 10 for FSDD's ten digit words);
- labels are int `(batch, L)` token ids padded with **-1**; a label's length
  is its number of ids >= 0;
- logit lengths come from the model: frames past an utterance's end are
  forced to blank (see `applications.speech.CTCBlankPadding`), so every row
  uses all `frames` - the loss and the decoders need no length input, though
  `decode` accepts true lengths too.

    loss = CTCLoss()(labels, logits)                            # (batch,) -> mean
    ids = greedy_decode(logits)                                 # int32 (batch, frames), -1 padded
    ids = beam_decode(logits, beam_width=8)
    texts = ids_to_text(ids)                                    # ["three five", ...]
    texts = transcribe(model, batches, beam_width=1)

Decoding uses `keras.ops.ctc_decode` (greedy: best class per frame, repeats
merged, blanks dropped; beam: TensorFlow's CTC prefix beam search).
"""

from __future__ import annotations

import pathlib
import time
from typing import Any, Sequence

import keras
import numpy as np
from keras import ops

from applications.speech.data import DIGIT_WORDS, transcript
from zoo.tasks import register_task

__all__ = ["RECOGNITION", "CTCLoss", "greedy_decode", "beam_decode", "single_token_decode", "decode", "ids_to_text", "ids_to_text_tf", "transcribe",
           "word_error_rate", "evaluate_recognition"]


@keras.saving.register_keras_serializable(package="zoo")
class CTCLoss(keras.losses.Loss):
    """CTC loss on -1-padded labels and batch-major logits whose blank is the last class.

    Label lengths are the count of ids >= 0 in each row; logit lengths are
    all frames (the model forces padded frames to blank).  Per-example loss
    is the negative log-likelihood of the label sequence, optionally divided
    by the label length (`normalize="label_length"`, default off); the batch
    reduction is Keras' (mean by default).

    Args:
        normalize: None or "label_length".
        name, reduction, dtype: as for `keras.losses.Loss`.

    Call arguments:
        y_true: int `(batch, L)`, -1 padded.
        y_pred: float `(batch, frames, classes)` logits.
    """

    def __init__(self, normalize=None, name="ctc", **kwargs):
        super().__init__(name=name, **kwargs)
        if normalize not in (None, "label_length"):
            raise ValueError(f"CTCLoss: normalize must be None or 'label_length', got {normalize!r}")
        self.normalize = normalize

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.round(ops.cast(y_true, "float32")), "int32")
        label_length = ops.sum(ops.cast(labels >= 0, "int32"), axis=-1)
        labels = ops.maximum(labels, 0)  # padding ids are ignored past label_length
        batch, frames, classes = ops.shape(y_pred)[0], ops.shape(y_pred)[1], ops.shape(y_pred)[2]
        logit_length = ops.full((batch,), frames, "int32")
        loss = ops.ctc_loss(labels, ops.cast(y_pred, "float32"), label_length, logit_length,
                            mask_index=classes - 1)
        if self.normalize == "label_length":
            loss = loss / ops.cast(ops.maximum(label_length, 1), loss.dtype)
        return loss

    def get_config(self):
        return {**super().get_config(), "normalize": self.normalize}


def recognition_task(spec, train):
    """CTC loss (blank last, -1-padded labels); no per-step metrics (decoding happens in evaluation)."""
    return CTCLoss(), []


def speaker_adversarial(spec, model, data, train, loss, metrics):
    """The model `fit` trains: `model` itself, or with `train["speaker_adversary"] > 0` a speaker-adversarial one.

    The adversarial model shares every weight of `model` and adds a
    `SpeakerAdversary` head (gradient reversal of that scale, attention
    pooling, speaker logits `(B, S)`) on the final encoder states
    (`final_norm`), over `data.info["train_speakers"]` (recorded and
    synthetic voices): outputs `[CTC logits, speaker logits]`, losses
    `[loss, sparse cross-entropy ignoring speaker id -1]`, trained on
    `data.speaker_pipelines()` (validation: its second, where a speaker
    training never hears has id -1 and adds nothing).  `model` stays the
    recogniser that is saved and exported, so the head changes what the
    encoder learns, never the exported graph.

    Returns:
        `(model to fit, loss, metrics, data to fit on)`.
    """
    scale = float(train.get("speaker_adversary") or 0.0)
    if scale <= 0:
        return model, loss, metrics, data
    if getattr(data, "speaker_pipelines", None) is None:
        raise ValueError(f"{spec.name}: speaker_adversary needs speaker labels, which the {spec.dataset_name} loader "
                         "does not give; set speaker_adversary=0")
    import dataclasses

    from applications.speech.models import SpeakerAdversary
    from zoo.data import without_autotune_thread

    speakers = list(data.info["train_speakers"])
    head = SpeakerAdversary(len(speakers), scale=scale, name="speaker_adversary")(
        model.get_layer("final_norm").output, model.get_layer("subsample").output[1])
    trainee = keras.Model(model.input, [model.output, head], name=f"{model.name}_speaker_adversarial")
    speaker_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1, name="speaker")
    train_ds, val_ds = (without_autotune_thread(ds) for ds in data.speaker_pipelines())  # as every bundle's are
    return trainee, [loss, speaker_loss], [list(metrics), []], dataclasses.replace(data, train=train_ds, val=val_ds)


# ---------------------------------------------------------------------------
# Decoding


def _lengths(logits, lengths):
    if lengths is None:
        shape = ops.shape(logits)
        return ops.full((shape[0],), shape[1], "int32")
    return ops.cast(lengths, "int32")


def greedy_decode(logits, lengths=None):
    """Best path: float `(B, T, C)` logits (blank last) -> int32 `(B, T)` token ids, -1 padded.

    Args:
        logits: batch-major logits.
        lengths: optional int `(B,)` valid frames (default: all).
    """
    logits = ops.convert_to_tensor(logits, "float32")
    blank = ops.shape(logits)[-1] - 1
    out, _ = ops.ctc_decode(logits, _lengths(logits, lengths), strategy="greedy", mask_index=blank)
    return out[0]


def beam_decode(logits, lengths=None, *, beam_width: int = 8):
    """CTC prefix beam search (TensorFlow's decoder via `keras.ops.ctc_decode`): `(B, T, C)` -> int32 `(B, T)`, -1 padded."""
    logits = ops.convert_to_tensor(logits, "float32")
    blank = ops.shape(logits)[-1] - 1
    out, _ = ops.ctc_decode(ops.log_softmax(logits, axis=-1), _lengths(logits, lengths), strategy="beam_search",
                            beam_width=int(beam_width), top_paths=1, mask_index=blank)
    return out[0]


def single_token_scores(logits, lengths=None):
    """Log CTC likelihood of every single-token transcript: `(B, T, C)` logits (blank last) -> float32 `(B, C - 1)`.

    Entry `[b, k]` is `log P("k" | x_b)`, summed over all the alignments
    `blank* k+ blank*` of the first `lengths[b]` frames.  That alignment set
    is a three-state automaton (only blanks so far, inside `k`, blanks after
    `k`), run for every token at once by one `keras.ops.scan` over frames;
    frames past an utterance's length leave its state unchanged.
    `keras.ops.ctc_loss` on ten copies of the batch (one label each) gives
    the same numbers (tested), but its TensorFlow graph made Grappler print
    a shape error in the middle of every evaluation.

    Args:
        logits: float `(batch, frames, classes)`, the blank last.
        lengths: optional int `(batch,)` valid frames, >= 1 (default: all).
    """
    logp = ops.log_softmax(ops.convert_to_tensor(logits, "float32"), axis=-1)
    shape = ops.shape(logp)
    valid = ops.less(ops.arange(shape[1], dtype="int32")[None, :], _lengths(logp, lengths)[:, None])  # (B, T)
    # one tensor to scan over (keras' TensorFlow scan needs a static length for several): (T, B, 1 + K + 1)
    frames = ops.transpose(ops.concatenate([logp[..., -1:], logp[..., :-1],
                                            ops.cast(valid, "float32")[..., None]], axis=-1), (1, 0, 2))
    very_unlikely = -1e30  # log 0, finite so that sums of it stay comparable and free of NaN

    def step(state, frame):
        before, inside, after = state  # (B,), (B, K), (B, K)
        blank, token, active = frame[:, 0], frame[:, 1:-1], frame[:, -1] > 0.5
        new = (before + blank,
               ops.logaddexp(before[:, None], inside) + token,
               ops.logaddexp(inside, after) + blank[:, None])
        state = (ops.where(active, new[0], before), ops.where(active[:, None], new[1], inside),
                 ops.where(active[:, None], new[2], after))
        return state, state  # keras' TensorFlow scan wants per-frame outputs shaped like the state; unused

    start = (ops.zeros((shape[0],)), ops.full((shape[0], shape[2] - 1), very_unlikely),
             ops.full((shape[0], shape[2] - 1), very_unlikely))
    (_, inside, after), _ = ops.scan(step, start, frames)
    return ops.logaddexp(inside, after)


def single_token_decode(logits, lengths=None):
    """The one token whose CTC likelihood is highest: `(B, T, C)` logits -> int32 `(B, 1)`.

    Isolated-word decoding: every hypothesis is a single token (for FSDD,
    one digit word), scored by the CTC probability of all its alignments
    (`blank* k+ blank*`, `single_token_scores`), so the output can be
    neither empty nor several words.
    """
    best = ops.argmax(single_token_scores(logits, lengths), axis=-1)
    return ops.cast(ops.expand_dims(best, -1), "int32")


def decode(logits, lengths=None, *, beam_width: int = 1, single_token: bool = False):
    """Greedy (`beam_width <= 1`), beam-search or `single_token` CTC decoding; see those functions."""
    if single_token:
        return single_token_decode(logits, lengths)
    if int(beam_width) <= 1:
        return greedy_decode(logits, lengths)
    return beam_decode(logits, lengths, beam_width=beam_width)


def ids_to_text(ids, tokens: Sequence[str] = DIGIT_WORDS) -> list[str]:
    """int `(B, T)` -1-padded token ids -> list of B transcripts ("three five nine")."""
    ids = np.asarray(ids)
    return [transcript(row, tokens) for row in ids.reshape(len(ids), -1)]


def ids_to_text_tf(ids, tokens: Sequence[str] = DIGIT_WORDS):
    """The graph version of `ids_to_text` (core TensorFlow ops, for SavedModels): `(B, T)` -> tf.string `(B,)`."""
    import tensorflow as tf

    ids = tf.cast(ids, tf.int32)
    keep = tf.logical_and(ids >= 0, ids < len(tokens))
    ragged = tf.ragged.boolean_mask(ids, keep)
    words = tf.gather(tf.constant(list(tokens)), ragged)
    return tf.strings.reduce_join(words, axis=1, separator=" ")


def _compiled(model, beam_width, single_token=False):
    """`{"waveform", "length"} -> ids (B, T)` compiled once per beam width with `tf.function` (TensorFlow backend)."""
    fns = model.__dict__.setdefault("_zoo_ctc_fns", {})
    key = "single" if single_token else beam_width
    if key not in fns:
        def run(x):
            return decode(model(x, training=False), beam_width=beam_width, single_token=single_token)

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            spec = {"waveform": tf.TensorSpec([None, None], tf.float32), "length": tf.TensorSpec([None], tf.int32)}
            run = tf.function(run, input_signature=[spec])  # one trace for every batch shape
        fns[key] = run
    return fns[key]


def transcribe(model, batches, *, beam_width: int = 1, single_token: bool = False,
               tokens: Sequence[str] = DIGIT_WORDS) -> list[str]:
    """Transcripts of every example of a dataset of `(inputs, labels)` or `inputs` batches.

    `beam_width` > 1: beam search; `single_token`: the best single word (isolated words).
    """
    fn = _compiled(model, int(beam_width), bool(single_token))
    out = []
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        out += ids_to_text(np.asarray(fn(x)), tokens)
    return out


# ---------------------------------------------------------------------------
# Metrics


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, Any]:
    """Corpus WER with jiwer (substitutions + deletions + insertions over reference words), plus the counts."""
    import jiwer

    refs, hyps = list(references), list(hypotheses)
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("no utterances to score")
    # jiwer refuses empty references; every reference here has at least one digit
    out = jiwer.process_words(refs, [h if h else "" for h in hyps])
    return {"wer": float(out.wer), "substitutions": int(out.substitutions), "deletions": int(out.deletions),
            "insertions": int(out.insertions), "reference_words": int(sum(len(r.split()) for r in refs))}


def _accuracy(refs, hyps) -> float:
    return float(np.mean([r == h for r, h in zip(refs, hyps)])) if refs else float("nan")


def evaluate_recognition(spec, model, data, run_dir=None, *, beam_width: int = 8, examples: int = 8,
                         verbose: bool = True):
    """Isolated-digit accuracy (per speaker too), connected-digit WER, greedy and beam decoding.

    Isolated digits are also scored with `single_token_decode`
    (`isolated_accuracy_single_word`: the best single digit word by CTC
    likelihood, the isolated-word recogniser's usual constraint); the
    headline `isolated_accuracy` is free greedy decoding, where an inserted
    or missing word counts as an error.

    An isolated test recording counts as right when its transcript is
    exactly the digit word (so an extra or missing word is an error).  WER
    (jiwer) is reported on the connected-digit test set (`wer`) and on the
    isolated recordings (`isolated_wer`).  With a leave-one-speaker-out
    split (`speaker:<name>`) the isolated accuracy is also `loso_accuracy`.
    `confusion_matrix` (rows: true digit, columns: the greedy transcript,
    "other" for an empty or multi-word one) is plotted to `confusion.png`.
    Writes `transcripts.json` and `confusion.png` into `run_dir`.
    """
    refs = list(getattr(data, "test_references", []) or [])
    if not refs:
        raise ValueError("the speech evaluator needs data.test_references: load the data with "
                         "zoo.data.load_dataset('fsdd', ...)")
    speakers = list(getattr(data, "test_speakers", []) or [])
    metrics: dict[str, Any] = {"split": data.info.get("split", "conventional"), "num_isolated": len(refs)}
    t0 = time.perf_counter()
    greedy = transcribe(model, data.test)
    seconds = time.perf_counter() - t0
    beam = transcribe(model, data.test, beam_width=beam_width) if beam_width > 1 else greedy
    metrics["isolated_accuracy"] = _accuracy(refs, greedy)
    metrics["isolated_accuracy_beam"] = _accuracy(refs, beam)
    single = transcribe(model, data.test, single_token=True)
    metrics["isolated_accuracy_single_word"] = _accuracy(refs, single)
    metrics["isolated_wer"] = word_error_rate(refs, greedy)["wer"]
    metrics["per_speaker_accuracy"] = {s: _accuracy([r for r, k in zip(refs, speakers) if k == s],
                                                    [h for h, k in zip(greedy, speakers) if k == s])
                                       for s in sorted(set(speakers))}
    names = [*DIGIT_WORDS, "other"]  # "other": empty or several words
    cm = np.zeros((len(names), len(names)), np.int64)
    for r, h in zip(refs, greedy):
        cm[names.index(r), names.index(h) if h in DIGIT_WORDS else len(DIGIT_WORDS)] += 1
    metrics["confusion_matrix"], metrics["class_names"] = cm.tolist(), names
    if str(metrics["split"]).startswith("speaker:"):
        metrics["loso_speaker"] = metrics["split"].split(":", 1)[1]
        metrics["loso_accuracy"] = metrics["isolated_accuracy"]
    metrics["decode_seconds"] = seconds
    shown = [{"reference": r, "greedy": g, "single_word": w, "speaker": s}
             for r, g, w, s in zip(refs, greedy, single, speakers)]
    connected = getattr(data, "test_connected", None)
    if connected is not None:
        crefs = list(data.connected_references)
        cg = transcribe(model, connected)
        cb = transcribe(model, connected, beam_width=beam_width) if beam_width > 1 else cg
        w = word_error_rate(crefs, cg)
        metrics.update(wer=w["wer"], wer_detail=w, wer_beam=word_error_rate(crefs, cb)["wer"],
                       connected_sentence_accuracy=_accuracy(crefs, cg), num_connected=len(crefs))
        shown += [{"reference": r, "greedy": g, "beam": b} for r, g, b in zip(crefs, cg, cb)]
    metrics["beam_width"] = int(beam_width)
    wrong = [e for e in shown if e["reference"] != e["greedy"]]
    metrics["examples"] = (wrong[:examples] + [e for e in shown if e["reference"] == e["greedy"]])[:examples]
    if run_dir is not None:
        from zoo.data import write_json

        from zoo.plots import plot_confusion

        write_json(pathlib.Path(run_dir) / "transcripts.json", shown)
        plot_confusion(cm, names, pathlib.Path(run_dir) / "confusion.png",
                       title=f"{spec.name} ({metrics['split']}): isolated digits, greedy, "
                             f"{metrics['isolated_accuracy']:.2%}")
    if verbose:
        line = (f"{spec.name}: isolated-digit accuracy {metrics['isolated_accuracy']:.2%} (beam "
                f"{metrics['isolated_accuracy_beam']:.2%}, single word {metrics['isolated_accuracy_single_word']:.2%})")
        if "wer" in metrics:
            line += f"; connected-digit WER {metrics['wer']:.2%} (beam {metrics['wer_beam']:.2%})"
        print(line)
    return metrics


RECOGNITION = register_task(
    "recognition", compile=recognition_task, evaluate=evaluate_recognition, trainee=speaker_adversarial,
    metrics=("isolated_accuracy", "isolated_accuracy_single_word", "isolated_wer", "per_speaker_accuracy"),
    description="CTC over digit words; isolated-digit accuracy (per speaker), WER on connected digits when the data has them",
)
