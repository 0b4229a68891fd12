"""Language models: prompt strings in, generated continuations out, sampling inside the SavedModel."""

from __future__ import annotations

import numpy as np

from applications.gpt.task import SAMPLERS, generate, make_sampler, prompt_ids, split_continuations
from zoo.serving import SERVINGS, Serving

NUM_BEAMS = 4  # beams of the exported beam search (a graph constant)
DEFAULTS = {"sampler": "top_p", "max_length": 64, "num_return_sequences": 1, "temperature": 1.0, "top_k": 50,
            "top_p": 0.9, "seed": None}


@SERVINGS.register("language_model")
class GenerationServing(Serving):
    """Prompt strings -> generated text, with keras-hub samplers and the key/value cache inside the graph.

    Signature `serving_default`:

    | input | dtype, shape | meaning |
    |---|---|---|
    | `text` | tf.string `(B,)` | prompts (UTF-8; invalid bytes read as U+FFFD) |
    | `sampler` | tf.string `()` | greedy, beam (4 beams), top_k, top_p or random |
    | `max_length` | int32 `()` | total tokens: `[START]` + prompt + continuation (capped at the model's context) |
    | `num_return_sequences` | int32 `()` | continuations per prompt (beam: the best beams; more than 4 repeat the 4th) |
    | `temperature` | float32 `()` | logits are divided by it (every sampler) |
    | `top_k` | int32 `()` | k of the top_k sampler |
    | `top_p` | float32 `()` | p of the top_p (nucleus) sampler |
    | `seed` | int64 `()` | seed of the random samplers: the same seed gives the same text |

    Outputs: `generated` tf.string `(B, num_return_sequences)` (the
    continuations, with their leading space), `text` tf.string `(B,
    num_return_sequences)` (prompt + continuation as the tokenizer writes it:
    lower-cased), `truncated` bool `(B,)` (the prompt had more than
    `max_length // 2` pieces and kept its last ones).  An empty prompt gives
    an unconditional sample; an unknown sampler name fails with
    "unknown sampler".  Generation stops at `[END]`.
    """

    raw_inputs = {
        "text": {"dtype": "string", "shape": [None], "description": "UTF-8 prompts, one per item"},
        "sampler": {"dtype": "string", "shape": [], "description": "greedy | beam | top_k | top_p | random"},
        "max_length": {"dtype": "int32", "shape": [], "description": "total tokens: [START] + prompt + continuation"},
        "num_return_sequences": {"dtype": "int32", "shape": [], "description": "continuations per prompt"},
        "temperature": {"dtype": "float32", "shape": [], "description": "logits are divided by it"},
        "top_k": {"dtype": "int32", "shape": [], "description": "k of the top_k sampler"},
        "top_p": {"dtype": "float32", "shape": [], "description": "p of the top_p sampler"},
        "seed": {"dtype": "int64", "shape": [], "description": "seed of the random samplers"},
    }

    generation = True  # zoo predict passes its generation flags to read_inputs
    reads_files = False  # the inputs are prompts, not file paths

    def __init__(self, model, spec, info, preprocessor=None, options=None):
        super().__init__(model, spec, info, preprocessor, options)
        self._holder = None

    def _samplers(self):
        """One keras-hub sampler per name, built once (their seed states are variables the export tracks)."""
        if self._holder is None:
            import keras

            holder = keras.layers.Layer(name="samplers")
            holder.built = True
            holder.samplers = {name: make_sampler(name, num_beams=NUM_BEAMS, seed=0) for name in SAMPLERS}
            for name, smp in holder.samplers.items():
                if getattr(smp, "seed_generator", None) is not None:
                    setattr(holder, f"seed_{name}", smp.seed_generator)
            self._holder = holder
        return self._holder

    def card_notes(self) -> str:
        """The model card's explanation of the signature (inputs, outputs, defaults of `zoo predict`)."""
        import inspect

        doc = inspect.getdoc(type(self))
        body = doc.split("\n\n", 1)[1]
        return (body + "\n\n`zoo predict` defaults: " + ", ".join(f"{k}={v}" for k, v in DEFAULTS.items())
                + " (seed None: a random seed).  Example:\n\n```python\nimport tensorflow as tf\n"
                "f = tf.saved_model.load(PATH).signatures[\"serving_default\"]\n"
                "out = f(text=tf.constant([\"This movie was\"]), sampler=tf.constant(\"top_p\"), max_length=tf.constant(64),\n"
                "        num_return_sequences=tf.constant(3), temperature=tf.constant(1.0), top_k=tf.constant(50),\n"
                "        top_p=tf.constant(0.9), seed=tf.constant(1, tf.int64))\n"
                "out[\"generated\"]  # (1, 3) continuations\n```")

    def trackables(self):
        return [*self.preprocessor.resources(), self._samplers()]

    def serve(self, text, sampler, max_length, num_return_sequences, temperature, top_k, top_p, seed):
        """Raw prompts + settings -> `{"generated": (B, n), "text": (B, n), "truncated": (B,)}` strings/bools."""
        import tensorflow as tf

        samplers = self._samplers().samplers
        length = tf.clip_by_value(max_length, 2, self.model.max_length)
        n = tf.maximum(num_return_sequences, 1)
        ids, truncated = prompt_ids(self.preprocessor, text, length)
        known = tf.equal(tf.constant(list(SAMPLERS)), sampler)
        check = tf.debugging.Assert(tf.reduce_any(known), [f"unknown sampler; choose one of {', '.join(SAMPLERS)}:",
                                                           sampler])
        with tf.control_dependencies([check]):
            index = tf.cast(tf.argmax(tf.cast(known, tf.int32)), tf.int32)

        def branch(name):
            def run():
                smp = samplers[name]
                smp.temperature = temperature
                if name == "top_k":
                    smp.k = top_k
                if name == "top_p":
                    smp.p = top_p
                out, plen = generate(self.model, ids, sampler=name, max_length=length, num_return_sequences=n,
                                     seed=seed, sampler_object=smp)
                out = tf.cast(out, tf.int32)
                pad = self.model.max_length - tf.shape(out)[1]  # same width in every branch
                return tf.pad(out, [[0, 0], [0, pad]]), tf.cast(plen, tf.int32)
            return run

        out, plen = tf.switch_case(index, [branch(name) for name in SAMPLERS])
        full, cont = split_continuations(self.preprocessor, out, plen)
        shape = tf.stack([tf.shape(text)[0], n])
        return {"generated": tf.reshape(cont, shape), "text": tf.reshape(full, shape), "truncated": truncated}

    def samples(self):
        long = " ".join(["this movie was a long and winding story about nothing at all ."] * 40)
        return {"text": np.array([b"This movie was", b"", long.encode(), b"Caf\xc3\xa9 \xff\xfe bytes"], dtype=object),
                "sampler": np.array(b"top_p"), "max_length": np.array(24, np.int32),
                "num_return_sequences": np.array(2, np.int32), "temperature": np.array(1.0, np.float32),
                "top_k": np.array(5, np.int32), "top_p": np.array(0.9, np.float32), "seed": np.array(1, np.int64)}

    def read_inputs(self, items, **options):
        """`zoo predict` prompts + generation flags -> the signature's inputs (a bad setting: ValueError)."""
        opts = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
        unknown = set(opts) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown generation setting(s) {sorted(unknown)}; valid: {', '.join(DEFAULTS)}")
        if opts["sampler"] not in SAMPLERS:
            raise ValueError(f"unknown sampler {opts['sampler']!r}; choose one of {', '.join(SAMPLERS)}")
        n = int(opts["num_return_sequences"])
        if n < 1 or (opts["sampler"] == "beam" and n > NUM_BEAMS):
            raise ValueError(f"--num-return-sequences must be 1..{NUM_BEAMS if opts['sampler'] == 'beam' else 'N'}"
                             f" (beam search keeps {NUM_BEAMS} beams), got {n}")
        if not 0.0 < float(opts["top_p"]) <= 1.0:
            raise ValueError(f"--top-p must be in (0, 1], got {opts['top_p']}")
        if float(opts["temperature"]) <= 0.0:
            raise ValueError(f"--temperature must be positive, got {opts['temperature']}")
        if int(opts["top_k"]) < 1:
            raise ValueError(f"--top-k must be at least 1, got {opts['top_k']}")
        if int(opts["max_length"]) < 2:
            raise ValueError(f"--max-length must be at least 2 (the start token and one more), got {opts['max_length']}")
        encoded = []
        for i, item in enumerate(items):
            try:
                encoded.append(str(item).encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise ValueError(f"prompt {i + 1} is not valid UTF-8 (byte {exc.start}); pass UTF-8 text") from exc
        seed = opts["seed"] if opts["seed"] is not None else int(np.random.default_rng().integers(2**31))
        self.last_seed = int(seed)
        return {"text": np.array(encoded, dtype=object), "sampler": np.array(opts["sampler"].encode()),
                "max_length": np.array(int(opts["max_length"]), np.int32),
                "num_return_sequences": np.array(n, np.int32), "temperature": np.array(opts["temperature"], np.float32),
                "top_k": np.array(int(opts["top_k"]), np.int32), "top_p": np.array(opts["top_p"], np.float32),
                "seed": np.array(int(seed), np.int64)}

    def rows(self, items, outputs, top_k):
        rows = []  # one list per prompt: its num_return_sequences continuations
        for i, item in enumerate(items):
            rows.append([])
            for j, out in enumerate(outputs["generated"][i]):
                row = {"prompt": str(item), "n": j + 1,
                       "continuation": out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)}
                if not str(item).strip():
                    row["note"] = "empty prompt: an unconditional sample"
                elif bool(np.asarray(outputs["truncated"][i])):
                    row["note"] = "prompt was cut to its last max_length // 2 pieces"
                rows[-1].append(row)
        return rows
