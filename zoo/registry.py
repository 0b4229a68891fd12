"""The model registry: one small generic `Registry` and the model specs in it.

Everything a user touches (CLI, examples, training, export) finds a model by
name here; none of them knows a model by name.  A model family registers a
builder with `register_model`, linking its family's parts by object:

    @register_model(
        modality="image", task=CLASSIFICATION, dataset=cifar10, serving=ImageServing,
        train={"epochs": 10, "batch_size": 256},
        inputs={"image": {"dtype": "uint8", "shape": [32, 32, 3]}},
    )
    def cifar10_resnet(*, width=64, num_classes=10):
        ...
        return keras.Model(...)

then `zoo.create_model("cifar10_resnet", width=32)` builds it.  The spec holds
the task, loader, serving recipe and preprocessor themselves; the name-keyed
registries (`DATASETS`, `TASKS`, ...) index the same objects for JSON and
plugins.  Model families live in `applications/`; `applications/__init__.py`
imports each one, and third-party packages add models through the entry-point group `zoo.models`.
Both are loaded on the first lookup, so registration never depends on what the
user imported first.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import fnmatch
import importlib
import inspect
import math
import threading
from typing import Any, Callable, Iterator, Mapping

__all__ = [
    "Registry",
    "UnknownNameError",
    "ModelSpec",
    "MODELS",
    "TRAIN_KEYS",
    "register_model",
    "list_models",
    "get_spec",
    "create_model",
    "model_info",
    "check_value",
    "check_train",
    "load_families",
]


class UnknownNameError(KeyError, ValueError):
    """Raised for a name a registry does not hold; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class Registry:
    """A name -> object mapping that refuses duplicates and suggests on misses.

    One mechanism serves models, datasets and export signatures alike.

    Args:
        kind: what the registry holds, used in error messages ("model").
        loader: optional callable run once, before the first lookup, that
            imports the modules which register into this registry.
        name_attr: if set, each registered object gets its registry name as
            this attribute (e.g. a dataset loader's `dataset_name`), so an
            object linked elsewhere still knows the name JSON uses.

    Example:
        >>> r = Registry("colour")
        >>> @r.register("red")
        ... def red(): return "#f00"
        >>> r.get("red")()
        '#f00'
    """

    def __init__(self, kind: str, loader: Callable[[], None] | None = None, name_attr: str | None = None):
        self.kind = kind
        self._name_attr = name_attr
        self._items: dict[str, Any] = {}
        self._loader = loader
        self._loaded = loader is None
        self._lock = threading.RLock()

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                self._loaded = True  # set first: the loader registers into us
                self._loader()

    def register(self, name: str, obj: Any = None):
        """Add `obj` under `name`; used bare or as a decorator `@r.register(name)`.

        Raises:
            ValueError: `name` is already registered (nothing is overwritten).
        """

        def add(o):
            with self._lock:
                if name in self._items:
                    raise ValueError(
                        f"{self.kind} {name!r} is already registered (by "
                        f"{_origin(self._items[name])}); pick another name"
                    )
                self._items[name] = o
                if self._name_attr:
                    setattr(o, self._name_attr, name)
            return o

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove `name` (for tests and plugins that replace themselves)."""
        with self._lock:
            self._items.pop(name, None)

    def get(self, name: str) -> Any:
        """Return the object registered as `name`.

        Raises:
            UnknownNameError: no such name; the message lists the closest names.
        """
        self._ensure_loaded()
        try:
            return self._items[name]
        except (KeyError, TypeError):
            pass
        known = sorted(self._items)
        close = difflib.get_close_matches(str(name), known, n=5, cutoff=0.5)
        close += [k for k in known if str(name).lower() in k.lower() and k not in close]
        hint = f"did you mean {', '.join(close[:5])}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}; {hint or 'known: ' + ', '.join(known)}"
            + (f" (all {len(known)}: `zoo list`)" if hint else "")
        )

    def names(self, pattern: str | list[str] = "*", exclude: str | list[str] = ()) -> list[str]:
        """Sorted names matching any shell-style `pattern` and no `exclude` pattern."""
        self._ensure_loaded()
        include = [pattern] if isinstance(pattern, str) else list(pattern)
        exclude = [exclude] if isinstance(exclude, str) else list(exclude)
        return sorted(
            n
            for n in self._items
            if any(fnmatch.fnmatchcase(n, p) for p in include)
            and not any(fnmatch.fnmatchcase(n, p) for p in exclude)
        )

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._items)


def _origin(obj: Any) -> str:
    obj = getattr(obj, "builder", obj)
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"


# Training hyperparameters every spec may set; the rest of `defaults` go to the builder.
TRAIN_KEYS = {
    "epochs": "passes over the training set (with a time budget: the most it takes)",
    "budget_minutes": "train for as many of the epochs as fit in this many minutes on this machine, unless epochs "
                      "are given (0: off; zoo.fit(budget_minutes=...))",
    "budget_plan_after": "epochs timed before the budget chooses (default 1; 2 where the first carries one-off costs)",
    "batch_size": "examples per step",
    "optimizer": "adamw | sgd | adam | muon (Muon on conv kernels, SGD on the rest: zoo.optimizers.MuonSGD)",
    "learning_rate": "peak learning rate",
    "schedule": "constant | cosine | onecycle | warmup_rsqrt",
    "warmup": "warm-up length as a fraction of training (cosine/onecycle) or steps (warmup_rsqrt)",
    "weight_decay": "decoupled weight decay",
    "momentum": "SGD momentum",
    "nesterov": "SGD Nesterov momentum",
    "muon_learning_rate": "peak learning rate of the conv kernels under optimizer=muon",
    "muon_momentum": "momentum of the conv kernels under optimizer=muon",
    "label_smoothing": "label smoothing of the cross-entropy loss",
    "clipnorm": "gradient clipping by global norm (None: off)",
    "speaker_adversary": "weight of the reversed gradient from a speaker classifier on the encoder (training only; "
                         "speech recognition; 0 or None: off)",
    "ema": "decay of an exponential moving average of the weights, which the trained model keeps (None or 0: off)",
    "seed": "random seed for weights, shuffling and augmentation",
    "data": "keyword arguments for the dataset loader (augmentation, vocabulary size, ...)",
    "init_from": "a finished run whose weights (and fitted preprocessor) start this model: fine-tuning",
}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a registered model is: its builder and, linked by object, its family's parts.

    Attributes:
        name: registry name, e.g. "cifar10_resnet".
        builder: keyword-only function returning a built `keras.Model`.
        modality: "image" | "text" | "translation" | "speech" | ...: a label
            for listings (`zoo list --modality`), not a link to anything.
        task: the `zoo.tasks.Task` it is trained for (loss, evaluator, metrics).
        dataset: the dataset loader (a function registered in
            `zoo.data.DATASETS`) that `fit` calls with the run's settings.
        serving: the `zoo.serving.Serving` subclass an export embeds; its
            `raw_inputs` are what the SavedModel takes.
        preprocessor: the `zoo.data.Preprocessor` subclass the loader fits
            and the export embeds (None: the model takes the pipeline's
            tensors as they are, e.g. uint8 pixels, or its front end is
            layers of the model, e.g. log-mel).
        defaults: the builder's keyword arguments and their defaults (data).
        train: training hyperparameters (keys of `TRAIN_KEYS`).
        inputs: the model's input contract on tensors, e.g.
            {"image": {"dtype": "uint8", "shape": [32, 32, 3]}}.
        metrics: metric names evaluation always reports for this model
            (default: the task's); `zoo.evaluation.evaluate` checks them.
        description: one line for `zoo list`.
        reference: where the architecture or recipe comes from.

    Derived: `dataset_name`, `raw_inputs` (the serving signature's inputs as
    data) and `raw_input` (the same in one line).
    """

    name: str
    builder: Callable[..., Any]
    modality: str
    task: Any
    dataset: Callable[..., Any]
    serving: type
    preprocessor: type | None
    defaults: Mapping[str, Any]
    train: Mapping[str, Any]
    inputs: Mapping[str, Any]
    metrics: tuple[str, ...]
    description: str = ""
    reference: str = ""

    @property
    def dataset_name(self) -> str:
        """The loader's name in `zoo.data.DATASETS` (what `zoo list` and model cards show)."""
        return getattr(self.dataset, "dataset_name", None) or self.dataset.__name__

    @property
    def raw_inputs(self) -> dict[str, dict[str, Any]]:
        """The exported signature's inputs: name -> {"dtype", "shape", "description"}."""
        return copy.deepcopy(dict(self.serving.raw_inputs))

    @property
    def raw_input(self) -> str:
        """`raw_inputs` in one line, for model cards."""
        return self.serving.describe_inputs()

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-able data: linked objects become their names (the builder its dotted path)."""
        return {
            "name": self.name,
            "builder": _origin(self.builder),
            "modality": self.modality,
            "task": self.task.name,
            "dataset": self.dataset_name,
            "serving": _origin(self.serving),
            "preprocessor": self.preprocessor.describe() if self.preprocessor is not None else None,
            "defaults": copy.deepcopy(dict(self.defaults)),
            "train": copy.deepcopy(dict(self.train)),
            "inputs": copy.deepcopy(dict(self.inputs)),
            "raw_inputs": self.raw_inputs,
            "metrics": list(self.metrics),
            "description": self.description,
            "reference": self.reference,
        }

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
        """Split `overrides` into (model kwargs, train kwargs) on top of the defaults.

        A key that is both a builder argument and a training key in
        `_SHARED_KEYS` ("seed": fsdd_ctc's augmentation layers take one) sets
        both, so one seed changes a run's every random stream.

        Raises:
            ValueError: an override key that is neither a builder argument nor
                a training key; the message lists the valid keys.
        """
        model_kw, train_kw = dict(self.defaults), dict(self.train)
        for key, value in (overrides or {}).items():
            if key in self.defaults:
                check_value(self.name, key, value, self.defaults[key], sizes=True)
                model_kw[key] = value
            if key in TRAIN_KEYS and (key not in self.defaults or key in _SHARED_KEYS):
                if key == "data" and isinstance(value, Mapping):
                    value = _deep_merge(train_kw.get("data", {}), value)
                train_kw[key] = value
                check_train(self.name, {key: value})
            elif key not in self.defaults:
                close = difflib.get_close_matches(key, [*self.defaults, *TRAIN_KEYS], n=3)
                raise ValueError(
                    f"{self.name}: unknown setting {key!r}"
                    + (f" (did you mean {', '.join(close)}?)" if close else "")
                    + f"; model settings: {', '.join(sorted(self.defaults)) or 'none'}; "
                    f"training settings: {', '.join(sorted(TRAIN_KEYS))}"
                )
        return model_kw, train_kw


# Keys that set a builder argument and the training setting of the same name (`ModelSpec.resolve`): "seed" is the
# training seed (weights, data order) and, for a model with random layers of its own, theirs.  Before this rule a
# builder's `seed` took `--seed` alone and the training seed stayed 0 (fsdd_ctc, until #15's seventeenth pass).
_SHARED_KEYS = ("seed",)
_OPTIMIZERS = ("adamw", "sgd", "adam", "muon")
_SCHEDULES = ("constant", "cosine", "onecycle", "warmup_rsqrt", "rsqrt")
# Names of integer model arguments for which 0 is meaningful (e.g. no SpecAugment masks).
_ZERO_OK = ("*mask*", "seed", "*stages*")
# Names of float arguments that are fractions in [0, 1).
_FRACTIONS = ("*dropout*", "*ratio*", "*split*", "label_smoothing", "momentum")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a group of settings"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def check_value(owner: str, key: str, value: Any, default: Any, *, sizes: bool = False, optional: bool = False) -> None:
    """Refuse a setting whose type or range cannot be right, judged by its default.

    Args:
        owner: what the setting belongs to, for the message ("cifar10_resnet").
        key: the setting's name, e.g. "width" or "data.cutout".
        value: what the user gave.
        default: the spec's or function's default (None: anything goes).
        sizes: integers are sizes or counts: 0 is refused too, unless the
            name says 0 is meaningful (masks, seeds, stages).
        optional: None is accepted too (a loader setting switched off).

    Raises:
        ValueError: one line naming the setting, what it needs and what it got.
    """
    if default is None or value is None and optional:
        return
    if isinstance(default, bool) and isinstance(value, Mapping):  # a switch that takes its settings as a group
        return
    leaf = key.rsplit(".", 1)[-1]
    bad = None
    if isinstance(default, bool):
        bad = None if isinstance(value, bool) else "true or false"
    elif isinstance(default, int):
        bad = None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    elif isinstance(default, float):
        bad = None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    elif isinstance(default, str):
        bad = None if isinstance(value, str) else "a string"
    elif isinstance(default, (list, tuple)):
        bad = None if isinstance(value, (list, tuple)) else "a list, e.g. [32,64,64]"
        if bad is None and default and all(isinstance(d, int) for d in default):
            for item in value:
                check_value(owner, key, item, default[0], sizes=sizes)
            return
    elif isinstance(default, Mapping):
        bad = None if isinstance(value, Mapping) else "a group of settings (set its keys: --set KEY.NAME=VALUE)"
    if bad:
        raise ValueError(f"{owner}: {key} must be {bad}, got {value!r} ({_kind(value)})")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{owner}: {key} must be a finite number, got {value!r}")
        if any(fnmatch.fnmatchcase(leaf, p) for p in _FRACTIONS):
            if not 0 <= value < 1:
                raise ValueError(f"{owner}: {key} must be in [0, 1), got {value!r}")
        elif value < 0:
            raise ValueError(f"{owner}: {key} must not be negative, got {value!r}")
        elif (sizes and isinstance(value, int) and value == 0 and isinstance(default, int)
              and not any(fnmatch.fnmatchcase(leaf, p) for p in _ZERO_OK)):
            raise ValueError(f"{owner}: {key} must be at least 1, got 0")


def check_train(owner: str, train: Mapping[str, Any]) -> None:
    """Refuse training settings that cannot train: epochs and batch size >= 1, learning rate > 0, ...

    Raises:
        ValueError: one line naming the setting, its valid range and the value given.
    """
    def need(ok, key, what):
        if not ok:
            raise ValueError(f"{owner}: {key} must be {what}, got {train.get(key)!r}")

    def integer(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    for key in ("epochs", "batch_size"):
        if key in train:
            need(integer(train[key]) and train[key] >= 1, key, "an integer of at least 1")
    if "seed" in train:
        need(integer(train["seed"]) and train["seed"] >= 0, "seed", "a non-negative integer")
    if train.get("budget_minutes") is not None:
        need(number(train["budget_minutes"]) and train["budget_minutes"] >= 0, "budget_minutes",
             "a number of minutes of at least 0 (0: no budget)")
    if "budget_plan_after" in train:
        need(integer(train["budget_plan_after"]) and train["budget_plan_after"] >= 1, "budget_plan_after",
             "an integer of at least 1")
    for key in ("learning_rate", "muon_learning_rate"):
        if key in train:
            need(number(train[key]) and train[key] > 0, key, "a number above 0")
    for key in ("weight_decay", "warmup", "speaker_adversary"):
        if train.get(key) is not None:
            need(number(train[key]) and train[key] >= 0, key, "a number of at least 0")
    for key in ("momentum", "label_smoothing", "muon_momentum", "ema"):
        if train.get(key) is not None:
            need(number(train[key]) and 0 <= train[key] < 1, key, "a number in [0, 1)")
    if train.get("clipnorm") is not None:
        need(number(train["clipnorm"]) and train["clipnorm"] > 0, "clipnorm", "a number above 0, or null for no clipping")
    if "nesterov" in train:
        need(isinstance(train["nesterov"], bool), "nesterov", "true or false")
    if "optimizer" in train:
        need(str(train["optimizer"]).lower() in _OPTIMIZERS, "optimizer", " | ".join(_OPTIMIZERS))
    if "schedule" in train:
        need(train["schedule"] in _SCHEDULES, "schedule", " | ".join(_SCHEDULES[:4]))
    if "data" in train:
        need(isinstance(train["data"], Mapping), "data", "a group of loader settings (--set data.NAME=VALUE)")


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict:
    """`base` updated by `update`, nested mappings merged key by key (not replaced)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_families() -> None:
    """Import the model families (once): `applications` and every `zoo.models` entry point.

    The loader of every registry that families fill (models, datasets,
    preprocessors, tasks, serving recipes): a lookup never depends on what
    the user imported first.  It names the family package but imports it
    only when first needed, so no zoo module imports a family at import time.
    """
    global _FAMILIES_LOADED
    with _FAMILIES_LOCK:  # re-entrant: a family that looks something up while it loads finds it loading
        if _FAMILIES_LOADED:
            return
        _FAMILIES_LOADED = True
        try:
            from zoo._tf import import_tensorflow

            import_tensorflow()  # quietly, before the families' Keras imports pull it in
            importlib.import_module("applications")
        except BaseException:
            _FAMILIES_LOADED = False
            raise
        from importlib.metadata import entry_points

        for ep in entry_points(group="zoo.models"):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must not hide the built-in models
                import warnings

                warnings.warn(f"zoo.models entry point {ep.name!r} failed to load: {exc}")


_FAMILIES_LOADED = False
_FAMILIES_LOCK = threading.RLock()
MODELS = Registry("model", loader=load_families)


def register_model(
    name: str | None = None,
    *,
    modality: str,
    task: Any,
    dataset: Callable[..., Any],
    serving: type,
    inputs: Mapping[str, Any],
    preprocessor: type | None = None,
    metrics: tuple[str, ...] | list[str] | None = None,
    train: Mapping[str, Any] | None = None,
    description: str | None = None,
    reference: str = "",
):
    """Decorator registering a keyword-only model builder as a `ModelSpec`.

    The builder's keyword defaults become the spec's `defaults`; its docstring's
    first line becomes the description.  Registering a name twice raises.

    Args:
        name: registry name; defaults to the function's name.
        modality: a label for listings ("image", "speech", ...).
        task: a `zoo.tasks.Task` object (e.g. `zoo.tasks.classification.CLASSIFICATION`).
        dataset: the loader function (registered in `zoo.data.DATASETS`).
        serving: the `zoo.serving.Serving` subclass its exports embed.
        inputs: the model's input contract on tensors.
        preprocessor: the `zoo.data.Preprocessor` subclass its loader fits, or None.
        metrics: names evaluation always reports (default: the task's).
        train, description, reference: see `ModelSpec`.

    Returns:
        The builder, unchanged (with `.spec` set).

    Raises:
        TypeError: a part given by name rather than by object, or a builder
            that is not keyword-only with defaults.
    """
    unknown_train = set(train or {}) - set(TRAIN_KEYS)
    if unknown_train:
        raise ValueError(f"unknown training keys {sorted(unknown_train)}; valid: {sorted(TRAIN_KEYS)}")
    for what, obj, ok in (("task", task, callable(getattr(task, "evaluate", None)) and hasattr(task, "metrics")),
                          ("dataset", dataset, callable(dataset) and not isinstance(dataset, type)),
                          ("serving", serving, isinstance(serving, type) and hasattr(serving, "raw_inputs")),
                          ("preprocessor", preprocessor, preprocessor is None or isinstance(preprocessor, type))):
        if not ok:
            raise TypeError(f"register_model: {what} must be the object itself (a zoo.tasks.Task, a loader function, "
                            f"a Serving subclass, a Preprocessor subclass), not {obj!r}")

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        params = inspect.signature(fn).parameters.values()
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if positional:
            raise TypeError(f"model builder {fn.__name__} must be keyword-only (found {positional})")
        defaults = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}
        missing = [k for k, v in defaults.items() if v is inspect.Parameter.empty]
        if missing:
            raise TypeError(f"model builder {fn.__name__}: give defaults for {missing}")
        doc = (description or inspect.getdoc(fn) or "").strip().splitlines()
        spec = ModelSpec(
            name=name or fn.__name__,
            builder=fn,
            modality=modality,
            task=task,
            dataset=dataset,
            serving=serving,
            preprocessor=preprocessor,
            defaults=defaults,
            train=dict(train or {}),
            inputs=dict(inputs),
            metrics=tuple(task.metrics if metrics is None else metrics),
            description=doc[0] if doc else "",
            reference=reference,
        )
        MODELS.register(spec.name, spec)
        fn.spec = spec
        return fn

    return decorator


