"""Evaluation: accuracy and confusion matrices (BLEU and WER join with their families).

`evaluate(spec, model, data, run_dir=None)` dispatches on the spec's task
through the `EVALUATORS` registry (`zoo.tasks`) and returns plain JSON-able
metrics.  The classification helpers are re-exported from
`zoo.tasks.classification` for callers of the old names.
"""

from __future__ import annotations

from typing import Any

from zoo.registry import ModelSpec
from zoo.tasks import EVALUATORS
from zoo.tasks.classification import classification_metrics, evaluate_classification, predict_logits

__all__ = ["evaluate", "EVALUATORS", "predict_logits", "classification_metrics", "evaluate_classification"]


def evaluate(spec: ModelSpec, model, data, run_dir=None, **options) -> dict[str, Any]:
    """Evaluate `model` (the registered `spec`) on `data.test` with its task's metrics."""
    return EVALUATORS.get(spec.task)(spec, model, data, run_dir, **options)
