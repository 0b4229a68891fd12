"""Language modelling: masked token cross-entropy and perplexity, generation with keras-hub samplers.

Generation works on any model with the `GPTLanguageModel` interface
(`call`, `init_cache`, `call_with_cache`, `max_length`):

    ids, lengths = generate(model, prompt_ids, sampler="top_p", top_p=0.9, seed=1,
                            num_return_sequences=3, max_length=64)
    texts = generate_text(model, tokenizer, ["This movie was"], sampler="beam", num_beams=4)

Samplers are keras-hub's (`GreedySampler`, `BeamSampler`, `TopKSampler`,
`TopPSampler`, `RandomSampler`), all with `temperature`.  Prompts are
`[START] pieces`, right-padded into a `(B, max_length)` buffer with a mask;
with `cached=True` (default) the buffer is pre-filled through the blocks'
key/value caches once and each new token then runs the blocks on that token
only; `cached=False` recomputes the whole prefix at every step (the
benchmark's baseline, same tokens: tested for every sampler).  `[PAD]`,
`[UNK]` and `[START]` are never generated; a row stops at `[END]` (the
loop ends when every row has one; what follows is zeroed).  The random
samplers draw from their `SeedGenerator`, whose state `generate` sets from
`seed`, so a seed gives the same text again (also inside the SavedModel).
"""

from __future__ import annotations

import pathlib
import time
from typing import Any, Sequence

import keras
import numpy as np
from keras import ops

from zoo.losses import SparseCategoricalCrossentropy
from zoo.tasks import register_task

__all__ = ["LANGUAGE_MODEL", "SAMPLERS", "TokenCrossEntropy", "Perplexity", "make_sampler", "generate", "compiled_generate",
           "generate_text", "evaluate_language_model"]

PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
SAMPLERS = ("greedy", "beam", "top_k", "top_p", "random")
_NEG = -1e9


@keras.saving.register_keras_serializable(package="zoo")
class TokenCrossEntropy(keras.metrics.Metric):
    """Mean cross-entropy (nats) per non-padding target token, summed over the epoch (not per batch).

    `Perplexity` is its exponential.

    Call arguments (`update_state`): y_true int `(B, T)` (0 = padding), y_pred float logits `(B, T, V)`.
    """

    def __init__(self, name="token_cross_entropy", ignore_class=PAD_ID, **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_class = ignore_class
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        keep = ops.cast(ops.not_equal(y_true, self.ignore_class), "float32")
        ce = ops.sparse_categorical_crossentropy(y_true, ops.cast(y_pred, "float32"), from_logits=True)
        self.total.assign_add(ops.sum(ce * keep))
        self.count.assign_add(ops.sum(keep))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "ignore_class": self.ignore_class}


@keras.saving.register_keras_serializable(package="zoo")
class Perplexity(TokenCrossEntropy):
    """exp(mean token cross-entropy) over non-padding targets: `(B, T)` labels, `(B, T, V)` logits."""

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)

    def result(self):
        return ops.exp(super().result())


def language_model_task(spec, train):
    """Next-token cross-entropy over non-padding targets; token cross-entropy and perplexity metrics."""
    loss = SparseCategoricalCrossentropy(from_logits=True, label_smoothing=train.get("label_smoothing", 0.0),
                                         ignore_class=PAD_ID)
    return loss, [TokenCrossEntropy(), Perplexity()]


# ---------------------------------------------------------------------------
# Generation


def make_sampler(sampler: str = "greedy", *, temperature=1.0, top_k=50, top_p=0.9, num_beams=4, seed=None):
    """A keras-hub sampler by name: greedy | beam | top_k | top_p | random.

    `top_k`, `top_p`, `temperature` may be Python numbers or scalar tensors
    (the export passes its signature inputs); `num_beams` must be a Python int.
    `return_all_beams=True` for beam search, so several beams can be returned.
    """
    import keras_hub

    s = keras_hub.samplers
    if sampler == "greedy":
        return s.GreedySampler(temperature=temperature)
    if sampler == "beam":
        return s.BeamSampler(num_beams=int(num_beams), return_all_beams=True, temperature=temperature)
    if sampler == "top_k":
        return s.TopKSampler(k=top_k, seed=seed, temperature=temperature)
    if sampler == "top_p":
        return s.TopPSampler(p=top_p, seed=seed, temperature=temperature)
    if sampler == "random":
        return s.RandomSampler(seed=seed, temperature=temperature)
    raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")


