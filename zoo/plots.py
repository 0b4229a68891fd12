"""Plots people would rather look at than read: training curves, confusion matrices.

Every function writes a PNG atomically and returns its path; matplotlib runs
headless (Agg) and is imported on first use.
"""

from __future__ import annotations

import pathlib
from typing import Mapping, Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> pathlib.Path:
    from zoo.data import atomic_write

    path = pathlib.Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def plot_curves(history: Mapping[str, Sequence[float]], path, title: str = "") -> pathlib.Path:
    """Loss and metric curves, train beside validation, one panel per metric.

    Args:
        history: {"loss": [...], "val_loss": [...], "accuracy": [...], ...}
            one value per epoch (the `history.json` of a run).
        path: PNG to write.
        title: figure title (e.g. the model name).
    """
    plt = _plt()
    skip = {"epoch", "seconds", "time", "wall_seconds", "learning_rate"}
    bases = [k for k in history if not k.startswith("val_") and k not in skip]
    n = max(len(bases), 1) + ("learning_rate" in history)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    axes = axes[0]
    for ax, key in zip(axes, bases):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], "o-", label="train", ms=3)
        if f"val_{key}" in history:
            ax.plot(np.arange(1, len(history[f"val_{key}"]) + 1), history[f"val_{key}"], "s-", label="validation", ms=3)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    if "learning_rate" in history:
        ax = axes[-1]
        ax.plot(np.arange(1, len(history["learning_rate"]) + 1), history["learning_rate"], "o-", ms=3)
        ax.set_title("learning rate (end of epoch)")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(matrix, class_names: Sequence[str], path, title: str = "") -> pathlib.Path:
    """A confusion matrix `(K, K)` (rows: true class, columns: predicted), row-normalised colours."""
    plt = _plt()
    m = np.asarray(matrix)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(0.6 * k + 2.5, 0.6 * k + 2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix")
    return _save(fig, path)
