"""Registry contracts: lookup, suggestions, duplicates, overrides, listing, plugins."""

import json

import keras
import pytest

import zoo
from zoo import registry
from zoo.data import DATASETS
from zoo.registry import MODELS, Registry, UnknownNameError, register_model
from zoo.serving import SERVINGS
from zoo.tasks.classification import CLASSIFICATION


@pytest.fixture
def throwaway():
    """Register a tiny throwaway model for the test, and remove it afterwards."""
    names = []

    def make(name, **meta):
        @register_model(
            name,
            modality=meta.get("modality", "image"),
            task=CLASSIFICATION,
            dataset=DATASETS.get("cifar10"),
            serving=SERVINGS.get("image"),
            inputs={"x": {"shape": [4], "dtype": "float32"}},
            train={"epochs": 1},
        )
        def build(*, units: int = 3):
            """A throwaway dense model."""
            x = keras.Input((4,))
            return keras.Model(x, keras.layers.Dense(units)(x))

        names.append(name)
        return build

    yield make
    for n in names:
        MODELS.unregister(n)


def test_builtin_families_are_visible_without_importing_applications():
    names = zoo.list_models()
    assert {"cifar10_cnn", "cifar10_resnet", "cifar10_vit"} <= set(names)
    assert names == sorted(names)


def test_list_models_patterns_and_modality(throwaway):
    throwaway("tmp_text_model", modality="text")
    assert zoo.list_models("cifar10_*") == ["cifar10_airbench", "cifar10_cnn", "cifar10_resnet", "cifar10_vit"]
    assert zoo.list_models(["*_cnn", "*_vit"]) == ["cifar10_cnn", "cifar10_vit"]
    assert zoo.list_models("cifar10_*", exclude="*vit") == ["cifar10_airbench", "cifar10_cnn", "cifar10_resnet"]
    text = zoo.list_models(modality="text")
    assert "tmp_text_model" in text and text == sorted(text)
    assert all(zoo.get_spec(n).modality == "text" for n in text)
    assert "tmp_text_model" not in zoo.list_models(modality="image")
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        zoo.list_models(modality="video")


def test_create_model_returns_built_model_with_overrides(throwaway):
    throwaway("tmp_dense")
    model = zoo.create_model("tmp_dense", units=5)
    assert isinstance(model, keras.Model) and model.built
    assert model.output_shape == (None, 5)


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownNameError) as err:
        zoo.create_model("cifar10_resnt")
    assert "cifar10_resnet" in str(err.value)
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)


def test_unknown_override_lists_valid_keys(throwaway):
    throwaway("tmp_dense2")
    with pytest.raises(ValueError, match=r"unknown model argument 'unit'.*did you mean units.*valid: units"):
        zoo.create_model("tmp_dense2", unit=4)
    with pytest.raises(ValueError, match="training setting"):
        zoo.create_model("tmp_dense2", epochs=4)
    spec = zoo.get_spec("tmp_dense2")
    with pytest.raises(ValueError, match="training settings: .*batch_size"):
        spec.resolve({"bogus": 1})
    model_kw, train_kw = spec.resolve({"units": 7, "epochs": 3, "data": {"augment": False}})
    assert model_kw == {"units": 7} and train_kw["epochs"] == 3 and train_kw["data"] == {"augment": False}


def test_nested_data_overrides_merge_with_the_spec():
    spec = zoo.get_spec("fsdd_ctc")
    assert spec.train["data"]["connected"]["num_train"] == 1000
    _, train_kw = spec.resolve({"data": {"connected": {"num_test": 100}, "speed": 0.1}})
    assert train_kw["data"]["connected"] == {**spec.train["data"]["connected"], "num_test": 100}
    assert train_kw["data"]["speed"] == 0.1
    assert spec.train["data"]["connected"]["num_test"] == 500  # the spec itself is untouched


def test_duplicate_registration_is_an_error(throwaway):
    throwaway("tmp_dup")
    with pytest.raises(ValueError, match="already registered"):
        throwaway("tmp_dup")
    with pytest.raises(ValueError, match="already registered"):
        throwaway("cifar10_cnn")


def test_builders_must_be_keyword_only_with_defaults():
    with pytest.raises(TypeError, match="keyword-only"):
        register_model("tmp_bad", modality="image", task=CLASSIFICATION, dataset=DATASETS.get("cifar10"),
                       serving=SERVINGS.get("image"), inputs={})(lambda units=3: None)
    assert "tmp_bad" not in MODELS


