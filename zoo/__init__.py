"""zoo: a registry of Keras models across modalities, trained end to end.

    >>> import zoo
    >>> zoo.list_models("cifar10_*")
    ['cifar10_cnn', 'cifar10_resnet', 'cifar10_vit']
    >>> model = zoo.create_model("cifar10_resnet")

Heavy submodules (TensorFlow, Keras) load on first use, so `import zoo` and
`zoo list` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from zoo.registry import (
    ModelSpec,
    UnknownNameError,
    create_model,
    get_spec,
    list_models,
    model_info,
    register_model,
)

__version__ = "0.1.0"

__all__ = [
    "ModelSpec",
    "UnknownNameError",
    "create_model",
    "get_spec",
    "list_models",
    "model_info",
    "register_model",
    "export_model",
    "fit",
    "EpochClock",
    "layers",
    "data",
    "distribute",
]

_LAZY = {
    "export_model": ("zoo.export", "export_model"),
    "fit": ("zoo.training", "fit"),
    "EpochClock": ("zoo.training", "EpochClock"),
    "layers": ("zoo.layers", None),
    "data": ("zoo.data", None),
    "distribute": ("zoo.distribute", None),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from zoo._tf import import_tensorflow

        import_tensorflow()  # quietly, before Keras pulls it in
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
