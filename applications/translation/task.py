"""Translation: loss and token accuracy, cached greedy/beam decoding, sacreBLEU evaluation.

Decoding works on any model with the `TransformerTranslator` interface
(`encode`, `decode`, `init_cache`, `decode_step`, `max_length`):

    tokens = greedy_decode(model, encoder_tokens)                  # int32 (B, L)
    tokens = beam_decode(model, encoder_tokens, beam_width=4, length_penalty=0.6)
    german = translate(model, tokenizers, ["A man is riding a bike."], beam_width=4)

With `cached=True` (the default) each new token runs the decoder on that
token only, reading earlier positions from each block's key/value cache and
the encoder keys/values from a cross-attention cache computed once; with
`cached=False` every step recomputes the decoder over the whole prefix (the
baseline the benchmark compares with).  Both give the same tokens (tested).
Greedy decoding uses keras-hub's `GreedySampler`; beam search (with the
GNMT length penalty `((5 + len) / 6) ** alpha`) is written here with
`keras.ops`, since keras-hub's `BeamSampler` has no length penalty.  Output
rows hold the generated ids, `[END]` (3) included, then 0s.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any, Sequence

import keras
from keras import ops

from zoo.losses import SparseCategoricalCrossentropy
from zoo.tasks import register_task

__all__ = ["TRANSLATION", "MaskedTokenAccuracy", "greedy_decode", "beam_decode", "decode", "compiled_decode", "translate", "bleu_scores", "evaluate_translation"]

PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
_NEG = -1e9


@keras.saving.register_keras_serializable(package="zoo")
class MaskedTokenAccuracy(keras.metrics.Metric):
    """Share of non-padding target tokens (label != 0) whose argmax logit is right.

    Call arguments (`update_state`): y_true int `(B, T)`, y_pred float `(B, T, V)`.
    """

    def __init__(self, name="token_accuracy", ignore_class=0, **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_class = ignore_class
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        keep = ops.cast(ops.not_equal(y_true, self.ignore_class), "float32")
        hit = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32")
        self.correct.assign_add(ops.sum(hit * keep))
        self.total.assign_add(ops.sum(keep))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "ignore_class": self.ignore_class}


def translation_task(spec, train):
    """Label-smoothed cross-entropy over non-padding target tokens, and token accuracy."""
    loss = SparseCategoricalCrossentropy(from_logits=True, label_smoothing=train.get("label_smoothing", 0.0),
                                         ignore_class=PAD_ID)
    return loss, [MaskedTokenAccuracy()]


# ---------------------------------------------------------------------------
# Decoding


def _steps(model, max_length):
    """Generated tokens at most: `max_length` capped by the model's positions (START takes one)."""
    cap = int(model.max_length) - 1
    return cap if max_length is None else max(1, min(int(max_length), cap))


def _take_column(x, index):
    return ops.expand_dims(ops.take(x, index, axis=1), 1)


def _next_fn(model, encoder_outputs, encoder_mask, cross_caches, cached):
    """`next(prompt, cache, index) -> (logits (B, V), None, cache)` for position `index` (keras-hub sampler style)."""

    def next_cached(prompt, cache, index):
        token = _take_column(prompt, index - 1)
        logits, cache = model.decode_step(token, index - 1, encoder_outputs, encoder_mask, cache, cross_caches)
        return logits, None, cache

    def next_uncached(prompt, cache, index):
        prefix = ops.slice(prompt, (0, 0), (ops.shape(prompt)[0], index))
        logits = model.decode(prefix, encoder_outputs, encoder_mask)
        return ops.take(logits, index - 1, axis=1), None, cache

    def next_fn(prompt, cache, index):
        logits, _, cache = (next_cached if cached else next_uncached)(prompt, cache, index)
        vocab = ops.shape(logits)[-1]
        ids = ops.arange(vocab)
        banned = ops.logical_or(ops.less_equal(ids, UNK_ID), ops.equal(ids, START_ID))
        return ops.where(banned, ops.cast(_NEG, logits.dtype), logits), None, cache  # never emit [PAD]/[UNK]/[START]

    return next_fn


