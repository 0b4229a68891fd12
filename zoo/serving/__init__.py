"""Serving recipes: how each modality's raw inputs reach a model inside an export.

`zoo.export` joins a trained model and its recipe into one SavedModel whose
`serving_default` signature takes raw inputs.  A recipe is a `Serving`
subclass registered under the modality (or task) it serves, in its family's
`applications/<family>/serving.py`; the registry loads the families on its
first lookup.
"""

from __future__ import annotations

import pathlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from zoo.registry import ModelSpec, Registry, load_families

__all__ = ["Serving", "SERVINGS", "load_serving"]

SERVINGS = Registry("serving recipe", loader=load_families)


class Serving:
    """How one modality's raw inputs reach the model inside the exported graph.

    Subclasses set `input_signature` (a list of named `tf.TensorSpec`s on raw
    inputs) and implement `serve(**raw) -> dict of tensors`, `samples()` (raw
    sample inputs as numpy arrays, keyed like the signature) and
    `read_inputs(paths_or_text)` for `zoo predict`.

    Args:
        model: the trained `keras.Model` on tensors.
        spec: its registry spec.
        info: the dataset info of its run (class names, vocabulary, ...).
        preprocessor: the run's fitted preprocessor, if the modality has one.
    """

    input_signature: list = []

    def __init__(self, model, spec: ModelSpec, info: Mapping[str, Any], preprocessor=None):
        self.model, self.spec, self.info, self.preprocessor = model, spec, dict(info), preprocessor

    def serve(self, **raw):  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_endpoints(self) -> dict[str, tuple[Callable, list]]:
        """Other signatures to export, name -> (fn, input_signature)."""
        return {}

    #: the extra endpoint on model tensors that TensorFlow Lite converts (None: not supported)
    tflite_endpoint: str | None = None

    def tensor_samples(self, n: int) -> np.ndarray:
        """`n` model inputs for the `tflite_endpoint` parity check."""
        raise NotImplementedError

    def trackables(self) -> list:
        """Resources (lookup tables, tokenizers) the serving function uses besides the model."""
        return []

    def samples(self) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_inputs(self, items: Sequence[str]) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    #: what a serving user should know about bad inputs, written into the model card
    notes: str = ""

    #: whether `zoo predict` arguments are file paths (images, WAVs) rather than the text itself
    reads_files: bool = True

    def check_text(self, items: Sequence[str], example: str) -> None:
        """Refuse empty text and arguments that name an existing file (pass `--read-files` to read it).

        Raises:
            ValueError: one line naming the input and the fix.
        """
        for item in items:
            if not str(item).strip():
                raise ValueError(f"empty text: pass the text itself as an argument, e.g. zoo predict MODEL {example!r}")
            if len(str(item)) < 4096 and pathlib.Path(str(item)).is_file():
                raise ValueError(f"{item!r} is an existing file, not text: pass --read-files to use the text in it, "
                                 "or quote the text itself")

    def rows(self, items: Sequence[str], outputs: Mapping[str, np.ndarray], top_k: int) -> list[dict]:
        """One readable dict per input for `zoo predict` (or a list of dicts: several results of one input)."""
        return [{"input": str(i)} | {k: _py(v[n]) for k, v in outputs.items()} for n, i in enumerate(items)]


def _py(v):
    v = np.asarray(v)
    if v.dtype.kind in "SO":
        return v.astype(bytes).tolist() if v.ndim else v.item().decode("utf-8", "replace")
    return v.tolist()



def load_serving(spec: ModelSpec, model, info, preprocessor=None) -> Serving:
    """The task's `Serving` recipe if one is registered (e.g. "language_model"), else the modality's.

    `model` may be None (SavedModel-side helpers only).
    """
    recipe = SERVINGS.get(spec.task) if spec.task in SERVINGS else SERVINGS.get(spec.modality)
    return recipe(model, spec, info, preprocessor)