def seed_sampler(sampler, seed) -> None:
    """Set a random sampler's `SeedGenerator` state to `[seed, 0]` (no-op for greedy and beam)."""
    gen = getattr(sampler, "seed_generator", None)
    if gen is not None and seed is not None:
        gen.state.assign(ops.cast(ops.stack([ops.cast(seed, "int64"), ops.cast(0, "int64")]), gen.state.dtype))


def _next_fn(model, cached):
    """keras-hub's `next(prompt, cache, index) -> (logits (B, V), hidden, cache)` for position `index`."""

    def next_cached(prompt, cache, index):
        token = ops.expand_dims(ops.take(prompt, index - 1, axis=1), 1)
        logits, hidden, cache = model.call_with_cache(token, cache, index - 1)
        return logits[:, 0, :], hidden[:, 0, :], cache

    def next_uncached(prompt, cache, index):
        prefix = ops.slice(prompt, (0, 0), (ops.shape(prompt)[0], index))
        logits = model(prefix, training=False)
        return ops.take(logits, index - 1, axis=1), None, cache

    def next_fn(prompt, cache, index):
        logits, hidden, cache = (next_cached if cached else next_uncached)(prompt, cache, index)
        ids = ops.arange(ops.shape(logits)[-1])
        banned = ops.logical_or(ops.less_equal(ids, UNK_ID), ops.equal(ids, START_ID))
        return ops.where(banned, ops.cast(_NEG, logits.dtype), logits), hidden, cache

    return next_fn


def _finish(tokens, prompt_mask):
    """Zero everything after the first generated `[END]` (kept): int32 `(N, L)`."""
    tokens = ops.cast(tokens, "int32")
    is_end = ops.cast(ops.logical_and(ops.equal(tokens, END_ID), ops.logical_not(prompt_mask)), "int32")
    after = ops.cumsum(is_end, axis=1) - is_end > 0
    return ops.where(after, 0, tokens)


