"""Registry contracts: lookup, suggestions, duplicates, overrides, listing, plugins."""

import json

import keras
import pytest

import zoo
from zoo import registry
from zoo.registry import MODELS, Registry, UnknownNameError, register_model


@pytest.fixture
def throwaway():
    """Register a tiny throwaway model for the test, and remove it afterwards."""
    names = []

    def make(name, **meta):
        @register_model(
            name,
            modality=meta.get("modality", "image"),
            task="classification",
            dataset="cifar10",
            inputs={"x": {"shape": [4], "dtype": "float32"}},
            raw_input="float32 vectors",
            preprocessor="none",
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
        register_model("tmp_bad", modality="image", task="t", dataset="d", inputs={}, raw_input="",
                       preprocessor="")(lambda units=3: None)
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
