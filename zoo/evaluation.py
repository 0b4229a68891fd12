"""Evaluation: run a model's task evaluator on the test split.

`evaluate(spec, model, data, run_dir=None)` calls the evaluator of the task
the spec links (`spec.task.evaluate`) and returns plain JSON-able metrics;
it refuses a result that lacks a metric the spec declares.  The
classification helpers are re-exported from `zoo.tasks.classification` for
callers of the old names.
"""

from __future__ import annotations

from typing import Any

from zoo.registry import ModelSpec
from zoo.tasks.classification import classification_metrics, evaluate_classification, predict_logits

__all__ = ["evaluate", "predict_logits", "classification_metrics", "evaluate_classification"]


def evaluate(spec: ModelSpec, model, data, run_dir=None, **options) -> dict[str, Any]:
    """Evaluate `model` (the registered `spec`) on `data.test` with its task's evaluator.

    Returns:
        dict of JSON-able metrics holding at least every name in `spec.metrics`.

    Raises:
        RuntimeError: the evaluator left out a declared metric (a bug in the task).
    """
    metrics = spec.task.evaluate(spec, model, data, run_dir, **options)
    missing = [m for m in spec.metrics if m not in metrics]
    if missing:
        raise RuntimeError(f"{spec.name}: the {spec.task.name} evaluator did not report {', '.join(missing)} "
                           "(declared in the spec's metrics)")
    return metrics