def _finish(tokens):
    """Zero everything after the first `[END]` (kept): int32 `(B, L)`."""
    tokens = ops.cast(tokens, "int32")
    is_end = ops.cast(ops.equal(tokens, END_ID), "int32")
    after = ops.cumsum(is_end, axis=1) - is_end > 0
    return ops.where(after, 0, tokens)


def greedy_decode(model, encoder_tokens, *, max_length=None, cached=True):
    """Greedy decoding with keras-hub's `GreedySampler`: int32 `(B, S)` -> int32 `(B, L)`.

    Args:
        model: a `TransformerTranslator`.
        encoder_tokens: source ids, 0-padded.
        max_length: generated tokens at most (default: the model's `max_length - 1`).
        cached: reuse the attention key/value caches (True) or recompute the prefix every step.

    Returns:
        Generated ids (no `[START]`), `[END]` included, 0 after it; stops
        early once every row has produced `[END]`.
    """
    import keras_hub

    steps = _steps(model, max_length)
    encoder_tokens = ops.convert_to_tensor(encoder_tokens, "int32")
    batch = ops.shape(encoder_tokens)[0]
    encoder_outputs, encoder_mask = model.encode(encoder_tokens)
    self_caches, cross_caches = model.init_cache(encoder_outputs, steps + 1) if cached else ((), ())
    prompt = ops.concatenate([ops.full((batch, 1), START_ID, "int32"), ops.zeros((batch, steps), "int32")], axis=1)
    mask = ops.concatenate([ops.ones((batch, 1), "bool"), ops.zeros((batch, steps), "bool")], axis=1)
    sampler = keras_hub.samplers.GreedySampler()
    out = sampler(_next_fn(model, encoder_outputs, encoder_mask, cross_caches, cached), prompt,
                  cache=self_caches, index=1, mask=mask, stop_token_ids=[END_ID])
    return _finish(out[:, 1:])


def beam_decode(model, encoder_tokens, *, beam_width=4, length_penalty=0.6, max_length=None, cached=True):
    """Beam search with the GNMT length penalty: int32 `(B, S)` -> int32 `(B, L)` (the best beam).

    Beams are ranked by `log p / ((5 + length) / 6) ** length_penalty`; a beam
    that produced `[END]` stays in the beam with its score frozen; the loop
    stops when every beam of every row has ended (or after `max_length`
    tokens).  `beam_width=1` is greedy decoding.

    Args:
        model: a `TransformerTranslator`.
        encoder_tokens: source ids, 0-padded.
        beam_width: beams per sentence.
        length_penalty: alpha (0: raw log-probability).
        max_length: generated tokens at most.
        cached: reuse the key/value caches (reordered along with the beams).
    """
    steps = _steps(model, max_length)
    k = int(beam_width)
    encoder_tokens = ops.convert_to_tensor(encoder_tokens, "int32")
    batch = ops.shape(encoder_tokens)[0]
    encoder_outputs, encoder_mask = model.encode(encoder_tokens)
    encoder_outputs = ops.repeat(encoder_outputs, k, axis=0)  # (B*K, S, dim), beams of a row together
    encoder_mask = ops.repeat(encoder_mask, k, axis=0)
    self_caches, cross_caches = model.init_cache(encoder_outputs, steps + 1) if cached else ((), ())
    next_fn = _next_fn(model, encoder_outputs, encoder_mask, cross_caches, cached)
    width = steps + 1
    seqs = ops.concatenate([ops.full((batch * k, 1), START_ID, "int32"), ops.zeros((batch * k, steps), "int32")], 1)
    scores = ops.tile(ops.convert_to_tensor([[0.0] + [_NEG] * (k - 1)], "float32"), (batch, 1))  # (B, K)
    finished = ops.zeros((batch, k), "bool")
    lengths = ops.zeros((batch, k), "int32")
    alpha = float(length_penalty)

    def penalty(length):
        return ops.power((5.0 + ops.cast(length, "float32")) / 6.0, alpha)

    def cond(i, seqs, scores, finished, lengths, cache):
        return ops.logical_and(i < width, ops.logical_not(ops.all(finished)))

    def body(i, seqs, scores, finished, lengths, cache):
        logits, _, cache = next_fn(seqs, cache, i)
        vocab = ops.shape(logits)[-1]
        logp = ops.reshape(ops.log_softmax(ops.cast(logits, "float32"), axis=-1), (batch, k, vocab))
        pad_only = ops.where(ops.equal(ops.arange(vocab), PAD_ID), 0.0, _NEG)
        logp = ops.where(ops.expand_dims(finished, -1), pad_only, logp)
        candidates = ops.expand_dims(scores, -1) + logp  # (B, K, V)
        new_lengths = ops.where(finished, lengths, lengths + 1)
        ranked = ops.reshape(candidates / ops.expand_dims(penalty(new_lengths), -1), (batch, k * vocab))
        _, flat = ops.top_k(ranked, k)  # (B, K)
        beam = flat // vocab
        token = ops.cast(flat % vocab, "int32")
        scores = ops.take_along_axis(ops.reshape(candidates, (batch, k * vocab)), flat, axis=1)
        rows = ops.reshape(beam + ops.expand_dims(ops.arange(batch) * k, 1), (-1,))
        seqs = ops.take(seqs, rows, axis=0)
        seqs = ops.slice_update(seqs, (0, i), ops.reshape(token, (-1, 1)))
        finished = ops.logical_or(ops.take_along_axis(finished, beam, axis=1), ops.equal(token, END_ID))
        lengths = ops.take_along_axis(new_lengths, beam, axis=1)
        cache = tuple(ops.take(c, rows, axis=0) for c in cache)
        return i + 1, seqs, scores, finished, lengths, cache

    _, seqs, scores, finished, lengths, _ = ops.while_loop(
        cond, body, (ops.convert_to_tensor(1, "int32"), seqs, scores, finished, lengths, self_caches),
        maximum_iterations=steps)
    best = ops.argmax(scores / penalty(lengths), axis=1)  # (B,)
    rows = ops.cast(best, "int32") + ops.arange(batch, dtype="int32") * k
    return _finish(ops.take(seqs, rows, axis=0)[:, 1:])


