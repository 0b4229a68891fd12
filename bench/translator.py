"""Multi30k benchmark: BLEU on test_2016_flickr, training time, and cached vs uncached decoding speed.

    # full: train within a time budget, evaluate BLEU both ways, measure decoding speed
    ZOO_DATA_DIR=../shared/data python bench/translator.py --minutes 120
    # decoding speed only (untrained weights of the default size, or --run-dir of a trained run)
    ZOO_DATA_DIR=../shared/data python bench/translator.py --speed-only --sentences 64

Decoding speed: greedy decoding of the same test_2016_flickr sentences, with
the key/value cache and without it (the decoder recomputed over the prefix
at every step), each forced to generate exactly `--tokens` tokens (the stop
token is ignored for the timing, so both do the same number of steps on the
same inputs), compiled with tf.function, timed after a warm-up call,
alternated `--repeats` times; sentences/s and the ratio are reported.
Writes JSON to --out and prints Markdown.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import cpu_info  # noqa: E402  (one definition of the machine report)
from zoo.run import Run  # noqa: E402
from zoo.io import write_json  # noqa: E402


class _TimeBudget:
    """Keras callback stopping training after `minutes` (checked at epoch ends)."""

    def __new__(cls, minutes):
        import keras

        class Stop(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                if time.perf_counter() - self.t0 > minutes * 60:
                    self.model.stop_training = True

        return Stop()


def decode_speed(model, encoder_tokens, tokens: int, repeats: int, batch_size: int) -> dict:
    """Sentences/s of cached and uncached greedy decoding forced to `tokens` new tokens."""
    import numpy as np
    import tensorflow as tf

    from applications.translation.task import _next_fn, _steps
    import keras_hub
    from keras import ops

    def forced(x, cached):
        steps = _steps(model, tokens)
        batch = ops.shape(x)[0]
        eo, em = model.encode(x)
        self_c, cross_c = model.init_cache(eo, steps + 1) if cached else ((), ())
        prompt = ops.concatenate([ops.full((batch, 1), 2, "int32"), ops.zeros((batch, steps), "int32")], 1)
        mask = ops.concatenate([ops.ones((batch, 1), "bool"), ops.zeros((batch, steps), "bool")], 1)
        return keras_hub.samplers.GreedySampler()(_next_fn(model, eo, em, cross_c, cached), prompt, cache=self_c,
                                                  index=1, mask=mask, stop_token_ids=None)  # no early stop

    fns = {c: tf.function(lambda x, c=c: forced(x, c), input_signature=[tf.TensorSpec([None, None], tf.int32)])
           for c in (True, False)}
    chunks = [encoder_tokens[i:i + batch_size] for i in range(0, len(encoder_tokens), batch_size)]
    outs, times = {}, {True: [], False: []}
    for c, fn in fns.items():
        fn(chunks[0])  # trace + warm up
    for _ in range(repeats):
        for c, fn in fns.items():
            t0 = time.perf_counter()
            outs[c] = np.concatenate([np.asarray(fn(ch)) for ch in chunks])
            times[c].append(time.perf_counter() - t0)
    n = len(encoder_tokens)
    best = {c: min(t) for c, t in times.items()}
    return {"sentences": n, "generated_tokens": int(outs[True].shape[1] - 1), "batch_size": batch_size,
            "repeats": repeats, "seconds": {"cached": times[True], "uncached": times[False]},
            "sentences_per_second": {"cached": n / best[True], "uncached": n / best[False]},
            "speedup": best[False] / best[True], "identical_outputs": bool(np.array_equal(outs[True], outs[False]))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--run-dir", default=str(ROOT / "runs" / "bench" / "multi30k_transformer"))
    p.add_argument("--minutes", type=float, default=120.0, help="training time budget (stops at an epoch end)")
    p.add_argument("--epochs", type=int, default=40, help="upper bound on epochs (the budget usually stops first)")
    p.add_argument("--beam-width", type=int, default=4)
    p.add_argument("--speed-only", action="store_true", help="skip training/BLEU; time decoding only")
    p.add_argument("--sentences", type=int, default=128, help="test sentences for the speed test")
    p.add_argument("--tokens", type=int, default=30, help="tokens each decoded output has in the speed test")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model/training overrides")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "translator.json"))
    args = p.parse_args(argv)

    import tensorflow as tf

    import zoo
    from zoo.cli import parse_set
    from zoo.data import load_dataset
    from zoo.training import load_run

    report = {"command": " ".join(["python", *sys.argv]), "cpu": cpu_info(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    overrides = parse_set(args.set)
    run_dir = pathlib.Path(args.run_dir)
    if args.speed_only:
        spec = zoo.get_spec("multi30k_transformer")
        if Run(run_dir).trained_model_file() is not None:
            _, model, config = load_run(run_dir)
            report["weights"] = f"trained run {run_dir}"
        else:
            model = zoo.create_model("multi30k_transformer", **{k: v for k, v in overrides.items() if k in spec.defaults})
            report["weights"] = "untrained (random init; speed does not depend on the weights when the length is forced)"
        data = load_dataset("multi30k", data_dir=args.data_dir, batch_size=64, **dict(spec.train.get("data", {})))
    else:
        t0 = time.perf_counter()
        result = zoo.fit("multi30k_transformer", run_dir=run_dir, data_dir=args.data_dir, epochs=args.epochs,
                         overrides=overrides, verbose=2, callbacks=[_TimeBudget(args.minutes)],
                         eval_options={"beam_width": args.beam_width})
        model, data = result.model, result.data
        test = result.metrics["test"]
        report["training"] = {"train_seconds": result.metrics["train_seconds"], "epochs_run": len(result.history.get("loss", [])),
                              "params": result.metrics["params"], "total_seconds": time.perf_counter() - t0,
                              "settings": {"model": result.config["model_args"], "train": result.config["train"]}}
        report["bleu"] = {k: test[k] for k in ("sacrebleu", "bleu_tokenized_lowercase", "sacrebleu_signature",
                                                "bleu_tokenized_lowercase_signature", "labels", "beam_width",
                                                "num_examples", "examples")}
        report["weights"] = f"trained run {run_dir}"
    if data is None:
        data = load_dataset("multi30k", data_dir=args.data_dir, batch_size=64)
    sources = data.test_sources[: args.sentences]
    ids = tf.cast(data.preprocessor.encode_source(tf.constant(sources)).to_tensor(0), tf.int32).numpy()
    report["decoding"] = decode_speed(model, ids, args.tokens, args.repeats, args.batch_size)
    report["params"] = int(model.count_params())
    write_json(args.out, report)
    d = report["decoding"]
    print(f"| decoding ({d['sentences']} sentences, {d['generated_tokens']} tokens each, batch {d['batch_size']}) "
          f"| cached {d['sentences_per_second']['cached']:.1f} sent/s | uncached {d['sentences_per_second']['uncached']:.1f} "
          f"sent/s | speed-up {d['speedup']:.2f}x | identical outputs: {d['identical_outputs']} |")
    if "bleu" in report:
        b = report["bleu"]
        print(f"| BLEU test_2016_flickr (beam {b['beam_width']}) | sacreBLEU {b['sacrebleu']:.2f} | "
              f"tokenised lower-cased {b['bleu_tokenized_lowercase']:.2f} | training {report['training']['train_seconds'] / 60:.1f} min |")


if __name__ == "__main__":
    main()
