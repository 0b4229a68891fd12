"""Serving recipes: how a model's raw inputs reach it inside an export.

`zoo.export` joins a trained model and its recipe into one SavedModel whose
`serving_default` signature takes raw inputs.  A recipe is a `Serving`
subclass in its family's `applications/<family>/serving.py` that declares
its raw inputs as data (`raw_inputs`); a model's spec links its recipe by
object (`register_model(serving=ImageServing, ...)`).  `SERVINGS` indexes
the recipes by name for listings and plugins.
"""

from __future__ import annotations

import pathlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from zoo.registry import ModelSpec, Registry, load_families

__all__ = ["Serving", "SERVINGS", "load_serving", "tensor_specs"]

SERVINGS = Registry("serving recipe", loader=load_families)


def tensor_specs(raw_inputs: Mapping[str, Mapping[str, Any]]) -> list:
    """Named `tf.TensorSpec`s of declared raw inputs ({name: {"dtype", "shape"}}), in declaration order."""
    import tensorflow as tf

    return [tf.TensorSpec(spec["shape"], tf.as_dtype(spec["dtype"]), name=name) for name, spec in raw_inputs.items()]


class Serving:
    """How one model family's raw inputs reach the model inside the exported graph.

    Subclasses declare `raw_inputs` (name -> {"dtype", "shape", "description"}:
    the serving signature's inputs, as data that `zoo info`, the model card
    and the server read) and implement `serve(**raw) -> dict of tensors`, `samples()` (raw
    sample inputs as numpy arrays, keyed like the signature) and
    `read_inputs(paths_or_text)` for `zoo predict`.

    Args:
        model: the trained `keras.Model` on tensors.
        spec: its registry spec.
        info: the dataset info of its run (class names, vocabulary, ...).
        preprocessor: the run's fitted preprocessor, if the modality has one.
        options: settings of the recipe itself, named in `option_names`
            (image classifiers: the test-time augmentation baked into the
            export); another name is a `ValueError`.
    """

    #: the serving signature's inputs: name -> {"dtype": "string", "shape": [None], "description": "..."}
    raw_inputs: dict[str, dict[str, Any]] = {}

    #: the settings this recipe takes as `options`
    option_names: tuple[str, ...] = ()

    def __init__(self, model, spec: ModelSpec, info: Mapping[str, Any], preprocessor=None,
                 options: Mapping[str, Any] | None = None):
        self.model, self.spec, self.info, self.preprocessor = model, spec, dict(info), preprocessor
        self.options = dict(options or {})
        unknown = sorted(set(self.options) - set(self.option_names))
        if unknown:
            raise ValueError(f"{spec.name}: the {type(self).__name__} recipe takes no option {', '.join(unknown)}"
                             + (f" (it takes: {', '.join(self.option_names)})" if self.option_names else ""))
        self.input_signature = tensor_specs(self.raw_inputs)

    @classmethod
    def describe_inputs(cls) -> str:
        """The raw inputs in one line, e.g. "image_bytes: string (batch,): encoded JPEG ... bytes"."""
        def shape(s):
            dims = ["batch" if d is None and i == 0 else "n" if d is None else str(d) for i, d in enumerate(s)]
            return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

        return "; ".join(f"{n}: {v['dtype']} {shape(v['shape'])}" + (f": {v['description']}" if v.get("description") else "")
                         for n, v in cls.raw_inputs.items())

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

    def tensor_inputs(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        """The `tflite_endpoint`'s input for raw inputs as `read_inputs` gives them (what `serve` computes first)."""
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



def load_serving(spec: ModelSpec, model, info, preprocessor=None, options: Mapping[str, Any] | None = None) -> Serving:
    """The spec's `Serving` recipe (`spec.serving`) made for `model`, with the recipe's `options`.

    `model` may be None (SavedModel-side helpers only).
    """
    # options only when there are some: a plugin's recipe written before they existed keeps working
    return spec.serving(model, spec, info, preprocessor, *([options] if options else []))
