"""Tasks: what a model is trained for, as losses, metrics and test-set evaluators.

Two registries live here, above the modules that fill them:

- `TASKS[task](spec, train) -> (loss, metrics)`: what `zoo.training.fit` compiles.
- `EVALUATORS[task](spec, model, data, run_dir, **options) -> dict`: what
  `zoo.evaluation.evaluate` runs on the test split.

Each task module (`classification`, `translation`, `speech`) registers into
both.  They are imported on the first lookup, so nothing depends on import
order, and no module here imports `zoo.training` or `zoo.evaluation`: the
dependency runs one way, from the training loop down to the tasks.
A new task is one module plus one line in `_load_task_modules`.
"""

from __future__ import annotations

from zoo.registry import Registry

__all__ = ["TASKS", "EVALUATORS"]


def _load_task_modules() -> None:
    from zoo.tasks import classification, speech, translation  # noqa: F401  (they register themselves)


TASKS = Registry("task", loader=_load_task_modules)
EVALUATORS = Registry("evaluator", loader=_load_task_modules)