def generate(model, prompt_ids, *, sampler="greedy", max_length=None, num_return_sequences=1, temperature=1.0,
             top_k=50, top_p=0.9, num_beams=4, seed=None, cached=True, stop=True, sampler_object=None):
    """Continue token prompts with a keras-hub sampler.

    Args:
        model: a `GPTLanguageModel`.
        prompt_ids: int32 `(B, P)` piece ids, 0-padded on the right, *without*
            `[START]` (prepended here); P <= max_length - 2 (the caller cuts).
        sampler: greedy | beam | top_k | top_p | random (see `make_sampler`).
        max_length: total length of `[START] + prompt + continuation` (default
            and cap: the model's `max_length`); as keras-hub's and transformers' `max_length`.
        num_return_sequences: continuations per prompt (for beam: the best
            ones, at most `num_beams`).
        temperature, top_k, top_p, num_beams: sampler settings.
        seed: int seed of the random samplers (None: unseeded).
        cached: use the key/value cache (True) or recompute the prefix every step.
        stop: end the loop once every row has produced `[END]` (False: always
            fill `max_length`, e.g. for timing).
        sampler_object: a ready sampler to use instead of building one (exports).

    Returns:
        (ids int32 `(B * num_return_sequences, L)`: `[START]`, prompt,
        continuation, `[END]`, then 0s, rows of a prompt together;
        prompt lengths int32 `(B * num_return_sequences,)` counting `[START]`).
    """
    prompt_ids = ops.convert_to_tensor(prompt_ids, "int32")
    n = int(num_return_sequences) if not hasattr(num_return_sequences, "dtype") else num_return_sequences
    length = int(model.max_length) if max_length is None else max_length
    if isinstance(length, int):
        length = max(2, min(length, int(model.max_length)))
    batch = ops.shape(prompt_ids)[0]
    prompt_len = ops.sum(ops.cast(ops.not_equal(prompt_ids, PAD_ID), "int32"), axis=1) + 1
    width = ops.shape(prompt_ids)[1]
    pad = ops.maximum(length - 1 - width, 0)
    buf = ops.concatenate([ops.full((batch, 1), START_ID, "int32"), prompt_ids,
                           ops.zeros((batch, pad), "int32")], axis=1)[:, :length]
    mask = ops.less(ops.expand_dims(ops.arange(length, dtype="int32"), 0), ops.expand_dims(prompt_len, 1))
    beam = sampler == "beam"
    if not beam:  # sampled rows are independent copies; beams are the beam sampler's own copies
        buf, mask, prompt_len = (ops.repeat(x, n, axis=0) for x in (buf, mask, prompt_len))
    rows = ops.shape(buf)[0]
    index = ops.min(prompt_len)
    next_fn = _next_fn(model, cached)
    cache = None
    if cached:
        cache = model.init_cache(rows, length)
        _, _, cache = model.call_with_cache(buf, cache, 0)  # pre-fill; positions >= index are rewritten
    smp = sampler_object or make_sampler(sampler, temperature=temperature, top_k=top_k, top_p=top_p,
                                         num_beams=num_beams, seed=seed)
    if getattr(smp, "k", None) is not None:  # top-k with k above the vocabulary: every token
        smp.k = min(int(smp.k), model.vocabulary_size) if isinstance(smp.k, int) else ops.minimum(
            smp.k, model.vocabulary_size)
    seed_sampler(smp, seed)
    out = smp(next_fn, buf, cache=cache, index=index, mask=mask, stop_token_ids=[END_ID] if stop else None)
    if beam:
        out, _ = out  # (B, num_beams, L) best first
        k = ops.shape(out)[1]
        pick = ops.minimum(ops.arange(n, dtype="int32"), k - 1)  # more than num_beams: repeat the last
        out = ops.reshape(ops.take(out, pick, axis=1), (-1, length))
        mask = ops.repeat(mask, n, axis=0)
        prompt_len = ops.repeat(prompt_len, n, axis=0)
    return _finish(out, mask), prompt_len


def compiled_generate(model, *, sampler="greedy", num_return_sequences=1, max_length=None, temperature=1.0,
                      top_k=50, top_p=0.9, num_beams=4, seed=None, cached=True):
    """`generate` compiled once per setting with `tf.function`: int32 `(B, P)` -> (ids, prompt lengths).

    The sampler is built once per setting outside the traced function
    (its seed state is a variable), and reseeded at every call.
    """
    import tensorflow as tf

    fns = model.__dict__.setdefault("_zoo_generate_fns", {})
    key = (sampler, int(num_return_sequences), max_length, float(temperature), int(top_k), float(top_p),
           int(num_beams), bool(cached))
    if key not in fns:
        smp = make_sampler(sampler, temperature=temperature, top_k=top_k, top_p=top_p, num_beams=num_beams, seed=0)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int64)])
        def fn(ids, s):
            return generate(model, ids, sampler=sampler, max_length=max_length,
                            num_return_sequences=num_return_sequences, seed=s, cached=cached, sampler_object=smp)

        fns[key] = fn
    fn = fns[key]
    rng = np.random.default_rng()
    return lambda ids, seed=None: fn(ids, tf.constant(int(rng.integers(2**31)) if seed is None else int(seed), tf.int64))


def prompt_ids(tokenizer, prompts, max_length):
    """Prompt strings -> (int32 `(B, P)` 0-padded piece ids, truncated bool `(B,)`), core TF ops.

    A prompt keeps its *last* `max_length // 2` pieces, so half the context
    is left for the continuation; `truncated` says which were cut.
    """
    import tensorflow as tf

    keep = tf.maximum(tf.cast(max_length, tf.int64) // 2, 1)
    pieces = tokenizer.encode_core(prompts)
    truncated = pieces.row_lengths() > keep
    starts = tf.maximum(pieces.row_lengths() - keep, 0)
    pieces = tf.ragged.boolean_mask(pieces, tf.ragged.range(pieces.row_lengths()) >= tf.expand_dims(starts, 1))
    ids = tf.cast(pieces.to_tensor(PAD_ID), tf.int32)
    ids = tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])  # at least one column
    return ids, truncated