def decode(model, encoder_tokens, *, beam_width=1, length_penalty=0.6, max_length=None, cached=True):
    """Greedy (`beam_width=1`, keras-hub sampler) or beam search; see those functions."""
    if int(beam_width) <= 1:
        return greedy_decode(model, encoder_tokens, max_length=max_length, cached=cached)
    return beam_decode(model, encoder_tokens, beam_width=beam_width, length_penalty=length_penalty,
                       max_length=max_length, cached=cached)


def compiled_decode(model, *, beam_width=1, length_penalty=0.6, max_length=None, cached=True):
    """`decode` compiled once per setting with `tf.function` (TensorFlow backend): `(B, S) -> (B, L)`."""
    if keras.backend.backend() != "tensorflow":
        return lambda x: decode(model, x, beam_width=beam_width, length_penalty=length_penalty,
                                max_length=max_length, cached=cached)
    import tensorflow as tf

    fns = model.__dict__.setdefault("_zoo_decode_fns", {})
    key = (int(beam_width), float(length_penalty), max_length, bool(cached))
    if key not in fns:
        fns[key] = tf.function(
            lambda x: decode(model, x, beam_width=beam_width, length_penalty=length_penalty, max_length=max_length,
                             cached=cached),
            input_signature=[tf.TensorSpec([None, None], tf.int32)])
    return fns[key]


def translate(model, tokenizers, sentences: Sequence[str], *, beam_width=1, length_penalty=0.6, max_length=None,
              batch_size=64, cached=True) -> list[str]:
    """English sentences -> German sentences (detokenised, cased).

    Args:
        model: a `TransformerTranslator`.
        tokenizers: the run's `TranslationTokenizers`.
        sentences: N English strings.
        beam_width, length_penalty, max_length, cached: see `beam_decode`.
        batch_size: sentences decoded together.

    Returns:
        N German strings.  An empty (or whitespace-only) source gives "";
        a source longer than the tokenizers' `max_length` pieces is cut to
        it (`tokenizers.encode_source` counts and the serving signature
        reports it).
    """
    import tensorflow as tf

    fn = compiled_decode(model, beam_width=beam_width, length_penalty=length_penalty, max_length=max_length,
                         cached=cached)
    out = []
    for start in range(0, len(sentences), batch_size):
        chunk = tf.constant(list(sentences[start:start + batch_size]))
        ids = tf.cast(tokenizers.encode_source(chunk).to_tensor(0), tf.int32)
        if ids.shape[1] == 0:
            ids = tf.zeros([len(chunk), 1], tf.int32)
        out += [s.decode("utf-8") for s in tokenizers.detokenize(fn(ids)).numpy()]
    return [o if str(src).strip() else "" for src, o in zip(sentences, out)]


