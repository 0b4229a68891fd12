"""Every registered model exports through its spec's serving recipe, on raw inputs, verified without zoo.

The spec links its loader, preprocessor and serving recipe by object; this
test follows those links for each model in the registry: load the spec's
dataset from a tiny fixture archive, build the model with the sizes the
fitted preprocessor decides, export it (the export reloads it in a process
where `zoo` and `applications` cannot be imported and compares outputs on
the recipe's raw samples), and check that the SavedModel's signature takes
exactly the raw inputs the spec declares.  A new family gets this for free
once its dataset has a fixture below.
"""

import json

import numpy as np
import pytest

import zoo

pytestmark = pytest.mark.slow  # 11 exports with verification: a few minutes


def _fixture(dataset: str, root):
    """(data_dir, small loader settings) for each registered dataset."""
    from conftest import write_cifar_archive, write_imdb_archive
    from data.test_translation import write_multi30k
    from speech_fixtures import write_fsdd_archive

    makers = {
        "cifar10": (write_cifar_archive, {}),
        "imdb": (write_imdb_archive, {"max_tokens": 200, "sequence_length": 32}),
        "imdb_lm": (write_imdb_archive, {"vocabulary_size": 120, "max_length": 24}),
        "imdb_wordpiece": (write_imdb_archive, {"vocabulary_size": 120, "max_length": 24}),
        "multi30k": (write_multi30k, {"vocabulary_size": 120, "max_length": 16}),
        "fsdd": (lambda r: write_fsdd_archive(r, takes=6), {"connected": {"num_train": 4, "num_test": 4}}),
    }
    if dataset not in makers:
        pytest.fail(f"no fixture for dataset {dataset!r}: add one to tests/test_export_every_model.py")
    make, settings = makers[dataset]
    return make(root), settings


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_model_exports_on_its_declared_raw_inputs(name, tmp_path):
    import tensorflow as tf

    spec = zoo.get_spec(name)
    data_dir, settings = _fixture(spec.dataset_name, tmp_path / "data")
    bundle = spec.dataset(data_dir=data_dir, batch_size=8, limit=24, **settings)  # the link, not a name lookup
    if spec.preprocessor is not None:
        assert isinstance(bundle.preprocessor, spec.preprocessor)
    model = zoo.create_model(name, **{k: v for k, v in bundle.model_args.items() if k in spec.defaults})
    path = zoo.export_model(model, name=name, base_dir=tmp_path / "saved", info=bundle.info,
                            preprocessor=bundle.preprocessor, verify=True)
    card = json.loads((path / "model_card.json").read_text())
    assert card["verified"] is True and card["spec"]["task"] == spec.task.name

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    declared = spec.raw_inputs
    assert set(inputs) == set(declared), (name, sorted(inputs), sorted(declared))
    for key, tensor in inputs.items():
        assert tensor.dtype == tf.as_dtype(declared[key]["dtype"]), (name, key)
        assert tensor.shape.as_list() == declared[key]["shape"], (name, key)
    samples = spec.serving(None, spec, bundle.info, bundle.preprocessor).samples()
    out = signature(**{k: tf.constant(v) for k, v in samples.items()})
    assert all(np.asarray(v).shape[0] == len(next(iter(samples.values()))) or np.asarray(v).ndim == 0
               for v in out.values()), name
