"""Text generation benchmark (issue #17): imdb_gpt perplexity vs n-gram baselines, samples from every
sampler, IMDB accuracy of the pre-trained-then-fine-tuned classifier vs the same architecture from
scratch (same fine-tuning budget), and cached vs uncached decoding speed at 64 new tokens.

    # the run recorded in bench/RESULTS.md (a small model on a slice; about 20 min on 2 busy cores)
    ZOO_DATA_DIR=../shared/data nice -n 10 python bench/generation.py --limit 5000 --lm-minutes 8 \\
        --cls-epochs 2 --set embedding_dim=128 --set num_layers=2 --set intermediate_dim=512 --set max_length=128

Steps:
1. `imdb_gpt` trained with `zoo.fit` (stops at the first epoch end after `--lm-minutes`);
   test token cross-entropy / perplexity from its metrics.json.
2. Unigram and interpolated bigram models on the *same* WordPiece targets
   (counted on the LM's training batches; the bigram weight is chosen on a
   held-out 10% of them), perplexity on the same test targets.
3. A few continuations from each keras-hub sampler (seed 1).
4. `imdb_gpt_classifier` twice with the same settings and epochs: from the LM
   run (`init_from`) and from scratch (same tokenizer via `data.preprocessor_from`);
   test accuracy and wall time of each.
5. Greedy generation of exactly 64 new tokens (no early stop) with and without
   the key/value cache, compiled, timed after a warm-up; tokens/s.
Writes JSON to --out and prints Markdown rows.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # this checkout's zoo and applications first

from common import cpu_info  # noqa: E402  (one definition of the machine report)
from translator import _TimeBudget  # noqa: E402
from zoo.io import write_json  # noqa: E402

PROMPTS = ["This movie was", "I have never seen", "The acting was", "If you like horror films"]


def ngram_baselines(data) -> dict:
    """Unigram (add-one) and interpolated bigram perplexity on `data.test`'s non-padding targets."""
    import numpy as np

    def pairs(ds):
        prev, cur = [], []
        for x, y in ds:
            x, y = np.asarray(x), np.asarray(y)
            keep = y != 0
            prev.append(x[keep])
            cur.append(y[keep])
        return np.concatenate(prev), np.concatenate(cur)

    V = int(data.info["vocabulary_size"])
    prev, cur = pairs(data.train)
    cut = int(len(cur) * 0.9)
    tprev, tcur = pairs(data.test)

    def fit(p, c):
        uni = (np.bincount(c, minlength=V) + 1.0) / (len(c) + V)
        big = {}
        keys = p.astype(np.int64) * V + c
        k, n = np.unique(keys, return_counts=True)
        big = dict(zip(k.tolist(), n.tolist()))
        ctx = np.bincount(p, minlength=V).astype(np.float64)
        return uni, big, ctx

    def ppl(model, p, c, lam):
        uni, big, ctx = model
        pu = uni[c]
        if lam == 0:
            return float(np.exp(-np.mean(np.log(pu))))
        pb = np.array([big.get(a * V + b, 0) for a, b in zip(p.tolist(), c.tolist())], np.float64)
        pb = np.where(ctx[p] > 0, pb / np.maximum(ctx[p], 1), 0.0)
        return float(np.exp(-np.mean(np.log(lam * pb + (1 - lam) * pu))))

    held = fit(prev[:cut], cur[:cut])
    lams = [0.3, 0.5, 0.7, 0.8, 0.9]
    best = min(lams, key=lambda lam: ppl(held, prev[cut:], cur[cut:], lam))
    full = fit(prev, cur)
    return {"unigram_add_one": ppl(full, tprev, tcur, 0.0), "bigram_interpolated": ppl(full, tprev, tcur, best),
            "bigram_lambda": best, "train_tokens": int(len(cur)), "test_tokens": int(len(tcur))}


