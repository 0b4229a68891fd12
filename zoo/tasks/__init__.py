"""Tasks: what a model is trained for, as one object per task.

A `Task` bundles what `zoo.training.fit` compiles (loss and per-step
metrics), what `zoo.evaluation.evaluate` runs on the test split, and the
metric names that evaluation always reports.  A model's spec links its task
by object (`register_model(task=CLASSIFICATION, ...)`); the `TASKS`
registry indexes the same objects by name for JSON, plugins and benchmarks.

Classification (shared by the image and text families) lives here
(`zoo.tasks.classification.CLASSIFICATION`); a family's own task
(`applications/<family>/task.py`: translation, speech recognition, language
modelling) is made with `register_task` in its folder.  No task imports
`zoo.training` or `zoo.evaluation`: the dependency runs one way, from the
training loop down to the tasks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from zoo.registry import Registry, load_families

__all__ = ["Task", "TASKS", "register_task"]


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """One training objective: its loss, its evaluator and the metrics it reports.

    Attributes:
        name: e.g. "classification", "recognition"; what `metrics.json` and
            `zoo list` show.
        compile: `(spec, train) -> (loss, [keras metrics])`, where `train`
            is the run's resolved training settings (label smoothing, ...).
        evaluate: `(spec, model, data, run_dir=None, **options) -> dict`
            of JSON-able test-split metrics (plots go into `run_dir`).
        metrics: keys that `evaluate`'s result always holds; a spec reports
            these unless it declares its own, and `zoo.evaluation.evaluate`
            refuses a result that lacks one (a bug in the evaluator).
        description: one line for docs and `zoo info`.
        trainee: optional `(spec, model, data, train, loss, metrics) ->
            (model to fit, loss, metrics, data)`: a training-only model
            around `model` (sharing its weights, e.g. an adversarial head)
            and the data it trains on; `fit` still saves, evaluates and
            exports `model`.  None: `model` itself is trained.

    A task is callable as its `compile`: `task(spec, train) -> (loss, metrics)`.
    """

    name: str
    compile: Callable[[Any, Mapping[str, Any]], tuple]
    evaluate: Callable[..., dict]
    metrics: tuple[str, ...]
    description: str = ""
    trainee: Callable | None = None

    def __call__(self, spec, train: Mapping[str, Any]):
        return self.compile(spec, train)

    def __str__(self) -> str:
        return self.name

    def to_dict(self) -> dict[str, Any]:
        """The task as plain data: name, metrics, description."""
        return {"name": self.name, "metrics": list(self.metrics), "description": self.description}


def _load_task_modules() -> None:
    from zoo.tasks import classification  # noqa: F401  (shared by the image and text families)

    load_families()  # each family's task.py registers its own task


TASKS = Registry("task", loader=_load_task_modules)


def register_task(name: str, *, compile: Callable, evaluate: Callable, metrics, description: str = "",
                  trainee: Callable | None = None) -> Task:
    """Make a `Task` and index it in `TASKS` under `name`; returns the task for specs to link.

    Raises:
        ValueError: `name` is already a task.
    """
    doc = (description or (compile.__doc__ or "")).strip().splitlines()
    task = Task(name=name, compile=compile, evaluate=evaluate, metrics=tuple(metrics),
                description=doc[0] if doc else "", trainee=trainee)
    return TASKS.register(name, task)
