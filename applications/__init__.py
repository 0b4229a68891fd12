"""Model families: one folder each, holding the family's whole story.

    applications/<family>/
        models.py    builders, registered with `@register_model`, linking the parts below by object
        data.py      the dataset loader (`DATASETS`) and its fitted `Preprocessor` (`PREPROCESSORS`)
        task.py      a `Task` (loss, decoding, metrics, evaluator) made with `register_task`, when
                     classification (`zoo.tasks.classification.CLASSIFICATION`) does not serve
        serving.py   the `Serving` recipe an export embeds, with its declared `raw_inputs` (`SERVINGS`)

Importing this package imports every family, which registers its parts in
zoo's registries; those registries import it on their first lookup
(`zoo.registry.load_families`), so users never have to.  A new family is one
folder plus one import line here (docs/ADDING_A_FAMILY.md).
"""

from applications import image  # noqa: F401  (cifar10_cnn, cifar10_resnet, cifar10_vit)
from applications import text  # noqa: F401  (imdb_lstm, imdb_bilstm_attention, imdb_transformer)
from applications import translation  # noqa: F401  (multi30k_transformer)
from applications import speech  # noqa: F401  (fsdd_ctc)
from applications import gpt  # noqa: F401  (imdb_gpt, imdb_gpt_classifier)