def decoding_speed(model, tokenizer, new_tokens: int, batch: int, repeats: int) -> dict:
    """Tokens/s of greedy generation forced to `new_tokens` new tokens, cached vs uncached."""
    import numpy as np
    import tensorflow as tf

    from applications.gpt.task import generate, prompt_ids

    prompts = (PROMPTS * batch)[:batch]
    ids, _ = prompt_ids(tokenizer, tf.constant(prompts), model.max_length)
    ids = ids.numpy()
    length = 1 + ids.shape[1] + new_tokens
    if length > model.max_length:
        raise ValueError(f"the model's context ({model.max_length}) is shorter than prompt + {new_tokens} tokens")
    fns = {c: tf.function(lambda x, c=c: generate(model, x, sampler="greedy", max_length=length, cached=c,
                                                     stop=False)[0]) for c in (True, False)}
    outs, times = {}, {True: [], False: []}
    for fn in fns.values():
        fn(ids)  # trace + warm-up
    for _ in range(repeats):
        for c, fn in fns.items():
            t0 = time.perf_counter()
            outs[c] = np.asarray(fn(ids))
            times[c].append(time.perf_counter() - t0)
    generated = batch * (length - 1 - ids.shape[1])  # at least; rows with shorter prompts generate more
    best = {c: min(t) for c, t in times.items()}
    return {"batch": batch, "new_tokens_per_row": new_tokens, "max_length": length, "repeats": repeats,
            "seconds": {"cached": times[True], "uncached": times[False]},
            "tokens_per_second": {"cached": generated / best[True], "uncached": generated / best[False]},
            "speedup": best[False] / best[True], "identical_outputs": bool(np.array_equal(outs[True], outs[False]))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench" / "generation"))
    p.add_argument("--limit", type=int, help="reviews per split (train, test) for every step")
    p.add_argument("--lm-minutes", type=float, default=8.0)
    p.add_argument("--lm-epochs", type=int, default=20)
    p.add_argument("--cls-epochs", type=int, default=2)
    p.add_argument("--cls-set", action="append", default=[], metavar="KEY=VALUE", help="classifier-only overrides")
    p.add_argument("--cls-tag", default="", help="suffix of the classifier run directories (variants on one LM run)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="backbone size (both models)")
    p.add_argument("--val-limit", type=int, default=1000, help="test reviews for the per-epoch perplexity")
    p.add_argument("--speed-batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "generation.json"))
    args = p.parse_args(argv)

    import zoo
    from applications.gpt.task import SAMPLERS, generate_text
    from zoo.cli import parse_set

    runs = pathlib.Path(args.runs)
    size = parse_set(args.set)
    data_kw = {"vocabulary_size": size.get("vocabulary_size", 8000), "max_length": size.get("max_length", 256)}
    report = {"command": " ".join(["python", *sys.argv]), "cpu": cpu_info(), "shared_machine": True,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "limit": args.limit}

    # 1. the language model
    t0 = time.perf_counter()
    lm = zoo.fit("imdb_gpt", run_dir=runs / "imdb_gpt", data_dir=args.data_dir, epochs=args.lm_epochs,
                 limit=args.limit, overrides={**size, "data": {**data_kw, "val_limit": args.val_limit}}, verbose=2,
                 callbacks=[_TimeBudget(args.lm_minutes)])
    if lm.data is None:  # a finished run was loaded, not retrained: its data for the baselines and prompts
        from zoo.data import load_dataset

        train = lm.config["train"]
        lm.data = load_dataset("imdb_lm", data_dir=args.data_dir, batch_size=int(train["batch_size"]),
                               limit=lm.config.get("limit"), seed=int(train.get("seed", 0)), **dict(train["data"]))
    test = lm.metrics["test"]
    report["language_model"] = {
        "params": lm.metrics["params"], "epochs_run": lm.metrics["epochs"], "train_seconds": lm.metrics["train_seconds"],
        "total_seconds": time.perf_counter() - t0, "settings": lm.config,
        "test_token_cross_entropy": test["token_cross_entropy"], "test_perplexity": test["perplexity"],
        "test_tokens": test["tokens"], "val_perplexity_per_epoch": lm.history.get("val_perplexity")}

    # 2. n-gram baselines on the same tokens
    report["baselines"] = ngram_baselines(lm.data)

    # 3. samples
    report["samples"] = {s: dict(zip(PROMPTS[:3], [c[0] for c in generate_text(
        lm.model, lm.data.preprocessor, PROMPTS[:3], sampler=s, max_length=40, seed=1, top_k=40, top_p=0.9)]))
        for s in SAMPLERS}

    # 5. decoding speed (before the classifiers, while the LM is in memory)
    report["decoding"] = decoding_speed(lm.model, lm.data.preprocessor, 64, args.speed_batch, args.repeats)

    # 4. fine-tuned vs from scratch, same budget
    cls_over = {**size, **parse_set(args.cls_set), "data": data_kw}
    report["classifier"] = {}
    for label, extra in (("pretrained", {"init_from": str(lm.run_dir)}),
                         ("scratch", {"data": {**data_kw, "preprocessor_from": str(lm.run_dir)}})):
        t0 = time.perf_counter()
        r = zoo.fit("imdb_gpt_classifier", run_dir=runs / f"imdb_gpt_classifier_{label}{args.cls_tag}", data_dir=args.data_dir,
                    epochs=args.cls_epochs, limit=args.limit, overrides={**cls_over, **extra}, verbose=2)
        report["classifier"][label] = {"test_accuracy": r.metrics["test"]["accuracy"],
                                       "num_test": r.metrics["test"]["num_examples"],
                                       "train_seconds": r.metrics["train_seconds"],
                                       "total_seconds": time.perf_counter() - t0,
                                       "val_accuracy_per_epoch": r.history.get("val_accuracy"), "settings": r.config}

    write_json(args.out, report)
    lmr, b, d = report["language_model"], report["baselines"], report["decoding"]
    print(f"| perplexity (test, {lmr['test_tokens']} tokens) | imdb_gpt {lmr['test_perplexity']:.1f} | "
          f"bigram {b['bigram_interpolated']:.1f} | unigram {b['unigram_add_one']:.1f} |")
    for label, c in report["classifier"].items():
        print(f"| classifier {label} | accuracy {c['test_accuracy']:.2%} on {c['num_test']} test reviews | "
              f"train {c['train_seconds'] / 60:.1f} min |")
    print(f"| decoding 64 new tokens, batch {d['batch']} | cached {d['tokens_per_second']['cached']:.0f} tok/s | "
          f"uncached {d['tokens_per_second']['uncached']:.0f} tok/s | {d['speedup']:.2f}x | identical {d['identical_outputs']} |")
    for s, rows in report["samples"].items():
        for prompt, text in rows.items():
            print(f"| {s} | {prompt} | {text} |")


if __name__ == "__main__":
    main()
