"""Tasks: what a model is trained for, as losses, metrics and test-set evaluators.

Two registries live here, above the modules that fill them:

- `TASKS[task](spec, train) -> (loss, metrics)`: what `zoo.training.fit` compiles.
- `EVALUATORS[task](spec, model, data, run_dir, **options) -> dict`: what
  `zoo.evaluation.evaluate` runs on the test split.

Classification (shared by the image and text families) lives here; a
family's own task (`applications/<family>/task.py`: translation, speech
recognition, language modelling) registers into both.  They are imported on
the first lookup, so nothing depends on import order, and no task imports
`zoo.training` or `zoo.evaluation`: the dependency runs one way, from the
training loop down to the tasks.
"""

from __future__ import annotations

from zoo.registry import Registry, load_families

__all__ = ["TASKS", "EVALUATORS"]


def _load_task_modules() -> None:
    from zoo.tasks import classification  # noqa: F401  (shared by the image and text families)

    load_families()  # each family's task.py registers its own task


TASKS = Registry("task", loader=_load_task_modules)
EVALUATORS = Registry("evaluator", loader=_load_task_modules)