def list_models(pattern: str | list[str] = "*", modality: str | None = None, exclude: str | list[str] = ()) -> list[str]:
    """Sorted names of registered models.

    Args:
        pattern: shell-style wildcard(s), e.g. "cifar10_*" or ["*lstm*", "*vit"].
        modality: keep only "image", "text", "translation" or "speech" models.
        exclude: wildcard(s) to drop.

    Returns:
        list[str], sorted.
    """
    names = MODELS.names(pattern, exclude)
    if modality is not None:
        known = {MODELS.get(n).modality for n in MODELS.names()}
        if modality not in known:
            raise ValueError(f"unknown modality {modality!r}; known: {', '.join(sorted(known))}")
        names = [n for n in names if MODELS.get(n).modality == modality]
    return names


def get_spec(name: str) -> ModelSpec:
    """The `ModelSpec` registered as `name` (UnknownNameError lists close names)."""
    return MODELS.get(name)


def create_model(name: str, **overrides: Any):
    """Build the registered model `name` as a built `keras.Model`.

    Args:
        name: a registered model name (see `list_models()`).
        **overrides: builder arguments replacing the spec's defaults.

    Returns:
        keras.Model whose inputs follow `model_info(name)["inputs"]`.

    Raises:
        UnknownNameError: unknown name (close matches listed).
        ValueError: an override that is not a builder argument (valid keys listed).
    """
    spec = get_spec(name)
    for key in overrides:
        if key not in spec.defaults:
            close = difflib.get_close_matches(key, list(spec.defaults), n=3)
            hint = (
                " (a training setting: pass it to zoo.training.fit or `zoo train --set`)"
                if key in TRAIN_KEYS
                else f" (did you mean {', '.join(close)}?)" if close else ""
            )
            raise ValueError(
                f"{name}: unknown model argument {key!r}{hint}; "
                f"valid: {', '.join(sorted(spec.defaults)) or 'none'}"
            )
    model_kw, _ = spec.resolve(overrides)
    model = spec.builder(**model_kw)
    if not model.built:
        raise RuntimeError(f"builder of {name} returned an unbuilt model")
    return model


def model_info(name: str) -> dict[str, Any]:
    """The spec of `name` as plain data (JSON-able), e.g. for `zoo info`."""
    return get_spec(name).to_dict()
