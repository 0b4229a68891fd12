"""Shared test settings: quiet TensorFlow, a private cache, seeded Keras."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib

import pytest

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed_and_isolate(tmp_path_factory, monkeypatch):
    """Every test: fixed Keras seed, and a cache dir that is not the user's."""
    import keras

    keras.utils.set_random_seed(0)
    cache = tmp_path_factory.getbasetemp() / "zoo-cache"
    monkeypatch.setenv("ZOO_CACHE_DIR", os.environ.get("ZOO_TEST_CACHE_DIR", str(cache)))
    yield


@pytest.fixture
def shared_data_dir():
    """The offline data copies (ZOO_DATA_DIR or ../shared/data); skip when absent."""
    d = os.environ.get("ZOO_DATA_DIR") or (str(SHARED_DATA) if SHARED_DATA.is_dir() else "")
    if not d or not pathlib.Path(d).is_dir():
        pytest.skip("no offline data directory (set ZOO_DATA_DIR)")
    return pathlib.Path(d)