def test_model_info_is_plain_json_data():
    info = zoo.model_info("cifar10_resnet")
    again = json.loads(json.dumps(info))
    assert again == info
    assert info["modality"] == "image" and info["dataset"] == "cifar10"
    assert info["inputs"]["image"] == {"shape": [32, 32, 3], "dtype": "uint8", "range": [0, 255]}
    assert info["defaults"]["width"] == 64 and info["train"]["optimizer"] == "sgd"
    assert info["builder"] == "applications.image.models.cifar10_resnet"


def test_generic_registry_loader_runs_once_and_suggests():
    calls = []
    r = Registry("widget", loader=lambda: calls.append(1) or r.register("spanner", 1))
    assert r.names() == ["spanner"] and r.get("spanner") == 1 and "spanner" in r and len(r) == 1
    assert calls == [1]
    with pytest.raises(UnknownNameError, match="did you mean spanner"):
        r.get("spaner")


def test_entry_point_plugins_are_loaded(monkeypatch):
    loaded = []

    class EP:
        name = "plugin"

        def load(self):
            loaded.append(True)

    r = Registry("model", loader=registry.load_families)
    monkeypatch.setattr(registry, "_FAMILIES_LOADED", False)  # as in a fresh process
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [EP()] if group == "zoo.models" else [])
    r.names()
    assert loaded == [True]


def test_specs_link_their_family_parts_by_object():
    from zoo.data import Preprocessor
    from zoo.serving import Serving
    from zoo.tasks import TASKS, Task

    for name in zoo.list_models():
        spec = zoo.get_spec(name)
        assert isinstance(spec.task, Task) and TASKS.get(spec.task.name) is spec.task, name
        assert DATASETS.get(spec.dataset_name) is spec.dataset, name
        assert issubclass(spec.serving, Serving) and spec.serving.raw_inputs, name
        assert spec.preprocessor is None or issubclass(spec.preprocessor, Preprocessor), name
        assert spec.metrics == spec.task.metrics, name  # declared by the task, checked by evaluate
        info = zoo.model_info(name)  # the links become names in JSON
        assert info["task"] == spec.task.name and info["dataset"] == spec.dataset_name
        assert info["raw_inputs"] == spec.raw_inputs and info["serving"].endswith(spec.serving.__name__)
    assert zoo.get_spec("imdb_lstm").preprocessor.kind == "text_vectorizer"
    assert zoo.get_spec("imdb_gpt").serving is not zoo.get_spec("imdb_gpt_classifier").serving
    assert "image_bytes: string (batch,)" in zoo.get_spec("cifar10_cnn").raw_input


def test_a_part_given_by_name_is_refused_with_the_fix():
    with pytest.raises(TypeError, match="task must be the object itself"):
        register_model("tmp_str", modality="image", task="classification", dataset=DATASETS.get("cifar10"),
                       serving=SERVINGS.get("image"), inputs={})
    with pytest.raises(TypeError, match="dataset must be the object itself"):
        register_model("tmp_str", modality="image", task=CLASSIFICATION, dataset="cifar10",
                       serving=SERVINGS.get("image"), inputs={})
    assert "tmp_str" not in MODELS


def test_evaluation_refuses_a_result_without_a_declared_metric():
    import dataclasses

    from zoo.evaluation import evaluate
    from zoo.tasks import Task

    spec = zoo.get_spec("cifar10_cnn")
    task = Task("tmp", compile=CLASSIFICATION.compile, evaluate=lambda *a, **k: {"accuracy": 0.5},
                metrics=("accuracy", "per_class_accuracy"))
    with pytest.raises(RuntimeError, match="did not report per_class_accuracy"):
        evaluate(dataclasses.replace(spec, task=task, metrics=task.metrics), None, None)
    assert evaluate(dataclasses.replace(spec, task=task, metrics=("accuracy",)), None, None) == {"accuracy": 0.5}


def test_one_seed_reaches_the_training_seed_and_a_builders_own():
    """fsdd_ctc's builder takes a `seed` (its augmentation layers): `--seed` must still set the training seed
    (weights, data order); before, the builder's argument took it and training stayed at seed 0."""
    import zoo

    model_kw, train_kw = zoo.get_spec("fsdd_ctc").resolve({"seed": 3})
    assert model_kw["seed"] == 3 and train_kw["seed"] == 3
    model_kw, train_kw = zoo.get_spec("cifar10_cnn").resolve({"seed": 3})  # no builder seed: training only
    assert train_kw["seed"] == 3 and "seed" not in model_kw
    with pytest.raises(ValueError, match="fsdd_ctc: seed must"):
        zoo.get_spec("fsdd_ctc").resolve({"seed": -1})