def split_continuations(tokenizer, ids, prompt_len):
    """Generated ids `(N, L)` + prompt lengths -> (full text tf.string `(N,)`, continuation tf.string `(N,)`).

    The continuation is the full text minus the detokenised prompt (its
    leading space kept, as `transformers` returns it).
    """
    import tensorflow as tf

    ids = tf.cast(ids, tf.int32)
    full = tokenizer.detokenize(ids)
    positions = tf.range(tf.shape(ids)[1])[None, :]
    prefix = tokenizer.detokenize(tf.where(positions < prompt_len[:, None], ids, PAD_ID))
    start = tf.strings.length(prefix)
    cont = tf.strings.substr(full, start, tf.fill(tf.shape(start), 1 << 30))
    return full, cont


def generate_text(model, tokenizer, prompts: Sequence[str], *, sampler="greedy", num_return_sequences=1,
                  max_length=None, temperature=1.0, top_k=50, top_p=0.9, num_beams=4, seed=None,
                  cached=True) -> list[list[str]]:
    """Prompt strings -> for each prompt, `num_return_sequences` continuations (strings).

    An empty prompt generates from `[START]` alone (an unconditional sample);
    a prompt longer than half the context keeps its last pieces.
    """
    import tensorflow as tf

    length = int(model.max_length) if max_length is None else int(max_length)
    ids, _ = prompt_ids(tokenizer, tf.constant([p.encode("utf-8", "replace") for p in prompts] or [b""]), length)
    fn = compiled_generate(model, sampler=sampler, num_return_sequences=num_return_sequences, max_length=length,
                           temperature=temperature, top_k=top_k, top_p=top_p, num_beams=num_beams, cached=cached)
    out, plen = fn(ids, seed)
    _, cont = split_continuations(tokenizer, out, plen)
    cont = [c.decode("utf-8") for c in cont.numpy()]
    n = int(num_return_sequences)
    return [cont[i * n:(i + 1) * n] for i in range(len(prompts))]


# ---------------------------------------------------------------------------
# Evaluation


def evaluate_language_model(spec, model, data, run_dir=None, *, prompts: Sequence[str] = (
        "This movie was", "I have never seen", "The acting"), max_length: int = 48, verbose: bool = True):
    """Token cross-entropy and perplexity on `data.test` (every kept IMDB test review), plus a few greedy samples."""
    import tensorflow as tf

    ce, ppl = TokenCrossEntropy(), Perplexity()
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    t0 = time.perf_counter()
    for x, y in data.test:
        logits = fn(x)
        ce.update_state(y, logits)
        ppl.update_state(y, logits)
    seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {
        "token_cross_entropy": float(ce.result()), "perplexity": float(ppl.result()),
        "tokens": int(ce.count.numpy()), "num_examples": int(data.info.get("num_test", 0)), "split": "test",
        "eval_seconds": seconds,
        "note": "per-token over WordPiece pieces of [START] review [END], first max_length+1 ids of each review",
    }
    if data.preprocessor is not None and prompts:
        samples = generate_text(model, data.preprocessor, list(prompts), max_length=max_length)
        metrics["samples_greedy"] = {p: s[0] for p, s in zip(prompts, samples)}
    if run_dir is not None:
        from zoo.data import write_json

        write_json(pathlib.Path(run_dir) / "samples.json", metrics.get("samples_greedy", {}))
    if verbose:
        print(f"{spec.name}: test token cross-entropy {metrics['token_cross_entropy']:.4f} nats, "
              f"perplexity {metrics['perplexity']:.2f} over {metrics['tokens']} tokens")
        for p, s in metrics.get("samples_greedy", {}).items():
            print(f"  {p!r} -> {s!r}")
    return metrics


LANGUAGE_MODEL = register_task(
    "language_model", compile=language_model_task, evaluate=evaluate_language_model,
    metrics=("token_cross_entropy", "perplexity"),
    description="next-token cross-entropy; test perplexity and greedy samples",
)