# ---------------------------------------------------------------------------
# Evaluation


def bleu_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """sacreBLEU two ways, each labelled.

    - `sacrebleu`: detokenised, cased output vs the raw references (sacreBLEU
      defaults: 13a tokenisation, cased) - the figure to compare across papers.
    - `bleu_tokenized_lowercase`: lower-cased, 13a-tokenised (punctuation
      split off, as Moses does) - the WMT16 multimodal convention of the
      published Multi30k tables (they ran multi-bleu.perl on Moses-tokenised,
      lower-cased text; sacremoses is not a dependency, so the 13a tokeniser
      stands in; the two agree on this data's punctuation up to rare cases).
    """
    import sacrebleu

    cased = sacrebleu.metrics.BLEU()
    lower = sacrebleu.metrics.BLEU(lowercase=True, tokenize="13a")
    a = cased.corpus_score(list(hypotheses), [list(references)])
    b = lower.corpus_score(list(hypotheses), [list(references)])
    return {
        "sacrebleu": float(a.score), "sacrebleu_signature": str(cased.get_signature()),
        "bleu_tokenized_lowercase": float(b.score), "bleu_tokenized_lowercase_signature": str(lower.get_signature()),
        "labels": {"sacrebleu": "sacreBLEU, detokenised cased output vs raw references (13a, cased)",
                   "bleu_tokenized_lowercase": "BLEU on 13a-tokenised, lower-cased text (WMT16 multimodal convention)"},
        "bleu_detail": {"sacrebleu": str(a), "bleu_tokenized_lowercase": str(b)},
    }


def evaluate_translation(spec, model, data, run_dir=None, *, beam_width: int = 4, length_penalty: float = 0.6,
                         max_length: int | None = None, batch_size: int = 64, examples: int = 5,
                         verbose: bool = True):
    """BLEU of `model` on test_2016_flickr (the bundle's raw `test_sources` / `test_references`).

    Writes `translations.txt` (one hypothesis a line) and `examples.json`
    into `run_dir`, and prints `examples` translations beside their references.
    """
    sources = list(getattr(data, "test_sources", []) or [])
    references = list(getattr(data, "test_references", []) or [])
    if not sources:
        raise ValueError("the translation evaluator needs the raw test sentences (data.test_sources); "
                         "load the data with zoo.data.load_dataset('multi30k', ...)")
    t0 = time.perf_counter()
    hyps = translate(model, data.preprocessor, sources, beam_width=beam_width, length_penalty=length_penalty,
                     max_length=max_length, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    metrics = bleu_scores(hyps, references)
    shown = [{"source": s, "reference": r, "translation": h} for s, r, h in list(zip(sources, references, hyps))[:examples]]
    metrics.update(split=data.info.get("test_split", "test"), num_examples=len(hyps), beam_width=int(beam_width),
                   length_penalty=float(length_penalty), decode_seconds=seconds,
                   sentences_per_second=len(hyps) / max(seconds, 1e-9), examples=shown)
    if run_dir is not None:
        from zoo.io import write_json, write_text

        run_dir = pathlib.Path(run_dir)
        write_text(run_dir / "translations.txt", "\n".join(hyps) + "\n")
        write_json(run_dir / "examples.json", shown)
    if verbose:
        print(f"{spec.name}: sacreBLEU {metrics['sacrebleu']:.2f} (detokenised, cased); "
              f"BLEU {metrics['bleu_tokenized_lowercase']:.2f} (tokenised, lower-cased); beam {beam_width}")
        for ex in shown:
            print(f"  EN  {ex['source']}\n  REF {ex['reference']}\n  OUT {ex['translation']}")
    return metrics


TRANSLATION = register_task(
    "translation", compile=translation_task, evaluate=evaluate_translation,
    metrics=("sacrebleu", "bleu_tokenized_lowercase"),
    description="teacher-forced cross-entropy; sacreBLEU of beam-search translations of the test set",
)
