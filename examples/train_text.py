"""Train an IMDB sentiment classifier from the zoo, evaluate, export, and show its attention.

    python examples/train_text.py                              # imdb_bilstm_attention
    python examples/train_text.py --model imdb_lstm --epochs 2
    python examples/train_text.py --epochs 1 --limit 2000      # a smoke run

Writes runs/<model>/ (history, metrics, curves.png, confusion.png,
attention.png + attention.json: which words the model looked at in a few
test reviews) and saved_models/<model>/<version>/, a SavedModel on raw strings.
"""

import argparse
import sys
import pathlib

import numpy as np

import zoo
from zoo.cli import parse_set, report_errors
from zoo.io import write_json


def plot_attention(model, vectorizer, reviews, labels, path):
    """Colour each review's first words by their attention-pooling weight; write PNG + JSON."""
    import tensorflow as tf

    from applications.text.models import attention_weights
    from zoo.plots import _plt, _save

    tokens = vectorizer(tf.constant(reviews), pad=True).numpy()
    weights = attention_weights(model, tokens)
    probs = tf.nn.softmax(model.predict(tokens, verbose=0)).numpy()[:, 1]
    vocab = vectorizer.vocabulary
    plt = _plt()
    fig, axes = plt.subplots(len(reviews), 1, figsize=(12, 1.3 * len(reviews)))
    rows = []
    for ax, ids, w, p, y in zip(np.atleast_1d(axes), tokens, weights, probs, labels):
        n = min(int((ids != 0).sum()), 40)
        words = [vocab[i] for i in ids[:n]]
        ax.imshow(w[None, :n], cmap="YlOrRd", aspect="auto", vmin=0, vmax=max(3.0 / n, float(w[:n].max())))  # pale = ~uniform
        for j, word in enumerate(words):
            ax.text(j, 0, word, ha="center", va="center", rotation=60, fontsize=7)
        ax.set_yticks([])
        ax.set_xticks([])
        length = int((ids != 0).sum())
        top = [vocab[ids[k]] for k in np.argsort(-w[:length])[:5]]  # over the whole (head+tail) review
        ax.set_title(f"true {'pos' if y else 'neg'}, P(pos) = {p:.2f}; most attended: {', '.join(top)}",
                     fontsize=8, loc="left")
        rows.append({"words": words, "weights": [float(v) for v in w[:n]], "p_pos": float(p), "label": int(y)})
    fig.suptitle(f"{model.name}: attention over the first 40 words")
    _save(fig, path)
    write_json(pathlib.Path(path).with_suffix(".json"), rows, indent=1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="imdb_bilstm_attention", help=f"one of {', '.join(zoo.list_models(modality='text'))}")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--limit", type=int, help="first N reviews of each split (smoke runs)")
    p.add_argument("--data-dir", help="folder holding aclImdb.tar.gz (default: $ZOO_DATA_DIR)")
    p.add_argument("--run-dir")
    p.add_argument("--out", default="saved_models")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-export", action="store_true")
    args = p.parse_args(argv)

    result = zoo.fit(args.model, run_dir=args.run_dir or f"runs/{args.model}", data_dir=args.data_dir,
                     epochs=args.epochs, batch_size=args.batch_size, limit=args.limit, overrides=parse_set(args.set))
    test = result.metrics["test"]
    print(f"\n{args.model}: test accuracy {test['accuracy']:.2%} on {test['num_examples']} reviews, "
          f"{result.metrics['train_seconds'] / 60:.1f} min of training")
    if "attention_pool" in [layer.name for layer in result.model.layers]:
        from applications.text.data import load_imdb_texts

        texts, labels, _ = load_imdb_texts("test", args.data_dir)
        pick = np.random.default_rng(0).choice(len(texts), 6, replace=False)
        out = result.run_dir / "attention.png"
        plot_attention(result.model, result.data.preprocessor, [texts[i] for i in pick], labels[pick], out)
        print(f"attention picture: {out}")
    if not args.no_export:
        path = zoo.export_model(result.run_dir, base_dir=args.out)
        print(f'SavedModel: {path}  (try: zoo predict {path} "A wonderful film.")')


if __name__ == "__main__":
    sys.exit(report_errors("train_text.py", main))
